import type { Kysely } from "kysely";

// The column always held the mitigation's workflow id (stable across runs), never a run id.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("decisions").renameColumn("run_id", "workflow_id").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("decisions").renameColumn("workflow_id", "run_id").execute();
}
