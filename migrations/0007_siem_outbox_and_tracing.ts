import { type Kysely, sql } from "kysely";

// SIEM forwarding (src/siem/): an outbox of events per configured sink. Triggers write it in the
// same transaction as the decision, command change, isolation or agent alert it reports, so an
// event is never lost between the row and its forwarding, and nothing waits for a sink: the
// forwarder sends later. A sink row exists only while a forwarder is configured with it; with no
// sink, the triggers return at once (one look at the empty siem_sinks per row).
export async function up(db: Kysely<unknown>): Promise<void> {
  // Tracing (src/tracing.ts): the issuing activity's trace context travels with the command to
  // whichever gateway delivers it.
  await sql`ALTER TABLE commands ADD COLUMN traceparent text`.execute(db);
  await sql`CREATE TABLE siem_sinks (
    name text PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now(),
    sent bigint NOT NULL DEFAULT 0,
    -- Unsent events dropped because the queue exceeded its bound (MM_SIEM_QUEUE_MAX).
    dropped bigint NOT NULL DEFAULT 0
  )`.execute(db);
  await sql`CREATE TABLE siem_outbox (
    id bigserial PRIMARY KEY,
    sink text NOT NULL REFERENCES siem_sinks (name) ON DELETE CASCADE,
    host text NOT NULL,
    kind text NOT NULL,
    event jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0
  )`.execute(db);
  await sql`CREATE INDEX siem_outbox_unsent ON siem_outbox (sink, id) WHERE sent_at IS NULL`.execute(
    db,
  );
  await sql`CREATE INDEX siem_outbox_sent ON siem_outbox (sent_at) WHERE sent_at IS NOT NULL`.execute(
    db,
  );

  // event_id is the same for every sink, so a receiver can drop what a retry sent twice.
  await sql`CREATE FUNCTION siem_enqueue(p_host text, p_kind text, p_event jsonb)
    RETURNS void LANGUAGE sql AS $$
    INSERT INTO siem_outbox (sink, host, kind, event)
    SELECT s.name, p_host, p_kind, p_event || jsonb_build_object('kind', p_kind, 'host', p_host)
    FROM siem_sinks s
  $$`.execute(db);

  await sql`CREATE FUNCTION siem_decision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM siem_sinks) THEN RETURN NULL; END IF;
      PERFORM siem_enqueue(
        coalesce((SELECT a.host FROM alerts a WHERE a.key = NEW.alert_id), NEW.incident_id),
        'decision',
        jsonb_build_object('event_id', 'decision:' || NEW.id, 'at', NEW.at,
          'incident_id', NEW.incident_id, 'alert_id', NEW.alert_id, 'workflow_id', NEW.workflow_id,
          'flow_id', NEW.flow_id, 'node_id', NEW.node_id, 'mitigation', NEW.mitigation,
          'decision', NEW.kind, 'reason', NEW.reason, 'details', NEW.details));
      RETURN NULL;
    END $$`.execute(db);
  await sql`CREATE TRIGGER siem_decision AFTER INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION siem_decision()`.execute(db);

  // Commands' state changes and isolations are audited (src/store/audit.ts): their audit rows are
  // the events. A duplicate issue changes nothing, so it is not one.
  await sql`CREATE FUNCTION siem_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE c record;
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM siem_sinks) THEN RETURN NULL; END IF;
      SELECT command, status, priority, origin, workflow_id INTO c
        FROM commands WHERE id = NEW.command_id;
      PERFORM siem_enqueue(
        coalesce((SELECT a.identity_hostname FROM agents a WHERE a.id = NEW.agent_id),
          NEW.agent_id, '-'),
        CASE WHEN NEW.action LIKE 'command.%' THEN 'command' ELSE 'isolation' END,
        jsonb_build_object('event_id', 'audit:' || NEW.id, 'at', NEW.at, 'action', NEW.action,
          'actor', NEW.actor, 'agent_id', NEW.agent_id, 'command_id', NEW.command_id,
          'command', c.command, 'status', c.status, 'priority', c.priority, 'origin', c.origin,
          'workflow_id', c.workflow_id, 'details', NEW.details));
      RETURN NULL;
    END $$`.execute(db);
  await sql`CREATE TRIGGER siem_audit AFTER INSERT ON audit_log FOR EACH ROW
    WHEN (NEW.action LIKE 'command.%' AND NEW.action <> 'command.duplicate'
      OR NEW.action LIKE 'isolation.%' OR NEW.action = 'release.requested')
    EXECUTE FUNCTION siem_audit()`.execute(db);

  await sql`CREATE FUNCTION siem_agent_alert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM siem_sinks) THEN RETURN NULL; END IF;
      PERFORM siem_enqueue(NEW.host, 'alert',
        jsonb_build_object('event_id', 'alert:' || NEW.key, 'at', NEW.received_at,
          'alert_id', NEW.id, 'agent_id', NEW.agent_id, 'rule_id', NEW.rule_id,
          'rule_level', NEW.rule_level, 'severity', NEW.severity, 'techniques', NEW.techniques,
          'incident_id', NEW.incident_id));
      RETURN NULL;
    END $$`.execute(db);
  await sql`CREATE TRIGGER siem_agent_alert AFTER INSERT ON alerts FOR EACH ROW
    WHEN (NEW.source = 'agent') EXECUTE FUNCTION siem_agent_alert()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER siem_agent_alert ON alerts`.execute(db);
  await sql`DROP TRIGGER siem_audit ON audit_log`.execute(db);
  await sql`DROP TRIGGER siem_decision ON decisions`.execute(db);
  await sql`DROP FUNCTION siem_agent_alert(), siem_audit(), siem_decision(),
    siem_enqueue(text, text, jsonb)`.execute(db);
  await sql`DROP TABLE siem_outbox`.execute(db);
  await sql`DROP TABLE siem_sinks`.execute(db);
  await sql`ALTER TABLE commands DROP COLUMN traceparent`.execute(db);
}
