import { afterAll, beforeAll, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { oneNodeFlow, wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// A condition whose Cypher query always runs past its time limit (100 ms here): the engine tries it
// three times, 1 s then 2 s apart (a cold Neo4j after a restart recovers meanwhile), and only then
// takes the overrun as the condition's verdict and falls back.
let ctx: TestContext;
let service: Service;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  hooks = await webhookReceiver();
  ctx = await createTestContext("budget", { loadDefaults: false, incidentIdleMs: 2_000 });
  service = await ctx.start({
    agents: recordingAgents().gateway,
    config: { neo4j: { ...ctx.config.neo4j, queryTimeoutMs: 100 } },
  });
  await rest.created("/api/condition", {
    identifier: "slow_graph",
    name: "a graph question too costly to answer",
    query: "UNWIND range(1, 200000000) AS x WITH x WHERE x % 7 = 3 RETURN count(x) AS n",
    check: "rows.size() > 0",
  });
  await rest.created("/api/workflow", {
    identifier: "guarded",
    name: "guarded by the slow condition",
    url: hooks.url("/guarded"),
    effective_attacks: ["T1566"],
    cost: 0,
    conditions: ["slow_graph"],
  });
  await rest.created("/api/workflow", {
    identifier: "fallback",
    name: "fallback",
    url: hooks.url("/fallback"),
    effective_attacks: ["T1566"],
    cost: 1,
  });
  await rest.created("/api/attack-flow", oneNodeFlow("phish", "T1566"));
});
afterAll(async () => {
  await ctx?.cleanup();
  await hooks?.close();
});

it("retries a query over its time limit twice, then skips its mitigation with the reason and falls back", async () => {
  const host = ctx.host("slow");
  const alert = wazuhAlert("100002-ncat-connection", host);
  (alert.rule as { mitre: { id: string[] } }).mitre.id = ["T1566"];
  expect((await rest.post("/api/alert", alert)).status).toBe(202);
  const rows = await eventually("the fallback to succeed", async () => {
    const items = (
      await rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}`)
    ).body.items as { kind: string; mitigation: string | null; reason: string; at: string }[];
    return items.some((d) => d.kind === "mitigation_succeeded") && items;
  });
  const skipped = rows.find((d) => d.kind === "mitigation_skipped");
  expect(skipped?.mitigation).toBe("guarded");
  expect(skipped?.reason).toMatch(/condition slow_graph: query failed: .*(time|timed out)/i);
  // Three tries with 1 s and 2 s between them before the verdict.
  const matched = rows.find((d) => d.kind === "node_matched");
  expect(Date.parse(skipped?.at ?? "") - Date.parse(matched?.at ?? "")).toBeGreaterThanOrEqual(
    3_000,
  );
  expect(rows.find((d) => d.kind === "mitigation_succeeded")?.mitigation).toBe("fallback");
  expect(hooks.received.map((r) => r.path)).toEqual(["/fallback"]);
});
