import { type Kysely, sql } from "kysely";

// Detection rules (Fibratus YAML), their macros files and rule sets. Every version is kept, as
// posted, with its SHA-256: agents report checksums, and a rollback is a rollout of an older one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("rule_versions")
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("content", "text", (c) => c.notNull())
    .addColumn("sha256", "text", (c) => c.notNull())
    .addColumn("document", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("rule_versions_pkey", ["id", "version"])
    .execute();
  // One row per rule: its newest version, and what searches look at.
  await db.schema
    .createTable("rules")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("version", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("techniques", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("tactics", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addForeignKeyConstraint("rules_version_fkey", ["id", "version"], "rule_versions", [
      "id",
      "version",
    ])
    .execute();
  await sql`CREATE INDEX rules_techniques ON rules USING gin (techniques)`.execute(db);
  await sql`CREATE INDEX rules_tactics ON rules USING gin (tactics)`.execute(db);

  await db.schema
    .createTable("rule_macros")
    .addColumn("version", "serial", (c) => c.primaryKey())
    .addColumn("content", "text", (c) => c.notNull())
    .addColumn("sha256", "text", (c) => c.notNull().unique())
    .addColumn("names", sql`text[]`, (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("rule_sets")
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull())
    .addColumn("rules", "jsonb", (c) => c.notNull())
    .addColumn("macros_version", "integer", (c) => c.references("rule_macros.version"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("rule_sets_pkey", ["name", "version"])
    .execute();
  // Which rule set version an agent group should run.
  await db.schema
    .createTable("rule_set_assignments")
    .addColumn("group", "text", (c) => c.primaryKey())
    .addColumn("rule_set", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull())
    .addColumn("assigned_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addForeignKeyConstraint(
      "rule_set_assignments_set_fkey",
      ["rule_set", "version"],
      "rule_sets",
      ["name", "version"],
    )
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["rule_set_assignments", "rule_sets", "rule_macros", "rules", "rule_versions"])
    await db.schema.dropTable(t).execute();
}
