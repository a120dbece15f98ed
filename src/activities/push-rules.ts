// The push-rules mitigation step: detection rules sent to the alert's host (added to what its agent
// runs) or rolled out to the host's groups (the rollout workflow of the rule set version, started
// or joined), and the step's outcome is the host agent's own rules_status: applied is success,
// rejected a failure, so the engine falls back to the next candidate as for any failed step.
import type { NatsConnection } from "@nats-io/transport-node";
import { ApplicationFailure, Context } from "@temporalio/activity";
import { type Client, WorkflowExecutionAlreadyStartedError } from "@temporalio/client";
import { type PushRulesDetails, pushRulesDetails } from "../domain/push-rules.ts";
import { ROLLOUT_DEFAULTS } from "../domain/rules.ts";
import { commandSubject, encode } from "../gateway/subjects.ts";
import type { Db } from "../store/db.ts";
import {
  pushRulesStore,
  type RolloutStore,
  rolloutStore,
  ruleFilesOf,
  ruleSetFiles,
} from "../store/rules-rollout.ts";
import { rolloutWorkflowId } from "../workflows/ids.ts";
import type { RolloutInput } from "../workflows/rollout.ts";

/** A planned push: what goes to which agent, fixed when the mitigation is chosen (and recorded). */
export interface PlannedRulesStep {
  kind: "rules";
  agentId: string;
  target: "host" | "group";
  /** The rule set and version; for a push by technique, a name saying so and version 0. */
  ruleSet: string;
  version: number;
  /** Group pushes: the host's groups, which the rollout points at this version. */
  groups: string[];
  /** Push by technique: the rule versions pushed. */
  rules?: { id: string; version: string }[];
}

export interface PushRulesDeps {
  db: Db;
  nc: NatsConnection;
  temporal: Client;
  taskQueue: string;
  /** How long the host's agent has to report applying the rules. */
  timeoutMs?: number;
}

/** How often a host push is sent again while its agent has not answered. */
const RESEND_MS = 20_000;
const POLL_MS = 250;
const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/**
 * Plans one push-rules step for the alert host's agent: the rule set version (its newest unless
 * the step names one) or the rules for the alert's techniques. A string says why the candidate
 * does not apply (recorded as its skip reason).
 */
export async function planPushRules(
  db: Db,
  input: { agentId: string; details: Record<string, unknown>; techniques: string[] },
): Promise<PlannedRulesStep | string> {
  const parsed = pushRulesDetails.safeParse(input.details);
  if (!parsed.success) return `push-rules: ${parsed.error.issues[0]?.message ?? "invalid details"}`;
  const details: PushRulesDetails = parsed.data;
  const store = pushRulesStore(db);
  if ("techniques" in details) {
    const rules = await store.rulesForTechniques(input.techniques);
    if (!rules.length) return `no rule names ${input.techniques.join(", ")}`;
    return {
      kind: "rules",
      agentId: input.agentId,
      target: "host",
      ruleSet: `techniques:${input.techniques.join("+")}`,
      version: 0,
      groups: [],
      rules,
    };
  }
  const version = details.version ?? (await store.newestRuleSetVersion(details.rule_set));
  if (version === null) return `rule set ${details.rule_set} does not exist`;
  if (!(await ruleSetFiles(db, details.rule_set, version)).length)
    return `rule set ${details.rule_set} version ${version} does not exist or holds no rule`;
  const groups = details.target === "group" ? await store.groupsOf(input.agentId) : [];
  if (details.target === "group" && !groups.length)
    return `agent ${input.agentId} is in no group to roll rule set ${details.rule_set} out to`;
  return {
    kind: "rules",
    agentId: input.agentId,
    target: details.target,
    ruleSet: details.rule_set,
    version,
    groups,
  };
}

export function pushRulesActivities(deps: PushRulesDeps) {
  const rollouts: RolloutStore = rolloutStore(deps.db);
  const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  /** Starts the version's rollout to the groups, or joins the one running. */
  async function startOrJoinRollout(step: PlannedRulesStep, requestedBy: string) {
    const input: RolloutInput = {
      ruleSet: step.ruleSet,
      version: step.version,
      groups: step.groups,
      canaryShare: ROLLOUT_DEFAULTS.canaryShare,
      waveSize: ROLLOUT_DEFAULTS.waveSize,
      agentTimeoutMs: ROLLOUT_DEFAULTS.agentTimeoutSeconds * 1_000,
      retries: ROLLOUT_DEFAULTS.retries,
      requestedBy,
    };
    try {
      await deps.temporal.workflow.start("rolloutWorkflow", {
        workflowId: rolloutWorkflowId(step.ruleSet, step.version),
        taskQueue: deps.taskQueue,
        args: [input],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  return {
    /** Delivers the planned rules and waits for the host agent's rules_status about them. */
    async pushRules(step: PlannedRulesStep): Promise<{ applied: number }> {
      const { info } = Context.current();
      const expected = step.rules
        ? await ruleFilesOf(deps.db, step.rules)
        : await ruleSetFiles(deps.db, step.ruleSet, step.version);
      if (!expected.length)
        throw ApplicationFailure.nonRetryable(`rule set ${step.ruleSet} holds no rule to push`);
      const sentAt = new Date();
      const requestedBy = `workflow:${info.workflowExecution?.workflowId ?? info.activityId}`;
      const sendToHost = async () => {
        if (!(await rollouts.online([step.agentId])).has(step.agentId))
          throw ApplicationFailure.nonRetryable(`agent ${step.agentId} is offline`, "AgentOffline");
        deps.nc.publish(
          commandSubject(step.agentId),
          encode({
            rule_set: step.ruleSet,
            version: step.version,
            ...(step.rules && { rules: step.rules }),
          }),
        );
      };
      if (step.target === "group") await startOrJoinRollout(step, requestedBy);
      else await sendToHost();
      const deadline = Date.now() + timeoutMs;
      let resendAt = Date.now() + RESEND_MS;
      while (Date.now() < deadline) {
        const standing = (await rollouts.standing([step.agentId], expected, sentAt)).get(
          step.agentId,
        );
        if (standing?.status === "applied") return { applied: expected.length };
        if (standing?.status === "rejected")
          throw ApplicationFailure.nonRetryable(
            `agent ${step.agentId} rejected rule set ${step.ruleSet} version ${step.version}: ${standing.error}`,
            "RulesRejected",
          );
        Context.current().heartbeat();
        if (step.target === "host" && Date.now() >= resendAt) {
          resendAt = Date.now() + RESEND_MS;
          await sendToHost();
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      throw ApplicationFailure.nonRetryable(
        `agent ${step.agentId} did not report rule set ${step.ruleSet} version ${step.version} within ${timeoutMs / 1000} s`,
        "RulesTimeout",
      );
    },
  };
}

export type PushRulesActivities = ReturnType<typeof pushRulesActivities>;
