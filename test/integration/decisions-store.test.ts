import { afterAll, beforeAll, expect, it } from "vitest";
import { createDb, type Db, migrate } from "../../src/store/db.ts";
import { type Decision, listDecisions, recordDecisions } from "../../src/store/decisions.ts";
import { createScratch, type Scratch } from "../support/scratch.ts";

// The decision log is written by activities that may run again: each decision once, in order,
// whatever is retried, and one statement for a batch of them.
let scratch: Scratch;
let db: Db;
beforeAll(async () => {
  scratch = await createScratch("decisions_store");
  db = createDb(scratch.config.databaseUrl, 2);
  await migrate(db);
});
afterAll(async () => {
  await db?.destroy();
  await scratch?.drop();
});

const decision = (nodeId: string, kind = "node_matched"): Decision => ({
  incidentId: "incident/decisions-host",
  alertId: "a1/rest-1",
  workflowId: null,
  flowId: "flow",
  nodeId,
  mitigation: null,
  kind,
  reason: `${nodeId} ${kind}`,
  details: { nodeId },
});

it("writes a batch once each, in order, and returns only what it wrote", async () => {
  const [a, b, c] = [decision("n1"), decision("n2"), decision("n3")];
  // The same decision twice in one batch (a repeated verdict) is written once, the first.
  const first = await recordDecisions(db, [a, b, { ...a, reason: "again" }] as Decision[]);
  expect(first.map((d) => d.reason)).toEqual(["n1 node_matched", "n2 node_matched"]);
  // A retried activity records the batch again with one new decision: only that one is written.
  const retried = await recordDecisions(db, [a, b, c] as Decision[]);
  expect(retried.map((d) => d.reason)).toEqual(["n3 node_matched"]);
  const rows = await listDecisions(db, {
    limit: 10,
    offset: 0,
    incidentId: "incident/decisions-host",
  });
  expect(rows.map((r) => r.reason)).toEqual([
    "n1 node_matched",
    "n2 node_matched",
    "n3 node_matched",
  ]);
  expect(await recordDecisions(db, [])).toEqual([]);
});
