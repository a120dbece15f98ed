import { type Kysely, sql } from "kysely";

// The intake skips Temporal for alerts whose techniques reach no attack flow, from an index of the
// flows' techniques it keeps in memory. Every change of the catalog, by whatever process or
// statement, advances this sequence, so one cheap read per intake batch tells whether the index is
// still current (a rolled-back change advances it too: a needless reload, never a stale index).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE SEQUENCE catalog_version`.execute(db);
  await sql`CREATE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM nextval('catalog_version');
      RETURN NULL;
    END $$`.execute(db);
  await sql`CREATE TRIGGER catalog_version_bump
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON catalog
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER catalog_version_bump ON catalog`.execute(db);
  await sql`DROP FUNCTION catalog_version_bump()`.execute(db);
  await sql`DROP SEQUENCE catalog_version`.execute(db);
}
