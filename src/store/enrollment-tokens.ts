// Enrollment tokens: an operator's one- or N-use ticket that an agent exchanges for its identity.
import { sql } from "kysely";
import { hashSecret, newId, newSecret } from "../secrets.ts";
import { insertKey } from "./agent-keys.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";

export interface EnrollmentTokenInput {
  group: string | null;
  description: string | null;
  maxUses: number;
  expiresInMs: number;
  createdBy: string;
}

export async function createEnrollmentToken(db: Db, input: EnrollmentTokenInput) {
  const secret = newSecret("enrollment_token");
  const row = await db
    .insertInto("enrollment_tokens")
    .values({
      id: newId("enr"),
      token_hash: secret.hash,
      prefix: secret.prefix,
      group: input.group,
      description: input.description,
      max_uses: input.maxUses,
      expires_at: sql<Date>`now() + ${input.expiresInMs} * interval '1 millisecond'`,
      created_by: input.createdBy,
    })
    .returning(tokenColumns)
    .executeTakeFirstOrThrow();
  await appendAudit(db, {
    actor: input.createdBy,
    action: "enrollment_token.created",
    details: {
      token_id: row.id,
      group: row.group,
      max_uses: row.max_uses,
      expires_at: row.expires_at,
    },
  });
  return { ...row, token: secret.value };
}

const tokenColumns = [
  "id",
  "prefix",
  "group",
  "description",
  "max_uses",
  "uses",
  "expires_at",
  "created_at",
  "created_by",
  "revoked_at",
] as const;

export async function listEnrollmentTokens(db: Db) {
  return db
    .selectFrom("enrollment_tokens")
    .select(tokenColumns)
    .orderBy("created_at", "desc")
    .execute();
}

/** Revokes an unused or partly used token; false when there is no such token. */
export async function revokeEnrollmentToken(db: Db, id: string, actor: string): Promise<boolean> {
  const row = await db
    .updateTable("enrollment_tokens")
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
    .where("id", "=", id)
    .returning("id")
    .executeTakeFirst();
  if (row)
    await appendAudit(db, { actor, action: "enrollment_token.revoked", details: { token_id: id } });
  return row !== undefined;
}

/**
 * Exchanges an enrollment token for a new agent and its API key, in one transaction: the token's
 * use is counted atomically, so N concurrent enrollments with an N-use token all succeed and the
 * N+1th fails. Null when the token is unknown, revoked, expired or used up (deliberately one
 * answer: the caller learns nothing about which).
 */
export async function enroll(db: Db, input: { token: string; hostname: string }) {
  return db.transaction().execute(async (trx) => {
    const token = await trx
      .updateTable("enrollment_tokens")
      .set((eb) => ({ uses: eb("uses", "+", 1) }))
      .where("token_hash", "=", hashSecret(input.token))
      .where("revoked_at", "is", null)
      .where("expires_at", ">", sql<Date>`now()`)
      .whereRef("uses", "<", "max_uses")
      .returning(["id", "group"])
      .executeTakeFirst();
    if (!token) return null;
    const agentId = newId("agt");
    await trx
      .insertInto("agents")
      .values({
        id: agentId,
        hostname: input.hostname,
        identity_hostname: input.hostname,
        groups: token.group ? [token.group] : [],
        enrollment_token_id: token.id,
      })
      .execute();
    const key = await insertKey(trx, agentId, `enrollment_token:${token.id}`);
    await appendAudit(trx, {
      actor: `enrollment_token:${token.id}`,
      action: "agent.enrolled",
      agentId,
      details: { hostname: input.hostname, group: token.group, key_id: key.keyId },
    });
    return { agentId, apiKey: key.apiKey };
  });
}
