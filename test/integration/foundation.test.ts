import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openNeo4j } from "../../src/connections.ts";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

let ctx: TestContext;
let service: Service;
let hook: Awaited<ReturnType<typeof webhookReceiver>>;
const graph = () => openNeo4j(ctx.config.neo4j);

beforeAll(async () => {
  ctx = await createTestContext("foundation", { loadDefaults: false });
  hook = await webhookReceiver();
  service = await ctx.start({ agents: recordingAgents().gateway });
});
afterAll(async () => {
  await ctx?.cleanup();
  await hook?.close();
});

const rest = restClient(() => service.apiUrl);

describe("the service on the local stack", () => {
  it("answers GET /api/version in the seed's shape", async () => {
    const { status, body } = await rest.get("/api/version");
    expect(status).toBe(200);
    expect(body).toEqual({
      version: expect.stringMatching(/^v\d+\.\d+\.\d+$/),
      major: expect.any(Number),
      minor: expect.any(Number),
    });
    expect(body.version).toBe(`v${body.major}.${body.minor}.${body.version.split(".")[2]}`);
  });

  it("reports all four dependencies up on /health", async () => {
    const res = await rest.get("/health");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "up",
      dependencies: {
        temporal: { status: "up" },
        postgres: { status: "up" },
        nats: { status: "up" },
        neo4j: { status: "up" },
      },
    });
  });

  it("reports a dependency down with the reason, as 503", async () => {
    const broken = await ctx.start({
      agents: recordingAgents().gateway,
      roles: ["api"],
      config: { neo4j: { ...ctx.config.neo4j, password: "wrong-password" } },
    });
    const { status, body } = await restClient(() => broken.apiUrl).get("/health");
    expect(status).toBe(503);
    expect(body.status).toBe("down");
    expect(body.dependencies.postgres).toEqual({ status: "up" });
    expect(body.dependencies.neo4j.status).toBe("down");
    expect(body.dependencies.neo4j.reason).toMatch(/auth|credentials|unauthorized/i);
  });

  it("runs an incident workflow whose activities read Neo4j and write PostgreSQL", async () => {
    const critical = ctx.host("critical");
    const ordinary = ctx.host("ordinary");
    const driver = graph();
    await driver.executeQuery("CREATE (:Host {name: $name, critical: true})", { name: critical });
    await driver.close();

    const condition = {
      identifier: "critical_asset",
      name: "host is a critical asset",
      args: { host: "alert.agent.name" },
      query: "MATCH (h:Host {name: $host}) RETURN h.critical AS critical",
      check: "rows.size() > 0 && rows[0].critical == true",
    };
    expect((await rest.post("/api/condition", condition)).status).toBe(201);
    expect(
      (
        await rest.post("/api/workflow", {
          identifier: "notify_soar",
          name: "notify_soar",
          url: hook.url("/soar"),
          effective_attacks: ["T1041"],
          cost: 1,
          params: { playbook: "contain" },
          args: { pid: "alert.data.pid" },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await rest.post("/api/attack-flow", {
          identifier: "exfiltration_from_critical",
          name: "exfiltration from a critical asset",
          nodes: [{ id: "exfiltration", techniques: ["T1041"], conditions: ["critical_asset"] }],
          start: ["exfiltration"],
        })
      ).status,
    ).toBe(201);

    for (const host of [critical, ordinary])
      expect(
        (await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host))).status,
      ).toBe(202);

    const call = await eventually("the SOAR webhook", () =>
      hook.received.find((r) => r.path === "/soar"),
    );
    expect(call.body).toEqual({ playbook: "contain", pid: "3613" });
    const decisions = async (host: string) => {
      const res = await rest.get(
        `/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}`,
      );
      return res.body.items as { kind: string; reason: string }[];
    };
    await eventually(
      "the decision for the ordinary host",
      async () => (await decisions(ordinary)).length > 0,
    );
    expect((await decisions(ordinary)).map((d) => [d.kind, d.reason])).toEqual([
      ["node_not_matched", "condition critical_asset is false"],
    ]);
    await eventually("the mitigation's success", async () =>
      (await decisions(critical)).some((d) => d.kind === "mitigation_succeeded"),
    );
    expect((await decisions(critical)).map((d) => d.kind)).toEqual([
      "node_matched",
      "mitigation_chosen",
      "mitigation_succeeded",
    ]);
    expect(hook.received.filter((r) => r.path === "/soar")).toHaveLength(1);
  });
});
