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
// matters more than insisting on one mitigation. 4xx answers are permanent (non-retryable).
const { callWebhook } = proxyActivities<EngineActivities>({
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "500 milliseconds", backoffCoefficient: 2, maximumAttempts: 3 },
});

/** Since this patch the run reports its outcome to the incident by signal, whatever it was. */
const OUTCOME_SIGNAL = "mitigation-outcome-signal";
/** Since this patch an isolate-host step is the agent's isolation workflow (held, verified, released). */
const HOST_ORDERING = "mitigation-host-ordering";
const ISOLATION_WORKFLOW = "engine-isolation-workflow";
/** Since this patch a chosen mitigation passes its approval gate (modes, catalog, blast radius) first. */
const APPROVAL_GATE = "mitigation-approval-gate";
/** Answers kept per run: one per approval, and a bound against a flood of signals. */
const MAX_ANSWERS = 16;

// A push waits for the host agent's rules_status (its own deadline, heartbeating meanwhile); a
// rejection is final for this candidate, so the next one is tried at once.
const { pushRules } = proxyActivities<PushRulesActivities>({
  startToCloseTimeout: "15 minutes",
  heartbeatTimeout: "1 minute",
  retry: { maximumAttempts: 1 },
});

/**
 * Runs the cheapest mitigation that applies to a reached attack-flow node, falling back to the
 * next candidate when one fails. Every choice, skip and result is recorded with its reason.
 */
export async function mitigationWorkflow(input: MitigationInput): Promise<MitigationOutcome> {
  let outcome: MitigationOutcome = { outcome: "failed" };
  try {
    outcome = await mitigate(input);
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

async function mitigate(input: MitigationInput): Promise<MitigationOutcome> {
  const { workflowId } = workflowInfo();
  let granted = false;
  setHandler(objectsGrantedSignal, () => {
    granted = true;
  });
  // An answer may arrive before the run waits for it (the API signals as soon as the approval is
  // stored): kept by approval id, the first answer per approval counting.
  const answers = new Map<string, ApprovalAnswer>();
  let waitingFor: string | null = null;
  setHandler(approvalSignal, (payload) => {
    const answer = approvalAnswerOf(payload);
    const id = answer?.approval_id ?? waitingFor;
    if (!answer || !id || answers.has(id) || answers.size >= MAX_ANSWERS) return;
    answers.set(id, answer);
  });
  /** Whether the chosen mitigation runs now: at once, after a person's approval, or not at all. */
  const passGate = async (candidate: { key: string; name: string }, steps: PlannedStep[]) => {
    if (!patched(APPROVAL_GATE)) return true;
    const decided = { ...base, mitigation: candidate };
    const gate = await gateMitigation({ ...decided, host: input.host, steps });
    if (gate.gate !== "approve") return gate.gate === "act";
    waitingFor = gate.approvalId;
    const answered = await condition(
      () => answers.has(gate.approvalId),
      Math.max(gate.timeoutMs, 1_000),
    );
    waitingFor = null;
    const answer = answers.get(gate.approvalId);
    const runs = answered && answer ? answer.decision === "approve" : gate.onTimeout === "approve";
    await answerApproval({
      ...decided,
      approvalId: gate.approvalId,
      outcome: !answered ? "expired" : runs ? "approved" : "denied",
      runs,
      by: answered ? (answer?.by ?? "temporal signal") : "timeout",
      comment: (answered && answer?.comment) || null,
      isolatingAgentId: gate.isolatingAgentId,
    });
    return runs;
  };
  /** Waits for this run's turn on the objects its steps touch (bounded: an incident may be gone). */
  const awaitTurn = async (steps: PlannedStep[]) => {
    const agentSteps = steps.flatMap((s) => (s.kind === "agent" ? [s] : []));
    const objects = touchedObjects(agentSteps);
    if (objects.length === 0 || !patched(HOST_ORDERING)) return;
    granted = false;
    try {
      await getExternalWorkflowHandle(input.incidentId).signal(objectsClaimSignal, {
        workflowId,
        objects,
      });
    } catch {
      return; // no incident to order against
    }
    const ttl = Math.max(0, ...agentSteps.map((s) => s.ttlMs ?? 0));
    await condition(() => granted, ttl + COMPLETION_ALLOWANCE_MS);
  };
  const base = {
    incidentId: input.incidentId,
    alertId: input.alertId,
    workflowId,
    flowId: input.flowId,
    nodeId: input.nodeId,
  };
  let failures = 0;
  // Candidates are passed over by identity: a catalog edit during the run cannot make it skip
  // or repeat one (a position would shift under an insertion or a deletion).
  const tried: string[] = [];
  for (;;) {
    const next = await planNextMitigation({
      ...base,
      techniques: input.techniques,
      preemptive: input.preemptive,
      tried,
    });
    if (!next.found) {
      // Already run for this alert by another node's run: recorded by the planner, nothing to add.
      if (next.duplicateOf)
        return { outcome: "duplicate", mitigation: next.duplicateOf.mitigation };
      const reason =
        next.candidates === 0
          ? `no mitigation covers ${input.techniques.join(", ")}`
          : failures > 0
            ? "every applicable mitigation failed"
            : "no candidate mitigation applies";
      await recordDecision({
        ...base,
        mitigation: null,
        kind: "no_mitigation",
        reason,
        details: {},
      });
      return { outcome: failures > 0 ? "failed" : "none" };
    }
    const { candidate, steps } = next;
    const attemptId = mitigationAttemptId(workflowId, candidate.key);
    // Not run (observed, denied or expired): recorded by the gate, and no fallback, since a
    // person's "no" or observe mode is about acting at all, not about this candidate.
    if (!(await passGate(candidate, steps))) return { outcome: "none", mitigation: candidate.key };
    await awaitTurn(steps);
    try {
      for (const [index, step] of steps.entries())
        await runStep(step, attemptId, mitigationCommandId(attemptId, index));
      await recordDecision({
        ...base,
        mitigation: candidate.key,
        kind: "mitigation_succeeded",
        reason: `${candidate.name} succeeded`,
        details: { steps: steps.length },
      });
      return { outcome: "succeeded", mitigation: candidate.key };
    } catch (err) {
      failures++;
      await recordDecision({
        ...base,
        mitigation: candidate.key,
        kind: "mitigation_failed",
        reason: `${candidate.name} failed: ${failureMessage(err)}`,
        details: {},
      });
    }
    // Plans recorded before passedOver existed name none.
    tried.push(...(next.passedOver ?? []), candidate.key);
  }
}

async function runStep(step: PlannedStep, attemptId: string, commandId: string): Promise<void> {
  if (step.kind === "webhook") {
    await callWebhook({ url: step.url, body: step.body, idempotencyKey: attemptId });
    return;
  }
  if (step.kind === "rules") {
    await pushRules(step);
    return;
  }
  if (step.command === "isolate-host" && patched(ISOLATION_WORKFLOW)) {
    const { isolateHost } = proxyActivities<IsolationActivities>({
      // Signals the isolation workflow, then follows it until the agent verified the isolation.
      startToCloseTimeout: (step.ttlMs ?? 0) + COMPLETION_ALLOWANCE_MS,
      heartbeatTimeout: "30 seconds",
      retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute" },
    });
    await isolateHost({
      agentId: step.agentId,
      details: step.details,
      ...(step.ttlMs !== undefined && { ttlMs: step.ttlMs }),
      ...(step.releaseAfterMs !== undefined && { releaseAfterMs: step.releaseAfterMs }),
    });
    return;
  }
  // A plan recorded before steps carried their TTL: the configured TTL, and the 10 minutes the
  // activity had then (0 + the completion allowance).
  await commandActivities(step.ttlMs ?? 0).runAgentCommand({
    agentId: step.agentId,
    command: step.command,
    details: step.details,
    priority: step.priority,
    commandId,
    ...(step.ttlMs !== undefined && { ttlMs: step.ttlMs }),
  });
}

function failureMessage(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure || cause instanceof Error) return cause.message;
  return String(cause);
}
