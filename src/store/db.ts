import { Kysely, Migrator, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { migrations } from "../../migrations/index.ts";
import type { Database } from "./schema.ts";

export type Db = Kysely<Database>;

// bigint columns (bigserial ids, counts) arrive as strings rather than silently losing precision.
export function createDb(databaseUrl: string, maxConnections = 10): Db {
  // A bounded wait for a connection: a stalled pool fails the activity (retried) instead of hanging it.
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: maxConnections,
    connectionTimeoutMillis: 15_000,
  });
  // A client losing its connection (server restart) must not crash the process: idle ones report
  // on the pool, checked-out ones on themselves (their query fails with its own error, retried).
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** Applies every pending migration in migrations/; returns the names applied. */
export async function migrate(db: Db): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    const cause = error instanceof Error ? error.message : String(error ?? "");
    throw new Error(`migration ${failed?.migrationName ?? ""} failed: ${cause}`);
  }
  return (results ?? []).map((r) => r.migrationName);
}

/** Answers when PostgreSQL does: the health check's probe. */
export async function pingDb(db: Db): Promise<void> {
  await sql`SELECT 1`.execute(db);
}
