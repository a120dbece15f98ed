// Approvals, operating modes and isolation admissions (migrations/0012_approvals_and_modes.ts).
import { sql } from "kysely";
import type { Mode, ModeSettings } from "../domain/approval.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";
import type { ApprovalStatus } from "./schema.ts";

// --- operating modes -----------------------------------------------------------------------------

const GROUP_SCOPE = "group:";

/** The modes in force; the global one is `configured` (MM_MODE) until an operator sets one. */
export async function readModes(db: Db, configured: Mode): Promise<ModeSettings> {
  const rows = await db.selectFrom("operating_modes").select(["scope", "mode"]).execute();
  const groups: Record<string, Mode> = {};
  let global = configured;
  for (const row of rows) {
    if (row.scope === "global") global = row.mode;
    else groups[row.scope.slice(GROUP_SCOPE.length)] = row.mode;
  }
  return { global, groups };
}

/** Every mode an operator set, with who set it and when. */
export async function listModes(db: Db) {
  const rows = await db.selectFrom("operating_modes").selectAll().orderBy("scope").execute();
  const global = rows.find((r) => r.scope === "global") ?? null;
  const groups = rows
    .filter((r) => r.scope.startsWith(GROUP_SCOPE))
    .map(({ scope, ...r }) => ({ group: scope.slice(GROUP_SCOPE.length), ...r }));
  return { global, groups };
}

/** Sets the global mode (group null) or a group's, audited in the same transaction. */
export async function setMode(db: Db, group: string | null, mode: Mode, actor: string) {
  const scope = group === null ? "global" : `${GROUP_SCOPE}${group}`;
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto("operating_modes")
      .values({ scope, mode, updated_by: actor })
      .onConflict((oc) =>
        oc.column("scope").doUpdateSet({ mode, updated_by: actor, updated_at: sql`now()` }),
      )
      .execute();
    await appendAudit(tx, { actor, action: "mode.set", details: { scope, mode } });
  });
}

/** The group follows the global mode again. False when it had no mode of its own. */
export async function clearGroupMode(db: Db, group: string, actor: string): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .deleteFrom("operating_modes")
      .where("scope", "=", `${GROUP_SCOPE}${group}`)
      .returning("mode")
      .executeTakeFirst();
    if (!row) return false;
    await appendAudit(tx, {
      actor,
      action: "mode.cleared",
      details: { scope: `${GROUP_SCOPE}${group}`, was: row.mode },
    });
    return true;
  });
}

// --- isolation admissions ------------------------------------------------------------------------

/**
 * Counts the isolations admitted within the window and, if `admit(recent)` says so, admits this
 * one, under one lock: concurrent runs cannot all see room for one more. A retried call for an
 * attempt already admitted is admitted again without counting.
 */
export async function admitIsolation(
  db: Db,
  input: { attempt: string; agentId: string; windowMinutes: number },
  admit: (recent: number) => boolean,
): Promise<{ admitted: boolean; recent: number }> {
  return db.transaction().execute(async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtext('isolation_admissions'))`.execute(tx);
    const { recent, mine } = await tx
      .selectFrom("isolation_admissions")
      .select([
        sql<string>`count(*) FILTER (WHERE attempt <> ${input.attempt})`.as("recent"),
        sql<string>`count(*) FILTER (WHERE attempt = ${input.attempt})`.as("mine"),
      ])
      .where(sql`admitted_at`, ">", sql`now() - ${input.windowMinutes} * interval '1 minute'`)
      .executeTakeFirstOrThrow();
    const count = Number(recent);
    if (Number(mine) > 0) return { admitted: true, recent: count };
    if (!admit(count)) return { admitted: false, recent: count };
    await recordIsolationAdmission(tx, input.attempt, input.agentId);
    return { admitted: true, recent: count };
  });
}

/** Isolations admitted within the window (what a rehearsal reports, admitting nothing). */
export async function countRecentIsolations(db: Db, windowMinutes: number): Promise<number> {
  const row = await db
    .selectFrom("isolation_admissions")
    .select(sql<string>`count(*)`.as("n"))
    .where(sql`admitted_at`, ">", sql`now() - ${windowMinutes} * interval '1 minute'`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** An isolation a person approved counts toward the limit like an automatic one. */
export async function recordIsolationAdmission(db: Db, attempt: string, agentId: string) {
  await db
    .insertInto("isolation_admissions")
    .values({ attempt, agent_id: agentId })
    .onConflict((oc) => oc.column("attempt").doNothing())
    .execute();
}

// --- approvals -----------------------------------------------------------------------------------

export interface NewApproval {
  id: string;
  incidentId: string;
  workflowId: string;
  alertId: string | null;
  host: string;
  agentId: string | null;
  mitigation: string;
  mitigationName: string;
  steps: unknown[];
  reasons: string[];
  onTimeout: "approve" | "deny";
  timeoutMs: number;
}

/**
 * Opens an approval once (a retried activity finds the row it wrote) and audits the request in
 * the same transaction. Returns the row, as written now or before.
 */
export async function openApproval(db: Db, a: NewApproval, actor: string) {
  return db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto("approvals")
      .values({
        id: a.id,
        incident_id: a.incidentId,
        workflow_id: a.workflowId,
        alert_id: a.alertId,
        host: a.host,
        agent_id: a.agentId,
        mitigation: a.mitigation,
        mitigation_name: a.mitigationName,
        steps: JSON.stringify(a.steps),
        reasons: JSON.stringify(a.reasons),
        on_timeout: a.onTimeout,
        deadline: sql<Date>`now() + ${a.timeoutMs} * interval '1 millisecond'`,
      })
      .onConflict((oc) => oc.column("id").doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!inserted)
      return tx
        .selectFrom("approvals")
        .selectAll()
        .where("id", "=", a.id)
        .executeTakeFirstOrThrow();
    await appendAudit(tx, {
      actor,
      action: "approval.requested",
      agentId: a.agentId,
      details: {
        approval_id: a.id,
        host: a.host,
        mitigation: a.mitigation,
        reasons: a.reasons,
        deadline: inserted.deadline,
      },
    });
    return inserted;
  });
}

export type ApprovalOutcome = Exclude<ApprovalStatus, "pending">;

/**
 * Closes a pending approval with its outcome, audited in the same transaction under the decider's
 * name. Null when it was not pending (already closed: a retry, or a second answer).
 */
export async function closeApproval(
  db: Db,
  input: { id: string; status: ApprovalOutcome; by: string; comment: string | null },
) {
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .updateTable("approvals")
      .set({
        status: input.status,
        decided_by: input.by,
        decided_at: sql`now()`,
        comment: input.comment,
      })
      .where("id", "=", input.id)
      .where("status", "=", "pending")
      .returningAll()
      .executeTakeFirst();
    if (!row) return null;
    await appendAudit(tx, {
      actor: input.by,
      action: `approval.${input.status}`,
      agentId: row.agent_id,
      details: {
        approval_id: row.id,
        host: row.host,
        mitigation: row.mitigation,
        comment: input.comment,
      },
    });
    return row;
  });
}

export async function getApproval(db: Db, id: string) {
  return db.selectFrom("approvals").selectAll().where("id", "=", id).executeTakeFirst();
}

/** Newest first; pending ones by default are what operators work through. */
export async function listApprovals(db: Db, f: Page & { status?: ApprovalStatus }) {
  let q = db.selectFrom("approvals");
  if (f.status) q = q.where("status", "=", f.status);
  return pageOf(q, (q) => q.selectAll().orderBy("requested_at", "desc").orderBy("id"), f);
}
