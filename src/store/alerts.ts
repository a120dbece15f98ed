import { randomBytes } from "node:crypto";
import { type Selectable, sql } from "kysely";
import type { Alert } from "../domain/alert.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";
import type { AlertsTable } from "./schema.ts";

export type AlertSource = AlertsTable["source"];

export interface StoredAlert {
  key: string;
  /** false when this alert was stored and handed off before (a redelivery or a repeated POST). */
  handOff: boolean;
}

/**
 * Stores alerts once per source, host and alert id: ids are the source's choice, so an id one host
 * (or source) used first never turns another host's alert into a duplicate. One INSERT for the whole
 * batch (its own transaction: all stored or none), plus one SELECT only when some were there
 * already. `done` alerts need no hand-off (they reach no attack flow) and are stored as handed off.
 * Returns, in input order, each alert's key and whether it still has to be handed to its incident;
 * an alert repeated within the batch gets the key of its first occurrence and no hand-off.
 */
export async function storeAlerts(
  db: Db,
  alerts: { alert: Alert; done: boolean }[],
  source: AlertSource,
): Promise<StoredAlert[]> {
  const identity = (a: Alert) => `${a.host.name}\u0000${a.id}`;
  const first = new Map<string, number>();
  alerts.forEach(({ alert }, i) => {
    if (!first.has(identity(alert))) first.set(identity(alert), i);
  });
  const unique = [...first.values()].map((i) => alerts[i] as { alert: Alert; done: boolean });
  const now = new Date();
  const inserted = unique.length
    ? await db
        .insertInto("alerts")
        .values(
          unique.map(({ alert, done }) => ({
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
            handed_off_at: done ? now : null,
          })),
        )
        .onConflict((oc) => oc.columns(["source", "host", "id"]).doNothing())
        .returning(["key", "host", "id"])
        .execute()
    : [];
  const found = new Map<string, StoredAlert>();
  for (const row of inserted)
    found.set(`${row.host}\u0000${row.id}`, { key: row.key, handOff: true });
  const missing = unique.filter(({ alert }) => !found.has(identity(alert)));
  if (missing.length) {
    // Stored before: hand off again only what was never handed off (a crash before the signal).
    const rows = await db
      .selectFrom("alerts")
      .select(["key", "host", "id", "handed_off_at"])
      .where("source", "=", source)
      .where(
        sql<boolean>`(host, id) IN (SELECT * FROM unnest(${missing.map((m) => m.alert.host.name)}::text[], ${missing.map((m) => m.alert.id)}::text[]))`,
      )
      .execute();
    for (const row of rows)
      found.set(`${row.host}\u0000${row.id}`, {
        key: row.key,
        handOff: row.handed_off_at === null,
      });
  }
  return alerts.map(({ alert }, i) => {
    const stored = found.get(identity(alert));
    if (!stored)
      throw new Error(`alert ${alert.id} of ${alert.host.name} was neither stored nor found`);
    return first.get(identity(alert)) === i ? stored : { key: stored.key, handOff: false };
  });
}

/** Stores one alert; see storeAlerts. */
export async function storeAlert(db: Db, alert: Alert, source: AlertSource): Promise<StoredAlert> {
  const [stored] = await storeAlerts(db, [{ alert, done: false }], source);
  return stored as StoredAlert;
}

/**
 * Unique by its random part; it starts with the source's id so that operators find an alert's
 * mitigations (whose workflow ids contain the key) by the id Wazuh showed them.
 */
const alertKey = (id: string, source: AlertSource) =>
  `${id}/${source}-${randomBytes(6).toString("hex")}`;

export async function markHandedOff(db: Db, alertKeys: string[]): Promise<void> {
  if (!alertKeys.length) return;
  await db
    .updateTable("alerts")
    .set({ handed_off_at: new Date() })
    .where("key", "in", alertKeys)
    .where("handed_off_at", "is", null)
    .execute();
}

/** A stored alert as the engine reads it: all of it but when it was handed off (which changes). */
export type AlertRecord = Omit<Selectable<AlertsTable>, "handed_off_at">;

/** The stored alerts kept in memory per database handle, and their bound in bytes of raw alert. */
const alertCaches = new WeakMap<
  Db,
  { rows: Map<string, AlertRecord & { bytes: number }>; bytes: number }
>();
const ALERT_CACHE_BYTES = 16 * 1024 * 1024;
const ALERT_CACHE_MAX_ROW_BYTES = 256 * 1024;

/**
 * A stored alert by its key. A stored alert never changes (when it was handed off is left out),
 * and its matching, its planning and its approval gate read it within seconds of each other: the
 * alerts read last are kept, up to 16 MiB of raw alerts (one over 256 KiB is not kept), so one
 * alert costs one read instead of three.
 */
export async function readAlert(db: Db, alertKey: string): Promise<AlertRecord | undefined> {
  let cache = alertCaches.get(db);
  if (!cache) {
    cache = { rows: new Map(), bytes: 0 };
    alertCaches.set(db, cache);
  }
  const kept = cache.rows.get(alertKey);
  if (kept) {
    // Most recently used last: the oldest is dropped first.
    cache.rows.delete(alertKey);
    cache.rows.set(alertKey, kept);
    const { bytes: _, ...alert } = kept;
    return alert;
  }
  const row = await db
    .selectFrom("alerts")
    .selectAll()
    .where("key", "=", alertKey)
    .executeTakeFirst();
  if (!row) return undefined;
  const { handed_off_at: _, ...alert } = row;
  const bytes = JSON.stringify(alert.raw).length;
  if (bytes <= ALERT_CACHE_MAX_ROW_BYTES && !cache.rows.has(alertKey)) {
    cache.rows.set(alertKey, { ...alert, bytes });
    cache.bytes += bytes;
    for (const [key, oldest] of cache.rows) {
      if (cache.bytes <= ALERT_CACHE_BYTES) break;
      cache.rows.delete(key);
      cache.bytes -= oldest.bytes;
    }
  }
  return alert;
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
  await rejectAlerts(db, source, [{ payload, errors }]);
}

/** Keeps a batch's unreadable alerts in one statement. */
export async function rejectAlerts(
  db: Db,
  source: AlertSource,
  rejected: { payload: string; errors: unknown[] }[],
): Promise<void> {
  if (!rejected.length) return;
  await db
    .insertInto("rejected_alerts")
    .values(rejected.map((r) => ({ source, payload: r.payload, errors: JSON.stringify(r.errors) })))
    .execute();
}
