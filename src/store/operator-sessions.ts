// Console sessions: the cookie holds a random id, the table its SHA-256 and the digest of the
// operator token that opened it. A session is live while it has not expired AND its token is still
// live (unrevoked, unexpired, or the current MM_ADMIN_TOKEN), so revoking a token signs its
// browsers out at their next request.
import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import { hashSecret } from "../secrets.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import type { OperatorRole } from "./schema.ts";

export interface SessionPrincipal {
  actor: string;
  role: OperatorRole;
  expiresAt: Date;
}

/**
 * Opens a session and returns its id (shown to the browser once, as the cookie). Expired sessions
 * are purged and the token's oldest sessions beyond `maxPerToken` are closed, so the table stays
 * bounded however often a token signs in.
 */
export async function openSession(
  db: Db,
  input: {
    tokenHash: string;
    actor: string;
    role: OperatorRole;
    ttlSeconds: number;
    maxPerToken: number;
  },
): Promise<{ id: string; expiresAt: Date }> {
  const id = randomBytes(32).toString("base64url");
  return db.transaction().execute(async (trx) => {
    await trx.deleteFrom("operator_sessions").where("expires_at", "<=", sql<Date>`now()`).execute();
    const row = await trx
      .insertInto("operator_sessions")
      .values({
        id_hash: hashSecret(id),
        token_hash: input.tokenHash,
        actor: input.actor,
        role: input.role,
        expires_at: sql<Date>`now() + ${input.ttlSeconds} * interval '1 second'`,
      })
      .returning("expires_at")
      .executeTakeFirstOrThrow();
    await trx
      .deleteFrom("operator_sessions")
      .where("token_hash", "=", input.tokenHash)
      .where(
        "id_hash",
        "not in",
        trx
          .selectFrom("operator_sessions")
          .select("id_hash")
          .where("token_hash", "=", input.tokenHash)
          .orderBy("created_at", "desc")
          .limit(input.maxPerToken),
      )
      .execute();
    await appendAudit(trx, {
      actor: input.actor,
      action: "operator_session.opened",
      details: { role: input.role },
    });
    return { id, expiresAt: row.expires_at };
  });
}

/** Who a live session is, or null (unknown, expired, or its token revoked or expired). */
export async function sessionPrincipal(
  db: Db,
  id: string,
  adminTokenHash: string | null,
): Promise<SessionPrincipal | null> {
  const row = await db
    .selectFrom("operator_sessions as s")
    .select(["s.actor", "s.role", "s.expires_at"])
    .where("s.id_hash", "=", hashSecret(id))
    .where("s.expires_at", ">", sql<Date>`now()`)
    .where((eb) =>
      eb.or([
        ...(adminTokenHash ? [eb("s.token_hash", "=", adminTokenHash)] : []),
        eb.exists(
          eb
            .selectFrom("operator_tokens as t")
            .select("t.id")
            .whereRef("t.token_hash", "=", "s.token_hash")
            .where("t.revoked_at", "is", null)
            .where((t) =>
              t.or([t("t.expires_at", "is", null), t("t.expires_at", ">", sql<Date>`now()`)]),
            ),
        ),
      ]),
    )
    .executeTakeFirst();
  return row ? { actor: row.actor, role: row.role, expiresAt: row.expires_at } : null;
}

/** Ends a session (signing out); true when there was one. */
export async function closeSession(db: Db, id: string, actor: string): Promise<boolean> {
  const row = await db
    .deleteFrom("operator_sessions")
    .where("id_hash", "=", hashSecret(id))
    .returning("role")
    .executeTakeFirst();
  if (row) await appendAudit(db, { actor, action: "operator_session.closed", details: {} });
  return row !== undefined;
}
