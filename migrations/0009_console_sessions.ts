import { type Kysely, sql } from "kysely";

// Console sign-in (src/api/session.ts): a browser holds a random session id in an httpOnly cookie;
// the server keeps only its SHA-256, with the digest of the operator token it was opened with, so
// revoking (or expiring) that token ends every session it opened, checked on each request.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE operator_sessions (
    id_hash text PRIMARY KEY,
    token_hash text NOT NULL,
    actor text NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
  )`.execute(db);
  // Sign-in trims a token's oldest sessions and purges expired ones: both by these indexes.
  await sql`CREATE INDEX operator_sessions_token ON operator_sessions (token_hash, created_at)`.execute(
    db,
  );
  await sql`CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE operator_sessions`.execute(db);
}
