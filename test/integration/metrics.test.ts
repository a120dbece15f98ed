import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { scrapeMetrics } from "../support/metrics.ts";
import { connectPublisher, publishAlert } from "../support/nats.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// GET /metrics after the seed scenario: the counters show exactly what the scenario caused. The
// registry is the process's, and this file runs alone in its worker with one service, so every
// count below is this file's own doing.
let ctx: TestContext;
let service: Service;
let firewall: Awaited<ReturnType<typeof webhookReceiver>>;
const agents = recordingAgents();
const rest = restClient(() => service.apiUrl);
const tokens: Record<"viewer" | "ingest", string> = { viewer: "", ingest: "" };
let temporalMetrics: string;

/** A loopback port free right now: Temporal's exporter takes an address, not port 0. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  firewall = await webhookReceiver();
  ctx = await createTestContext("metrics");
  temporalMetrics = `127.0.0.1:${await freePort()}`;
  service = await ctx.start({
    agents: agents.gateway,
    config: {
      firewallWebhookUrl: firewall.url("/firewall/block"),
      metricsPort: 0,
      temporalMetricsAddress: temporalMetrics,
    },
  });
  for (const role of ["viewer", "ingest"] as const) {
    const res = await rest.post("/api/tokens", { name: `metrics-${role}`, role });
    expect(res.status).toBe(201);
    tokens[role] = res.body.token;
  }
});
afterAll(async () => {
  await ctx?.cleanup();
  await firewall?.close();
});

describe("GET /metrics", () => {
  it("is refused without a token (401) and to an ingest token (403), on every listener", async () => {
    for (const url of [service.apiUrl, service.gatewayUrl, service.metricsUrl]) {
      expect((await scrapeMetrics(url, null)).status).toBe(401);
      expect((await scrapeMetrics(url, "not-a-token")).status).toBe(401);
      expect((await scrapeMetrics(url, tokens.ingest)).status).toBe(403);
    }
  });

  it("is in /openapi.json as Prometheus text", async () => {
    const doc = (await rest.get("/openapi.json")).body;
    expect(Object.keys(doc.paths["/metrics"].get.responses[200].content)).toEqual(["text/plain"]);
  });

  it("counts the seed scenario exactly: alerts, decisions, mitigations", async () => {
    const host = ctx.host("seed");
    const commandsFor = () => agents.commands.filter((c) => c.agentId === `agent-${host}`);
    expect((await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host))).status).toBe(
      202,
    );
    await eventually("close_conn", () => commandsFor().length === 2);
    expect(
      (await rest.post("/api/alert", wazuhAlert("100003-exec-permission-added", host))).status,
    ).toBe(202);
    await eventually("delete_file", () => commandsFor().length === 3);
    expect(
      (await rest.post("/api/alert", wazuhAlert("100004-executable-file-added", host))).status,
    ).toBe(202);
    await eventually("handle_ransomware", () => commandsFor().length === 5);
    // The same alert again is received but neither stored nor signalled a second time.
    expect((await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host))).status).toBe(
      202,
    );
    // A malformed one is received and rejected.
    expect((await rest.post("/api/alert", { rule: "nope" })).status).toBe(400);

    const decisions = async () =>
      (
        await rest.get(
          `/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`,
        )
      ).body.items as { kind: string }[];
    await eventually(
      "three successes recorded",
      async () => (await decisions()).filter((d) => d.kind === "mitigation_succeeded").length === 3,
    );

    const scraped = await scrapeMetrics(service.apiUrl, tokens.viewer);
    expect(scraped.status).toBe(200);
    expect(scraped.type).toMatch(/^text\/plain/);
    const m = scraped.value;
    expect(m('mm_alerts_received_total{transport="rest"}')).toBe(5);
    expect(m('mm_alerts_stored_total{transport="rest"}')).toBe(3);
    expect(m('mm_alerts_signalled_total{transport="rest"}')).toBe(3);
    expect(m('mm_alerts_rejected_total{transport="rest"}')).toBe(1);
    expect(m('mm_alerts_received_total{transport="nats"}')).toBe(0);
    expect(m('mm_alert_intake_seconds_count{transport="rest"}')).toBe(4);

    expect(m('mm_decisions_total{kind="mitigation_chosen"}')).toBe(3);
    expect(m('mm_decisions_total{kind="mitigation_succeeded"}')).toBe(3);
    expect(m('mm_decisions_total{kind="mitigation_failed"}')).toBe(0);
    // Every kind the decisions API shows, the counter shows as often (each decision counted once).
    const byKind = new Map<string, number>();
    for (const d of await decisions()) byKind.set(d.kind, (byKind.get(d.kind) ?? 0) + 1);
    for (const [kind, n] of byKind) expect(m(`mm_decisions_total{kind="${kind}"}`), kind).toBe(n);

    expect(m('mm_mitigation_duration_seconds_count{outcome="succeeded"}')).toBe(3);
    // close_conn, delete_file and handle_ransomware all act through the host's agent.
    expect(m("mm_alert_to_command_seconds_count")).toBe(3);
    expect(m("mm_alert_to_command_seconds_sum")).toBeGreaterThan(0);
    // The recording double stands where the gateway would: no session, no command frames.
    expect(m("mm_gateway_sessions")).toBe(0);
    expect(m('mm_commands_total{state="delivered"}')).toBe(0);

    // The metrics port of a worker- or ingest-only process serves the same registry.
    const fromPort = await scrapeMetrics(service.metricsUrl, tokens.viewer);
    expect(fromPort.status).toBe(200);
    expect(fromPort.value('mm_alerts_stored_total{transport="rest"}')).toBe(3);
    const fromGateway = await scrapeMetrics(service.gatewayUrl, tokens.viewer);
    expect(fromGateway.value('mm_alerts_signalled_total{transport="rest"}')).toBe(3);
  });

  it("counts NATS alerts under their transport, the unreadable ones as rejected", async () => {
    const nc = await connectPublisher();
    try {
      await publishAlert(
        nc,
        ctx.config.nats.alertSubject,
        wazuhAlert("100002-ncat-connection", ctx.host("nats")),
      );
      await publishAlert(nc, ctx.config.nats.alertSubject, "{this is not json");
    } finally {
      await nc.close();
    }
    const m = await eventually("both NATS alerts counted", async () => {
      const s = await scrapeMetrics(service.apiUrl, tokens.viewer);
      return (
        s.value('mm_alerts_signalled_total{transport="nats"}') === 1 &&
        s.value('mm_alerts_rejected_total{transport="nats"}') === 1 &&
        s.value
      );
    });
    expect(m('mm_alerts_received_total{transport="nats"}')).toBe(2);
    expect(m('mm_alerts_stored_total{transport="nats"}')).toBe(1);
  });

  it("exports Temporal's SDK metrics at MM_TEMPORAL_METRICS_ADDRESS", async () => {
    const text = await eventually("the SDK's exporter", async () => {
      const res = await fetch(`http://${temporalMetrics}/metrics`);
      const body = await res.text();
      return res.status === 200 && /^temporal_\w+/m.test(body) && body;
    });
    expect(text).toMatch(new RegExp(`task_queue="${ctx.config.temporal.taskQueue}"`));
  });

  it("refuses an MM_TEMPORAL_METRICS_ADDRESS that is not host:port", () => {
    expect(() => loadConfig({ MM_TEMPORAL_METRICS_ADDRESS: "9464" })).toThrow(
      /MM_TEMPORAL_METRICS_ADDRESS/,
    );
    expect(loadConfig({ MM_TEMPORAL_METRICS_ADDRESS: "[::1]:9464" }).temporalMetricsAddress).toBe(
      "[::1]:9464",
    );
  });
});
