import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from "@temporalio/workflow";
import type { AuditActivities } from "../activities/audit.ts";
import { commandActivities } from "./agent-command.ts";
import { isolationCommandId } from "./ids.ts";

export interface IsolateRequest {
  /** isolate-host details (the seed's: reason, allow_portal_communication, allow_dns, portal_ips, portal_ports). */
  details: Record<string, unknown>;
  requestedBy: string;
  /** Released automatically after this long; held until released otherwise. */
  releaseAfterMs?: number;
  /** Delivery deadline of each command to the agent. */
  ttlMs: number;
}

/** What the API sends; from the Temporal UI or CLI a release may carry anything, or nothing. */
export interface ReleaseRequest {
  requestedBy?: string;
  reason?: string;
}

export type IsolationStatus = "isolating" | "isolated" | "releasing" | "released" | "failed";

export interface IsolationState {
  agentId: string;
  status: IsolationStatus;
  requestedBy: string | null;
  reason: string | null;
  isolatedAt: string | null;
  /** When the time limit releases the host, if there is one. */
  releaseAt: string | null;
  releaseRequestedBy: string | null;
  releasedAt: string | null;
  /** The agent's completion details of isolate-host, which verified the isolation. */
  verification: Record<string, unknown> | null;
  commands: string[];
  error: string | null;
}

export interface IsolationInput {
  agentId: string;
  /** Set when a long release continued as new: the release goes on from this attempt. */
  releasing?: {
    state: IsolationState;
    isolate: IsolateRequest;
    attempt: number;
    backoffMs: number;
  };
}

export const isolateSignal = defineSignal<[IsolateRequest]>("isolate");
export const releaseSignal = defineSignal<[ReleaseRequest]>("release");
export const isolationStateQuery = defineQuery<IsolationState>("state");

const { recordIsolationRelease } = proxyActivities<AuditActivities>({
  startToCloseTimeout: "30 seconds",
  retry: { maximumInterval: "1 minute" },
});

/**
 * Since this patch the workflow audits every release itself, including those signalled straight
 * from the Temporal UI or CLI (no API handler sees them), and a release signal without a payload
 * releases (before, it was ignored).
 */
const RELEASE_AUDITED = "isolation-release-audited";

const RELEASE_RETRY_FIRST_MS = 30_000;
const RELEASE_RETRY_MAX_MS = 10 * 60_000;
/**
 * Since this patch a release that keeps failing continues as new every RELEASE_ATTEMPTS_PER_RUN
 * attempts and remembers only the latest command ids, so a host whose agent stays away for weeks
 * neither grows one history without bound nor carries a growing state.
 */
const RELEASE_CONTINUES = "isolation-release-continues-as-new";
const RELEASE_ATTEMPTS_PER_RUN = 50;
const COMMANDS_KEPT = 20;

/**
 * One per agent (`isolation/<agent>`): isolate the host, verify it from the agent's completion,
 * hold it until an operator releases it (REST or the `release` signal) or the time limit passes,
 * then release it. An isolate request while this runs changes nothing: isolating an isolated host
 * is a no-op. Every step is durable: a restart of everything resumes where it was.
 */
export async function isolationWorkflow(input: IsolationInput): Promise<IsolationState> {
  if (input.releasing) return release(input.agentId, input.releasing);
  const requests: { isolate?: IsolateRequest; release?: ReleaseRequest } = {};
  const state: IsolationState = {
    agentId: input.agentId,
    status: "isolating",
    requestedBy: null,
    reason: null,
    isolatedAt: null,
    releaseAt: null,
    releaseRequestedBy: null,
    releasedAt: null,
    verification: null,
    commands: [],
    error: null,
  };
  setHandler(isolateSignal, (r) => {
    requests.isolate ??= r;
  });
  setHandler(releaseSignal, (r) => {
    requests.release ??= r ?? (patched(RELEASE_AUDITED) ? {} : undefined);
  });
  setHandler(isolationStateQuery, () => state);

  // Started with signalWithStart: the isolate request is the first thing this workflow sees.
  await condition(() => requests.isolate !== undefined);
  const isolate = requests.isolate as IsolateRequest;
  state.requestedBy = isolate.requestedBy;
  state.reason = typeof isolate.details.reason === "string" ? isolate.details.reason : null;
  const run = workflowInfo();

  const isolateId = isolationCommandId(run, "isolate");
  state.commands.push(isolateId);
  try {
    const result = await commandActivities(isolate.ttlMs).runAgentCommand({
      agentId: input.agentId,
      command: "isolate-host",
      details: isolate.details,
      priority: "critical",
      commandId: isolateId,
      requestedBy: isolate.requestedBy,
      ttlMs: isolate.ttlMs,
    });
    const problem = unverifiedIsolation(result.details);
    if (problem) throw ApplicationFailure.nonRetryable(problem, "IsolationNotVerified");
    state.verification = result.details;
  } catch (err) {
    state.status = "failed";
    state.error = failureMessage(err);
    throw ApplicationFailure.nonRetryable(
      `isolation of ${input.agentId} failed: ${state.error}`,
      "IsolationFailed",
    );
  }
  state.status = "isolated";
  state.isolatedAt = new Date().toISOString();

  const limit = isolate.releaseAfterMs;
  if (limit !== undefined) state.releaseAt = new Date(Date.now() + limit).toISOString();
  if (limit === undefined) await condition(() => requests.release !== undefined);
  else await condition(() => requests.release !== undefined, limit);
  state.status = "releasing";
  const asked = requests.release ? releaseOf(requests.release) : { by: "time limit", reason: null };
  state.releaseRequestedBy = asked.by;
  if (patched(RELEASE_AUDITED))
    await recordIsolationRelease({
      agentId: input.agentId,
      releasedBy: asked.by,
      reason: asked.reason,
    });

  const first = { attempt: 1, backoffMs: RELEASE_RETRY_FIRST_MS };
  if (patched(RELEASE_CONTINUES)) return release(input.agentId, { state, isolate, ...first });

  // A host must not stay isolated because its agent was offline once: release until it succeeds.
  for (
    let attempt = 1, backoff = RELEASE_RETRY_FIRST_MS;
    ;
    attempt++, backoff = Math.min(backoff * 2, RELEASE_RETRY_MAX_MS)
  ) {
    const releaseId = isolationCommandId(run, `release/${attempt}`);
    state.commands.push(releaseId);
    try {
      await commandActivities(isolate.ttlMs).runAgentCommand({
        agentId: input.agentId,
        command: "release-host",
        details: {},
        priority: "critical",
        commandId: releaseId,
        requestedBy: state.releaseRequestedBy,
        ttlMs: isolate.ttlMs,
      });
      break;
    } catch (err) {
      state.error = `release attempt ${attempt} failed: ${failureMessage(err)}`;
      await sleep(backoff);
    }
  }
  return released(state);
}

/**
 * Releases the host until the agent confirms it, with growing pauses between attempts; continues
 * as new after RELEASE_ATTEMPTS_PER_RUN attempts, carrying only what the next run needs.
 */
async function release(
  agentId: string,
  from: NonNullable<IsolationInput["releasing"]>,
): Promise<IsolationState> {
  const { state, isolate } = from;
  setHandler(isolationStateQuery, () => state);
  const run = workflowInfo();
  let { attempt, backoffMs } = from;
  for (let tries = 0; tries < RELEASE_ATTEMPTS_PER_RUN; tries++) {
    const releaseId = isolationCommandId(run, `release/${attempt}`);
    state.commands = [...state.commands, releaseId].slice(-COMMANDS_KEPT);
    try {
      await commandActivities(isolate.ttlMs).runAgentCommand({
        agentId,
        command: "release-host",
        details: {},
        priority: "critical",
        commandId: releaseId,
        requestedBy: state.releaseRequestedBy ?? "time limit",
        ttlMs: isolate.ttlMs,
      });
      return released(state);
    } catch (err) {
      state.error = `release attempt ${attempt} failed: ${failureMessage(err)}`;
      await sleep(backoffMs);
      attempt++;
      backoffMs = Math.min(backoffMs * 2, RELEASE_RETRY_MAX_MS);
    }
  }
  return continueAsNew<typeof isolationWorkflow>({
    agentId,
    releasing: { ...from, state, attempt, backoffMs },
  });
}

function released(state: IsolationState): IsolationState {
  state.status = "released";
  state.releasedAt = new Date().toISOString();
  state.error = null;
  return state;
}

/** Who released and why, as far as a signal's payload (typed by whoever sent it) says. */
function releaseOf(request: unknown): { by: string; reason: string | null } {
  const { requestedBy, reason } = (request ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === "string" && v.trim() ? v.slice(0, 500) : null);
  return { by: text(requestedBy) ?? "temporal signal", reason: text(reason) };
}

/** Why an isolate-host completion does not prove a full isolation, or null when it does. */
export function unverifiedIsolation(details: Record<string, unknown>): string | null {
  if (details.isolation_level !== "full") {
    return `the agent reported isolation_level ${JSON.stringify(details.isolation_level)}, not "full"`;
  }
  if (typeof details.firewall_rules_added !== "number" || details.firewall_rules_added < 1) {
    return "the agent reported no firewall rules added";
  }
  return null;
}

function failureMessage(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}
