import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import { catalogSnapshots } from "../../src/store/catalog.ts";
import { createDb, type Db, migrate } from "../../src/store/db.ts";
import { createScratch, type Scratch } from "../support/scratch.ts";

// The engine and the intake decide from a snapshot of the catalog kept per version: a change
// must never be missed for being read halfway (version seen, documents not yet committed).
let scratch: Scratch;
let db: Db;
let writer: Db;
beforeAll(async () => {
  scratch = await createScratch("catalog_snapshot");
  db = createDb(scratch.config.databaseUrl, 2);
  writer = createDb(scratch.config.databaseUrl, 1);
  await migrate(db);
});
afterAll(async () => {
  await db?.destroy();
  await writer?.destroy();
  await scratch?.drop();
});

const flow = (identifier: string) => ({
  identifier,
  name: identifier,
  nodes: [{ id: "n", techniques: ["T1059"] }],
  start: ["n"],
});

it("sees a change once it commits, however a read overlapped it", async () => {
  const catalogs = catalogSnapshots(db);
  expect((await catalogs.current()).list("attack_flow")).toEqual([]);
  let commit: () => void = () => {};
  const committing = new Promise<void>((resolve) => {
    commit = resolve;
  });
  let inserted: () => void = () => {};
  const insertedYet = new Promise<void>((resolve) => {
    inserted = resolve;
  });
  // A change that has run its statement (and its version trigger) but not yet committed.
  const change = writer.transaction().execute(async (tx) => {
    await sql`INSERT INTO catalog (kind, key, document)
      VALUES ('attack_flow', 'late', ${JSON.stringify(flow("late"))}::jsonb)`.execute(tx);
    inserted();
    await committing;
  });
  await insertedYet;
  expect((await catalogs.current()).list("attack_flow")).toEqual([]);
  commit();
  await change;
  expect((await catalogs.current()).list("attack_flow").map((f) => f.identifier)).toEqual(["late"]);
  // Shared and frozen: no reader can change what another reads.
  const snapshot = await catalogs.current();
  expect(Object.isFrozen(snapshot.get("attack_flow", "late"))).toBe(true);
});
