// The agent registry in PostgreSQL: what each agent reports about itself (hello, heartbeats, rule
// status), what operators set (groups, labels), and host resolution.
import { type Expression, type SqlBool, sql } from "kysely";
import type { HostIdentity, HostResolution } from "../activities/agent-commands.ts";
import type { Hello } from "../protocol/messages.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import type { AgentIsolation } from "./schema.ts";

// --- sessions: what the agent reports ---------------------------------------------------------

const activeKey = (keyId: string): Expression<SqlBool> =>
  sql<SqlBool>`exists (select 1 from agent_keys k where k.id = ${keyId} and k.revoked_at is null)`;

/** The host an agent is trusted to run on, or what its hello claims. */
export interface AgentIdentity {
  hostname: string;
  wazuh_agent_id: string | null;
  ips: string[];
}

/** Names compare as host resolution matches them (case-insensitively), addresses as sets. */
function sameIdentity(a: AgentIdentity, b: AgentIdentity): boolean {
  const ips = new Set(a.ips);
  const others = new Set(b.ips);
  return (
    a.hostname.toLowerCase() === b.hostname.toLowerCase() &&
    a.wazuh_agent_id === b.wazuh_agent_id &&
    ips.size === others.size &&
    [...ips].every((ip) => others.has(ip))
  );
}

/** What an agent last claimed beside the identity resolution trusts. */
const CLAIMED_AND_TRUSTED = [
  "hostname",
  "wazuh_agent_id",
  "ips",
  "identity_hostname",
  "identity_wazuh_agent_id",
  "identity_ips",
] as const;

/**
 * Records the agent's hello and makes this session the agent's one live session. Returns the
 * agent's trusted identity, or null when the key was revoked in the meantime. Groups and labels
 * are operators' and are never touched here.
 *
 * What hello claims is kept as reported and never becomes the identity by itself: the first hello
 * after enrollment binds the Wazuh id and IPs only when it names the enrolled host; any later
 * differing claim is flagged and audited (once per claim) until an operator accepts it.
 */
export async function recordHello(
  db: Db,
  s: { agentId: string; keyId: string; sessionId: string; gatewayId: string; hello: Hello },
): Promise<AgentIdentity | null> {
  const { hello } = s;
  const claim: AgentIdentity = {
    hostname: hello.hostname,
    wazuh_agent_id: hello.external_ids.wazuh_agent_id ?? null,
    ips: hello.ips,
  };
  return db.transaction().execute(async (trx) => {
    const agent = await trx
      .selectFrom("agents")
      .select([...CLAIMED_AND_TRUSTED, "identity_bound_at"])
      .where("id", "=", s.agentId)
      .where(activeKey(s.keyId))
      .forUpdate()
      .executeTakeFirst();
    if (!agent) return null;
    const binds =
      agent.identity_bound_at === null &&
      agent.identity_hostname.toLowerCase() === claim.hostname.toLowerCase();
    const identity: AgentIdentity = binds
      ? { ...claim, hostname: agent.identity_hostname }
      : {
          hostname: agent.identity_hostname,
          wazuh_agent_id: agent.identity_wazuh_agent_id,
          ips: agent.identity_ips,
        };
    const mismatch = !sameIdentity(identity, claim);
    await trx
      .updateTable("agents")
      .set({
        hostname: claim.hostname,
        os: JSON.stringify(hello.os),
        ips: claim.ips,
        agent_version: hello.agent_version,
        fibratus_version: hello.fibratus_version,
        external_ids: JSON.stringify(hello.external_ids),
        wazuh_agent_id: claim.wazuh_agent_id,
        capabilities: hello.capabilities,
        isolation: JSON.stringify(hello.isolation),
        rules: JSON.stringify(hello.rules),
        simulation: hello.simulation,
        config: hello.config === undefined ? null : JSON.stringify(hello.config),
        identity_mismatch: mismatch,
        ...(binds && {
          identity_wazuh_agent_id: identity.wazuh_agent_id,
          identity_ips: identity.ips,
          identity_bound_at: sql<Date>`now()`,
        }),
        session_id: s.sessionId,
        gateway_id: s.gatewayId,
        connected_at: sql<Date>`now()`,
        last_seen_at: sql<Date>`now()`,
      })
      .where("id", "=", s.agentId)
      .execute();
    if (mismatch && !sameIdentity(agent, claim)) {
      await appendAudit(trx, {
        actor: `agent:${s.agentId}`,
        action: "agent.identity_claim",
        agentId: s.agentId,
        details: { claimed: claim, identity, session: s.sessionId },
      });
    }
    return identity;
  });
}

/**
 * An operator trusts what the agent's latest hello claimed: it becomes the agent's identity for
 * host resolution. Null when there is no such agent; `accepted: false` when there was no claim.
 */
export async function acceptIdentity(db: Db, agentId: string, actor: string) {
  return db.transaction().execute(async (trx) => {
    const agent = await trx
      .selectFrom("agents")
      .select([...CLAIMED_AND_TRUSTED, "identity_mismatch"])
      .where("id", "=", agentId)
      .forUpdate()
      .executeTakeFirst();
    if (!agent) return null;
    const identity: AgentIdentity = {
      hostname: agent.hostname,
      wazuh_agent_id: agent.wazuh_agent_id,
      ips: agent.ips,
    };
    if (!agent.identity_mismatch) return { accepted: false, identity };
    await trx
      .updateTable("agents")
      .set({
        identity_hostname: identity.hostname,
        identity_wazuh_agent_id: identity.wazuh_agent_id,
        identity_ips: identity.ips,
        identity_bound_at: sql<Date>`now()`,
        identity_mismatch: false,
      })
      .where("id", "=", agentId)
      .execute();
    await appendAudit(trx, {
      actor,
      action: "agent.identity_accepted",
      agentId,
      details: {
        accepted: identity,
        previous: {
          hostname: agent.identity_hostname,
          wazuh_agent_id: agent.identity_wazuh_agent_id,
          ips: agent.identity_ips,
        },
      },
    });
    return { accepted: true, identity };
  });
}

/**
 * Heartbeats: for each, false when that session was replaced or its key revoked (the session must
 * end). Many sessions' are one statement: a gateway with 20,000 agents has hundreds a second.
 */
export async function touchSessions(
  db: Db,
  sessions: { agentId: string; keyId: string; sessionId: string }[],
): Promise<boolean[]> {
  if (!sessions.length) return [];
  const input = sessions.map((s, i) => ({
    i,
    agent_id: s.agentId,
    key_id: s.keyId,
    session_id: s.sessionId,
  }));
  const { rows } = await sql<{ i: number }>`with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
        as v(i int, agent_id text, key_id text, session_id text)
    ),
    touched as (
      update agents a set last_seen_at = now()
      from input v
      where a.id = v.agent_id and a.session_id = v.session_id
        and exists (select 1 from agent_keys k where k.id = v.key_id and k.revoked_at is null)
      returning a.id, a.session_id
    )
    select v.i from input v join touched t on t.id = v.agent_id and t.session_id = v.session_id`.execute(
    db,
  );
  const live = sessions.map(() => false);
  for (const r of rows) live[r.i] = true;
  return live;
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
 * IP, matched against agents' trusted identities only. Agents whose every key is revoked are not
 * candidates. Several agents matching at the first step that matches any is an ambiguity, never
 * a guess: a command meant for one host must not reach another.
 */
export async function resolveHost(db: Db, host: HostIdentity): Promise<HostResolution> {
  const attempts: Expression<SqlBool>[] = [];
  if (host.agentId) attempts.push(sql<SqlBool>`a.identity_wazuh_agent_id = ${host.agentId}`);
  if (host.name) attempts.push(sql<SqlBool>`lower(a.identity_hostname) = lower(${host.name})`);
  if (host.ip) attempts.push(sql<SqlBool>`${host.ip} = any(a.identity_ips)`);
  for (const match of attempts) {
    const rows = await db
      .selectFrom("agents as a")
      .select(["a.id", "a.capabilities"])
      .where(match)
      .where(
        sql<SqlBool>`exists (select 1 from agent_keys k where k.agent_id = a.id and k.revoked_at is null)`,
      )
      .orderBy("a.id")
      .limit(MAX_AMBIGUOUS_LISTED)
      .execute();
    const [only, ...others] = rows;
    if (only && !others.length) return { agentId: only.id, capabilities: only.capabilities };
    if (only) return { ambiguous: rows.map((r) => r.id) };
  }
  return null;
}

const MAX_AMBIGUOUS_LISTED = 10;

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
      "a.identity_hostname",
      "a.identity_wazuh_agent_id",
      "a.identity_ips",
      "a.identity_bound_at",
      "a.identity_mismatch",
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

/** What approval gates read of an agent: its groups and labels (none for an unknown agent). */
export async function agentGroupsAndLabels(db: Db, id: string) {
  const row = await db
    .selectFrom("agents")
    .select(["groups", "labels"])
    .where("id", "=", id)
    .executeTakeFirst();
  return row ?? { groups: [], labels: {} };
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
