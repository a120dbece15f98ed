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

/** One session's claim: the given ids, or its agent's whole backlog when absent. */
export interface Claim {
  agentId: string;
  sessionId: string;
  ids?: string[];
}

/**
 * Claims open commands for delivery on sessions: for each claim the given ids, or all of the
 * agent's (a new session's backlog). Only the agent's current session can claim, and a session
 * claims a command once, so concurrent notifications never send one twice. Pending and delivered
 * commands past their deadline are never claimed (they expire instead); acknowledged ones are sent
 * again so the agent can answer with its stored completion, which it never runs twice. Critical
 * first. Many sessions' claims are one statement (one audit-chain lock, one commit): a gateway
 * with thousands of agents claims them together (src/gateway/batcher.ts). Answers per claim.
 */
export async function claimForDelivery(
  db: Db,
  gatewayId: string,
  claims: Claim[],
): Promise<DeliverableCommand[][]> {
  // One entry per agent: a backlog claim covers any ids claimed beside it.
  const byAgent = new Map<string, { agent_id: string; session_id: string; ids: string[] | null }>();
  for (const c of claims) {
    if (c.ids?.length === 0) continue;
    const entry = byAgent.get(c.agentId);
    if (!entry || entry.session_id !== c.sessionId)
      byAgent.set(c.agentId, { agent_id: c.agentId, session_id: c.sessionId, ids: c.ids ?? null });
    else if (entry.ids) entry.ids = c.ids ? [...entry.ids, ...c.ids] : null;
  }
  if (!byAgent.size) return claims.map(() => []);
  const { rows } = await sql<{
    id: string;
    agent_id: string;
    session_id: string;
    command: string;
    priority: Priority;
    details: Record<string, unknown>;
    status: CommandStatus;
    delivery_count: number;
    created_at: Date;
    expires_at: Date;
    traceparent: string | null;
  }>`with input as (
      select * from jsonb_to_recordset(${JSON.stringify([...byAgent.values()])}::jsonb)
        as v(agent_id text, session_id text, ids text[])
    ),
    changed as (
      update commands c set
        status = case when c.status = 'pending' then 'delivered' else c.status end,
        delivered_at = now(),
        delivery_count = c.delivery_count + 1,
        session_id = v.session_id,
        gateway_id = ${gatewayId}
      from input v
      where c.agent_id = v.agent_id
        and c.status = any(${[...OPEN_STATUSES]}::text[])
        and c.session_id is distinct from v.session_id
        and (c.status = 'acknowledged' or c.expires_at > now())
        and exists (select 1 from agents a where a.id = c.agent_id and a.session_id = v.session_id)
        and (v.ids is null or c.id = any(v.ids))
      returning c.id, c.agent_id, c.session_id, c.command, c.priority, c.details, c.status,
        c.delivery_count, c.created_at, c.expires_at, c.traceparent
    ),
    logged as (
      insert into audit_log (actor, action, agent_id, command_id, details)
      select ${`gateway:${gatewayId}`}::text, 'command.delivered', changed.agent_id, changed.id,
        jsonb_build_object('session', changed.session_id, 'delivery', changed.delivery_count)
      from changed
    )
    select * from changed`.execute(db);
  const bySession = new Map<string, typeof rows>();
  for (const r of rows) bySession.set(r.session_id, [...(bySession.get(r.session_id) ?? []), r]);
  // A session asking twice in one batch gets its commands once, on its first claim.
  return claims.map((c) => {
    const mine = bySession.get(c.sessionId) ?? [];
    bySession.delete(c.sessionId);
    return mine
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
  });
}

export type AgentReport =
  | { kind: "recorded" }
  /** Already recorded (an answer to a re-delivery): nothing to do. */
  | { kind: "repeat" }
  /** Not a command this agent was sent. */
  | { kind: "unknown" };

export interface AgentAck {
  agentId: string;
  commandId: string;
  timestamp: string;
  actor: string;
}

/**
 * Agents' acknowledgments: each command reached its agent and will run (once). Many are one
 * statement; answers in the order given. A repeat of a recorded ack (or of one earlier in the same
 * batch) is "repeat"; an id not sent to that agent "unknown".
 */
export async function recordAcks(db: Db, acks: AgentAck[]): Promise<AgentReport[]> {
  if (!acks.length) return [];
  const input = acks.map((a, i) => ({
    i,
    agent_id: a.agentId,
    command_id: a.commandId,
    timestamp: a.timestamp,
    actor: a.actor,
  }));
  const { rows } = await sql<{ i: number; recorded: boolean; known: boolean }>`with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
        as v(i int, agent_id text, command_id text, timestamp text, actor text)
    ),
    changed as (
      update commands c set
        -- An ack after expiry (it left in time, the ack was slow) is recorded; the status stays.
        status = case when c.status = 'delivered' then 'acknowledged' else c.status end,
        acknowledged_at = now()
      from (select distinct on (agent_id, command_id) * from input order by agent_id, command_id, i) v
      where c.id = v.command_id and c.agent_id = v.agent_id
        and c.acknowledged_at is null and c.delivered_at is not null
      returning c.id, c.agent_id, c.status, v.i, v.timestamp, v.actor
    ),
    logged as (
      insert into audit_log (actor, action, agent_id, command_id, details)
      select actor, 'command.acknowledged', agent_id, id,
        jsonb_build_object('timestamp', timestamp, 'status', status)
      from changed order by i
    )
    select v.i, ch.i is not null as recorded,
      exists (select 1 from commands k where k.id = v.command_id and k.agent_id = v.agent_id
        and k.delivered_at is not null) as known
    from input v left join changed ch on ch.i = v.i`.execute(db);
  return answers(rows, acks.length, (r) => (r.recorded ? { kind: "recorded" } : null));
}

/** Answers in input order; rows not recorded are repeats of known commands, or unknown. */
function answers<R extends { i: number; known: boolean }, T>(
  rows: R[],
  n: number,
  recorded: (r: R) => T | null,
): (T | { kind: "repeat" } | { kind: "unknown" })[] {
  const out = new Array<T | { kind: "repeat" } | { kind: "unknown" }>(n);
  for (const r of rows)
    out[r.i] = recorded(r) ?? (r.known ? { kind: "repeat" } : { kind: "unknown" });
  return out;
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

export interface AgentCompletion {
  agentId: string;
  commandId: string;
  outcome: CommandOutcome;
  actor: string;
}

/**
 * Agents' completions, each recorded once; a completion for a command that expired after it was
 * delivered still records what really happened (the activity was already told it expired). Many
 * are one statement; answers in the order given.
 */
export async function recordCompletions(
  db: Db,
  completions: AgentCompletion[],
): Promise<CompletionReport[]> {
  if (!completions.length) return [];
  const input = completions.map((c, i) => ({
    i,
    agent_id: c.agentId,
    command_id: c.commandId,
    outcome: c.outcome,
    actor: c.actor,
  }));
  const { rows } = await sql<
    OutcomeToReport & {
      i: number;
      command: string;
      workflow_id: string | null;
      reported_at: Date | null;
      recorded: boolean;
      known: boolean;
    }
  >`with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
        as v(i int, agent_id text, command_id text, outcome jsonb, actor text)
    ),
    changed as (
      update commands c set
        status = case when (v.outcome->>'success')::boolean then 'completed' else 'failed' end,
        completed_at = now(),
        result = v.outcome,
        -- Nobody waits for a command issued without an activity: reported as it is recorded.
        reported_at = coalesce(c.reported_at,
          case when cardinality(c.task_tokens) = 0 then now() end)
      from (select distinct on (agent_id, command_id) * from input order by agent_id, command_id, i) v
      where c.id = v.command_id and c.agent_id = v.agent_id
        and (c.status in ('delivered', 'acknowledged')
          or (c.status = 'expired' and c.delivered_at is not null))
      returning c.id, c.agent_id, c.command, c.status, c.result, c.task_tokens, c.reported_at,
        c.workflow_id, v.i, v.actor
    ),
    logged as (
      insert into audit_log (actor, action, agent_id, command_id, details)
      select actor,
        case when status = 'completed' then 'command.completed' else 'command.failed' end,
        agent_id, id, result
      from changed order by i
    )
    select v.i, ch.i is not null as recorded, ch.id, ch.command, ch.status, ch.result,
      ch.task_tokens, ch.reported_at, ch.workflow_id,
      exists (select 1 from commands k where k.id = v.command_id and k.agent_id = v.agent_id
        and k.delivered_at is not null) as known
    from input v left join changed ch on ch.i = v.i`.execute(db);
  return answers(rows, completions.length, (r) =>
    r.recorded
      ? {
          kind: "recorded" as const,
          command: r.command,
          workflowId: r.workflow_id,
          toReport:
            r.reported_at === null
              ? { id: r.id, status: r.status, result: r.result, task_tokens: r.task_tokens }
              : null,
        }
      : null,
  );
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
