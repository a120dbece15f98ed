import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.ts";
import type { Service } from "../../src/service.ts";
import { createDb, type Db } from "../../src/store/db.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { restClient } from "../support/http.ts";
import { eventually } from "../support/wait.ts";
import { enrolled, type Frame, succeed, TestAgent } from "./support/agent.ts";

// Two gateway processes (the real `mm gateway`) and two workers on their own task queues, sharing
// only PostgreSQL, NATS and Temporal: a command issued through either worker reaches its agent on
// whichever gateway holds the session.
let ctx: TestContext;
let db: Db;
const gateways: { process: ChildProcess; url: string; id: string }[] = [];
const apis: Service[] = [];
const agents: TestAgent[] = [];

async function startGatewayProcess(config: Config) {
  const child = spawn(path.resolve(import.meta.dirname, "../../bin/mm"), ["gateway"], {
    env: {
      ...process.env,
      DATABASE_URL: config.databaseUrl,
      MM_GATEWAY_PORT: "0",
      MM_LOAD_DEFAULTS: "false",
      MM_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
  const listening = await new Promise<{ url: string; gateway: string }>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`mm gateway exited with ${code}`)));
    lines.on("line", (line) => {
      if (line.includes('"agent gateway listening"')) resolve(JSON.parse(line));
    });
  });
  const gateway = { process: child, url: listening.url, id: listening.gateway };
  gateways.push(gateway);
  return gateway;
}

beforeAll(async () => {
  ctx = await createTestContext("gw_scale", { loadDefaults: false, logLevel: "warn" });
  db = createDb(ctx.config.databaseUrl, 2);
  const queueOf = (worker: "a" | "b") => ({
    temporal: { ...ctx.config.temporal, taskQueue: `${ctx.config.temporal.taskQueue}-${worker}` },
  });
  // Each worker alone on its queue: a workflow started on queue b runs its activities in worker b.
  await ctx.start({ roles: ["worker"], config: queueOf("a") });
  await ctx.start({ roles: ["worker"], config: queueOf("b") });
  // An API per queue, so a REST command says which worker issues it.
  apis.push(
    await ctx.start({ roles: ["api"], config: queueOf("a") }),
    await ctx.start({ roles: ["api"], config: queueOf("b") }),
  );
  await startGatewayProcess(ctx.config);
  await startGatewayProcess(ctx.config);
}, 120_000);

afterAll(async () => {
  for (const agent of agents) await agent.close();
  for (const g of gateways) g.process.kill("SIGTERM");
  await Promise.all(
    gateways.map(
      (g) =>
        new Promise((r) => (g.process.exitCode !== null ? r(null) : g.process.once("exit", r))),
    ),
  );
  await db?.destroy();
  await ctx?.cleanup();
});

const [apiA, apiB] = [0, 1].map((i) => restClient(() => apis[i]?.apiUrl));

async function connectAgent(gateway: { url: string }, hostname: string, options = {}) {
  const token = (await apiA?.post("/api/enrollment-tokens", { max_uses: 1 }))?.body.token;
  const { agentId, apiKey } = await enrolled(gateway.url, token, hostname);
  const agent = await TestAgent.connect(gateway.url, apiKey, hostname, {
    autoAnswer: succeed,
    ...options,
  });
  agents.push(agent);
  return { agent, agentId, apiKey };
}

describe("scale-out: two gateway processes, two workers", () => {
  it("delivers a command issued through worker B to an agent on gateway A, and the reverse", async () => {
    const [gatewayA, gatewayB] = gateways as [(typeof gateways)[0], (typeof gateways)[0]];
    expect(gatewayA.id).not.toBe(gatewayB.id);
    const onA = await connectAgent(gatewayA, "host-on-a");
    const onB = await connectAgent(gatewayB, "host-on-b");

    const viaB = await apiB?.post("/api/commands", {
      agent_id: onA.agentId,
      command: "kill-process",
      details: { pid: 101, process_name: "sleep" },
    });
    const viaA = await apiA?.post("/api/commands", {
      agent_id: onB.agentId,
      command: "block-ip",
      details: { ip: "10.0.0.66" },
    });
    expect([viaA?.status, viaB?.status]).toEqual([202, 202]);
    expect((await onA.agent.command("kill-process")).id).toBe(viaB?.body.id);
    expect((await onB.agent.command("block-ip")).id).toBe(viaA?.body.id);

    await eventually("both completed", async () => {
      const rows = await db.selectFrom("commands").select("status").execute();
      return rows.length === 2 && rows.every((r) => r.status === "completed");
    });
    const rows = await db
      .selectFrom("commands")
      .select(["id", "gateway_id", "reported_at"])
      .execute();
    const row = (id: string) => rows.find((r) => r.id === id);
    expect(row(viaB?.body.id)?.gateway_id).toBe(gatewayA.id);
    expect(row(viaA?.body.id)?.gateway_id).toBe(gatewayB.id);
    // The activities (asynchronously completed by the gateway processes) are reported done.
    await eventually("reported", async () =>
      (await db.selectFrom("commands").select("reported_at").execute()).every(
        (r) => r.reported_at !== null,
      ),
    );
    expect(
      (await apiB?.get(`/api/commands?id=${encodeURIComponent(viaB?.body.id)}`))?.body,
    ).toMatchObject({ status: "completed", result: { success: true } });
  });

  it("replaces a session across gateways, and revocation through any API closes it wherever it is", async () => {
    const [gatewayA, gatewayB] = gateways as [(typeof gateways)[0], (typeof gateways)[0]];
    const first = await connectAgent(gatewayA, "roaming-host");
    const second = await TestAgent.connect(gatewayB.url, first.apiKey, "roaming-host");
    agents.push(second);
    expect((await first.agent.closed).code).toBe(4000);
    const detail = await apiA?.get(`/api/agents/${first.agentId}`);
    expect(detail?.body).toMatchObject({ status: "online", gateway_id: gatewayB.id });

    const issued = await apiA?.post("/api/commands", {
      agent_id: first.agentId,
      command: "unblock-ip",
      details: { ip: "10.0.0.67" },
    });
    expect((await second.command("unblock-ip")).id).toBe(issued?.body.id);
    expect(first.agent.commands().filter((c: Frame) => c.command === "unblock-ip")).toEqual([]);

    await apiB?.delete(`/api/agents/${first.agentId}/keys`);
    expect((await second.closed).code).toBe(4001);
  });
});
