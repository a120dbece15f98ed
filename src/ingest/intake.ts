import type { Client } from "@temporalio/client";
import { type AlertHost, type FieldError, normaliseAlert } from "../domain/alert.ts";
import { metrics } from "../metrics.ts";
import { type AlertSource, markHandedOff, storeAlert } from "../store/alerts.ts";
import type { Db } from "../store/db.ts";
import { inSpan } from "../tracing.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import { alertSignal, incidentWorkflow } from "../workflows/incident.ts";
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

/**
 * The one way an alert enters the engine, whatever carried it (REST, NATS, an agent): normalise,
 * store, then hand to the host's incident workflow. Callers acknowledge their transport only after
 * this resolves, so a crash anywhere in between means a redelivery, never a lost alert; the
 * redelivery of an alert already handed off does nothing.
 */
export function alertIntake(deps: IntakeDeps) {
  return async function intake(
    input: unknown,
    source: AlertSource,
    context?: { host?: AlertHost },
  ): Promise<IntakeResult> {
    // The root of an alert's trace: the workflow start or signal below carries it on.
    return inSpan("alert.intake", { "mm.alert.source": source }, async (span) => {
      const result = await intakeOne(input, source, context);
      if (result.ok) {
        span.setAttributes({
          "mm.alert.id": result.alertId,
          "mm.incident.id": result.incidentId,
          "mm.alert.duplicate": result.duplicate,
        });
      }
      return result;
    });
  };

  async function intakeOne(
    input: unknown,
    source: AlertSource,
    context?: { host?: AlertHost },
  ): Promise<IntakeResult> {
    metrics.alertReceived(source);
    const stopTimer = metrics.intakeTimer(source);
    const normalised = normaliseAlert(input, context);
    if (!normalised.ok) {
      metrics.alertRejected(source);
      return normalised;
    }
    const { alert } = normalised;
    const incidentId = incidentWorkflowId(alert.host.name);
    const { key, handOff } = await storeAlert(deps.db, alert, source);
    if (handOff) {
      metrics.alertStored(source);
      await deps.temporal.workflow.signalWithStart(incidentWorkflow, {
        workflowId: incidentId,
        taskQueue: deps.taskQueue,
        args: [{ host: alert.host.name, idleMs: deps.incidentIdleMs }],
        signal: alertSignal,
        signalArgs: [
          {
            id: key,
            time: alert.time,
            techniques: alert.techniques,
            severity: alert.severity,
            ruleId: alert.rule.id,
          },
        ],
        typedSearchAttributes: [
          { key: HOST, value: alert.host.name },
          { key: INCIDENT_STATUS, value: "open" },
        ],
      });
      metrics.alertSignalled(source);
      await markHandedOff(deps.db, key);
    }
    stopTimer();
    return { ok: true, alertId: alert.id, incidentId, duplicate: !handOff };
  }
}

export type AlertIntake = ReturnType<typeof alertIntake>;
