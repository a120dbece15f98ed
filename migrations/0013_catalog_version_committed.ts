import { type Kysely, sql } from "kysely";

// The catalog's version as of committed changes. 0010 advanced a sequence, which every session
// sees at once, before the change commits: a process that read the new version then the old
// documents kept them as that version until the next change (the engine's catalog snapshot
// missed a flow just created). A row updated in the change's own transaction is seen with it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE catalog_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
  )`.execute(db);
  await sql`INSERT INTO catalog_state (version) VALUES (0)`.execute(db);
  await sql`CREATE OR REPLACE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE catalog_state SET version = version + 1;
      RETURN NULL;
    END $$`.execute(db);
  await sql`DROP SEQUENCE catalog_version`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE SEQUENCE catalog_version`.execute(db);
  await sql`CREATE OR REPLACE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM nextval('catalog_version');
      RETURN NULL;
    END $$`.execute(db);
  await sql`DROP TABLE catalog_state`.execute(db);
}
