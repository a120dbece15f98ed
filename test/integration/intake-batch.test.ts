// Batched intake: REST arrays and NDJSON answered item by item, NATS batches stored in one
// statement and acknowledged only after commit, and alerts reaching no attack flow stored without
// a workflow.
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Client, Connection, WorkflowNotFoundError } from "@temporalio/client";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNatsAs, temporalConnection } from "../../src/connections.ts";
import { identifierKey } from "../../src/domain/model.ts";
import type { Service } from "../../src/service.ts";
import { createDb, type Db } from "../../src/store/db.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { connectPublisher, publishAlert } from "../support/nats.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";

let ctx: TestContext;
let service: Service;
let db: Db;
let nc: NatsConnection;
let temporal: Client;
let connection: Connection;
const agents = recordingAgents();
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  ctx = await createTestContext("intake_batch");
  service = await ctx.start({ agents: agents.gateway });
  db = createDb(ctx.config.databaseUrl, 2);
  nc = await connectPublisher();
  connection = await Connection.connect(temporalConnection(ctx.config.temporal));
  temporal = new Client({ connection, namespace: ctx.config.temporal.namespace });
});
afterAll(async () => {
  await nc?.close();
  await connection?.close();
  await db?.destroy();
  await ctx?.cleanup();
});

/** An alert whose only technique no default attack flow lists. */
function noFlowAlert(host: string, id: string) {
  const alert = wazuhAlert("100002-ncat-connection", host, id);
  (alert.rule as { mitre: { id: string[] } }).mitre.id = ["T1595.002"];
  return alert;
}

const storedFor = (host: string) =>
  db
    .selectFrom("alerts")
    .select(["id", "handed_off_at"])
    .where("host", "=", host)
    .orderBy("id")
    .execute();

async function incidentExists(host: string): Promise<boolean> {
  try {
    await temporal.workflow.getHandle(`incident/${host}`).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

describe("POST /api/alert with a batch", () => {
  it("answers a JSON array item by item: stored, duplicate, refused with its field", async () => {
    const host = ctx.host("rest-batch");
    const quiet = ctx.host("rest-quiet");
    const good = wazuhAlert("100002-ncat-connection", host);
    const bad = { ...wazuhAlert("100003-exec-permission-added", host), rule: { level: 3 } };
    const res = await rest.post("/api/alert", [good, bad, good, noFlowAlert(quiet, "q1")]);
    expect(res.status).toBe(202);
    expect(res.body.stored).toBe(3);
    expect(res.body.refused).toBe(1);
    const [first, refused, again, quietOne] = res.body.results;
    expect(first).toMatchObject({ index: 0, id: good.id, incident: `incident/${host}` });
    expect(first.duplicate).toBe(false);
    expect(refused.index).toBe(1);
    expect(refused.errors.map((e: { field: string }) => e.field)).toContain("rule.id");
    expect(again).toMatchObject({ index: 2, id: good.id, duplicate: true });
    expect(quietOne).toMatchObject({ index: 3, id: "q1", duplicate: false });

    expect(await storedFor(host)).toHaveLength(1);
    // The alert reaching a flow mitigates; the one reaching none is stored, done, and no workflow.
    await eventually("the ncat alert mitigated", () =>
      agents.commands.some((c) => c.agentId === `agent-${host}`),
    );
    const quietRows = await storedFor(quiet);
    expect(quietRows).toHaveLength(1);
    expect(quietRows[0]?.handed_off_at).not.toBeNull();
    expect(await incidentExists(host)).toBe(true);
    expect(await incidentExists(quiet)).toBe(false);
  });

  it("takes NDJSON: an unreadable line is refused alone, blank lines skipped", async () => {
    const host = ctx.host("ndjson");
    const a = noFlowAlert(host, "n1");
    const b = noFlowAlert(host, "n2");
    const body = `${JSON.stringify(a)}\n\n{not json\n${JSON.stringify(b)}\n`;
    const res = await rest.call("POST", "/api/alert", body, {
      "content-type": "application/x-ndjson",
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ stored: 2, refused: 1 });
    expect(res.body.results[1].index).toBe(1);
    expect(res.body.results[1].errors[0].message).toMatch(/not valid JSON/);
    expect((await storedFor(host)).map((r) => r.id)).toEqual(["n1", "n2"]);
  });

  it("refuses an empty, an oversized, or an all-bad batch with 400 naming the field", async () => {
    const empty = await rest.post("/api/alert", []);
    expect(empty.status).toBe(400);
    expect(empty.body.errors[0].field).toBe("(body)");

    const host = ctx.host("oversized");
    const many = Array.from({ length: 1_001 }, (_, i) => noFlowAlert(host, `o${i}`));
    const oversized = await rest.post("/api/alert", many);
    expect(oversized.status).toBe(400);
    expect(oversized.body.errors[0]).toMatchObject({ field: "(body)" });
    expect(oversized.body.errors[0].message).toMatch(/at most 1000/);
    expect(await storedFor(host)).toHaveLength(0);

    const allBad = await rest.post("/api/alert", [{ rule: "x" }, 42]);
    expect(allBad.status).toBe(400);
    const fields = allBad.body.errors.map((e: { field: string }) => e.field);
    expect(fields.some((f: string) => f.startsWith("[0]"))).toBe(true);
    expect(fields.some((f: string) => f.startsWith("[1]"))).toBe(true);
  });

  it("answers a single alert exactly as before", async () => {
    const host = ctx.host("single");
    const res = await rest.post("/api/alert", noFlowAlert(host, "s1"));
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: "s1", incident: `incident/${host}`, duplicate: false });
    const bad = await rest.post("/api/alert", { rule: "nope" });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.length).toBeGreaterThan(0);
  });
});

describe("NATS batches", () => {
  const publish = (payload: unknown) => publishAlert(nc, ctx.config.nats.alertSubject, payload);

  it("stores mixed good, bad, duplicate and unreadable alerts once each; signals only flows", async () => {
    const host = ctx.host("nats-batch");
    const quiet = ctx.host("nats-quiet");
    const good = wazuhAlert("100002-ncat-connection", host);
    const messages: unknown[] = [good, good, "{nope", { rule: { id: "1" } }];
    for (let i = 0; i < 50; i++) messages.push(noFlowAlert(quiet, `nq${i}`));
    messages.push(good);
    await Promise.all(messages.map(publish));

    await eventually("every alert stored", async () => (await storedFor(quiet)).length === 50);
    await eventually("the ncat alert mitigated", () =>
      agents.commands.some((c) => c.agentId === `agent-${host}`),
    );
    expect(await storedFor(host)).toHaveLength(1);
    const rejected = await db
      .selectFrom("rejected_alerts")
      .select(["payload", "errors"])
      .where("source", "=", "nats")
      .execute();
    expect(rejected.some((r) => r.payload === "{nope")).toBe(true);
    expect(
      rejected.some((r) =>
        (r.errors as { field: string }[]).some((e) => e.field.startsWith("rule")),
      ),
    ).toBe(true);
    await eventually("everything acknowledged", async () => (await pending()) === 0);
    expect(await incidentExists(host)).toBe(true);
    expect(await incidentExists(quiet)).toBe(false);
  });

  it("acknowledges nothing while PostgreSQL refuses the batch, then stores every alert once", async () => {
    const host = ctx.host("nats-pg-error");
    // PostgreSQL fails each batch's INSERT at its first row of this host (rolling back the rows
    // before it) for as long as the trigger exists, however the messages fall into batches.
    await sql`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.host = ${sql.lit(host)} THEN RAISE EXCEPTION 'refused for the test'; END IF;
        RETURN NEW;
      END $$`.execute(db);
    await sql`CREATE TRIGGER refuse_poison BEFORE INSERT ON alerts
      FOR EACH ROW EXECUTE FUNCTION refuse_poison()`.execute(db);
    const ids = ["p1", "p2", "poison", "p3", "p4"];
    await Promise.all(ids.map((id) => publish(noFlowAlert(host, id))));

    await eventually("the batch tried and refused", async () => (await deliveries()) > 0);
    expect(await storedFor(host)).toHaveLength(0);
    expect(await pending()).toBe(ids.length);

    await sql`DROP TRIGGER refuse_poison ON alerts`.execute(db);
    await sql`DROP FUNCTION refuse_poison()`.execute(db);
    await eventually("all stored after redelivery", async () =>
      (await storedFor(host)).length === ids.length ? true : undefined,
    );
    expect((await storedFor(host)).map((r) => r.id)).toEqual([...ids].sort());
    await eventually("everything acknowledged", async () => (await pending()) === 0);
  });
});

describe("the flow index follows the catalog", () => {
  it("signals an alert once a flow lists its technique", async () => {
    const before = ctx.host("index-before");
    expect((await rest.post("/api/alert", noFlowAlert(before, "i1"))).status).toBe(202);
    const flow = (await rest.get("/api/attack-flow")).body[0];
    const start = flow.nodes.find((n: { id: string }) => n.id === flow.start[0]);
    start.techniques = [...start.techniques, "T1595"];
    const key = encodeURIComponent(identifierKey(flow.identifier));
    expect((await rest.put(`/api/attack-flow?id=${key}`, flow)).status).toBe(200);

    const after = ctx.host("index-after");
    expect((await rest.post("/api/alert", noFlowAlert(after, "i2"))).status).toBe(202);
    await eventually("the incident of the now-covered technique", () => incidentExists(after));
    expect(await incidentExists(before)).toBe(false);
  });
});

async function consumerInfo() {
  const ingest = await connectNatsAs(ctx.config.nats, "ingest", { reconnect: false });
  try {
    const jsm = await jetstreamManager(ingest);
    return await jsm.consumers.info(ctx.config.nats.alertStream, ctx.config.nats.alertConsumer);
  } finally {
    await ingest.close();
  }
}
const pending = async () => {
  const info = await consumerInfo();
  return info.num_ack_pending + info.num_pending;
};
const deliveries = async () => (await consumerInfo()).num_redelivered;
