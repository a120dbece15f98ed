import { type Kysely, sql } from "kysely";

// Approval gates and operating modes (issue 13).
// - approvals: a mitigation held for a person. Written by the mitigation workflow's activities
//   (pending, then approved / denied / expired exactly once); the REST API only reads it and
//   signals the workflow, which stays the one that decides.
// - operating_modes: act / approve / observe, globally and per agent group, as operators set them
//   (MM_MODE is the global mode until an operator sets one).
// - isolation_admissions: the isolations that went ahead, automatically or approved, counted over
//   a sliding window by the fleet-wide blast-radius limit. Keyed by the mitigation attempt, so a
//   retried admission counts once.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE approvals (
    id text PRIMARY KEY,
    status text NOT NULL DEFAULT 'pending'
      CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    incident_id text NOT NULL,
    workflow_id text NOT NULL,
    alert_id text,
    host text NOT NULL,
    agent_id text,
    mitigation text NOT NULL,
    mitigation_name text NOT NULL,
    steps jsonb NOT NULL,
    reasons jsonb NOT NULL,
    on_timeout text NOT NULL CHECK (on_timeout IN ('approve', 'deny')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    deadline timestamptz NOT NULL,
    decided_by text,
    decided_at timestamptz,
    comment text
  )`.execute(db);
  await sql`CREATE INDEX approvals_by_status ON approvals (status, requested_at DESC)`.execute(db);
  await sql`CREATE TABLE operating_modes (
    scope text PRIMARY KEY CHECK (scope = 'global' OR scope LIKE 'group:%'),
    mode text NOT NULL CHECK (mode IN ('act', 'approve', 'observe')),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db);
  await sql`CREATE TABLE isolation_admissions (
    attempt text PRIMARY KEY,
    agent_id text NOT NULL,
    admitted_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db);
  await sql`CREATE INDEX isolation_admissions_by_time ON isolation_admissions (admitted_at)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE isolation_admissions`.execute(db);
  await sql`DROP TABLE operating_modes`.execute(db);
  await sql`DROP TABLE approvals`.execute(db);
}
