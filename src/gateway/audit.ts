// The append-only audit log: every command and result, and every change to who may do what
// (enrollment, keys, tokens, groups). The database refuses updates and deletes of these rows.
import type { Kysely } from "kysely";
import type { Db } from "../db/index.ts";
import type { Database } from "../db/schema.ts";

export type AuditAction =
  | "agent.enrolled"
  | "agent.updated"
  | "agent.key_created"
  | "agent.key_revoked"
  | "agent.session_closed"
  | "enrollment_token.created"
  | "enrollment_token.revoked"
  | "operator_token.created"
  | "operator_token.revoked"
  | "command.issued"
  | "command.duplicate"
  | "command.delivered"
  | "command.acknowledged"
  | "command.completed"
  | "command.failed"
  | "command.expired"
  | "isolation.requested"
  | "release.requested";

export interface AuditEntry {
  /** Who did it: `operator:<name>`, `agent:<id>`, `gateway:<id>`, `workflow:<id>`, `supervisor`. */
  actor: string;
  action: AuditAction;
  agentId?: string | null;
  commandId?: string | null;
  details?: Record<string, unknown>;
}

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

export interface AuditFilter {
  agentId?: string;
  commandId?: string;
  /** An exact action, or a prefix ending in "." (e.g. "command.") for a family. */
  action?: string;
  actor?: string;
  since?: Date;
  until?: Date;
  limit: number;
  offset: number;
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
  const [items, total] = await Promise.all([
    q.selectAll().orderBy("id").limit(f.limit).offset(f.offset).execute(),
    q.select((eb) => eb.fn.countAll<string>().as("n")).executeTakeFirstOrThrow(),
  ]);
  return { items: items.map((row) => ({ ...row, id: Number(row.id) })), total: Number(total.n) };
}
