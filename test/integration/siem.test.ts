import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../../src/log.ts";
import type { Service } from "../../src/service.ts";
import { startSiemForwarder } from "../../src/siem/forwarder.ts";
import { syslogSink } from "../../src/siem/syslog.ts";
import { createDb, type Db, migrate } from "../../src/store/db.ts";
import { recordDecision } from "../../src/store/decisions.ts";
import { sinkStats } from "../../src/store/outbox.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";

interface SyslogMessage {
  pri: string;
  msgid: string;
  event: Record<string, unknown> & { event_id: string; kind: string; host: string };
}

/**
 * A syslog collector in the test process: TCP, RFC 6587 octet counting, RFC 5424 messages whose
 * MSG is the JSON event. Parses strictly, so a malformed frame fails the test.
 */
async function syslogCollector(port = 0) {
  const messages: SyslogMessage[] = [];
  const errors: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const space = buffered.indexOf(0x20);
        if (space < 0) return;
        const length = Number(buffered.subarray(0, space).toString("ascii"));
        if (!Number.isInteger(length) || length <= 0) {
          errors.push(`bad frame length ${buffered.subarray(0, space).toString()}`);
          socket.destroy();
          return;
        }
        if (buffered.length < space + 1 + length) return;
        const text = buffered.subarray(space + 1, space + 1 + length).toString("utf8");
        buffered = buffered.subarray(space + 1 + length);
        const m = /^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) - (.*)$/s.exec(text);
        if (!m) errors.push(`not RFC 5424: ${text}`);
        else
          messages.push({
            pri: m[1] as string,
            msgid: m[6] as string,
            event: JSON.parse(m[7] as string),
          });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    messages,
    errors,
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A loopback port nothing listens on (for now). */
async function freePort(): Promise<number> {
  const c = await syslogCollector();
  await c.close();
  return c.port;
}

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

  const decide = (host: string, n: number) =>
    recordDecision(db, {
      incidentId: `incident/${host}`,
      alertId: null,
      workflowId: null,
      flowId: "flow",
      nodeId: `node-${n}`,
      mitigation: null,
      kind: "node_matched",
      reason: `step ${n}`,
      details: { n },
    });

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
