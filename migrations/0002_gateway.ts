import { type Kysely, sql } from "kysely";

// The agent gateway: the agent registry and its credentials, enrollment tokens, operator tokens,
// the agent commands (durable delivery) and the append-only audit log.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("enrollment_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    // Secrets are stored only as SHA-256 digests: they are random, so no salt or slow hash is needed.
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("group", "text")
    .addColumn("description", "text")
    .addColumn("max_uses", "integer", (c) => c.notNull().check(sql`max_uses > 0`))
    .addColumn("uses", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("revoked_at", "timestamptz")
    .execute();

  await db.schema
    .createTable("agents")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("hostname", "text", (c) => c.notNull())
    .addColumn("os", "jsonb")
    .addColumn("ips", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("agent_version", "text")
    .addColumn("fibratus_version", "text")
    .addColumn("external_ids", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    // Copied out of external_ids so host resolution by Wazuh agent id is an index lookup.
    .addColumn("wazuh_agent_id", "text")
    .addColumn("capabilities", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    // Set by operators only (and the enrollment token's group); never by the agent.
    .addColumn("groups", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("isolation", "jsonb", (c) =>
      c.notNull().defaultTo(sql`'{"isolated": false}'::jsonb`),
    )
    .addColumn("rules", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("rules_status", "jsonb")
    .addColumn("config", "jsonb")
    .addColumn("simulation", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("enrolled_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("enrollment_token_id", "text", (c) => c.references("enrollment_tokens.id"))
    .addColumn("last_seen_at", "timestamptz")
    .addColumn("connected_at", "timestamptz")
    .addColumn("disconnected_at", "timestamptz")
    // The live session (one per agent) and the gateway process holding it; null when offline.
    .addColumn("session_id", "text")
    .addColumn("gateway_id", "text")
    .execute();
  await db.schema
    .createIndex("agents_wazuh_agent_id")
    .on("agents")
    .column("wazuh_agent_id")
    .execute();
  await sql`CREATE INDEX agents_hostname ON agents (lower(hostname))`.execute(db);
  await sql`CREATE INDEX agents_ips ON agents USING gin (ips)`.execute(db);
  await sql`CREATE INDEX agents_groups ON agents USING gin (groups)`.execute(db);

  await db.schema
    .createTable("agent_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("agent_id", "text", (c) => c.notNull().references("agents.id"))
    .addColumn("key_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("revoked_at", "timestamptz")
    .addColumn("last_used_at", "timestamptz")
    .execute();
  await db.schema.createIndex("agent_keys_agent").on("agent_keys").column("agent_id").execute();

  await db.schema
    .createTable("operator_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) =>
      c.notNull().check(sql`role IN ('viewer', 'responder', 'admin', 'ingest')`),
    )
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz")
    .addColumn("revoked_at", "timestamptz")
    .addColumn("last_used_at", "timestamptz")
    .execute();

  await db.schema
    .createTable("commands")
    // The caller's idempotent id (the seed's `id`): issuing it again never delivers it again.
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("agent_id", "text", (c) => c.notNull().references("agents.id"))
    .addColumn("command", "text", (c) => c.notNull())
    .addColumn("priority", "text", (c) =>
      c.notNull().check(sql`priority IN ('critical', 'high', 'normal', 'low')`),
    )
    // json, not jsonb: the agent gets the details exactly as they were issued, keys in order.
    .addColumn("details", "json", (c) => c.notNull())
    .addColumn("status", "text", (c) =>
      c
        .notNull()
        .check(
          sql`status IN ('pending', 'delivered', 'acknowledged', 'completed', 'failed', 'expired')`,
        ),
    )
    .addColumn("origin", "text", (c) => c.notNull())
    .addColumn("requested_by", "text", (c) => c.notNull())
    .addColumn("workflow_id", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    // Not delivered and acknowledged by then: reported expired, never run late.
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("delivered_at", "timestamptz")
    .addColumn("delivery_count", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("session_id", "text")
    .addColumn("gateway_id", "text")
    .addColumn("acknowledged_at", "timestamptz")
    .addColumn("completed_at", "timestamptz")
    .addColumn("result", "jsonb")
    // Temporal's tokens of the activities waiting for this command (asynchronous completion):
    // each issue of the id adds its own, and the outcome completes them all.
    .addColumn("task_tokens", sql`bytea[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    // When the outcome reached the waiting activity; null while it still has to be reported.
    .addColumn("reported_at", "timestamptz")
    .execute();
  await sql`CREATE INDEX commands_open ON commands (agent_id, created_at)
    WHERE status IN ('pending', 'delivered', 'acknowledged')`.execute(db);
  await sql`CREATE INDEX commands_expiring ON commands (expires_at)
    WHERE status IN ('pending', 'delivered')`.execute(db);
  await sql`CREATE INDEX commands_unreported ON commands (completed_at)
    WHERE reported_at IS NULL AND status IN ('completed', 'failed', 'expired')`.execute(db);
  await db.schema.createIndex("commands_created").on("commands").column("created_at").execute();

  await db.schema
    .createTable("audit_log")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("agent_id", "text")
    .addColumn("command_id", "text")
    .addColumn("details", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema
    .createIndex("audit_log_agent")
    .on("audit_log")
    .columns(["agent_id", "id"])
    .execute();
  await db.schema
    .createIndex("audit_log_command")
    .on("audit_log")
    .columns(["command_id", "id"])
    .execute();
  // Append-only at the database, not only by convention: no code path or ad-hoc SQL rewrites history.
  await sql`CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$`.execute(db);
  await sql`CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()`.execute(db);
  await sql`CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("audit_log").execute();
  await sql`DROP FUNCTION audit_log_append_only()`.execute(db);
  await db.schema.dropTable("commands").execute();
  await db.schema.dropTable("operator_tokens").execute();
  await db.schema.dropTable("agent_keys").execute();
  await db.schema.dropTable("agents").execute();
  await db.schema.dropTable("enrollment_tokens").execute();
}
