// The agent registry in PostgreSQL: what each agent reports about itself (hello, heartbeats, rule
// status), what operators set (groups, labels), and host resolution.
import { type Expression, type SqlBool, sql } from "kysely";
import type { AgentTarget, HostIdentity } from "../activities/agent-commands.ts";
import type { Hello, RulesStatus } from "../protocol/messages.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import type { AgentIsolation } from "./schema.ts";

// --- sessions: what the agent reports ---------------------------------------------------------

const activeKey = (keyId: string): Expression<SqlBool> =>
  sql<SqlBool>`exists (select 1 from agent_keys k where k.id = ${keyId} and k.revoked_at is null)`;

/**
 * Records the agent's hello and makes this session the agent's one live session. False when the
 * key was revoked in the meantime. Groups and labels are operators' and are never touched here.
 */
export async function recordHello(
  db: Db,
  s: { agentId: string; keyId: string; sessionId: string; gatewayId: string; hello: Hello },
): Promise<boolean> {
  const { hello } = s;
  const row = await db
    .updateTable("agents")
    .set({
      hostname: hello.hostname,
      os: JSON.stringify(hello.os),
      ips: hello.ips,
      agent_version: hello.agent_version,
      fibratus_version: hello.fibratus_version,
      external_ids: JSON.stringify(hello.external_ids),
      wazuh_agent_id: hello.external_ids.wazuh_agent_id ?? null,
      capabilities: hello.capabilities,
      isolation: JSON.stringify(hello.isolation),
      rules: JSON.stringify(hello.rules),
      simulation: hello.simulation,
      config: hello.config === undefined ? null : JSON.stringify(hello.config),
      session_id: s.sessionId,
      gateway_id: s.gatewayId,
      connected_at: sql<Date>`now()`,
      last_seen_at: sql<Date>`now()`,
    })
    .where("id", "=", s.agentId)
    .where(activeKey(s.keyId))
    .returning("id")
    .executeTakeFirst();
  return row !== undefined;
}

/** A heartbeat: false when this session was replaced or its key revoked (the session must end). */
export async function touchSession(
  db: Db,
  s: { agentId: string; keyId: string; sessionId: string },
): Promise<boolean> {
  const row = await db
    .updateTable("agents")
    .set({ last_seen_at: sql<Date>`now()` })
    .where("id", "=", s.agentId)
    .where("session_id", "=", s.sessionId)
    .where(activeKey(s.keyId))
    .returning("id")
    .executeTakeFirst();
  return row !== undefined;
}

export async function recordDisconnect(
  db: Db,
  s: { agentId: string; sessionId: string },
): Promise<void> {
  await db
    .updateTable("agents")
    .set({ session_id: null, gateway_id: null, disconnected_at: sql<Date>`now()` })
    .where("id", "=", s.agentId)
    .where("session_id", "=", s.sessionId)
    .execute();
}

export async function recordRulesStatus(
  db: Db,
  agentId: string,
  status: RulesStatus,
): Promise<void> {
  await db
    .updateTable("agents")
    .set({ rules_status: JSON.stringify({ ...status, received_at: new Date().toISOString() }) })
    .where("id", "=", agentId)
    .execute();
}

export async function recordIsolation(
  db: Db,
  agentId: string,
  isolation: AgentIsolation,
): Promise<void> {
  await db
    .updateTable("agents")
    .set({ isolation: JSON.stringify(isolation) })
    .where("id", "=", agentId)
    .execute();
}

// --- host resolution ---------------------------------------------------------------------------

/**
 * The agent running on an alert's host: by Wazuh agent id, then host name (case-insensitive), then
 * IP. Agents whose every key is revoked are not candidates; among several, the latest seen wins.
 */
export async function resolveHost(db: Db, host: HostIdentity): Promise<AgentTarget | null> {
  const attempts: Expression<SqlBool>[] = [];
  if (host.agentId) attempts.push(sql<SqlBool>`a.wazuh_agent_id = ${host.agentId}`);
  if (host.name) attempts.push(sql<SqlBool>`lower(a.hostname) = lower(${host.name})`);
  if (host.ip) attempts.push(sql<SqlBool>`${host.ip} = any(a.ips)`);
  for (const match of attempts) {
    const row = await db
      .selectFrom("agents as a")
      .select(["a.id", "a.capabilities"])
      .where(match)
      .where(
        sql<SqlBool>`exists (select 1 from agent_keys k where k.agent_id = a.id and k.revoked_at is null)`,
      )
      .orderBy(sql`a.last_seen_at desc nulls last`)
      .orderBy("a.enrolled_at", "desc")
      .limit(1)
      .executeTakeFirst();
    if (row) return { agentId: row.id, capabilities: row.capabilities };
  }
  return null;
}

// --- operators' view ---------------------------------------------------------------------------

export type AgentStatus = "online" | "offline" | "revoked";

export interface AgentFilter {
  group?: string;
  /** `key=value` labels, all of which must match. */
  labels?: Record<string, string>;
  status?: AgentStatus;
  hostname?: string;
  capability?: string;
  isolated?: boolean;
  limit: number;
  offset: number;
}

/** An agent is online while its session's heartbeats keep arriving within `onlineWindowMs`. */
function agentQuery(db: Db, onlineWindowMs: number) {
  return db
    .selectFrom("agents as a")
    .select([
      "a.id",
      "a.hostname",
      "a.os",
      "a.ips",
      "a.agent_version",
      "a.fibratus_version",
      "a.external_ids",
      "a.capabilities",
      "a.groups",
      "a.labels",
      "a.isolation",
      "a.rules",
      "a.rules_status",
      "a.config",
      "a.simulation",
      "a.enrolled_at",
      "a.last_seen_at",
      "a.connected_at",
      "a.disconnected_at",
      "a.gateway_id",
      statusOf(onlineWindowMs).as("status"),
    ]);
}

function statusOf(onlineWindowMs: number) {
  return sql<AgentStatus>`case
    when not exists (select 1 from agent_keys k where k.agent_id = a.id and k.revoked_at is null) then 'revoked'
    when a.session_id is not null and a.last_seen_at > now() - ${onlineWindowMs} * interval '1 millisecond' then 'online'
    else 'offline' end`;
}

export async function listAgents(db: Db, f: AgentFilter, onlineWindowMs: number) {
  let q = agentQuery(db, onlineWindowMs);
  if (f.group) q = q.where(sql<SqlBool>`${f.group} = any(a.groups)`);
  if (f.labels && Object.keys(f.labels).length)
    q = q.where(sql<SqlBool>`a.labels @> ${JSON.stringify(f.labels)}::jsonb`);
  if (f.hostname) q = q.where(sql<SqlBool>`lower(a.hostname) = lower(${f.hostname})`);
  if (f.capability) q = q.where(sql<SqlBool>`${f.capability} = any(a.capabilities)`);
  if (f.isolated !== undefined)
    q = q.where(sql<SqlBool>`(a.isolation->>'isolated')::boolean = ${f.isolated}`);
  if (f.status) q = q.where(statusOf(onlineWindowMs), "=", f.status);
  const page = await q
    .orderBy("a.hostname")
    .orderBy("a.id")
    .limit(f.limit + 1)
    .offset(f.offset)
    .execute();
  return { items: page.slice(0, f.limit), more: page.length > f.limit };
}

export async function getAgent(db: Db, id: string, onlineWindowMs: number) {
  return agentQuery(db, onlineWindowMs).where("a.id", "=", id).executeTakeFirst();
}

/** Operators' part of an agent: groups and labels. Null when there is no such agent. */
export async function updateAgent(
  db: Db,
  id: string,
  change: { groups?: string[]; labels?: Record<string, string> },
  actor: string,
) {
  const set: { groups?: string[]; labels?: string } = {};
  if (change.groups) set.groups = [...new Set(change.groups)].sort();
  if (change.labels) set.labels = JSON.stringify(change.labels);
  if (!Object.keys(set).length) {
    const row = await db.selectFrom("agents").select("id").where("id", "=", id).executeTakeFirst();
    return row ?? null;
  }
  const row = await db
    .updateTable("agents")
    .set(set)
    .where("id", "=", id)
    .returning("id")
    .executeTakeFirst();
  if (row) await appendAudit(db, { actor, action: "agent.updated", agentId: id, details: change });
  return row ?? null;
}

/** Every group with its number of agents. */
export async function listGroups(db: Db) {
  const rows = await db
    .selectFrom(sql<{ name: string }>`(select unnest(groups) as name from agents)`.as("g"))
    .select(["g.name", (eb) => eb.fn.countAll<string>().as("agents")])
    .groupBy("g.name")
    .orderBy("g.name")
    .execute();
  return rows.map((r) => ({ name: r.name, agents: Number(r.agents) }));
}
