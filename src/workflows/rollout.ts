import {
  ActivityFailure,
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
} from "@temporalio/workflow";
import type { AgentOutcome, RolloutActivities } from "../activities/rollout.ts";

export interface RolloutInput {
  ruleSet: string;
  version: number;
  /** Groups to roll out to; every group assigned the rule set when absent. */
  groups?: string[];
  /** Share of the agents in the first (canary) wave; a rejection there stops the rollout. */
  canaryShare: number;
  waveSize: number;
  agentTimeoutMs: number;
  retries: number;
  requestedBy: string;
}

export type RolloutStatus =
  | "starting"
  | "running"
  | "paused"
  | "completed"
  | "failed"
  | "cancelled";

export interface RolloutState {
  ruleSet: string;
  version: number;
  status: RolloutStatus;
  requestedBy: string;
  groups: string[];
  waves: number;
  wavesDone: number;
  /** Per agent: pending, applied, rejected (with the agent's error) or offline. */
  agents: Record<string, AgentOutcome>;
  counts: Record<AgentOutcome["status"], number>;
  error: string | null;
}

export const pauseSignal = defineSignal("pause");
export const resumeSignal = defineSignal("resume");
export const cancelSignal = defineSignal("cancel");
export const rolloutStateQuery = defineQuery<RolloutState>("state");

const { startRollout } = proxyActivities<RolloutActivities>({
  startToCloseTimeout: "1 minute",
  retry: { maximumInterval: "30 seconds", maximumAttempts: 10 },
});

/**
 * One per rule set version (`rollout/<set>/<version>`): point the groups at the version, then
 * send it to their agents wave by wave, a canary share first. A canary agent that rejects the
 * rules stops the rollout before anyone else gets them. Operators pause, resume and cancel
 * between waves; a rollback is the rollout of the previous version.
 */
export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutState> {
  const state: RolloutState = {
    ruleSet: input.ruleSet,
    version: input.version,
    status: "starting",
    requestedBy: input.requestedBy,
    groups: [],
    waves: 0,
    wavesDone: 0,
    agents: {},
    counts: { pending: 0, applied: 0, rejected: 0, offline: 0 },
    error: null,
  };
  let paused = false;
  let cancelled = false;
  setHandler(rolloutStateQuery, () => ({
    ...state,
    status: paused && state.status === "running" ? "paused" : state.status,
  }));
  setHandler(pauseSignal, () => {
    paused = true;
  });
  setHandler(resumeSignal, () => {
    paused = false;
  });
  setHandler(cancelSignal, () => {
    cancelled = true;
  });

  // A wave waits for its slowest agent's retries, and heartbeats while it does.
  const { deliverWave } = proxyActivities<RolloutActivities>({
    startToCloseTimeout: input.agentTimeoutMs * (input.retries + 1) + 60_000,
    heartbeatTimeout: "30 seconds",
    retry: { maximumInterval: "30 seconds", maximumAttempts: 5 },
  });

  let target: Awaited<ReturnType<typeof startRollout>>;
  try {
    target = await startRollout({
      ruleSet: input.ruleSet,
      version: input.version,
      ...(input.groups && { groups: input.groups }),
    });
  } catch (err) {
    // A version that does not exist: the rollout ends failed, saying why, instead of retrying.
    if (!(err instanceof ActivityFailure)) throw err;
    state.status = "failed";
    state.error = err.cause?.message ?? err.message;
    return state;
  }
  state.groups = target.groups;
  for (const id of target.agents) state.agents[id] = { status: "pending" };
  const canary = Math.min(
    target.agents.length,
    Math.max(1, Math.ceil(target.agents.length * input.canaryShare)),
  );
  const waves = [target.agents.slice(0, canary)];
  for (let i = canary; i < target.agents.length; i += input.waveSize)
    waves.push(target.agents.slice(i, i + input.waveSize));
  state.waves = target.agents.length ? waves.length : 0;
  state.status = "running";
  recount(state);

  for (const [n, wave] of waves.entries()) {
    if (!wave.length) break;
    await condition(() => !paused || cancelled);
    if (cancelled) {
      state.status = "cancelled";
      return state;
    }
    const outcomes = await deliverWave({
      ruleSet: input.ruleSet,
      version: input.version,
      agents: wave,
      agentTimeoutMs: input.agentTimeoutMs,
      retries: input.retries,
    });
    Object.assign(state.agents, outcomes);
    state.wavesDone = n + 1;
    recount(state);
    const rejected = wave.filter((id) => outcomes[id]?.status === "rejected");
    if (n === 0 && rejected.length) {
      state.status = "failed";
      state.error = `the canary wave failed: ${rejected.length} of ${wave.length} agents rejected the rules (${rejected
        .slice(0, 3)
        .map((id) => `${id}: ${outcomes[id]?.error}`)
        .join("; ")})`;
      return state;
    }
  }
  state.status = cancelled ? "cancelled" : "completed";
  return state;
}

function recount(state: RolloutState): void {
  state.counts = { pending: 0, applied: 0, rejected: 0, offline: 0 };
  for (const a of Object.values(state.agents)) state.counts[a.status]++;
}
