import { sql } from "kysely";
import type { Alert } from "../domain/alert.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";
import type { AlertsTable } from "./schema.ts";

export type AlertSource = AlertsTable["source"];

/**
 * Stores an alert once. Returns whether it still has to be handed to its incident: false when
 * the same alert id was stored and handed off before (a redelivery or a repeated POST).
 */
export async function storeAlert(
  db: Db,
  alert: Alert,
  source: AlertSource,
): Promise<{ handOff: boolean }> {
  const inserted = await db
    .insertInto("alerts")
    .values({
      id: alert.id,
      time: alert.time,
      host: alert.host.name,
      agent_id: alert.host.agentId ?? null,
      host_ip: alert.host.ip ?? null,
      rule_id: alert.rule.id,
      rule_level: alert.rule.level,
      severity: alert.severity,
      techniques: alert.techniques,
      tactics: alert.tactics,
      format: alert.format,
      source,
      raw: JSON.stringify(alert.raw),
      incident_id: incidentWorkflowId(alert.host.name),
    })
    .onConflict((oc) => oc.column("id").doNothing())
    .returning("id")
    .executeTakeFirst();
  if (inserted) return { handOff: true }; // a new alert: no second query on the hot path
  const row = await db
    .selectFrom("alerts")
    .select("handed_off_at")
    .where("id", "=", alert.id)
    .executeTakeFirstOrThrow();
  return { handOff: row.handed_off_at === null };
}

export async function markHandedOff(db: Db, alertId: string): Promise<void> {
  await db
    .updateTable("alerts")
    .set({ handed_off_at: new Date() })
    .where("id", "=", alertId)
    .where("handed_off_at", "is", null)
    .execute();
}

export async function getAlertRow(db: Db, alertId: string) {
  return db.selectFrom("alerts").selectAll().where("id", "=", alertId).executeTakeFirst();
}

export interface AlertFilter extends Page {
  host?: string;
  technique?: string;
  rule?: string;
  since?: Date;
  until?: Date;
}

export async function listAlerts(db: Db, f: AlertFilter) {
  let q = db.selectFrom("alerts");
  if (f.host) q = q.where("host", "=", f.host);
  if (f.rule) q = q.where("rule_id", "=", f.rule);
  if (f.technique) q = q.where(sql<boolean>`${f.technique} = ANY(techniques)`);
  if (f.since) q = q.where("time", ">=", f.since);
  if (f.until) q = q.where("time", "<", f.until);
  return pageOf(q, (q) => q.selectAll().orderBy("time", "desc").orderBy("id"), f);
}

/** Keeps an unreadable alert (bad JSON, missing fields) with the reasons, for operators. */
export async function rejectAlert(
  db: Db,
  source: AlertSource,
  payload: string,
  errors: unknown[],
): Promise<void> {
  await db
    .insertInto("rejected_alerts")
    .values({ source, payload, errors: JSON.stringify(errors) })
    .execute();
}
