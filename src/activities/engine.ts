import { ApplicationFailure } from "@temporalio/activity";
import neo4j, { type Driver, isRetryableError } from "neo4j-driver";
import type { Config } from "../config.ts";
import { resolveArgs } from "../domain/args.ts";
import {
  advance,
  candidateNodes,
  type FlowInstance,
  instanceIdOf,
  type NodeCandidate,
} from "../domain/attack-flow.ts";
import type { CheckRunner } from "../domain/check-budget.ts";
import { type EgressPolicy, EgressRefused } from "../domain/egress.ts";
import { rankMitigations, stepDetails } from "../domain/mitigation.ts";
import {
  type AgentCommand,
  type AttackFlow,
  type Condition,
  type Identifier,
  identifierKey,
  PUSH_RULES,
} from "../domain/model.ts";
import { type Protection, protectionOf } from "../domain/protected-addresses.ts";
import { metrics } from "../metrics.ts";
import { readAlert } from "../store/alerts.ts";
import { type CatalogSnapshot, catalogSnapshots } from "../store/catalog.ts";
import type { Db } from "../store/db.ts";
import {
  claimMitigation,
  type Decision,
  recordDecisions,
  secondsSinceChosen,
} from "../store/decisions.ts";
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
  /** Time to live of the engine's agent commands (config `commands.ttlMs`). */
  commandTtlMs: number;
  /** Operating modes and approval gates (config `approvals`; src/activities/approvals.ts). */
  approvals: Config["approvals"];
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
      /** Absent from plans recorded before this field existed. */
      ttlMs?: number;
      /** isolate-host only: the isolation is released after this long (held until released otherwise). */
      releaseAfterMs?: number;
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
  | {
      found: true;
      candidate: RankedMitigation;
      steps: PlannedStep[];
      /** Cheaper candidates that did not apply, not to be planned again by this run (absent
       *  from plans recorded before it existed). */
      passedOver?: string[];
    }
  | {
      found: false;
      candidates: number;
      /** The cheapest applicable mitigation already runs for this alert in another run. */
      duplicateOf?: { mitigation: string; workflowId: string };
    };

const decisionBase = (i: PlanInput) => ({
  incidentId: i.incidentId,
  alertId: i.alertId,
  workflowId: i.workflowId,
  flowId: i.flowId,
  nodeId: i.nodeId,
});

/** What planning reads of an alert: its document and how it names its host. */
interface AlertFacts {
  raw: Record<string, unknown>;
  host: string;
  agent_id: string | null;
  host_ip: string | null;
}

/**
 * A query or check over its budget may be the catalog's fault (a costly condition) or the moment's
 * (a cold Neo4j after a restart, a loaded machine). The engine tries it again, after 1 s then 2 s;
 * over budget BUDGET_ATTEMPTS times in a row is the condition's verdict. Counted within one
 * evaluation, so the attempts an activity spent waiting out an outage never count. A rehearsal
 * (dry-run) answers at once: its first overrun is the verdict.
 */
const BUDGET_ATTEMPTS = 3;

type ConditionVerdict = { holds: true } | { holds: false; reason: string; error?: boolean };
type Evaluation = ConditionVerdict | { overBudget: string };

/** What the engine reads and decides, without recording: shared by the activities and dry-run. */
function engineCore(deps: EngineDeps, budgetAttempts: number) {
  const catalogs = catalogSnapshots(deps.db);

  async function loadAlert(alertId: string) {
    const row = await readAlert(deps.db, alertId);
    // The alert is stored before its signal is sent; a missing row is a broken invariant, not a retry case.
    if (!row) throw ApplicationFailure.nonRetryable(`alert ${alertId} is not stored`);
    return row;
  }

  /** A condition holds when its args resolve, its query runs and its check yields true. */
  async function evaluateCondition(
    catalog: CatalogSnapshot,
    id: Identifier,
    alert: Record<string, unknown>,
  ): Promise<ConditionVerdict> {
    const condition = catalog.get("condition", identifierKey(id));
    if (!condition) return { holds: false, reason: `condition ${id} does not exist` };
    const args = resolveArgs(condition.args ?? {}, alert);
    if (!args.ok)
      return { holds: false, reason: `condition ${id}: missing args ${args.missing.join(", ")}` };
    for (let attempt = 1; ; attempt++) {
      const evaluation = await evaluateOnce(id, condition, args.values, alert);
      if (!("overBudget" in evaluation)) return evaluation;
      if (attempt >= budgetAttempts)
        return { holds: false, error: true, reason: `condition ${id}: ${evaluation.overBudget}` };
      await new Promise((r) => setTimeout(r, 1_000 * attempt));
    }
  }

  /** The condition's query (if any), then its check, each within its budget. */
  async function evaluateOnce(
    id: Identifier,
    condition: Condition,
    args: Record<string, unknown>,
    alert: Record<string, unknown>,
  ): Promise<Evaluation> {
    let rows: Record<string, unknown>[] = [];
    if (condition.query?.trim()) {
      const session = deps.neo4j.session({ defaultAccessMode: neo4j.session.READ });
      try {
        const result = await session.executeRead(
          (tx) => tx.run(condition.query ?? "", { ...condition.params, ...args }),
          { timeout: deps.queryTimeoutMs },
        );
        rows = toRows(result.records);
      } catch (err) {
        // Neo4j unreachable is no verdict: the activity is retried until it answers, so the
        // decision log never says "skipped" for what was only an outage.
        if (isRetryableError(err))
          throw ApplicationFailure.retryable(
            `condition ${id}: Neo4j unavailable: ${(err as Error).message}`,
            "GraphUnavailable",
          );
        if (String((err as { code?: unknown }).code).includes("TransactionTimedOut"))
          return { overBudget: `query failed: ${(err as Error).message}` };
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
      args,
      alert,
      rows,
    });
    if (!check.ok) {
      if (check.overBudget) return { overBudget: `check failed: ${check.error}` };
      return { holds: false, error: true, reason: `condition ${id}: check failed: ${check.error}` };
    }
    return check.value ? { holds: true } : { holds: false, reason: `condition ${id} is false` };
  }

  async function evaluateAll(
    catalog: CatalogSnapshot,
    ids: Identifier[],
    alert: Record<string, unknown>,
    cache = new Map<string, Promise<ConditionVerdict>>(),
  ) {
    for (const id of ids) {
      const key = identifierKey(id);
      if (!cache.has(key)) cache.set(key, evaluateCondition(catalog, id, alert));
      const verdict = await cache.get(key);
      if (verdict && !verdict.holds) return verdict;
    }
    return { holds: true } as const;
  }

  const record = (d: Decision) => recordMeasured(deps.db, d);
  /**
   * Verdicts are written once every one of them is known: an activity that fails part-way (Neo4j
   * gone for the next condition) is retried and may decide otherwise, and a verdict written
   * before that failure would stand beside the retry's contrary one.
   */
  const recordAll = (decisions: Decision[]) => recordMeasured(deps.db, ...decisions);

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
    catalog: CatalogSnapshot,
    alert: AlertFacts,
    candidate: RankedMitigation,
    /** The techniques of the node reached (what a push-rules step may push rules for). */
    techniques: string[],
  ): Promise<PlannedStep[] | string> {
    const mitigation = catalog.get("mitigation", candidate.key);
    if (!mitigation) return "it no longer exists";
    const args = resolveArgs(mitigation.args ?? {}, alert.raw);
    if (!args.ok) return `missing args ${args.missing.join(", ")}`;
    const verdict = await evaluateAll(catalog, mitigation.conditions ?? [], alert.raw);
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
            techniques,
          });
          if (typeof push === "string") return push;
          steps.push(push);
          continue;
        }
        const { release_after_seconds: hold, ...details } = stepDetails(
          mitigation,
          args.values,
          step,
        );
        const refused = step.agent === "block-ip" && blockRefusal(details.ip);
        if (refused) return refused;
        const isolation = step.agent === "isolate-host";
        steps.push({
          kind: "agent",
          agentId: agent.agentId,
          command: step.agent,
          details: isolation
            ? details
            : { ...details, ...(hold !== undefined && { release_after_seconds: hold }) },
          priority: isolation ? "critical" : "high",
          ttlMs: deps.commandTtlMs,
          // An automatic isolation is held until an operator releases it, unless its mitigation
          // says how long (`release_after_seconds` in the step's details).
          ...(isolation &&
            typeof hold === "number" &&
            hold > 0 && { releaseAfterMs: Math.round(hold * 1_000) }),
        });
      }
    }
    return steps;
  }

  /** The catalog's mitigations for the techniques, cheapest first, as the engine names them. */
  function rankedFor(catalog: CatalogSnapshot, techniques: string[]): RankedMitigation[] {
    return rankMitigations(catalog.list("mitigation"), techniques).map((m) => ({
      key: identifierKey(m.identifier),
      name: m.name,
      cost: m.cost,
    }));
  }

  return {
    catalogs,
    loadAlert,
    evaluateCondition,
    evaluateAll,
    record,
    recordAll,
    plan,
    rankedFor,
  };
}

export function engineActivities(deps: EngineDeps) {
  const { catalogs, loadAlert, evaluateAll, record, recordAll, plan, rankedFor } = engineCore(
    deps,
    BUDGET_ATTEMPTS,
  );

  /**
   * For each alert of a batch, in order, the nodes it could reach whose conditions all hold; every
   * verdict is recorded. Between alerts the instances advance as the incident will advance them
   * (same ids), so a later alert of the batch sees the flows where the earlier ones left them.
   * Returns only the flows the instances and candidates are on.
   */
  async function matchAlerts(input: {
    incidentId: string;
    alerts: { id: string; techniques: string[] }[];
    instances: FlowInstance[];
    instanceCounter: number;
  }): Promise<{ flows: AttackFlow[]; holding: NodeCandidate[][] }> {
    const catalog = await catalogs.current();
    const all = catalog.list("attack_flow");
    const needed = new Set(input.instances.map((i) => i.flowId));
    const cache = new Map<string, Promise<ConditionVerdict>>();
    let instances = input.instances;
    let counter = input.instanceCounter;
    const holdingPerAlert: NodeCandidate[][] = [];
    const verdicts: Decision[] = [];
    for (const a of input.alerts) {
      const candidates = candidateNodes(all, instances, a.techniques);
      const holding: NodeCandidate[] = [];
      holdingPerAlert.push(holding);
      if (candidates.length === 0) continue;
      for (const c of candidates) needed.add(c.flowId);
      const alert = await loadAlert(a.id);
      cache.clear(); // verdicts are per alert: conditions read the alert
      for (const candidate of candidates) {
        const verdict = await evaluateAll(catalog, candidate.conditions, alert.raw, cache);
        if (verdict.holds) holding.push(candidate);
        verdicts.push({
          incidentId: input.incidentId,
          alertId: a.id,
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
      if (holding.length)
        instances = advance(all, instances, holding, () => instanceIdOf(++counter)).instances;
    }
    await recordAll(verdicts);
    // A flow missing here would finish its instances in the workflow: send every one in use.
    for (const i of instances) needed.add(i.flowId);
    return {
      flows: all.filter((f) => needed.has(identifierKey(f.identifier))),
      holding: holdingPerAlert,
    };
  }

  return {
    /** matchAlerts for one alert: the incident's first form, kept for the runs that used it. */
    async matchAlert(input: {
      incidentId: string;
      alertId: string;
      techniques: string[];
      instances: FlowInstance[];
    }): Promise<{ flows: AttackFlow[]; holding: NodeCandidate[] }> {
      const matched = await matchAlerts({
        incidentId: input.incidentId,
        alerts: [{ id: input.alertId, techniques: input.techniques }],
        instances: input.instances,
        instanceCounter: 0,
      });
      return { flows: matched.flows, holding: matched.holding[0] ?? [] };
    },

    matchAlerts,

    /**
     * The cheapest applicable mitigation after the first `from` candidates (ascending cost), with
     * its steps; every candidate passed over is recorded as skipped with its reason.
     */
    async planNextMitigation(input: PlanInput & { tried: string[] }): Promise<NextMitigation> {
      const catalog = await catalogs.current();
      const ranked = rankedFor(catalog, input.techniques);
      const alert = await loadAlert(input.alertId);
      const passedOver: string[] = [];
      const skipped: Decision[] = [];
      for (const candidate of ranked) {
        if (input.tried.includes(candidate.key)) continue;
        const base = { ...decisionBase(input), mitigation: candidate.key };
        const steps = await plan(catalog, alert, candidate, input.techniques);
        if (typeof steps === "string") {
          skipped.push({
            ...base,
            kind: "mitigation_skipped",
            reason: `${candidate.name} skipped: ${steps}`,
            details: { cost: candidate.cost },
          });
          passedOver.push(candidate.key);
          continue;
        }
        const owner = await claimMitigation(deps.db, {
          alertId: input.alertId,
          mitigation: candidate.key,
          workflowId: input.workflowId,
        });
        if (owner !== input.workflowId) {
          await recordAll([
            ...skipped,
            {
              ...base,
              kind: "mitigation_duplicate",
              reason: `${candidate.name} already runs for this alert in ${owner}: not run twice`,
              details: { cost: candidate.cost, owner },
            },
          ]);
          return {
            found: false,
            candidates: ranked.length,
            duplicateOf: { mitigation: candidate.key, workflowId: owner },
          };
        }
        await recordAll([
          ...skipped,
          {
            ...base,
            kind: "mitigation_chosen",
            reason: `${candidate.name} chosen (cost ${candidate.cost})${input.preemptive ? " preemptively" : ""}`,
            details: { cost: candidate.cost, steps: stepsRecord(steps) },
          },
        ]);
        if (steps.some((s) => s.kind === "agent"))
          metrics.alertToCommand((Date.now() - alert.received_at.getTime()) / 1_000);
        return { found: true, candidate, steps, passedOver };
      }
      await recordAll(skipped);
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

/** Planned steps as the decision log and the approvals queue show them. */
export function stepsRecord(steps: PlannedStep[]): Record<string, unknown>[] {
  return steps.map((s) =>
    s.kind === "webhook"
      ? { webhook: s.url, body: s.body }
      : s.kind === "rules"
        ? { push_rules: pushRulesRecord(s) }
        : { command: s.command, details: s.details },
  );
}

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

/**
 * Records decisions once each (one statement for the lot) and counts those written; an outcome
 * also times its mitigation from its choice. Every activity that records decisions records them
 * through here.
 */
export async function recordMeasured(db: Db, ...decisions: Decision[]): Promise<void> {
  for (const d of await recordDecisions(db, decisions)) {
    metrics.decisionRecorded(d.kind);
    const outcome =
      d.kind === "mitigation_succeeded"
        ? "succeeded"
        : d.kind === "mitigation_failed"
          ? "failed"
          : null;
    if (!outcome || !d.workflowId || !d.mitigation) continue;
    const seconds = await secondsSinceChosen(db, d);
    if (seconds !== null) metrics.mitigationFinished(outcome, seconds);
  }
}

export interface DryRunInput {
  alert: AlertFacts & { techniques: string[] };
  /** The host's open incident's flow instances (none when it has no open incident). */
  instances: FlowInstance[];
  instanceCounter: number;
}

/**
 * What an alert would do now, decided as the engine decides it, with no effect and nothing
 * recorded: the nodes it could reach with every condition's verdict, the nodes reached, and per
 * reached node the candidates in cost order, each applying (with its resolved steps) or not (why).
 * Not an activity: the API answers it (POST /api/alert/dry-run).
 */
export function engineDryRun(deps: EngineDeps) {
  const { catalogs, evaluateCondition, plan, rankedFor } = engineCore(deps, 1);
  return async (input: DryRunInput) => {
    const catalog = await catalogs.current();
    const flows = catalog.list("attack_flow");
    const candidates = candidateNodes(flows, input.instances, input.alert.techniques);
    const nodes = [];
    const holding: NodeCandidate[] = [];
    for (const c of candidates) {
      const conditions = [];
      for (const id of c.conditions) {
        const verdict = await evaluateCondition(catalog, id, input.alert.raw);
        conditions.push(
          verdict.holds ? { condition: id, holds: true } : { condition: id, ...verdict },
        );
      }
      const holds = conditions.every((v) => v.holds);
      if (holds) holding.push(c);
      nodes.push({ flow: c.flowId, node: c.nodeId, instance: c.instanceId, holds, conditions });
    }
    let counter = input.instanceCounter;
    const step = advance(flows, input.instances, holding, () => instanceIdOf(++counter));
    const reached = [];
    for (const r of step.reached) {
      const options = [];
      for (const candidate of rankedFor(catalog, r.techniques)) {
        const steps = await plan(catalog, input.alert, candidate, r.techniques);
        options.push(
          typeof steps === "string"
            ? { ...candidate, applies: false, reason: steps }
            : { ...candidate, applies: true, steps },
        );
      }
      reached.push({
        flow: r.flowId,
        node: r.nodeId,
        preemptive: r.preemptive,
        techniques: r.techniques,
        chosen: options.find((o) => o.applies)?.key ?? null,
        candidates: options,
      });
    }
    return { nodes, reached, instancesAfter: step.instances };
  };
}
