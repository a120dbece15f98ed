import { type Kysely, sql } from "kysely";

// Attack 2 (host hijack): an agent's hostname, Wazuh agent id and IPs as bound at enrollment (or
// accepted by an operator) live apart from what its hello reports, and only they resolve hosts.
// Attack 8 (alert shadowing): an alert is one per (source, host, alert id), not per client-chosen
// id, and is referred to by its own key.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("agents")
    .addColumn("identity_hostname", "text")
    .addColumn("identity_wazuh_agent_id", "text")
    .addColumn("identity_ips", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    // Null until the first hello after enrollment binds the Wazuh id and IPs.
    .addColumn("identity_bound_at", "timestamptz")
    // The latest hello claimed something else than the bound identity; an operator may accept it.
    .addColumn("identity_mismatch", "boolean", (c) => c.notNull().defaultTo(false))
    .execute();
  // Agents enrolled before keep what they last reported: there is no earlier record to trust more.
  await sql`UPDATE agents SET identity_hostname = hostname, identity_wazuh_agent_id = wazuh_agent_id,
    identity_ips = ips, identity_bound_at = connected_at`.execute(db);
  await db.schema
    .alterTable("agents")
    .alterColumn("identity_hostname", (c) => c.setNotNull())
    .execute();
  await sql`CREATE INDEX agents_identity_hostname ON agents (lower(identity_hostname))`.execute(db);
  await db.schema
    .createIndex("agents_identity_wazuh_agent_id")
    .on("agents")
    .column("identity_wazuh_agent_id")
    .execute();
  await sql`CREATE INDEX agents_identity_ips ON agents USING gin (identity_ips)`.execute(db);

  await db.schema.alterTable("alerts").addColumn("key", "text").execute();
  // Stored alerts keep their id as key, so running workflows and recorded decisions still find them.
  await sql`UPDATE alerts SET key = id`.execute(db);
  await sql`ALTER TABLE alerts ALTER COLUMN key SET NOT NULL,
    DROP CONSTRAINT alerts_pkey, ADD CONSTRAINT alerts_pkey PRIMARY KEY (key)`.execute(db);
  await db.schema
    .createIndex("alerts_scope")
    .on("alerts")
    .columns(["source", "host", "id"])
    .unique()
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("alerts_scope").execute();
  await sql`ALTER TABLE alerts DROP CONSTRAINT alerts_pkey, ADD CONSTRAINT alerts_pkey PRIMARY KEY (id)`.execute(
    db,
  );
  await db.schema.alterTable("alerts").dropColumn("key").execute();
  await db.schema
    .alterTable("agents")
    .dropColumn("identity_hostname")
    .dropColumn("identity_wazuh_agent_id")
    .dropColumn("identity_ips")
    .dropColumn("identity_bound_at")
    .dropColumn("identity_mismatch")
    .execute();
}
