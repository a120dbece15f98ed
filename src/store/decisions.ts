import { sql } from "kysely";
import type { Db } from "./db.ts";
import type { Page } from "./paging.ts";

export interface Decision {
  incidentId: string;
  alertId: string | null;
  /** The mitigation workflow that decided; null for the incident's own decisions. */
  workflowId: string | null;
  flowId: string | null;
  nodeId: string | null;
  mitigation: string | null;
  /** node_matched, node_not_matched, condition_error, mitigation_chosen, mitigation_skipped,
   *  mitigation_duplicate (another run of the alert owns the mitigation),
   *  mitigation_succeeded, mitigation_failed, no_mitigation */
  kind: string;
  reason: string;
  details: Record<string, unknown>;
}

/**
 * Appends decisions once each, in order, in one statement: activities may be retried, so a
 * decision whose key was written before is skipped. Returns the ones this call wrote (what
 * metrics count).
 */
export async function recordDecisions(db: Db, decisions: Decision[]): Promise<Decision[]> {
  if (decisions.length === 0) return [];
  const rows = decisions.map((decision) => ({
    incident_id: decision.incidentId,
    alert_id: decision.alertId,
    workflow_id: decision.workflowId,
    flow_id: decision.flowId,
    node_id: decision.nodeId,
    mitigation: decision.mitigation,
    kind: decision.kind,
    reason: decision.reason,
    details: JSON.stringify(decision.details),
    dedupe_key: dedupeKeyOf(decision),
  }));
  const written = await db
    .insertInto("decisions")
    .values(rows)
    .onConflict((oc) => oc.column("dedupe_key").doNothing())
    .returning("dedupe_key")
    .execute();
  const keys = new Set(written.map((w) => w.dedupe_key));
  // A key repeated within the call is written once, for its first decision.
  return decisions.filter((_, i) => {
    const key = rows[i]?.dedupe_key as string;
    return keys.delete(key);
  });
}

/** A decision's identity: the same decision recorded again (a retried activity) is this key. */
function dedupeKeyOf(d: Omit<Decision, "reason" | "details">): string {
  return [d.workflowId ?? d.incidentId, d.alertId, d.flowId, d.nodeId, d.mitigation, d.kind].join(
    "|",
  );
}

/**
 * Seconds since the run of an outcome chose its mitigation (by the database's clock), or null.
 * Found by the choice's key (unique index): this runs for every mitigation's outcome.
 */
export async function secondsSinceChosen(db: Db, outcome: Decision): Promise<number | null> {
  const row = await db
    .selectFrom("decisions")
    .select(sql<number>`extract(epoch from now() - at)::float8`.as("seconds"))
    .where("dedupe_key", "=", dedupeKeyOf({ ...outcome, kind: "mitigation_chosen" }))
    .executeTakeFirst();
  return row ? row.seconds : null;
}

/** Decisions in the order they were made, optionally of one incident or one alert. */
export async function listDecisions(db: Db, f: Page & { incidentId?: string; alertId?: string }) {
  let q = db.selectFrom("decisions").selectAll();
  if (f.incidentId) q = q.where("incident_id", "=", f.incidentId);
  if (f.alertId) q = q.where("alert_id", "=", f.alertId);
  return q.orderBy("id").limit(f.limit).offset(f.offset).execute();
}

/**
 * Claims `mitigation` for the alert on behalf of a mitigation run and returns the run that owns
 * it: `workflowId` itself (first to choose it, or a retry of that run), or the run that chose it
 * first, whose action this one would repeat.
 */
export async function claimMitigation(
  db: Db,
  claim: { alertId: string; mitigation: string; workflowId: string },
): Promise<string> {
  const inserted = await db
    .insertInto("mitigation_claims")
    .values({
      alert_key: claim.alertId,
      mitigation: claim.mitigation,
      workflow_id: claim.workflowId,
    })
    .onConflict((oc) => oc.columns(["alert_key", "mitigation"]).doNothing())
    .returning("workflow_id")
    .executeTakeFirst();
  if (inserted) return inserted.workflow_id;
  const owner = await db
    .selectFrom("mitigation_claims")
    .select("workflow_id")
    .where("alert_key", "=", claim.alertId)
    .where("mitigation", "=", claim.mitigation)
    .executeTakeFirstOrThrow();
  return owner.workflow_id;
}
