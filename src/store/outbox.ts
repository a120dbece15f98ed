// The SIEM outbox (migrations/0007_siem_outbox_and_tracing.ts): triggers queue one row per event and sink in
// the transaction that made the event; the forwarder (src/siem/forwarder.ts) drains it per sink.
import { sql } from "kysely";
import type { Db } from "./db.ts";

export interface OutboxEvent {
  id: string;
  host: string;
  kind: string;
  event: Record<string, unknown>;
  created_at: Date;
}

/** How a batch went: the events sent (a prefix of the batch, in order) and why the rest was not. */
export interface SendResult {
  sent: number;
  error?: Error;
}

/** Sent events are kept this long (for inspection), then deleted. */
const SENT_RETENTION = "1 hour";

/**
 * Makes exactly these sinks receive events from now on: a sink no longer configured stops
 * queueing and its backlog goes (nobody would ever send it). Every worker has the same sinks.
 */
export async function registerSinks(db: Db, names: string[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (names.length)
      await trx
        .insertInto("siem_sinks")
        .values(names.map((name) => ({ name })))
        .onConflict((oc) => oc.column("name").doNothing())
        .execute();
    let gone = trx.deleteFrom("siem_sinks");
    if (names.length) gone = gone.where("name", "not in", names);
    await gone.execute();
  });
}

// One forwarder per sink at a time, across processes: a transaction-scoped advisory lock, so a
// crashed forwarder's lock goes with its connection.
const sinkLock = (sink: string) =>
  sql<{
    locked: boolean;
  }>`SELECT pg_try_advisory_xact_lock(hashtext(${`siem_outbox:${sink}`})) AS locked`;

/**
 * Sends the oldest unsent events of a sink, in id order (so in order per host), and marks those
 * sent. Returns null when another forwarder holds the sink.
 */
export async function forwardBatch(
  db: Db,
  sink: string,
  limit: number,
  send: (events: OutboxEvent[]) => Promise<SendResult>,
): Promise<(SendResult & { batch: number }) | null> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sinkLock(sink).execute(trx);
    if (!rows[0]?.locked) return null;
    const events = await trx
      .selectFrom("siem_outbox")
      .select(["id", "host", "kind", "event", "created_at"])
      .where("sink", "=", sink)
      .where("sent_at", "is", null)
      .orderBy("id")
      .limit(limit)
      .execute();
    if (!events.length) return { sent: 0, batch: 0 };
    const result = await send(events);
    const sent = events.slice(0, result.sent).map((e) => e.id);
    if (sent.length) {
      await trx
        .updateTable("siem_outbox")
        .set({ sent_at: sql<Date>`now()`, attempts: sql<number>`attempts + 1` })
        .where("id", "in", sent)
        .execute();
      await trx
        .updateTable("siem_sinks")
        .set({ sent: sql<string>`sent + ${sent.length}` })
        .where("name", "=", sink)
        .execute();
    }
    const failed = events[result.sent];
    if (result.error && failed)
      await trx
        .updateTable("siem_outbox")
        .set({ attempts: sql<number>`attempts + 1` })
        .where("id", "=", failed.id)
        .execute();
    return { ...result, batch: events.length };
  });
}

/**
 * Keeps a sink's queue within its bound: the oldest unsent events beyond `max` are deleted and
 * counted as dropped; sent events past their retention go too. Returns the events dropped now and
 * in all, or null when the sink's forwarder is busy sending (it trims on its next turn).
 */
export async function trimQueue(
  db: Db,
  sink: string,
  max: number,
): Promise<{ dropped: number; droppedTotal: number } | null> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sinkLock(sink).execute(trx);
    if (!rows[0]?.locked) return null;
    const { rows: counted } = await sql<{ dropped: string; total: string }>`
      WITH doomed AS (
        SELECT id FROM siem_outbox WHERE sink = ${sink} AND sent_at IS NULL
        ORDER BY id DESC OFFSET ${max}
      ), gone AS (
        DELETE FROM siem_outbox WHERE id IN (SELECT id FROM doomed) RETURNING 1
      )
      UPDATE siem_sinks SET dropped = dropped + (SELECT count(*) FROM gone) WHERE name = ${sink}
      RETURNING (SELECT count(*) FROM gone) AS dropped, dropped AS total`.execute(trx);
    await trx
      .deleteFrom("siem_outbox")
      .where("sink", "=", sink)
      .where("sent_at", "<", sql<Date>`now() - ${SENT_RETENTION}::interval`)
      .execute();
    return {
      dropped: Number(counted[0]?.dropped ?? 0),
      droppedTotal: Number(counted[0]?.total ?? 0),
    };
  });
}

/** Per sink: events sent, dropped, and waiting. */
export async function sinkStats(db: Db) {
  const rows = await db
    .selectFrom("siem_sinks as s")
    .select([
      "s.name",
      "s.sent",
      "s.dropped",
      sql<string>`(SELECT count(*) FROM siem_outbox o WHERE o.sink = s.name AND o.sent_at IS NULL)`.as(
        "unsent",
      ),
    ])
    .orderBy("s.name")
    .execute();
  return rows.map((r) => ({
    name: r.name,
    sent: Number(r.sent),
    dropped: Number(r.dropped),
    unsent: Number(r.unsent),
  }));
}
