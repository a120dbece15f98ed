// Issue 9: one agent's flood costs only its own session. Inbound frames pass a token bucket, frames
// waiting to be handled are bounded, and a session that does not read is sent no more commands
// than its socket bound holds: the rest wait in PostgreSQL and none is lost.
import type { NatsConnection } from "@nats-io/transport-node";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { connectNatsAs } from "../../src/connections.ts";
import { fixture } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, succeed, TestAgent } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";
import { issueDirect } from "./support/hostile.ts";

let g: GatewayTestContext;
let nc: NatsConnection;
beforeAll(async () => {
  g = await gatewayTestContext("gw_floods", {
    gateway: {
      ...loadConfig().gateway,
      framesPerSecond: 5,
      frameBurst: 20,
      maxQueuedFrames: 3,
      maxBadFrames: 5,
      maxBufferedBytes: 65_536,
    },
  });
  nc = await connectNatsAs(g.ctx.config.nats, "worker");
});
afterAll(async () => {
  await nc?.close();
  await g?.cleanup();
});

const heartbeat = () => ({ type: "heartbeat", timestamp: new Date().toISOString() });

describe("inbound floods", () => {
  it("answers frames beyond the rate with rate_limited and closes only the flooding session", async () => {
    const neighbour = await g.agent("calm", { autoAnswer: succeed });
    const flooder = await g.agent("flooder");
    for (let i = 0; i < 40; i++) flooder.send(heartbeat());
    const closed = await flooder.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/too many invalid frames/);
    expect(flooder.errors().map((e: Frame) => e.code)).toContain("rate_limited");

    expect(neighbour.isOpen).toBe(true);
    const id = await issueDirect(g.db, nc, neighbour.agentId);
    expect((await neighbour.command("kill-process")).id).toBe(id);
    expect(neighbour.errors()).toEqual([]);
  });

  it("refuses alerts beyond the bound of those waiting to be stored, naming each by its seq", async () => {
    const agent = await g.agent("alerting");
    const seed = fixture<Frame>("agent-protocol/agent-alert.json");
    for (let seq = 0; seq < 6; seq++) agent.send({ ...seed, seq });
    await eventually("the refusals", () => agent.errors().length === 3);
    expect(agent.errors()).toEqual(
      [3, 4, 5].map((seq) => expect.objectContaining({ code: "rate_limited", ref: String(seq) })),
    );
    await eventually("the three stored alerts acknowledged", () =>
      [0, 1, 2].every((seq) =>
        agent.frames.some((f: Frame) => f.type === "alert_ack" && f.seq === seq),
      ),
    );
    expect(agent.isOpen).toBe(true);
  });
});

describe("a session that does not read", () => {
  it("claims no more commands while its socket holds more than the bound, and sends them all once it reads", async () => {
    // A gateway of its own: answering 100 commands at once is more than this file's flood limits.
    const roomy = await g.ctx.start({
      roles: ["gateway"],
      config: { gateway: { ...loadConfig().gateway, maxBufferedBytes: 65_536 } },
    });
    const url = roomy.gatewayUrl as string;
    const connect = async (hostname: string) => {
      const { agentId, apiKey } = await g.enroll(hostname);
      return Object.assign(
        await TestAgent.connect(url, apiKey, hostname, { autoAnswer: succeed }),
        {
          agentId,
        },
      );
    };
    const slow = await connect("slow-reader");
    const neighbour = await connect("marker");
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const big = "x".repeat(100_000);
    const ids: string[] = [];
    for (let i = 0; i < 100; i++)
      ids.push(await issueDirect(g.db, nc, slow.agentId, { pid: 1 + i, pad: big }));
    // Notices are handled in order: two marker round trips after the last one, every notice of
    // the slow agent has been acted on.
    for (let i = 0; i < 2; i++) {
      const marker = await issueDirect(g.db, nc, neighbour.agentId);
      await neighbour.next((f: Frame) => f.id === marker);
    }
    const byStatus = await g.db
      .selectFrom("commands")
      .select(["status", sql<number>`count(*)::int`.as("n")])
      .where("id", "in", ids)
      .groupBy("status")
      .execute();
    const pending = byStatus.find((r) => r.status === "pending")?.n ?? 0;
    expect(pending).toBeGreaterThan(0);

    socket.resume();
    await eventually(
      "every command of the slow reader completed",
      async () => {
        const done = await g.db
          .selectFrom("commands")
          .select(sql<number>`count(*)::int`.as("n"))
          .where("id", "in", ids)
          .where("status", "=", "completed")
          .executeTakeFirstOrThrow();
        return done.n === ids.length;
      },
      60_000,
    );
    expect(new Set(slow.commands().map((c: Frame) => c.id))).toEqual(new Set(ids));
    await slow.close();
    await neighbour.close();
    await roomy.close();
  }, 90_000);
});
