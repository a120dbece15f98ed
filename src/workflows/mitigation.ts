import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  workflowInfo,
} from "@temporalio/workflow";
import type { AgentCommandActivities } from "../activities/agent-commands.ts";
import type { EngineActivities } from "../activities/engine.ts";
import type { PushRulesActivities } from "../activities/push-rules.ts";
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

// Local: planning and recording are short database work beside the workflow.
const { planNextMitigation, recordDecision } = proxyLocalActivities<EngineActivities>({
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "1 second", maximumAttempts: 5 },
});

// A SOAR webhook gets a few quick attempts before the next candidate is tried: acting in seconds
// matters more than insisting on one mitigation. 4xx answers are permanent (non-retryable).
const { callWebhook } = proxyActivities<EngineActivities>({
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "500 milliseconds", backoffCoefficient: 2, maximumAttempts: 3 },
});

// The agent works while the activity waits; the gateway completes it. Expiry is the agent
// command's own deadline, so Temporal does not retry on top of the gateway's delivery.
const { runAgentCommand } = proxyActivities<AgentCommandActivities>({
  startToCloseTimeout: "10 minutes",
  retry: { maximumAttempts: 1 },
});

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
  const { workflowId } = workflowInfo();
  const base = {
    incidentId: input.incidentId,
    alertId: input.alertId,
    workflowId,
    flowId: input.flowId,
    nodeId: input.nodeId,
  };
  let failures = 0;
  for (let from = 0; ; ) {
    const next = await planNextMitigation({
      ...base,
      techniques: input.techniques,
      preemptive: input.preemptive,
      from,
    });
    if (!next.found) {
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
    try {
      for (const [index, step] of steps.entries()) {
        if (step.kind === "webhook") {
          await callWebhook({
            url: step.url,
            body: step.body,
            idempotencyKey: attemptId,
          });
        } else if (step.kind === "rules") {
          await pushRules(step);
        } else {
          await runAgentCommand({
            agentId: step.agentId,
            command: step.command,
            details: step.details,
            priority: step.priority,
            commandId: mitigationCommandId(attemptId, index),
          });
        }
      }
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
    from = next.index + 1;
  }
}

function failureMessage(err: unknown): string {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure || cause instanceof Error) return cause.message;
  return String(cause);
}
