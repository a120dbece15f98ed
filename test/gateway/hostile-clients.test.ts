// Issue 9: nothing a client sends crashes, floods or blinds the gateway. 50 agents take commands
// while hostile clients reset upgrades mid key check, stall, dribble headers, and send more than
// 10,000 malformed frames; the process stays up and every legitimate command completes.
import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { loadConfig } from "../../src/config.ts";
import { connectNatsAs } from "../../src/connections.ts";
import { eventually } from "../support/wait.ts";
import { succeed, TestAgent, upgradeStatus, wsUrlOf } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";
import {
  type Address,
  addressOf,
  issueDirect,
  rawSocket,
  upgradeThenGarbage,
  upgradeThenReset,
} from "./support/hostile.ts";

const HANDSHAKE_MS = 1_000;
const uncaught: unknown[] = [];
const trap = (err: unknown) => uncaught.push(err);

let g: GatewayTestContext;
let nc: NatsConnection;
let at: Address;
beforeAll(async () => {
  process.on("uncaughtException", trap);
  g = await gatewayTestContext("gw_hostile", {
    gateway: { ...loadConfig().gateway, handshakeTimeoutMs: HANDSHAKE_MS, maxFrameBytes: 8_192 },
  });
  nc = await connectNatsAs(g.ctx.config.nats, "worker");
  at = addressOf(g.gatewayUrl);
});
afterAll(async () => {
  await nc?.close();
  await g?.cleanup();
  process.off("uncaughtException", trap);
});

/** Runs `work` over `items`, `width` at a time. */
async function pool<T>(items: T[], width: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Connects with a valid key and sends `count` frames no agent may send; resolves once closed. */
async function malformedSession(apiKey: string, count: number): Promise<number> {
  const ws = new WebSocket(wsUrlOf(g.gatewayUrl), {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  ws.on("error", () => {});
  const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
  await new Promise<void>((resolve) => {
    ws.once("open", () => resolve());
    ws.once("close", () => resolve());
  });
  let sent = 0;
  const garbage = [
    "{not json",
    Buffer.from([0, 159, 146, 150]),
    '{"type":"no-such-frame"}',
    "[1,2,3]",
    '{"command_id":"x","status":"received","timestamp":"yesterday"}',
    '{"alert":"not an object"}',
    "null",
  ];
  for (let i = 0; i < count && ws.readyState === WebSocket.OPEN; i++, sent++)
    ws.send(garbage[i % garbage.length] as string);
  await closed;
  return sent;
}

describe("a gateway under attack", () => {
  it("stays up, and completes every command of 50 agents while hostile clients reset, stall and send garbage", async () => {
    const agents: (TestAgent & { agentId: string })[] = [];
    await pool(range(50), 8, async (i) => {
      agents.push(await g.agent(`fleet-${i}`, { autoAnswer: succeed }));
    });
    const hostile = await Promise.all(range(8).map((i) => g.enroll(`hostile-${i}`)));

    // Commands flow to the fleet for the whole attack.
    const issued: string[] = [];
    const commandsFlow = pool(range(200), 4, async (i) => {
      const agent = agents[i % agents.length] as TestAgent & { agentId: string };
      issued.push(await issueDirect(g.db, nc, agent.agentId, { pid: 1000 + i }));
    });

    // Upgrades reset while the key is checked: unknown keys and valid ones.
    const resets = pool(range(400), 16, (i) =>
      upgradeThenReset(at, i % 4 ? `mmk_${i}` : (hostile[i % 8]?.apiKey as string)),
    );

    // Over 10,000 malformed frames on authenticated sessions, and invalid WebSocket framing.
    let malformed = 0;
    let sessions = 0;
    const frames = pool(range(4), 4, async (worker) => {
      // Sessions whose upgrade lost to the resets send nothing: more are opened until 10,000 went.
      while (malformed < 10_000 && sessions++ < 1_000)
        malformed += await malformedSession(
          hostile[(worker + sessions) % 8]?.apiKey as string,
          100,
        );
    });
    const framing = pool(range(40), 4, async (i) => {
      // An unmasked frame with a reserved opcode; then a length no frame may have.
      await upgradeThenGarbage(
        at,
        hostile[i % 4]?.apiKey as string,
        i % 2 ? Buffer.from([0x83, 0x01, 0x00]) : Buffer.from([0x81, 0xff, ...Array(8).fill(0xff)]),
      );
      malformed++;
    });

    // Half-open connections: nothing at all, headers dribbled a byte at a time, no hello.
    const started = Date.now();
    const silent = range(40).map(() => rawSocket(at));
    const dribbling = range(10).map(() => {
      const raw = rawSocket(at);
      const timer = setInterval(() => raw.socket.write("X"), 100);
      raw.socket.write("GET /agent/ws HTTP/1.1\r\nX-Slow: ");
      void raw.closed.then(() => clearInterval(timer));
      return raw;
    });
    const halfOpenClosed = Promise.all([...silent, ...dribbling].map((raw) => raw.closed)).then(
      () => Date.now() - started,
    );
    const noHello = await Promise.all(
      range(4).map((i) =>
        TestAgent.connect(g.gatewayUrl, hostile[i]?.apiKey as string, "mute", { hello: false }),
      ),
    );

    await Promise.all([resets, frames, framing, commandsFlow]);
    expect(uncaught).toEqual([]);
    expect(malformed).toBeGreaterThanOrEqual(10_000);
    // Cut by the handshake deadline (checked every half of it), not by the test's patience.
    expect(await halfOpenClosed).toBeLessThan(HANDSHAKE_MS * 5);
    for (const raw of dribbling) expect(raw.received()).toMatch(/^HTTP\/1\.1 408/);
    const noHelloCodes = await Promise.all(noHello.map((a) => a.closed));
    expect(noHelloCodes.map((c) => c.code)).toEqual([4002, 4002, 4002, 4002]);

    await eventually(
      "every fleet command completed",
      async () => {
        const done = await g.db
          .selectFrom("commands")
          .select(sql<number>`count(*)::int`.as("n"))
          .where("id", "in", issued)
          .where("status", "=", "completed")
          .executeTakeFirstOrThrow();
        return done.n === issued.length;
      },
      60_000,
    );
    expect(agents.every((a) => a.isOpen && a.errors().length === 0)).toBe(true);
    expect(uncaught).toEqual([]);

    // Still serving: health, a new enrollment and session, and its command.
    expect((await fetch(`${g.gatewayUrl}/health`)).status).toBe(200);
    const late = await g.agent("late-comer", { autoAnswer: succeed });
    await issueDirect(g.db, nc, late.agentId);
    expect((await late.command("kill-process")).signature).toEqual(expect.any(String));
  }, 120_000);
});

describe("the handshake", () => {
  it("answers health with liveness only, naming neither the machine nor its agents", async () => {
    const res = await fetch(`${g.gatewayUrl}/health`);
    expect(await res.json()).toEqual({ status: "up" });
  });

  it("refuses upgrades beyond the bound of key checks in flight, and serves again once they finish", async () => {
    const quick = await g.ctx.start({
      roles: ["gateway"],
      config: {
        logLevel: "error",
        gateway: { ...g.ctx.config.gateway, maxPendingUpgrades: 3 },
      },
    });
    const url = quick.gatewayUrl as string;
    const { apiKey } = await g.enroll("bounded");
    // Holding a lock the key check needs keeps checks in flight for as long as the test wants.
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const locking = g.db.transaction().execute(async (trx) => {
      await sql`lock table agent_keys in exclusive mode`.execute(trx);
      await held;
    });
    await eventually("the lock", async () => {
      const locks = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'agent_keys' and l.mode = 'ExclusiveLock' and l.granted`.execute(
        g.db,
      );
      return (locks.rows[0]?.n ?? 0) > 0;
    });
    const waiting = range(3).map(() =>
      upgradeStatus(wsUrlOf(url), { authorization: `Bearer ${apiKey}` }),
    );
    await eventually("three key checks in flight", async () => {
      const blocked = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'agent_keys' and not l.granted`.execute(
        g.db,
      );
      return (blocked.rows[0]?.n ?? 0) >= 3;
    });
    expect(await upgradeStatus(wsUrlOf(url), { authorization: `Bearer ${apiKey}` })).toBe(503);
    release();
    await locking;
    expect(await Promise.all(waiting)).toEqual(["open", "open", "open"]);
    expect(await upgradeStatus(wsUrlOf(url), { authorization: `Bearer ${apiKey}` })).toBe("open");
    await quick.close();
  });

  it("still refuses a bad key with 401 and a plain GET with 426", async () => {
    expect(await upgradeStatus(wsUrlOf(g.gatewayUrl), { authorization: "Bearer mmk_nope" })).toBe(
      401,
    );
    expect(await upgradeStatus(wsUrlOf(g.gatewayUrl), {})).toBe(401);
    expect((await fetch(`${g.gatewayUrl}/agent/ws`)).status).toBe(426);
  });
});
