// Operators' bearer tokens with their role (MM_ADMIN_TOKEN, the first admin, is never stored).
import { sql } from "kysely";
import { hashSecret, newId, newSecret } from "../secrets.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import type { OperatorRole } from "./schema.ts";

const tokenColumns = [
  "id",
  "name",
  "role",
  "prefix",
  "created_at",
  "created_by",
  "expires_at",
  "revoked_at",
  "last_used_at",
] as const;

/** The name and role of a live (unrevoked, unexpired) token, or null. */
export async function authenticateOperator(
  db: Db,
  token: string,
): Promise<{ name: string; role: OperatorRole } | null> {
  const row = await db
    .selectFrom("operator_tokens")
    .select(["id", "name", "role", "last_used_at"])
    .where("token_hash", "=", hashSecret(token))
    .where("revoked_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", sql<Date>`now()`)]))
    .executeTakeFirst();
  if (!row) return null;
  // Last use is kept to the minute: an ingest token may carry thousands of alerts a minute.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    void db
      .updateTable("operator_tokens")
      .set({ last_used_at: sql<Date>`now()` })
      .where("id", "=", row.id)
      .execute()
      .catch(() => {});
  }
  return { name: row.name, role: row.role };
}

export async function listOperatorTokens(db: Db) {
  return db.selectFrom("operator_tokens").select(tokenColumns).orderBy("created_at").execute();
}

/** A new token; the secret is in the answer (once) and stored only as its digest. */
export async function createOperatorToken(
  db: Db,
  input: { name: string; role: OperatorRole; expiresInSeconds?: number; createdBy: string },
) {
  const secret = newSecret("operator_token");
  const row = await db
    .insertInto("operator_tokens")
    .values({
      id: newId("tok"),
      name: input.name,
      role: input.role,
      token_hash: secret.hash,
      prefix: secret.prefix,
      created_by: input.createdBy,
      expires_at:
        input.expiresInSeconds === undefined
          ? null
          : sql<Date>`now() + ${input.expiresInSeconds} * interval '1 second'`,
    })
    .returning(tokenColumns)
    .executeTakeFirstOrThrow();
  await appendAudit(db, {
    actor: input.createdBy,
    action: "operator_token.created",
    details: { token_id: row.id, name: row.name, role: row.role },
  });
  return { ...row, token: secret.value };
}

/** Revokes a token (revoking twice keeps the first time); undefined when there is no such token. */
export async function revokeOperatorToken(db: Db, id: string, actor: string) {
  const row = await db
    .updateTable("operator_tokens")
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
    .where("id", "=", id)
    .returning(tokenColumns)
    .executeTakeFirst();
  if (row)
    await appendAudit(db, {
      actor,
      action: "operator_token.revoked",
      details: { token_id: row.id, name: row.name },
    });
  return row;
}
