import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import type { Alert } from "../domain/alert.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";
import type { AlertsTable } from "./schema.ts";

export type AlertSource = AlertsTable["source"];

/**
 * Stores an alert once per source, host and alert id: ids are the source's choice, so an id one
 * host (or source) used first never turns another host's alert into a duplicate. Returns the
 * stored alert's key, and whether it still has to be handed to its incident: false when this alert
 * was stored and handed off before (a redelivery or a repeated POST).
 */
export async function storeAlert(
  db: Db,
  alert: Alert,
  source: AlertSource,
): Promise<{ key: string; handOff: boolean }> {
  const inserted = await db
    .insertInto("alerts")
    .values({
      key: alertKey(alert.id, source),
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
    .onConflict((oc) => oc.columns(["source", "host", "id"]).doNothing())
    .returning("key")
    .executeTakeFirst();
  if (inserted) return { key: inserted.key, handOff: true }; // no second query on the hot path
  const row = await db
    .selectFrom("alerts")
    .select(["key", "handed_off_at"])
    .where("source", "=", source)
    .where("host", "=", alert.host.name)
    .where("id", "=", alert.id)
    .executeTakeFirstOrThrow();
  return { key: row.key, handOff: row.handed_off_at === null };
}

/**
 * Unique by its random part; it starts with the source's id so that operators find an alert's
 * mitigations (whose workflow ids contain the key) by the id Wazuh showed them.
 */
const alertKey = (id: string, source: AlertSource) =>
  `${id}/${source}-${randomBytes(6).toString("hex")}`;

export async function markHandedOff(db: Db, alertKey: string): Promise<void> {
  await db
    .updateTable("alerts")
    .set({ handed_off_at: new Date() })
    .where("key", "=", alertKey)
    .where("handed_off_at", "is", null)
    .execute();
}

export async function getAlertRow(db: Db, alertKey: string) {
  return db.selectFrom("alerts").selectAll().where("key", "=", alertKey).executeTakeFirst();
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
  return pageOf(q, (q) => q.selectAll().orderBy("time", "desc").orderBy("key"), f);
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
