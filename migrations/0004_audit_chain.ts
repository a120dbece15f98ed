import { type Kysely, sql } from "kysely";

// The audit log as a hash chain. The service's role owns the table, so it could disable the
// append-only triggers and rewrite a row; it cannot do so without breaking the chain, which
// `mm audit verify` walks. Every insert, from any statement shape or process, is chained here in
// the database rather than by each caller.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE audit_log ADD COLUMN prev_hash text, ADD COLUMN hash text`.execute(db);

  // What a row's hash covers: every column but the chain's own, in a form that no session setting
  // (time zone, date style) changes. jsonb's text is canonical (keys sorted, one spacing).
  await sql`CREATE FUNCTION audit_log_content(r audit_log) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(
      r.id, to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      r.actor, r.action, r.agent_id, r.command_id, r.details)::text
  $$`.execute(db);
  await sql`CREATE FUNCTION audit_log_hash(prev_hash text, r audit_log) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(prev_hash || audit_log_content(r), 'UTF8')), 'hex')
  $$`.execute(db);

  // One appender at a time until it commits (the lock is the transaction's): the last committed
  // row is the predecessor, and the id and time are taken under the lock, so the chain's order is
  // the ids' order even when transactions commit in another order than they began.
  await sql`CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock('audit_log'::regclass::oid::bigint);
      NEW.id := nextval(pg_get_serial_sequence('audit_log', 'id'));
      NEW.at := clock_timestamp();
      NEW.prev_hash := coalesce(
        (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), repeat('0', 64));
      NEW.hash := audit_log_hash(NEW.prev_hash, NEW);
      RETURN NEW;
    END $$`.execute(db);

  // Rows written before the chain existed join it in their order.
  await sql`ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update`.execute(db);
  await sql`DO $$
    DECLARE r audit_log; prev text := repeat('0', 64);
    BEGIN
      FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        UPDATE audit_log SET prev_hash = prev, hash = audit_log_hash(prev, r) WHERE id = r.id
          RETURNING hash INTO prev;
      END LOOP;
    END $$`.execute(db);
  await sql`ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update`.execute(db);

  // A fork (two rows after the same one) fails the insert rather than passing unnoticed.
  await sql`ALTER TABLE audit_log ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL, ADD CONSTRAINT audit_log_prev_hash_once UNIQUE (prev_hash)`.execute(
    db,
  );
  await sql`CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER audit_log_chain ON audit_log`.execute(db);
  await sql`DROP FUNCTION audit_log_chain()`.execute(db);
  await sql`DROP FUNCTION audit_log_hash(text, audit_log)`.execute(db);
  await sql`DROP FUNCTION audit_log_content(audit_log)`.execute(db);
  await sql`ALTER TABLE audit_log DROP COLUMN prev_hash, DROP COLUMN hash`.execute(db);
}
