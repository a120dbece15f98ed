import { type Kysely, sql } from "kysely";

// Alerts, the catalog (conditions, mitigations, attack flows as the documents operators post) and
// the decision record of the mitigation engine.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("alerts")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("received_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("time", "timestamptz", (c) => c.notNull())
    .addColumn("host", "text", (c) => c.notNull())
    .addColumn("agent_id", "text")
    .addColumn("host_ip", "text")
    .addColumn("rule_id", "text", (c) => c.notNull())
    .addColumn("rule_level", "integer", (c) => c.notNull())
    .addColumn("severity", "text", (c) => c.notNull())
    .addColumn("techniques", sql`text[]`, (c) => c.notNull())
    .addColumn("tactics", sql`text[]`, (c) => c.notNull())
    .addColumn("format", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("raw", "jsonb", (c) => c.notNull())
    .addColumn("incident_id", "text", (c) => c.notNull())
    // Set once the alert is handed to its incident workflow: a redelivery after that is a no-op.
    .addColumn("handed_off_at", "timestamptz")
    .execute();
  await db.schema.createIndex("alerts_host_time").on("alerts").columns(["host", "time"]).execute();
  await db.schema.createIndex("alerts_rule").on("alerts").column("rule_id").execute();
  await db.schema.createIndex("alerts_time").on("alerts").column("time").execute();
  await sql`CREATE INDEX alerts_techniques ON alerts USING gin (techniques)`.execute(db);

  // Alerts that could not be read: kept for operators instead of being dropped.
  await db.schema
    .createTable("rejected_alerts")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("received_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("payload", "text", (c) => c.notNull())
    .addColumn("errors", "jsonb", (c) => c.notNull())
    .execute();

  // One-off facts about this database, e.g. that the default configuration was loaded once.
  await db.schema
    .createTable("meta")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("value", "jsonb", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("catalog")
    .addColumn("kind", "text", (c) =>
      c.notNull().check(sql`kind IN ('condition', 'mitigation', 'attack_flow')`),
    )
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("document", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("catalog_pk", ["kind", "key"])
    .execute();

  await db.schema
    .createTable("decisions")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("incident_id", "text", (c) => c.notNull())
    .addColumn("alert_id", "text")
    .addColumn("run_id", "text")
    .addColumn("flow_id", "text")
    .addColumn("node_id", "text")
    .addColumn("mitigation", "text")
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("details", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    // Activities may be retried: a decision is written once per idempotency key.
    .addColumn("dedupe_key", "text", (c) => c.notNull().unique())
    .execute();
  await db.schema
    .createIndex("decisions_incident")
    .on("decisions")
    .columns(["incident_id", "id"])
    .execute();
  await db.schema.createIndex("decisions_alert").on("decisions").column("alert_id").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("decisions").execute();
  await db.schema.dropTable("catalog").execute();
  await db.schema.dropTable("meta").execute();
  await db.schema.dropTable("rejected_alerts").execute();
  await db.schema.dropTable("alerts").execute();
}
