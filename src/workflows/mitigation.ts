import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineSignal,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from "@temporalio/workflow";
import type { ApprovalActivities } from "../activities/approvals.ts";
import type { EngineActivities, PlannedStep } from "../activities/engine.ts";
import type { IsolationActivities } from "../activities/isolation.ts";
import type { PushRulesActivities } from "../activities/push-rules.ts";
import { type ApprovalAnswer, approvalAnswerOf } from "../domain/approval.ts";
import { touchedObjects } from "../domain/mitigation.ts";
import { COMPLETION_ALLOWANCE_MS, commandActivities } from "./agent-command.ts";
import { mitigationAttemptId, mitigationCommandId } from "./ids.ts";

export interface MitigationInput {
  incidentId: string;
  host: string;
  alertId: string;
  flowId: string;
  nodeId: string;
  techniques: string[];
  preemptive: boolean;
}

export interface MitigationOutcome {
  outcome: "succeeded" | "failed" | "none" | "duplicate";
  mitigation?: string;
}

/**
 * A run about to act on objects of its host (touchedObjects) asks its incident for its turn: the
 * incident grants it once every earlier run of the host touching the same objects has ended.
 */
export const objectsClaimSignal =
  defineSignal<[{ workflowId: string; objects: string[] }]>("objectsClaim");
export const objectsGrantedSignal = defineSignal("objectsGranted");

/**
 * A person's answer to a held mitigation: from the REST API and the console (which name the
 * approval and the operator) or the Temporal UI, e.g. `{"decision":"approve","comment":"…"}`.
 */
export const approvalSignal = defineSignal<[ApprovalAnswer]>("approval");

/** A mitigation run's outcome, reported to its incident (which does not wait on its children). */
export const mitigationOutcomeSignal =
  defineSignal<[MitigationOutcome & { workflowId: string }]>("mitigationOutcome");

// Local: planning and recording are short database work beside the workflow. Retried without a
// cap: while PostgreSQL or Neo4j is down the run waits (pending in the Temporal UI) and decides
// once they are back; a permanent problem is a non-retryable failure, recorded as a decision.
const localPolicy = {
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "30 seconds" },
} as const;
const { planNextMitigation, recordDecision } = proxyLocalActivities<EngineActivities>(localPolicy);
const { gateMitigation, answerApproval } = proxyLocalActivities<ApprovalActivities>(localPolicy);

// A SOAR webhook gets a few quick attempts before the next candidate is tried: acting in seconds
// matters more than insisting on one mitigation. 4xx answers are permanent (non-retryable). An
// activity, not a local one: a slow SOAR must not hold up the incident's local activities, which
// run one at a time (MitigationRunContext.local).
const webhookPolicy = {
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "500 milliseconds", backoffCoefficient: 2, maximumAttempts: 3 },
} as const;

/** Since this patch the run reports its outcome to the incident by signal, whatever it was. */
const OUTCOME_SIGNAL = "mitigation-outcome-signal";
/** Since this patch an isolate-host step is the agent's isolation workflow (held, verified, released). */
const HOST_ORDERING = "mitigation-host-ordering";
const ISOLATION_WORKFLOW = "engine-isolation-workflow";
/** Since this patch a chosen mitigation passes its approval gate (modes, catalog, blast radius) first. */
const APPROVAL_GATE = "mitigation-approval-gate";
/** Answers kept per workflow for approvals no run waits for yet: a bound against a flood. */
const MAX_ANSWERS = 16;

// A push waits for the host agent's rules_status (its own deadline, heartbeating meanwhile); a
// rejection is final for this candidate, so the next one is tried at once.
const pushRulesPolicy = {
  startToCloseTimeout: "15 minutes",
  heartbeatTimeout: "1 minute",
  retry: { maximumAttempts: 1 },
} as const;

/**
 * What a mitigation run needs from the workflow it runs in: its own child workflow (runs started
 * before release 0.4.0) or its incident, which runs it inline since then.
 */
export interface MitigationRunContext {
  /** The run's id: its decisions, mitigation claims, approvals and command ids derive from it. */
  runId: string;
  /** The Temporal workflow that takes approval answers for the run (the API signals it). */
  approvalWorkflowId: string;
  approvals: ApprovalInbox;
  /** Waits for the run's turn on the objects its steps touch on the host. */
  awaitTurn(objects: string[], timeoutMs: number): Promise<void>;
  /** Candidates tried so far and how many failed: carried when an incident continues as new. */
  progress: { tried: string[]; failures: number };
  /** A run inside its incident (0.4.0 on): every earlier patch applies without asking (and
   *  recording a marker for) it. */
  inIncident: boolean;
  /**
   * Runs one of the run's local activities once no other local activity of the workflow is in
   * flight. An incident runs many mitigations at once, and the SDK resolves concurrent local
   * activities in the order they finished when it runs them but in the order they were scheduled
   * when it replays them: the coroutines would then go on in another order and schedule other
   * commands (a nondeterminism error, found by the chaos run's worker kill). One at a time, the
   * two orders are the same.
   */
  local<T>(call: () => Promise<T>): Promise<T>;
}

/**
 * Approval answers by approval id, for the runs of one workflow: an answer may arrive before the
 * run waits for it (the API signals as soon as the approval is stored). The first answer per
 * approval counts; an answer naming no approval goes to the one run waiting, if only one waits.
 */
export class ApprovalInbox {
  readonly answers = new Map<string, ApprovalAnswer>();
  private readonly waiting = new Set<string>();

  /** A bound against a flood of signals: answers kept for approvals no run waits for yet. */
  constructor(private readonly maxUnclaimed = MAX_ANSWERS) {}

  receive(payload: unknown): void {
    const answer = approvalAnswerOf(payload);
    const id = answer?.approval_id ?? (this.waiting.size === 1 ? [...this.waiting][0] : undefined);
    if (!answer || !id || this.answers.has(id)) return;
    if (!this.waiting.has(id) && this.answers.size >= this.maxUnclaimed) return;
    this.answers.set(id, answer);
  }

  /** The answer to an approval, or undefined once the timeout passes without one. */
  async wait(approvalId: string, timeoutMs: number): Promise<ApprovalAnswer | undefined> {
    this.waiting.add(approvalId);
    try {
      await condition(() => this.answers.has(approvalId), timeoutMs);
      return this.answers.get(approvalId);
    } finally {
      this.waiting.delete(approvalId);
    }
  }

  /** Forgets an answer once the run acted on it. */
  settle(approvalId: string): void {
    this.answers.delete(approvalId);
  }
}

/**
 * A mitigation run as its own child workflow: how incidents ran them before release 0.4.0, kept
 * so that those runs finish (and replay) as they started. See runMitigation.
 */
export async function mitigationWorkflow(input: MitigationInput): Promise<MitigationOutcome> {
  let outcome: MitigationOutcome = { outcome: "failed" };
  try {
    const { workflowId } = workflowInfo();
    const approvals = new ApprovalInbox();
    setHandler(approvalSignal, (payload) => approvals.receive(payload));
    let granted = false;
    setHandler(objectsGrantedSignal, () => {
      granted = true;
    });
    outcome = await runMitigation(input, {
      runId: workflowId,
      approvalWorkflowId: workflowId,
      approvals,
      progress: { tried: [], failures: 0 },
      inIncident: false,
      // The run is the workflow's only coroutine: its local activities are one at a time already.
      local: (call) => call(),
      async awaitTurn(objects, timeoutMs) {
        // Bounded: the incident may be gone.
        if (!patched(HOST_ORDERING)) return;
        granted = false;
        try {
          await getExternalWorkflowHandle(input.incidentId).signal(objectsClaimSignal, {
            workflowId,
            objects,
          });
        } catch {
          return; // no incident to order against
        }
        await condition(() => granted, timeoutMs);
      },
    });
    return outcome;
  } finally {
    if (patched(OUTCOME_SIGNAL)) await reportOutcome(input.incidentId, outcome);
  }
}

async function reportOutcome(incidentId: string, outcome: MitigationOutcome): Promise<void> {
  try {
    await getExternalWorkflowHandle(incidentId).signal(mitigationOutcomeSignal, {
      ...outcome,
      workflowId: workflowInfo().workflowId,
    });
  } catch {
    // The incident closed meanwhile: the outcome stays in the decision log, where it always is.
  }
}

/**
 * Runs the cheapest mitigation that applies to a reached attack-flow node, falling back to the
 * next candidate when one fails. Every choice, skip and result is recorded with its reason.
 * Every step is idempotent by the run's id (decisions, claims, approvals, command ids, webhook
 * idempotency keys), so a run resumed from its progress repeats nothing that took effect.
 */
export async function runMitigation(
  input: MitigationInput,
  ctx: MitigationRunContext,
): Promise<MitigationOutcome> {
  const { approvals, progress } = ctx;
  /** Whether the chosen mitigation runs now: at once, after a person's approval, or not at all. */
  const passGate = async (candidate: { key: string; name: string }, steps: PlannedStep[]) => {
    if (!ctx.inIncident && !patched(APPROVAL_GATE)) return true;
    const decided = { ...base, mitigation: candidate };
    const gate = await ctx.local(() =>
      gateMitigation({
        ...decided,
        host: input.host,
        steps,
        ...(ctx.approvalWorkflowId !== ctx.runId && { approvalWorkflowId: ctx.approvalWorkflowId }),
      }),
    );
    if (gate.gate !== "approve") return gate.gate === "act";
    const answer = await approvals.wait(gate.approvalId, Math.max(gate.timeoutMs, 1_000));
    const answered = answer !== undefined;
    const runs = answer ? answer.decision === "approve" : gate.onTimeout === "approve";
    await ctx.local(() =>
      answerApproval({
        ...decided,
        approvalId: gate.approvalId,
        outcome: !answered ? "expired" : runs ? "approved" : "denied",
        runs,
        by: answered ? (answer?.by ?? "temporal signal") : "timeout",
        comment: (answered && answer?.comment) || null,
        isolatingAgentId: gate.isolatingAgentId,
      }),
    );
    approvals.settle(gate.approvalId);
    return runs;
  };
  /** Waits for this run's turn on the objects its steps touch. */
  const awaitTurn = async (steps: PlannedStep[]) => {
    const agentSteps = steps.flatMap((s) => (s.kind === "agent" ? [s] : []));
    const objects = touchedObjects(agentSteps);
    if (objects.length === 0) return;
    const ttl = Math.max(0, ...agentSteps.map((s) => s.ttlMs ?? 0));
    await ctx.awaitTurn(objects, ttl + COMPLETION_ALLOWANCE_MS);
  };
  const base = {
    incidentId: input.incidentId,
    alertId: input.alertId,
    workflowId: ctx.runId,
    flowId: input.flowId,
    nodeId: input.nodeId,
  };
  // Candidates are passed over by identity: a catalog edit during the run cannot make it skip
  // or repeat one (a position would shift under an insertion or a deletion).
  const { tried } = progress;
  for (;;) {
    const next = await ctx.local(() =>
      planNextMitigation({
        ...base,
        techniques: input.techniques,
        preemptive: input.preemptive,
        tried,
      }),
    );
    if (!next.found) {
      // Already run for this alert by another node's run: recorded by the planner, nothing to add.
      if (next.duplicateOf)
        return { outcome: "duplicate", mitigation: next.duplicateOf.mitigation };
      const reason =
        next.candidates === 0
          ? `no mitigation covers ${input.techniques.join(", ")}`
          : progress.failures > 0
            ? "every applicable mitigation failed"
            : "no candidate mitigation applies";
      await ctx.local(() =>
        recordDecision({
          ...base,
          mitigation: null,
          kind: "no_mitigation",
          reason,
          details: {},
        }),
      );
      return { outcome: progress.failures > 0 ? "failed" : "none" };
    }
    const { candidate, steps } = next;
    const attemptId = mitigationAttemptId(ctx.runId, candidate.key);
    // Not run (observed, denied or expired): recorded by the gate, and no fallback, since a
    // person's "no" or observe mode is about acting at all, not about this candidate.
    if (!(await passGate(candidate, steps))) return { outcome: "none", mitigation: candidate.key };
    await awaitTurn(steps);
    try {
      for (const [index, step] of steps.entries())
        await runStep(step, attemptId, mitigationCommandId(attemptId, index), ctx);
      await ctx.local(() =>
        recordDecision({
          ...base,
          mitigation: candidate.key,
          kind: "mitigation_succeeded",
          reason: `${candidate.name} succeeded`,
          details: { steps: steps.length },
        }),
      );
      return { outcome: "succeeded", mitigation: candidate.key };
    } catch (err) {
      progress.failures++;
      await ctx.local(() =>
        recordDecision({
          ...base,
          mitigation: candidate.key,
          kind: "mitigation_failed",
          reason: `${candidate.name} failed: ${failureMessage(err)}`,
          details: {},
        }),
      );
    }
    // Plans recorded before passedOver existed name none.
    tried.push(...(next.passedOver ?? []), candidate.key);
  }
}

async function runStep(
  step: PlannedStep,
  attemptId: string,
  commandId: string,
  ctx: MitigationRunContext,
): Promise<void> {
  // The engine's commands are attributed to the run that issued them. Inside an incident a step's
  // activity carries its command id (`mitigation/<host>/<alert>/<flow>.<node>/<mitigation>/<step>`)
  // as its activity id: the incident's history in the Temporal UI names the run of each step.
  const requestedBy = `workflow:${ctx.runId}`;
  const named = ctx.inIncident ? { activityId: commandId } : {};
  if (step.kind === "webhook") {
    await proxyActivities<EngineActivities>({ ...webhookPolicy, ...named }).callWebhook({
      url: step.url,
      body: step.body,
      idempotencyKey: attemptId,
    });
    return;
  }
  if (step.kind === "rules") {
    await proxyActivities<PushRulesActivities>({ ...pushRulesPolicy, ...named }).pushRules(step);
    return;
  }
  if (step.command === "isolate-host" && (ctx.inIncident || patched(ISOLATION_WORKFLOW))) {
    const { isolateHost } = proxyActivities<IsolationActivities>({
      // Signals the isolation workflow, then follows it until the agent verified the isolation.
      startToCloseTimeout: (step.ttlMs ?? 0) + COMPLETION_ALLOWANCE_MS,
      heartbeatTimeout: "30 seconds",
      retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute" },
      ...named,
    });
    await isolateHost({
      agentId: step.agentId,
      requestedBy,
      details: step.details,
      ...(step.ttlMs !== undefined && { ttlMs: step.ttlMs }),
      ...(step.releaseAfterMs !== undefined && { releaseAfterMs: step.releaseAfterMs }),
    });
    return;
  }
  // A plan recorded before steps carried their TTL: the configured TTL, and the 10 minutes the
  // activity had then (0 + the completion allowance).
  await commandActivities(step.ttlMs ?? 0, named).runAgentCommand({
    agentId: step.agentId,
    command: step.command,
    details: step.details,
    priority: step.priority,
    commandId,
    requestedBy,
    ...(step.ttlMs !== undefined && { ttlMs: step.ttlMs }),
  });
}

function failureMessage(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure || cause instanceof Error) return cause.message;
  return String(cause);
}
