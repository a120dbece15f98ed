// Agent commands in PostgreSQL: the durable half of delivery. A command is stored once under its
// idempotent id, claimed by the session that delivers it, then acknowledged, completed, or expired.
// Each transition and its audit entry are one statement (see auditedCommandChange).
import { sql } from "kysely";
import type { Priority } from "../protocol/messages.ts";
import { appendAudit, auditedCommandChange } from "./audit.ts";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";
import type { CommandOutcome, CommandStatus, CommandsTable } from "./schema.ts";

export const FINAL_STATUSES = ["completed", "failed", "expired"] as const satisfies CommandStatus[];
const OPEN_STATUSES = ["pending", "delivered", "acknowledged"] as const satisfies CommandStatus[];
const PRIORITY_RANK: Record<Priority, number> = { critical: 0, high: 1, normal: 2, low: 3 };
/** A delivered command may still be acknowledged this long after its deadline (it left in time). */
const ACK_GRACE_MS = 10_000;

export interface CommandSpec {
  id: string;
  agentId: string;
  command: string;
  priority: Priority;
  details: Record<string, unknown>;
  origin: CommandsTable["origin"];
  requestedBy: string;
  workflowId: string | null;
  ttlMs: number;
  /** The waiting activity's task token, added to those of earlier issues of the same id. */
  taskToken: Uint8Array | null;
  /** The issuing activity's trace (W3C traceparent), continued by the gateway; see src/tracing.ts. */
  traceparent?: string;
}

export class UnknownAgentError extends Error {
  override name = "UnknownAgentError";
}

/**
 * Stores a command, or finds the one stored under the same id (a retry or a duplicate issue): its
 * current state is returned either way, and only a new one is audited as issued.
 */
export async function issueCommand(db: Db, spec: CommandSpec) {
  try {
    return await db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto("commands")
        .values({
          id: spec.id,
          agent_id: spec.agentId,
          command: spec.command,
          priority: spec.priority,
          details: JSON.stringify(spec.details),
          status: "pending",
          origin: spec.origin,
          requested_by: spec.requestedBy,
          workflow_id: spec.workflowId,
          expires_at: sql<Date>`now() + ${spec.ttlMs} * interval '1 millisecond'`,
          task_tokens: spec.taskToken ? [Buffer.from(spec.taskToken)] : [],
          traceparent: spec.traceparent ?? null,
        })
        .onConflict((oc) =>
          oc.column("id").doUpdateSet((eb) => ({
            task_tokens: sql<
              Buffer[]
            >`${eb.ref("commands.task_tokens")} || ${eb.ref("excluded.task_tokens")}`,
          })),
        )
        .returning([
          "id",
          "agent_id",
          "command",
          "status",
          "result",
          "reported_at",
          sql<boolean>`xmax = 0`.as("inserted"),
        ])
        .executeTakeFirstOrThrow();
      await appendAudit(trx, {
        actor: spec.requestedBy,
        action: row.inserted ? "command.issued" : "command.duplicate",
        agentId: row.agent_id,
        commandId: row.id,
        details: row.inserted
          ? {
              command: spec.command,
              priority: spec.priority,
              details: spec.details,
              origin: spec.origin,
              ttl_ms: spec.ttlMs,
            }
          : { status: row.status },
      });
      return row;
    });
  } catch (err) {
    if ((err as { code?: string }).code === "23503")
      throw new UnknownAgentError(`agent ${spec.agentId} is not enrolled`);
    throw err;
  }
}

export interface DeliverableCommand {
  id: string;
  command: string;
  priority: Priority;
  details: Record<string, unknown>;
  status: CommandStatus;
  expiresAt: Date;
  traceparent: string | null;
}

/**
 * Claims open commands of an agent for delivery on a session: the given ids, or all of them (a new
 * session's backlog). Only the agent's current session can claim, and a session claims a command
 * once, so concurrent notifications never send one twice. Pending and delivered commands past
 * their deadline are never claimed (they expire instead); acknowledged ones are sent again so the
 * agent can answer with its stored completion, which it never runs twice. Critical first.
 */
export async function claimForDelivery(
  db: Db,
  s: { agentId: string; sessionId: string; gatewayId: string; ids?: string[] },
): Promise<DeliverableCommand[]> {
  if (s.ids && s.ids.length === 0) return [];
  let claim = db
    .updateTable("commands as c")
    .set((eb) => ({
      status: sql<CommandStatus>`case when c.status = 'pending' then 'delivered' else c.status end`,
      delivered_at: sql<Date>`now()`,
      delivery_count: eb("c.delivery_count", "+", 1),
      session_id: s.sessionId,
      gateway_id: s.gatewayId,
    }))
    .where("c.agent_id", "=", s.agentId)
    .where("c.status", "in", OPEN_STATUSES)
    .where(sql<boolean>`c.session_id is distinct from ${s.sessionId}`)
    .where(sql<boolean>`(c.status = 'acknowledged' or c.expires_at > now())`)
    .where(
      sql<boolean>`exists (select 1 from agents a where a.id = c.agent_id and a.session_id = ${s.sessionId})`,
    );
  if (s.ids) claim = claim.where("c.id", "in", s.ids);
  const rows = await auditedCommandChange(
    db,
    claim.returning([
      "c.id",
      "c.agent_id",
      "c.command",
      "c.priority",
      "c.details",
      "c.status",
      "c.delivery_count",
      "c.created_at",
      "c.expires_at",
      "c.traceparent",
    ]),
    {
      actor: `gateway:${s.gatewayId}`,
      action: "command.delivered",
      details: sql`jsonb_build_object('session', ${s.sessionId}::text, 'delivery', changed.delivery_count)`,
    },
  );
  return rows
    .sort(
      (a, b) =>
        PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
        a.created_at.getTime() - b.created_at.getTime(),
    )
    .map((r) => ({
      id: r.id,
      command: r.command,
      priority: r.priority,
      details: r.details,
      status: r.status,
      expiresAt: r.expires_at,
      traceparent: r.traceparent,
    }));
}

export type AgentReport =
  | { kind: "recorded" }
  /** Already recorded (an answer to a re-delivery): nothing to do. */
  | { kind: "repeat" }
  /** Not a command this agent was sent. */
  | { kind: "unknown" };

/** The agent's acknowledgment: the command reached it and will run (once). */
export async function recordAck(
  db: Db,
  a: { agentId: string; commandId: string; timestamp: string; actor: string },
): Promise<AgentReport> {
  const rows = await auditedCommandChange(
    db,
    db
      .updateTable("commands")
      .set({
        // An ack after expiry (it left in time, the ack was slow) is recorded; the status stays.
        status: sql<CommandStatus>`case when status = 'delivered' then 'acknowledged' else status end`,
        acknowledged_at: sql<Date>`now()`,
      })
      .where("id", "=", a.commandId)
      .where("agent_id", "=", a.agentId)
      .where("acknowledged_at", "is", null)
      .where("delivered_at", "is not", null)
      .returning(["id", "agent_id", "status"]),
    {
      actor: a.actor,
      action: "command.acknowledged",
      details: sql`jsonb_build_object('timestamp', ${a.timestamp}::text, 'status', changed.status)`,
    },
  );
  if (rows[0]) return { kind: "recorded" };
  return (await exists(db, a.agentId, a.commandId)) ? { kind: "repeat" } : { kind: "unknown" };
}

export type CompletionReport =
  | {
      kind: "recorded";
      command: string;
      workflowId: string | null;
      /** The outcome for the waiting activities; null when there is nobody left to tell. */
      toReport: OutcomeToReport | null;
    }
  | Exclude<AgentReport, { kind: "recorded" }>;

/**
 * The agent's completion. Recorded once; a completion for a command that expired after it was
 * delivered still records what really happened (the activity was already told it expired).
 */
export async function recordCompletion(
  db: Db,
  c: { agentId: string; commandId: string; outcome: CommandOutcome; actor: string },
): Promise<CompletionReport> {
  const status: CommandStatus = c.outcome.success ? "completed" : "failed";
  const rows = await auditedCommandChange(
    db,
    db
      .updateTable("commands")
      .set({
        status,
        completed_at: sql<Date>`now()`,
        result: JSON.stringify(c.outcome),
        // Nobody waits for a command issued without an activity: reported as it is recorded.
        reported_at: sql<Date>`coalesce(reported_at, case when cardinality(task_tokens) = 0 then now() end)`,
      })
      .where("id", "=", c.commandId)
      .where("agent_id", "=", c.agentId)
      .where((eb) =>
        eb.or([
          eb("status", "in", ["delivered", "acknowledged"]),
          eb.and([eb("status", "=", "expired"), eb("delivered_at", "is not", null)]),
        ]),
      )
      .returning([
        "id",
        "agent_id",
        "command",
        "status",
        "result",
        "task_tokens",
        "reported_at",
        "workflow_id",
      ]),
    {
      actor: c.actor,
      action: c.outcome.success ? "command.completed" : "command.failed",
      details: sql`${JSON.stringify(c.outcome)}::jsonb`,
    },
  );
  const row = rows[0];
  if (row)
    return {
      kind: "recorded",
      command: row.command,
      workflowId: row.workflow_id,
      toReport: row.reported_at === null ? row : null,
    };
  return (await exists(db, c.agentId, c.commandId)) ? { kind: "repeat" } : { kind: "unknown" };
}

async function exists(db: Db, agentId: string, commandId: string): Promise<boolean> {
  const row = await db
    .selectFrom("commands")
    .select("id")
    .where("id", "=", commandId)
    .where("agent_id", "=", agentId)
    .where("delivered_at", "is not", null)
    .executeTakeFirst();
  return row !== undefined;
}

export interface OutcomeToReport {
  id: string;
  status: CommandStatus;
  result: CommandOutcome | null;
  task_tokens: Buffer[];
}

/**
 * Expires open commands past their deadline: pending ones at once, delivered ones after a short
 * grace for their acknowledgment. Safe to run in every process at once (SKIP LOCKED).
 */
export async function expireOverdue(db: Db, limit = 500): Promise<OutcomeToReport[]> {
  const message = sql<string>`case when c.delivered_at is null
      then 'expired: the agent did not receive the command before its deadline ' || to_char(c.expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '; it will not run'
      else 'expired: delivered but not acknowledged before its deadline ' || to_char(c.expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') end`;
  return auditedCommandChange(
    db,
    db
      .updateTable("commands as c")
      .set({
        status: "expired",
        completed_at: sql<Date>`now()`,
        result: sql<string>`jsonb_build_object('success', false, 'message', ${message}, 'details', jsonb_build_object('expired', true, 'expires_at', c.expires_at, 'delivered', c.delivered_at is not null))`,
      })
      .where("c.id", "in", (eb) =>
        eb
          .selectFrom("commands")
          .select("id")
          .where((eb) =>
            eb.or([
              eb.and([eb("status", "=", "pending"), eb("expires_at", "<=", sql<Date>`now()`)]),
              eb.and([
                eb("status", "=", "delivered"),
                eb(
                  "expires_at",
                  "<=",
                  sql<Date>`now() - ${ACK_GRACE_MS} * interval '1 millisecond'`,
                ),
              ]),
            ]),
          )
          .orderBy("expires_at")
          .limit(limit)
          .forUpdate()
          .skipLocked(),
      )
      .returning(["c.id", "c.agent_id", "c.status", "c.result", "c.task_tokens"]),
    { actor: "supervisor", action: "command.expired", details: sql`changed.result` },
  );
}

/** Outcomes decided a while ago that no activity has been told of yet (a crash or outage between). */
export async function unreportedOutcomes(
  db: Db,
  olderThanMs: number,
  limit = 100,
): Promise<OutcomeToReport[]> {
  return db
    .selectFrom("commands")
    .select(["id", "status", "result", "task_tokens"])
    .where("reported_at", "is", null)
    .where("status", "in", FINAL_STATUSES)
    .where("completed_at", "<", sql<Date>`now() - ${olderThanMs} * interval '1 millisecond'`)
    .orderBy("completed_at")
    .limit(limit)
    .execute();
}

export async function markReported(db: Db, id: string): Promise<void> {
  await db
    .updateTable("commands")
    .set({ reported_at: sql<Date>`now()` })
    .where("id", "=", id)
    .where("reported_at", "is", null)
    .execute();
}

// --- operators' view ---------------------------------------------------------------------------

const commandColumns = [
  "id",
  "agent_id",
  "command",
  "priority",
  "details",
  "status",
  "origin",
  "requested_by",
  "workflow_id",
  "created_at",
  "expires_at",
  "delivered_at",
  "delivery_count",
  "acknowledged_at",
  "completed_at",
  "result",
] as const;

export async function getCommand(db: Db, id: string) {
  return db.selectFrom("commands").select(commandColumns).where("id", "=", id).executeTakeFirst();
}

export interface CommandFilter extends Page {
  agentId?: string;
  status?: CommandStatus;
  command?: string;
  origin?: CommandsTable["origin"];
}

/** Newest first. */
export async function listCommands(db: Db, f: CommandFilter) {
  let q = db.selectFrom("commands");
  if (f.agentId) q = q.where("agent_id", "=", f.agentId);
  if (f.status) q = q.where("status", "=", f.status);
  if (f.command) q = q.where("command", "=", f.command);
  if (f.origin) q = q.where("origin", "=", f.origin);
  return pageOf(q, (q) => q.select(commandColumns).orderBy("created_at", "desc").orderBy("id"), f);
}
