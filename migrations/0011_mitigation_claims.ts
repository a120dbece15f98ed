import { type Kysely, sql } from "kysely";

// One alert runs a given mitigation at most once, however many attack-flow nodes it reaches: the
// first mitigation run that chooses it claims (alert, mitigation); any other run of that alert that
// chooses the same mitigation finds the claim and records itself as a duplicate. A mitigation's
// target is resolved from the alert (its args), so (alert, mitigation) names the action.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE mitigation_claims (
    alert_key text NOT NULL,
    mitigation text NOT NULL,
    workflow_id text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_key, mitigation)
  )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE mitigation_claims`.execute(db);
}
