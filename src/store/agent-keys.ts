// Agents' API keys: how an agent authenticates its sessions. Several may be live during a rotation.
import { sql } from "kysely";
import { hashSecret, newId, newSecret } from "../secrets.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";

/** A new key for an agent, shown once; the caller audits it with what caused it. */
export async function insertKey(db: Db, agentId: string, createdBy: string) {
  const secret = newSecret("agent_key");
  const keyId = newId("key");
  await db
    .insertInto("agent_keys")
    .values({
      id: keyId,
      agent_id: agentId,
      key_hash: secret.hash,
      prefix: secret.prefix,
      created_by: createdBy,
    })
    .execute();
  return { keyId, apiKey: secret.value };
}

export interface AgentCredentials {
  agentId: string;
  keyId: string;
}

/** The agent a valid (unrevoked) API key belongs to, or null. */
export async function authenticateAgent(db: Db, apiKey: string): Promise<AgentCredentials | null> {
  const row = await db
    .updateTable("agent_keys")
    .set({ last_used_at: sql<Date>`now()` })
    .where("key_hash", "=", hashSecret(apiKey))
    .where("revoked_at", "is", null)
    .returning(["id", "agent_id"])
    .executeTakeFirst();
  return row ? { agentId: row.agent_id, keyId: row.id } : null;
}

/**
 * Issues a new key (shown once). With `revokeOthers` it is a one-step rotation: every other key
 * is revoked in the same transaction; otherwise both work until the old one is revoked.
 */
export async function createAgentKey(
  db: Db,
  agentId: string,
  opts: { revokeOthers: boolean; actor: string },
) {
  return db.transaction().execute(async (trx) => {
    const agent = await trx
      .selectFrom("agents")
      .select("id")
      .where("id", "=", agentId)
      .forUpdate()
      .executeTakeFirst();
    if (!agent) return null;
    const key = await insertKey(trx, agentId, opts.actor);
    const revoked = opts.revokeOthers ? await revokeKeys(trx, agentId, { except: key.keyId }) : [];
    await appendAudit(trx, {
      actor: opts.actor,
      action: "agent.key_created",
      agentId,
      details: { key_id: key.keyId, revoked },
    });
    if (revoked.length)
      await appendAudit(trx, {
        actor: opts.actor,
        action: "agent.key_revoked",
        agentId,
        details: { key_ids: revoked },
      });
    return { ...key, revokedKeyIds: revoked };
  });
}

async function revokeKeys(db: Db, agentId: string, which: { keyId?: string; except?: string }) {
  let q = db
    .updateTable("agent_keys")
    .set({ revoked_at: sql<Date>`now()` })
    .where("agent_id", "=", agentId)
    .where("revoked_at", "is", null);
  if (which.keyId) q = q.where("id", "=", which.keyId);
  if (which.except) q = q.where("id", "!=", which.except);
  return (await q.returning("id").execute()).map((r) => r.id);
}

/** Revokes one key, or every key of the agent; returns the ids revoked (empty when none were live). */
export async function revokeAgentKeys(
  db: Db,
  agentId: string,
  keyId: string | null,
  actor: string,
): Promise<string[]> {
  const revoked = await revokeKeys(db, agentId, keyId ? { keyId } : {});
  if (revoked.length)
    await appendAudit(db, {
      actor,
      action: "agent.key_revoked",
      agentId,
      details: { key_ids: revoked },
    });
  return revoked;
}

export async function listAgentKeys(db: Db, agentId: string) {
  return db
    .selectFrom("agent_keys")
    .select(["id", "prefix", "created_at", "created_by", "revoked_at", "last_used_at"])
    .where("agent_id", "=", agentId)
    .orderBy("created_at")
    .execute();
}
