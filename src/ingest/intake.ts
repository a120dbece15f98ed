import type { Client } from "@temporalio/client";
import { type Alert, type AlertHost, type FieldError, normaliseAlert } from "../domain/alert.ts";
import { flowTechniques, reachesAnyFlow } from "../domain/attack-flow.ts";
import { metrics } from "../metrics.ts";
import { type AlertSource, markHandedOff, storeAlerts } from "../store/alerts.ts";
import { type CatalogSnapshot, catalogSnapshots } from "../store/catalog.ts";
import type { Db } from "../store/db.ts";
import { inSpan } from "../tracing.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import { alertsSignal, type IncidentAlert, incidentWorkflow } from "../workflows/incident.ts";
import { HOST, INCIDENT_STATUS } from "../workflows/search-attributes.ts";

export interface IntakeDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
  incidentIdleMs: number;
}

export type IntakeResult =
  | { ok: true; alertId: string; incidentId: string; duplicate: boolean }
  | { ok: false; errors: FieldError[] };

export interface IntakeItem {
  input: unknown;
  context?: { host?: AlertHost };
}

export interface IntakeOptions {
  /** Settles once the previous batch handed its alerts to Temporal: this batch's alerts are then
   *  handed over after it (stored meanwhile), so a host's alerts reach its incident in order. */
  after?: Promise<unknown>;
}

/**
 * The one way alerts enter the engine, whatever carried them (REST, NATS, an agent): normalise,
 * store the batch in one statement, then hand each host's new alerts to its incident workflow in
 * one signal. Callers acknowledge their transport only after this resolves, so a crash anywhere in
 * between means a redelivery, never a lost alert; the redelivery of an alert already handed off
 * does nothing. Alerts whose techniques reach no attack flow are stored but never reach Temporal:
 * they cost one row, not a workflow task.
 */
export function alertIntake(deps: IntakeDeps) {
  const flows = flowIndex(deps.db);

  async function intakeBatch(
    items: IntakeItem[],
    source: AlertSource,
    options: IntakeOptions = {},
  ): Promise<IntakeResult[]> {
    // The root of the alerts' trace: the workflow starts and signals below carry it on.
    return inSpan("alert.intake", { "mm.alert.source": source }, async (span) => {
      const results = await intakeMany(items, source, options);
      const [only] = results;
      if (results.length === 1 && only?.ok) {
        span.setAttributes({
          "mm.alert.id": only.alertId,
          "mm.incident.id": only.incidentId,
          "mm.alert.duplicate": only.duplicate,
        });
      } else {
        span.setAttributes({ "mm.alert.count": results.length });
      }
      return results;
    });
  }

  async function intakeMany(
    items: IntakeItem[],
    source: AlertSource,
    options: IntakeOptions,
  ): Promise<IntakeResult[]> {
    const stopTimers: (() => void)[] = [];
    const valid: { index: number; alert: Alert }[] = [];
    const results: IntakeResult[] = items.map(({ input, context }, index) => {
      metrics.alertReceived(source);
      const normalised = normaliseAlert(input, context);
      if (!normalised.ok) {
        metrics.alertRejected(source);
        return normalised;
      }
      stopTimers.push(metrics.intakeTimer(source));
      valid.push({ index, alert: normalised.alert });
      return { ok: false, errors: [] }; // replaced below once stored
    });
    if (!valid.length) return results;

    const index = await flows.current();
    const relevant = valid.map(({ alert }) => reachesAnyFlow(index, alert.techniques));
    const stored = await storeAlerts(
      deps.db,
      valid.map(({ alert }, i) => ({ alert, done: !relevant[i] })),
      source,
    );

    // One signal per host, its alerts in arrival order.
    const byHost = new Map<string, IncidentAlert[]>();
    valid.forEach(({ alert }, i) => {
      const s = stored[i];
      if (!s?.handOff) return;
      metrics.alertStored(source);
      if (!relevant[i]) {
        metrics.alertWithoutFlow(source);
        return;
      }
      const list = byHost.get(alert.host.name) ?? [];
      list.push({
        id: s.key,
        time: alert.time,
        techniques: alert.techniques,
        severity: alert.severity,
        ruleId: alert.rule.id,
      });
      byHost.set(alert.host.name, list);
    });
    // Whether the previous batch succeeded or not: its alerts are redelivered if it failed.
    if (byHost.size > 0) await options.after?.catch(() => undefined);
    await Promise.all(
      [...byHost].map(async ([host, alerts]) => {
        await deps.temporal.workflow.signalWithStart(incidentWorkflow, {
          workflowId: incidentWorkflowId(host),
          taskQueue: deps.taskQueue,
          args: [{ host, idleMs: deps.incidentIdleMs }],
          signal: alertsSignal,
          signalArgs: [alerts],
          typedSearchAttributes: [
            { key: HOST, value: host },
            { key: INCIDENT_STATUS, value: "open" },
          ],
        });
        for (const _ of alerts) metrics.alertSignalled(source);
      }),
    );
    await markHandedOff(
      deps.db,
      [...byHost.values()].flatMap((alerts) => alerts.map((a) => a.id)),
    );

    valid.forEach(({ index, alert }, i) => {
      results[index] = {
        ok: true,
        alertId: alert.id,
        incidentId: incidentWorkflowId(alert.host.name),
        duplicate: !stored[i]?.handOff,
      };
    });
    for (const stop of stopTimers) stop();
    return results;
  }

  /** One alert: the batch of one. */
  async function intake(
    input: unknown,
    source: AlertSource,
    context?: { host?: AlertHost },
  ): Promise<IntakeResult> {
    const [result] = await intakeBatch([{ input, context }], source);
    return result as IntakeResult;
  }

  return Object.assign(intake, { batch: intakeBatch });
}

export type AlertIntake = ReturnType<typeof alertIntake>;

/**
 * The attack flows' techniques of the catalog's current version (one tiny read per batch keeps
 * every intake process current with changes made through any other process), worked out once
 * per version.
 */
function flowIndex(db: Db) {
  const catalogs = catalogSnapshots(db);
  const techniques = new WeakMap<CatalogSnapshot, Set<string>>();
  return {
    async current(): Promise<Set<string>> {
      const catalog = await catalogs.current();
      let known = techniques.get(catalog);
      if (!known) {
        known = flowTechniques(catalog.list("attack_flow"));
        techniques.set(catalog, known);
      }
      return known;
    },
  };
}
