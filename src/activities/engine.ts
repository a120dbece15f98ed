import { ApplicationFailure } from "@temporalio/activity";
import neo4j, { type Driver } from "neo4j-driver";
import { resolveArgs } from "../domain/args.ts";
import { candidateNodes, type FlowInstance, type NodeCandidate } from "../domain/attack-flow.ts";
import type { CheckRunner } from "../domain/check-budget.ts";
import { type EgressPolicy, EgressRefused } from "../domain/egress.ts";
import { rankMitigations, stepDetails } from "../domain/mitigation.ts";
import {
  type AgentCommand,
  type AttackFlow,
  type Identifier,
  identifierKey,
  PUSH_RULES,
} from "../domain/model.ts";
import { type Protection, protectionOf } from "../domain/protected-addresses.ts";
import { metrics } from "../metrics.ts";
import { getAlertRow } from "../store/alerts.ts";
import { catalogStore } from "../store/catalog.ts";
import type { Db } from "../store/db.ts";
import { type Decision, recordDecision, secondsSinceChosen } from "../store/decisions.ts";
import type { AgentGateway, CommandPriority } from "./agent-commands.ts";
import { toRows } from "./neo4j-rows.ts";
import { type PlannedRulesStep, planPushRules } from "./push-rules.ts";

export interface EngineDeps {
  db: Db;
  neo4j: Driver;
  agents: AgentGateway;
  /** Evaluates CEL checks within their budget (check-budget.ts). */
  checks: CheckRunner;
  queryTimeoutMs: number;
  /** Where webhooks may go (egress.ts). */
  webhooks: EgressPolicy;
  webhookTimeoutMs: number;
  /** Addresses no block-ip step may name (config `protectedAddresses`). */
  protectedAddresses: readonly Protection[];
}

export interface RankedMitigation {
  key: string;
  name: string;
  cost: number;
}

export type PlannedStep =
  | { kind: "webhook"; url: string; body: Record<string, unknown> }
  | {
      kind: "agent";
      agentId: string;
      command: AgentCommand;
      details: Record<string, unknown>;
      priority: CommandPriority;
    }
  | PlannedRulesStep;

export interface PlanInput {
  incidentId: string;
  alertId: string;
  workflowId: string;
  flowId: string;
  nodeId: string;
  techniques: string[];
  preemptive: boolean;
}

export type NextMitigation =
  | { found: true; index: number; candidate: RankedMitigation; steps: PlannedStep[] }
  | { found: false; candidates: number };

const decisionBase = (i: PlanInput) => ({
  incidentId: i.incidentId,
  alertId: i.alertId,
  workflowId: i.workflowId,
  flowId: i.flowId,
  nodeId: i.nodeId,
});

type ConditionVerdict = { holds: true } | { holds: false; reason: string; error?: boolean };

export function engineActivities(deps: EngineDeps) {
  const catalog = catalogStore(deps.db);

  async function loadAlert(alertId: string) {
    const row = await getAlertRow(deps.db, alertId);
    // The alert is stored before its signal is sent; a missing row is a broken invariant, not a retry case.
    if (!row) throw ApplicationFailure.nonRetryable(`alert ${alertId} is not stored`);
    return row;
  }

  /** A condition holds when its args resolve, its query runs and its check yields true. */
  async function evaluateCondition(
    id: Identifier,
    alert: Record<string, unknown>,
  ): Promise<ConditionVerdict> {
    const condition = await catalog.get("condition", identifierKey(id));
    if (!condition) return { holds: false, reason: `condition ${id} does not exist` };
    const args = resolveArgs(condition.args ?? {}, alert);
    if (!args.ok)
      return { holds: false, reason: `condition ${id}: missing args ${args.missing.join(", ")}` };
    let rows: Record<string, unknown>[] = [];
    if (condition.query?.trim()) {
      const session = deps.neo4j.session({ defaultAccessMode: neo4j.session.READ });
      try {
        const result = await session.executeRead(
          (tx) => tx.run(condition.query ?? "", { ...condition.params, ...args.values }),
          {
            timeout: deps.queryTimeoutMs,
          },
        );
        rows = toRows(result.records);
      } catch (err) {
        return {
          holds: false,
          error: true,
          reason: `condition ${id}: query failed: ${(err as Error).message}`,
        };
      } finally {
        await session.close();
      }
    }
    const check = await deps.checks.evaluate(condition.check, {
      params: condition.params ?? {},
      args: args.values,
      alert,
      rows,
    });
    if (!check.ok)
      return { holds: false, error: true, reason: `condition ${id}: check failed: ${check.error}` };
    return check.value ? { holds: true } : { holds: false, reason: `condition ${id} is false` };
  }

  async function evaluateAll(
    ids: Identifier[],
    alert: Record<string, unknown>,
    cache = new Map<string, Promise<ConditionVerdict>>(),
  ) {
    for (const id of ids) {
      const key = identifierKey(id);
      if (!cache.has(key)) cache.set(key, evaluateCondition(id, alert));
      const verdict = await cache.get(key);
      if (verdict && !verdict.holds) return verdict;
    }
    return { holds: true } as const;
  }

  const record = async (d: Decision) => {
    if (await recordDecision(deps.db, d)) await measureDecision(deps.db, d);
  };

  /** Why blocking `ip` would turn the mitigation into an outage, or null when it may be blocked. */
  function blockRefusal(ip: unknown): string | null {
    if (typeof ip !== "string") return `block-ip needs an IP address, got ${JSON.stringify(ip)}`;
    try {
      const protection = protectionOf(ip, deps.protectedAddresses);
      return protection && `${ip} is never blocked: ${protection.reason}`;
    } catch {
      return `block-ip needs an IP address, got ${JSON.stringify(ip)}`;
    }
  }

  /** Decides whether one candidate applies (args, conditions, agent and capability) and how to run it. */
  async function plan(
    input: PlanInput,
    candidate: RankedMitigation,
  ): Promise<PlannedStep[] | string> {
    const mitigation = await catalog.get("mitigation", candidate.key);
    if (!mitigation) return "it no longer exists";
    const alert = await loadAlert(input.alertId);
    const args = resolveArgs(mitigation.args ?? {}, alert.raw);
    if (!args.ok) return `missing args ${args.missing.join(", ")}`;
    const verdict = await evaluateAll(mitigation.conditions ?? [], alert.raw);
    if (!verdict.holds) return verdict.reason;

    const steps: PlannedStep[] = [];
    if (mitigation.url)
      steps.push({
        kind: "webhook",
        url: mitigation.url,
        body: { ...mitigation.params, ...args.values },
      });
    if (mitigation.steps?.length) {
      const agent = await deps.agents.resolveAgent({
        name: alert.host,
        agentId: alert.agent_id,
        ip: alert.host_ip,
      });
      if (!agent) return `no agent is enrolled for host ${alert.host}`;
      if ("ambiguous" in agent)
        return `host ${alert.host} is ambiguous: agents ${agent.ambiguous.join(", ")} all match it`;
      // A push-rules step reaches the agent as update_rules, its capability for rules.
      const missing = mitigation.steps
        .map((s) => (s.agent === PUSH_RULES ? "update_rules" : s.agent))
        .filter((c) => !agent.capabilities.includes(c));
      if (missing.length) return `agent ${agent.agentId} lacks ${[...new Set(missing)].join(", ")}`;
      for (const step of mitigation.steps) {
        if (step.agent === PUSH_RULES) {
          const push = await planPushRules(deps.db, {
            agentId: agent.agentId,
            details: step.details ?? {},
            techniques: input.techniques,
          });
          if (typeof push === "string") return push;
          steps.push(push);
          continue;
        }
        const details = stepDetails(mitigation, args.values, step);
        const refused = step.agent === "block-ip" && blockRefusal(details.ip);
        if (refused) return refused;
        steps.push({
          kind: "agent",
          agentId: agent.agentId,
          command: step.agent,
          details,
          priority: step.agent === "isolate-host" ? "critical" : "high",
        });
      }
    }
    if (steps.some((s) => s.kind === "agent"))
      metrics.alertToCommand((Date.now() - alert.received_at.getTime()) / 1_000);
    return steps;
  }

  return {
    /**
     * The attack flows and, among the nodes the alert could reach, those whose conditions all
     * hold. Every verdict is recorded.
     */
    async matchAlert(input: {
      incidentId: string;
      alertId: string;
      techniques: string[];
      instances: FlowInstance[];
    }): Promise<{ flows: AttackFlow[]; holding: NodeCandidate[] }> {
      const flows = await catalog.list("attack_flow");
      const candidates = candidateNodes(flows, input.instances, input.techniques);
      if (candidates.length === 0) return { flows, holding: [] };
      const alert = await loadAlert(input.alertId);
      const cache = new Map<string, Promise<ConditionVerdict>>();
      const holding: NodeCandidate[] = [];
      for (const candidate of candidates) {
        const verdict = await evaluateAll(candidate.conditions, alert.raw, cache);
        if (verdict.holds) holding.push(candidate);
        await record({
          incidentId: input.incidentId,
          alertId: input.alertId,
          workflowId: null,
          flowId: candidate.flowId,
          nodeId: candidate.nodeId,
          mitigation: null,
          kind: verdict.holds
            ? "node_matched"
            : "error" in verdict && verdict.error
              ? "condition_error"
              : "node_not_matched",
          reason: verdict.holds
            ? `${candidate.techniques.join(", ")} matched node ${candidate.nodeId} of ${candidate.flowId}`
            : verdict.reason,
          details: { techniques: candidate.techniques, instance: candidate.instanceId },
        });
      }
      return { flows, holding };
    },

    /**
     * The cheapest applicable mitigation after the first `from` candidates (ascending cost), with
     * its steps; every candidate passed over is recorded as skipped with its reason.
     */
    async planNextMitigation(input: PlanInput & { from: number }): Promise<NextMitigation> {
      const ranked = rankMitigations(await catalog.list("mitigation"), input.techniques).map(
        (m) => ({
          key: identifierKey(m.identifier),
          name: m.name,
          cost: m.cost,
        }),
      );
      for (let index = input.from; index < ranked.length; index++) {
        const candidate = ranked[index] as RankedMitigation;
        const base = { ...decisionBase(input), mitigation: candidate.key };
        const steps = await plan(input, candidate);
        if (typeof steps === "string") {
          await record({
            ...base,
            kind: "mitigation_skipped",
            reason: `${candidate.name} skipped: ${steps}`,
            details: { cost: candidate.cost },
          });
          continue;
        }
        await record({
          ...base,
          kind: "mitigation_chosen",
          reason: `${candidate.name} chosen (cost ${candidate.cost})${input.preemptive ? " preemptively" : ""}`,
          details: {
            cost: candidate.cost,
            steps: steps.map((s) =>
              s.kind === "webhook"
                ? { webhook: s.url, body: s.body }
                : s.kind === "rules"
                  ? { push_rules: pushRulesRecord(s) }
                  : { command: s.command, details: s.details },
            ),
          },
        });
        return { found: true, index, candidate, steps };
      }
      return { found: false, candidates: ranked.length };
    },

    async recordDecision(decision: Decision): Promise<void> {
      await record(decision);
    },

    /**
     * POSTs a SOAR webhook within the egress policy; 2xx is success; a refused destination, a
     * redirect (never followed: the body would go elsewhere) and 4xx are permanent; the rest is retried.
     */
    async callWebhook(input: {
      url: string;
      body: Record<string, unknown>;
      idempotencyKey: string;
    }): Promise<{ status: number }> {
      let status: number;
      try {
        status = await deps.webhooks.post(
          input.url,
          JSON.stringify(input.body),
          { "content-type": "application/json", "idempotency-key": input.idempotencyKey },
          deps.webhookTimeoutMs,
        );
      } catch (err) {
        if (err instanceof EgressRefused)
          throw ApplicationFailure.nonRetryable(err.message, "WebhookRefused");
        throw ApplicationFailure.retryable(
          `webhook ${input.url} unreachable: ${(err as Error).message}`,
          "WebhookUnreachable",
        );
      }
      if (status >= 200 && status < 300) return { status };
      const message = `webhook ${input.url} answered ${status}`;
      if (status >= 300 && status < 400)
        throw ApplicationFailure.nonRetryable(
          `${message} (redirects are not followed)`,
          "WebhookRedirected",
        );
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        throw ApplicationFailure.nonRetryable(message, "WebhookRejected");
      }
      throw ApplicationFailure.retryable(message, "WebhookFailed");
    },
  };
}

export type EngineActivities = ReturnType<typeof engineActivities>;

/** A planned push as the decision log shows it. */
function pushRulesRecord(s: PlannedRulesStep) {
  return {
    agent: s.agentId,
    target: s.target,
    rule_set: s.ruleSet,
    version: s.version,
    ...(s.target === "group" && { groups: s.groups }),
    ...(s.rules && { rules: s.rules.map((r) => `${r.id}@${r.version}`) }),
  };
}

/** Counts a decision once it is written; an outcome also times its mitigation from its choice. */
async function measureDecision(db: Db, d: Decision): Promise<void> {
  metrics.decisionRecorded(d.kind);
  const outcome =
    d.kind === "mitigation_succeeded"
      ? "succeeded"
      : d.kind === "mitigation_failed"
        ? "failed"
        : null;
  if (!outcome || !d.workflowId || !d.mitigation) return;
  const seconds = await secondsSinceChosen(db, d.workflowId, d.mitigation);
  if (seconds !== null) metrics.mitigationFinished(outcome, seconds);
}
