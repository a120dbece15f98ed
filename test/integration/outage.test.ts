import { afterAll, beforeAll, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { tcpProxy } from "../support/tcp-proxy.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// A dependency outage in the middle of a flow reads as waiting, never as a decision: while Neo4j
// cannot be reached the node's condition is retried, nothing is recorded, and once it is back the
// node is decided once and its mitigation runs once.
let ctx: TestContext;
let service: Service;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
let graph: Awaited<ReturnType<typeof tcpProxy>>;
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  hooks = await webhookReceiver();
  ctx = await createTestContext("outage", { loadDefaults: false });
  const neo4j = new URL(ctx.config.neo4j.uri);
  graph = await tcpProxy({ host: neo4j.hostname, port: Number(neo4j.port || 7687) });
  service = await ctx.start({
    agents: recordingAgents().gateway,
    config: {
      neo4j: { ...ctx.config.neo4j, uri: `bolt://127.0.0.1:${graph.port}` },
    },
  });
  await rest.created("/api/condition", {
    identifier: "graph_answers",
    name: "the graph answers",
    query: "RETURN 1 AS one",
    check: "size(rows) == 1",
  });
  await rest.created("/api/workflow", {
    identifier: "o_hook",
    name: "notify soar",
    url: hooks.url("/outage"),
    effective_attacks: ["T1190"],
    cost: 1,
  });
  await rest.created("/api/attack-flow", {
    identifier: "exploit",
    name: "exploit",
    nodes: [{ id: "exploit", techniques: ["T1190"], conditions: ["graph_answers"] }],
    start: ["exploit"],
  });
});
afterAll(async () => {
  await ctx?.cleanup();
  await graph?.close();
  await hooks?.close();
});

it("waits out a Neo4j outage and then decides the node once", async () => {
  const host = ctx.host("outage");
  graph.cut();
  const before = graph.refused();
  const alert = wazuhAlert("100002-ncat-connection", host, `exploit-${host}`);
  (alert.rule as { mitre: { id: string[] } }).mitre.id = ["T1190"];
  expect((await rest.post("/api/alert", alert)).status).toBe(202);
  // Several attempts of the driver and of the activity, over several query budgets.
  await eventually("the engine to keep trying", () => graph.refused() - before >= 6, 60_000);
  const decisions = async () =>
    (await rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=100`))
      .body.items as { kind: string; reason: string }[];
  expect(await decisions()).toEqual([]);

  graph.restore();
  const rows = await eventually(
    "the run to end",
    async () => {
      const all = await decisions();
      return (
        all.some((d) =>
          /^(mitigation_succeeded|no_mitigation|node_not_matched|condition_error)$/.test(d.kind),
        ) && all
      );
    },
    60_000,
  );
  expect(rows.map((d) => [d.kind, d.reason])).toEqual([
    ["node_matched", expect.any(String)],
    ["mitigation_chosen", expect.any(String)],
    ["mitigation_succeeded", expect.any(String)],
  ]);
  expect(hooks.received.filter((r) => r.path === "/outage")).toHaveLength(1);
});
