// The append-only audit log: every command and result, every change to who may do what
// (enrollment, keys, tokens, groups) and to what the engine does (the catalog), every isolation
// release. The database refuses updates and deletes of these rows, and chains each one to the
// previous by hash (migrations/0004_audit_chain.ts), so a rewrite by whoever owns the table shows.
import { createHash } from "node:crypto";
import {
  type Compilable,
  type Kysely,
  type OperationNodeSource,
  type RawBuilder,
  sql,
} from "kysely";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";
import type { Database } from "./schema.ts";

export type AuditAction =
  | "agent.enrolled"
  | "agent.updated"
  | "agent.key_created"
  | "agent.key_revoked"
  | "agent.session_closed"
  | "agent.identity_claim"
  | "agent.identity_accepted"
  | "enrollment_token.created"
  | "enrollment_token.revoked"
  | "operator_token.created"
  | "operator_token.revoked"
  | "operator_session.opened"
  | "operator_session.closed"
  | "command.issued"
  | "command.duplicate"
  | "command.delivered"
  | "command.acknowledged"
  | "command.completed"
  | "command.failed"
  | "command.expired"
  | "isolation.requested"
  | "isolation.released"
  | "release.requested"
  | "catalog.created"
  | "catalog.updated"
  | "catalog.deleted"
  | "rule.created"
  | "rule_macros.created"
  | "rule_set.created"
  | "rule_set.assigned"
  | "approval.requested"
  | "approval.approved"
  | "approval.denied"
  | "approval.expired"
  | "mode.set"
  | "mode.cleared";

export interface AuditEntry {
  /**
   * Who did it: `operator:<name>`, `agent:<id>`, `gateway:<id>`, `workflow:<id>`, `supervisor`,
   * `system` (the default catalog), or `temporal signal` (a signal that did not say who sent it).
   */
  actor: string;
  action: AuditAction;
  agentId?: string | null;
  commandId?: string | null;
  details?: Record<string, unknown>;
}

/**
 * In a transaction, append last: the chain's lock is held from the append until the commit, so a
 * write after it would keep every other appender waiting (and could deadlock with one).
 */
export async function appendAudit(db: Kysely<Database>, entry: AuditEntry): Promise<void> {
  await db
    .insertInto("audit_log")
    .values({
      actor: entry.actor,
      action: entry.action,
      agent_id: entry.agentId ?? null,
      command_id: entry.commandId ?? null,
      details: JSON.stringify(entry.details ?? {}),
    })
    .execute();
}

/**
 * Runs a change of commands (an UPDATE … RETURNING at least `id` and `agent_id`) and appends an
 * audit entry for every command it changed, in one statement (a data-modifying CTE): the log never
 * misses a transition and never records one that did not happen. `details` may refer to the
 * changed row as `changed`. Returns the changed rows.
 */
export async function auditedCommandChange<R extends { id: string; agent_id: string }>(
  db: Db,
  change: Compilable<R> & OperationNodeSource,
  audit: { actor: string; action: AuditAction; details: RawBuilder<unknown> },
): Promise<R[]> {
  const { rows } = await sql<R>`with changed as (${change}),
    logged as (
      insert into audit_log (actor, action, agent_id, command_id, details)
      select ${audit.actor}::text, ${audit.action}::text, changed.agent_id, changed.id, ${audit.details}
      from changed
    )
    select * from changed`.execute(db);
  return rows;
}

export interface AuditFilter extends Page {
  agentId?: string;
  commandId?: string;
  /** An exact action, or a prefix ending in "." (e.g. "command.") for a family. */
  action?: string;
  actor?: string;
  since?: Date;
  until?: Date;
}

/** Entries in the order they were written. */
export async function listAudit(db: Db, f: AuditFilter) {
  let q = db.selectFrom("audit_log");
  if (f.agentId) q = q.where("agent_id", "=", f.agentId);
  if (f.commandId) q = q.where("command_id", "=", f.commandId);
  if (f.actor) q = q.where("actor", "=", f.actor);
  if (f.action) {
    q = f.action.endsWith(".")
      ? q.where("action", "like", `${f.action.replace(/[\\%_]/g, "\\$&")}%`)
      : q.where("action", "=", f.action);
  }
  if (f.since) q = q.where("at", ">=", f.since);
  if (f.until) q = q.where("at", "<", f.until);
  const page = await pageOf(q, (q) => q.selectAll().orderBy("id"), f);
  return { ...page, items: page.items.map((row) => ({ ...row, id: Number(row.id) })) };
}

export type ChainVerdict =
  | { intact: true; rows: number; head: string | null }
  | { intact: false; rows: number; brokenId: number; reason: string };

const GENESIS = "0".repeat(64);
const VERIFY_BATCH = 1_000;

/**
 * Walks the chain in id order and recomputes each hash here, from the content PostgreSQL renders
 * for the row: the first row whose link or hash does not match is where the log was rewritten (a
 * row changed, removed or inserted out of turn). `rows` counts the rows checked.
 */
export async function verifyAuditChain(db: Db): Promise<ChainVerdict> {
  let previous = { id: 0, hash: GENESIS };
  let rows = 0;
  for (;;) {
    const batch = await db
      .selectFrom("audit_log as a")
      .select(["a.id", "a.prev_hash", "a.hash", sql<string>`audit_log_content(a)`.as("content")])
      .where("a.id", ">", String(previous.id))
      .orderBy("a.id")
      .limit(VERIFY_BATCH)
      .execute();
    for (const row of batch) {
      const id = Number(row.id);
      rows++;
      if (row.prev_hash !== previous.hash)
        return {
          intact: false,
          rows,
          brokenId: id,
          reason: previous.id
            ? `its prev_hash is not the hash of row ${previous.id}: that row was rewritten, or rows between were removed`
            : "its prev_hash does not start the chain: earlier rows were removed",
        };
      const hash = createHash("sha256")
        .update(row.prev_hash + row.content, "utf8")
        .digest("hex");
      if (row.hash !== hash)
        return { intact: false, rows, brokenId: id, reason: "its content does not match its hash" };
      previous = { id, hash };
    }
    if (batch.length < VERIFY_BATCH)
      return { intact: true, rows, head: previous.id ? previous.hash : null };
  }
}
