import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNatsAs } from "../../src/connections.ts";
import { ensureAlertStream } from "../../src/ingest/nats.ts";
import type { Service } from "../../src/service.ts";
import { createDb, type Db } from "../../src/store/db.ts";
import type { IncidentState } from "../../src/workflows/incident.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { oneNodeFlow, wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { connectPublisher, publishAlert } from "../support/nats.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectPublisher();
});
afterAll(() => nc?.close());

const publish = (subject: string, payload: unknown) => publishAlert(nc, subject, payload);

describe("alerts from NATS JetStream", () => {
  let ctx: TestContext;
  let service: Service;
  let db: Db;
  const agents = recordingAgents();

  beforeAll(async () => {
    ctx = await createTestContext("nats");
    service = await ctx.start({ agents: agents.gateway });
    db = createDb(ctx.config.databaseUrl, 2);
  });
  afterAll(async () => {
    await db?.destroy();
    await ctx?.cleanup();
  });

  it("creates the stream capturing the alert subject", async () => {
    expect(service).toBeDefined();
    const ingest = await connectNatsAs(ctx.config.nats, "ingest", { reconnect: false });
    try {
      const info = await (await jetstreamManager(ingest)).streams.info(ctx.config.nats.alertStream);
      expect(info.config.subjects).toContain(ctx.config.nats.alertSubject);
    } finally {
      await ingest.close();
    }
  });

  it("runs the seed scenario from NATS, once, even when messages are published twice", async () => {
    const host = ctx.host("nats");
    const mine = () => agents.commands.filter((c) => c.agentId === `agent-${host}`);
    for (const name of [
      "100002-ncat-connection",
      "100003-exec-permission-added",
      "100004-executable-file-added",
    ] as const) {
      await publish(ctx.config.nats.alertSubject, wazuhAlert(name, host));
      await publish(ctx.config.nats.alertSubject, wazuhAlert(name, host));
    }
    await eventually("the whole flow mitigated", () => mine().length === 5);
    await new Promise((r) => setTimeout(r, 1_500));
    // Each alert's commands, in order, once (the isolation through the agent's isolation workflow).
    const commandsOf = (step: string) =>
      mine()
        .filter((c) => c.commandId.includes(`.${step}/`))
        .map((c) => c.command);
    expect(commandsOf("ncat_connection")).toEqual(["kill-process", "block-ip"]);
    expect(commandsOf("exec_permission")).toEqual(["delete-file"]);
    expect(commandsOf("ransomware_file")).toEqual(["quarantine-file"]);
    expect(mine().filter((c) => c.commandId.startsWith(`isolation/agent-${host}/`))).toHaveLength(
      1,
    );
    const stored = await db
      .selectFrom("alerts")
      .select(["id", "source", "handed_off_at"])
      .where("host", "=", host)
      .execute();
    expect(stored).toHaveLength(3);
    expect(stored.every((a) => a.source === "nats" && a.handed_off_at !== null)).toBe(true);
  });

  it("hands a host's alerts to its incident in their order across batches stored concurrently", {
    timeout: 120_000,
  }, async () => {
    const host = ctx.host("order");
    const rest = restClient(() => service.apiUrl);
    // A flow node no mitigation covers: every alert is signalled to the incident, nothing runs.
    await rest.created("/api/attack-flow", oneNodeFlow("order_probe", "T1001"));
    const ALERTS = 1_500;
    const ids = Array.from({ length: ALERTS }, (_, i) => `order-${i}-${host}`);
    // Published at once: the consumer takes them in batches of up to 256, two in flight.
    await Promise.all(
      ids.map((id) => {
        const alert = wazuhAlert("100002-ncat-connection", host, id);
        (alert.rule as { mitre: { id: string[] } }).mitre.id = ["T1001"];
        return publish(ctx.config.nats.alertSubject, alert);
      }),
    );
    const state = await eventually(
      "every alert at the incident",
      async () => {
        const res = await rest.get(`/api/incidents/${host}`);
        const s = res.body as IncidentState;
        return res.status === 200 && s.alerts.length === ALERTS && s;
      },
      90_000,
    );
    // The incident remembers alerts by their stored key, `<alert id>/nats-<random>`.
    expect(state.alerts.map((key) => key.slice(0, key.lastIndexOf("/")))).toEqual(ids);
  });

  it("keeps unreadable messages in rejected_alerts with the reason instead of dropping them", async () => {
    await publish(ctx.config.nats.alertSubject, "{this is not json");
    const noAgent = wazuhAlert("100002-ncat-connection", ctx.host("bad"));
    delete (noAgent as { agent?: unknown }).agent;
    await publish(ctx.config.nats.alertSubject, noAgent);
    const rows = await eventually("two rejected alerts", async () => {
      const r = await db.selectFrom("rejected_alerts").selectAll().orderBy("id").execute();
      return r.length === 2 && r;
    });
    expect(rows[0]).toMatchObject({ source: "nats", payload: "{this is not json" });
    expect(JSON.stringify(rows[0]?.errors)).toMatch(/not valid JSON/);
    expect(JSON.stringify(rows[1]?.errors)).toMatch(/agent/);
  });
});

describe("a crash while alerts are in flight", () => {
  let ctx: TestContext;
  let child: ChildProcess | undefined;
  let firewall: Awaited<ReturnType<typeof webhookReceiver>>;

  beforeAll(async () => {
    firewall = await webhookReceiver();
    ctx = await createTestContext("crash");
  });
  afterAll(async () => {
    child?.kill("SIGKILL");
    await ctx?.cleanup();
    await firewall?.close();
  });

  /** The real executable, configured for this test's database, queue and stream. */
  function startMm(): ChildProcess {
    const c = ctx.config;
    const proc = spawn(path.resolve(import.meta.dirname, "../../bin/mm"), ["all"], {
      env: {
        ...process.env,
        DATABASE_URL: c.databaseUrl,
        MM_API_PORT: "0",
        MM_GATEWAY_PORT: "0",
        MM_TASK_QUEUE: c.temporal.taskQueue,
        MM_ALERT_SUBJECT: c.nats.alertSubject,
        MM_ALERT_STREAM: c.nats.alertStream,
        MM_ALERT_CONSUMER: c.nats.alertConsumer,
        MM_FIREWALL_WEBHOOK_URL: firewall.url("/firewall/block"),
        MM_LOG_LEVEL: "error",
      },
      stdio: ["ignore", "ignore", "inherit"],
    });
    return proc;
  }

  it("SIGKILL with 200 alerts in flight: after restart every alert is stored once and mitigated once", {
    timeout: 240_000,
  }, async () => {
    const hosts = Array.from({ length: 20 }, () => ctx.host("crash"));
    const expected = new Map<string, string>(); // alert id → attacker ip
    // The stream exists (the service made it on an earlier start); alerts queue up in it.
    const ingest = await connectNatsAs(ctx.config.nats, "ingest", { reconnect: false });
    await ensureAlertStream(ingest, {
      subject: ctx.config.nats.alertSubject,
      stream: ctx.config.nats.alertStream,
      consumer: ctx.config.nats.alertConsumer,
    }).finally(() => ingest.close());
    child = startMm();
    for (let i = 0; i < 200; i++) {
      const host = hosts[i % hosts.length] as string;
      const alert = wazuhAlert("100100-flow-processor", host, `flow-${i}-${host}`);
      const attacker = `10.77.${Math.floor(i / 250)}.${(i % 250) + 1}`;
      (
        alert.data as { attack_flow_alert: { destination_ip: string } }
      ).attack_flow_alert.destination_ip = attacker;
      expected.set(alert.id, attacker);
      await publish(ctx.config.nats.alertSubject, alert);
    }
    const keys = () => new Set(firewall.received.map((r) => r.idempotencyKey));
    await eventually("the first mitigations", () => keys().size >= 20, 120_000);
    child.kill("SIGKILL");
    const atKill = keys().size;
    expect(atKill).toBeLessThan(200);

    child = startMm();
    await eventually("every alert mitigated", () => keys().size === 200, 180_000);

    const db = createDb(ctx.config.databaseUrl, 2);
    try {
      // A webhook answered just before the kill is called again after it; the record follows.
      await eventually(
        "every success recorded",
        async () =>
          (
            await db
              .selectFrom("decisions")
              .select("id")
              .where("kind", "=", "mitigation_succeeded")
              .execute()
          ).length >= 200,
        60_000,
      );
      const alerts = await db.selectFrom("alerts").select(["id", "handed_off_at"]).execute();
      expect(alerts).toHaveLength(200);
      expect(new Set(alerts.map((a) => a.id))).toEqual(new Set(expected.keys()));
      expect(alerts.every((a) => a.handed_off_at !== null)).toBe(true);
      const succeeded = await db
        .selectFrom("decisions")
        .select(["alert_id"])
        .where("kind", "=", "mitigation_succeeded")
        .execute();
      expect(succeeded).toHaveLength(200);
      expect(new Set(succeeded.map((d) => d.alert_id)).size).toBe(200);
    } finally {
      await db.destroy();
    }
    // Each alert's webhook carried its own attacker; a call repeated across the crash reuses its key.
    const byKey = new Map(firewall.received.map((r) => [r.idempotencyKey, r.body.attacker_ip]));
    for (const [id, attacker] of expected) {
      const key = [...byKey.keys()].find((k) => k?.includes(`/${id}/`));
      expect(key, id).toBeDefined();
      expect(byKey.get(key)).toBe(attacker);
    }
    console.log(
      `crash test: ${atKill} of 200 mitigated before SIGKILL; ${firewall.received.length - 200} webhook calls repeated after restart (same idempotency key)`,
    );
  });
});
