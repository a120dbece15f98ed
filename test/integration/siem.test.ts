import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNatsAs, natsInboxPrefix } from "../../src/connections.ts";
import type { Logger } from "../../src/log.ts";
import type { Service } from "../../src/service.ts";
import { startSiemForwarder } from "../../src/siem/forwarder.ts";
import { natsSink } from "../../src/siem/nats.ts";
import { syslogSink } from "../../src/siem/syslog.ts";
import { createDb, type Db, migrate } from "../../src/store/db.ts";
import { recordDecisions } from "../../src/store/decisions.ts";
import { sinkStats } from "../../src/store/outbox.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { syslogCollector } from "../support/syslog-collector.ts";
import { eventually } from "../support/wait.ts";

/** A loopback port nothing listens on (for now). */
async function freePort(): Promise<number> {
  const c = await syslogCollector();
  await c.close();
  return c.port;
}

/** The n-th decision of an incident without an alert: its event's host is the incident id. */
const decideStep = (db: Db, host: string, n: number) =>
  recordDecisions(db, [
    {
      incidentId: `incident/${host}`,
      alertId: null,
      workflowId: null,
      flowId: "flow",
      nodeId: `node-${n}`,
      mitigation: null,
      kind: "node_matched",
      reason: `step ${n}`,
      details: { n },
    },
  ]);

function capturingLogger() {
  const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
  const log: Logger = {
    debug() {},
    info() {},
    warn: (message, fields) => warnings.push({ message, fields }),
    error() {},
  };
  return { log, warnings };
}

describe("SIEM forwarding from the running service", () => {
  let ctx: TestContext;
  let service: Service;
  let collector: Awaited<ReturnType<typeof syslogCollector>>;
  const agents = recordingAgents();
  const rest = restClient(() => service.apiUrl);

  beforeAll(async () => {
    collector = await syslogCollector();
    ctx = await createTestContext("siem");
    service = await ctx.start({
      agents: agents.gateway,
      config: {
        siem: {
          syslogUrl: `tcp://127.0.0.1:${collector.port}`,
          natsSubject: undefined,
          queueMax: 10_000,
        },
      },
    });
  });
  afterAll(async () => {
    await ctx?.cleanup();
    await collector?.close();
  });

  it("sends every decision of the seed scenario to syslog exactly once", async () => {
    const host = ctx.host("seed");
    for (const [rule, commands] of [
      ["100002-ncat-connection", 2],
      ["100003-exec-permission-added", 3],
      ["100004-executable-file-added", 5],
    ] as const) {
      expect((await rest.post("/api/alert", wazuhAlert(rule, host))).status).toBe(202);
      await eventually(
        rule,
        () => agents.commands.filter((c) => c.agentId === `agent-${host}`).length === commands,
      );
    }
    const stored = async () =>
      (
        await rest.get(
          `/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`,
        )
      ).body.items as { id: string | number; kind: string; mitigation: string | null }[];
    // The mitigations' last decisions follow their commands: wait until the scenario is decided.
    await eventually("the ransomware mitigation's outcome", async () =>
      (await stored()).some(
        (d) => d.kind === "mitigation_succeeded" && d.mitigation === "handle_ransomware",
      ),
    );
    const decisions = await stored();
    const expected = decisions.map((d) => `decision:${d.id}`).sort();
    const received = () =>
      collector.messages.filter((m) => m.event.kind === "decision").map((m) => m.event.event_id);
    await eventually("every decision at the collector", () =>
      expected.every((id) => received().includes(id)),
    );
    expect(received().sort()).toEqual(expected);
    expect(collector.errors).toEqual([]);
    const first = collector.messages.find((m) => m.event.kind === "decision");
    expect(first).toMatchObject({ pri: "109", msgid: "decision", event: { host } });
  });
});

describe("the SIEM outbox and forwarder", () => {
  let ctx: TestContext;
  let db: Db;

  beforeAll(async () => {
    ctx = await createTestContext("siem_outbox");
    db = createDb(ctx.config.databaseUrl, 4);
    await migrate(db);
  });
  afterAll(async () => {
    await db?.destroy();
    await ctx?.cleanup();
  });

  const decide = (host: string, n: number) => decideStep(db, host, n);

  it("keeps the events while the sink is down and sends the backlog in order per host once it is up", async () => {
    const port = await freePort();
    const { log, warnings } = capturingLogger();
    const forwarder = await startSiemForwarder(
      { db, log, sinks: [syslogSink(`tcp://127.0.0.1:${port}`, { timeoutMs: 2_000 })] },
      { queueMax: 1_000, pollMs: 50, minBackoffMs: 50, maxBackoffMs: 200 },
    );
    try {
      for (let n = 1; n <= 10; n++) {
        await decide("alpha", n);
        await decide("beta", n);
      }
      // The forwarder tried and failed: the events wait, unsent, none dropped.
      await eventually("a failed attempt", () =>
        warnings.some((w) => w.message.startsWith("SIEM sink failed")),
      );
      expect(await sinkStats(db)).toEqual([{ name: "syslog", sent: 0, dropped: 0, unsent: 20 }]);

      const collector = await syslogCollector(port);
      try {
        await eventually("the backlog", () => collector.messages.length >= 20);
        await eventually(
          "the backlog marked sent",
          async () => (await sinkStats(db))[0]?.unsent === 0,
        );
        expect(collector.errors).toEqual([]);
        for (const host of ["alpha", "beta"]) {
          expect(
            collector.messages
              .filter((m) => m.event.host === `incident/${host}`)
              .map((m) => m.event.reason),
          ).toEqual(Array.from({ length: 10 }, (_, i) => `step ${i + 1}`));
        }
        expect(collector.messages).toHaveLength(20);
        expect(await sinkStats(db)).toEqual([{ name: "syslog", sent: 20, dropped: 0, unsent: 0 }]);
      } finally {
        await collector.close();
      }
    } finally {
      await forwarder.stop();
    }
  });

  it("drops the oldest unsent events beyond the bound, counts and logs them", async () => {
    const port = await freePort();
    const { log, warnings } = capturingLogger();
    const forwarder = await startSiemForwarder(
      { db, log, sinks: [syslogSink(`tcp://127.0.0.1:${port}`, { timeoutMs: 2_000 })] },
      { queueMax: 5, pollMs: 50, minBackoffMs: 50, maxBackoffMs: 200 },
    );
    try {
      // The same sink name as before: its counters carry on from the first test.
      const before = (await sinkStats(db))[0];
      for (let n = 1; n <= 12; n++) await decide("gamma", n);
      await eventually(
        "the drops",
        async () => (await sinkStats(db))[0]?.dropped === (before?.dropped ?? 0) + 7,
      );
      expect((await sinkStats(db))[0]?.unsent).toBe(5);
      const dropped = warnings.filter((w) => w.message.startsWith("SIEM queue over its bound"));
      expect(dropped.reduce((sum, w) => sum + Number(w.fields?.dropped), 0)).toBe(7);
      expect(dropped.at(-1)?.fields).toMatchObject({ sink: "syslog", queue_max: 5 });

      const collector = await syslogCollector(port);
      try {
        await eventually("the newest five", () => collector.messages.length >= 5);
        await eventually("marked sent", async () => (await sinkStats(db))[0]?.unsent === 0);
        expect(collector.messages.map((m) => m.event.reason)).toEqual(
          [8, 9, 10, 11, 12].map((n) => `step ${n}`),
        );
      } finally {
        await collector.close();
      }
    } finally {
      await forwarder.stop();
    }
  });

  it("queues nothing when no sink is configured", async () => {
    const forwarder = await startSiemForwarder(
      { db, log: capturingLogger().log, sinks: [] },
      { queueMax: 5 },
    );
    await forwarder.stop();
    await decide("delta", 1);
    expect(await sinkStats(db)).toEqual([]);
    const queued = await db
      .selectFrom("siem_outbox")
      .select("id")
      .where("host", "=", "incident/delta")
      .execute();
    expect(queued).toEqual([]);
  });
});

/**
 * A NATS server of this test's own, configured by stack/nats/config.sh as the stack's is (the
 * shared one was configured before this change and must not be restarted).
 */
async function ownNatsServer() {
  const dir = mkdtempSync(path.join(tmpdir(), "mm-siem-nats-"));
  const [port, monitor] = [await freePort(), await freePort()];
  const passwords = Object.fromEntries(
    ["API", "WORKER", "INGEST", "GATEWAY", "PUBLISHER"].map((r) => [
      `MM_NATS_${r}_PASSWORD`,
      randomBytes(12).toString("hex"),
    ]),
  );
  const conf = execFileSync("sh", [path.resolve("stack/nats/config.sh")], {
    env: {
      ...process.env,
      ...passwords,
      NATS_LISTEN: `127.0.0.1:${port}`,
      NATS_MONITOR: `127.0.0.1:${monitor}`,
      NATS_STORE_DIR: path.join(dir, "js"),
      MM_ALERT_SUBJECT: "alerts",
    },
  });
  writeFileSync(path.join(dir, "nats.conf"), conf);
  const server: ChildProcess = spawn("nats-server", ["-c", path.join(dir, "nats.conf")], {
    stdio: "ignore",
  });
  const url = `nats://127.0.0.1:${port}`;
  const as = (user: string) =>
    connect({
      servers: url,
      user,
      pass: passwords[`MM_NATS_${user.toUpperCase()}_PASSWORD`],
      inboxPrefix: natsInboxPrefix(user),
      maxReconnectAttempts: 0,
    });
  await eventually("the NATS server", () =>
    as("publisher").then((nc) => nc.close().then(() => true)),
  );
  return {
    url,
    passwords,
    as,
    async stop() {
      const exited = new Promise((resolve) => server.once("exit", resolve));
      server.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe("the NATS sink", () => {
  let ctx: TestContext;
  let db: Db;
  let nats: Awaited<ReturnType<typeof ownNatsServer>>;
  const connections: NatsConnection[] = [];

  beforeAll(async () => {
    nats = await ownNatsServer();
    ctx = await createTestContext("siem_nats");
    db = createDb(ctx.config.databaseUrl, 2);
    await migrate(db);
  });
  /** The worker role's connection, to this test's server. */
  const connectWorker = async () => {
    const nc = await connectNatsAs(
      {
        ...ctx.config.nats,
        url: nats.url,
        passwords: { ...ctx.config.nats.passwords, worker: nats.passwords.MM_NATS_WORKER_PASSWORD },
      },
      "worker",
      { reconnect: false },
    );
    connections.push(nc);
    return nc;
  };
  afterAll(async () => {
    for (const nc of connections) await nc.close();
    await db?.destroy();
    await ctx?.cleanup();
    await nats?.stop();
  });

  it("publishes each event on <subject>.<kind> as the worker user, in order", async () => {
    const subscriber = await nats.as("publisher");
    connections.push(subscriber);
    const received: { subject: string; event: Record<string, unknown> }[] = [];
    const sub = subscriber.subscribe("mm.events.>");
    void (async () => {
      for await (const m of sub) received.push({ subject: m.subject, event: m.json() });
    })();
    await subscriber.flush();

    const worker = await connectWorker();
    const forwarder = await startSiemForwarder(
      {
        db,
        log: capturingLogger().log,
        sinks: [natsSink(worker, "mm.events", { timeoutMs: 2_000 })],
      },
      { queueMax: 100, pollMs: 50 },
    );
    try {
      for (let n = 1; n <= 3; n++) await decideStep(db, "nats-host", n);
      await eventually("three events", () => received.length >= 3);
      expect(received.map((r) => [r.subject, r.event.reason, r.event.host])).toEqual(
        [1, 2, 3].map((n) => ["mm.events.decision", `step ${n}`, "incident/nats-host"]),
      );
      await eventually("marked sent", async () => (await sinkStats(db))[0]?.unsent === 0);
      expect(await sinkStats(db)).toEqual([{ name: "nats", sent: 3, dropped: 0, unsent: 0 }]);
    } finally {
      await forwarder.stop();
    }
  });

  it("keeps the events queued when the server refuses the subject", async () => {
    const before = (await sinkStats(db))[0];
    const { log, warnings } = capturingLogger();
    // The worker user may publish below mm.events only.
    const forwarder = await startSiemForwarder(
      { db, log, sinks: [natsSink(await connectWorker(), "siem.elsewhere", { timeoutMs: 2_000 })] },
      { queueMax: 100, pollMs: 50, minBackoffMs: 50, maxBackoffMs: 200 },
    );
    try {
      await decideStep(db, "refused-host", 1);
      await eventually("a refused publish", () =>
        warnings.some(
          (w) =>
            w.message.startsWith("SIEM sink failed") && /ermission/i.test(String(w.fields?.error)),
        ),
      );
      expect(await sinkStats(db)).toEqual([
        { name: "nats", sent: before?.sent ?? 0, dropped: 0, unsent: 1 },
      ]);
    } finally {
      await forwarder.stop();
    }
  });
});
