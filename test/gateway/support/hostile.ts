// Clients that misbehave below the WebSocket library: raw TCP sockets that reset, stall, dribble
// headers or write bytes no WebSocket client would, so gateway tests can aim at each layer.
import { randomBytes } from "node:crypto";
import net from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";
import { commandSubject, encode } from "../../../src/gateway/subjects.ts";
import { issueCommand } from "../../../src/store/commands.ts";
import type { Db } from "../../../src/store/db.ts";

export interface Address {
  host: string;
  port: number;
}

export const addressOf = (gatewayUrl: string): Address => {
  const url = new URL(gatewayUrl);
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port) };
};

export const upgradeRequest = (bearer: string) =>
  [
    "GET /agent/ws HTTP/1.1",
    "Host: gateway",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
    "Sec-WebSocket-Version: 13",
    `Authorization: Bearer ${bearer}`,
    "",
    "",
  ].join("\r\n");

/** A raw connection whose end (either side's) and received bytes are recorded. */
export function rawSocket(at: Address) {
  const socket = net.connect(at.port, at.host);
  let received = "";
  socket.on("data", (d) => {
    received += d.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, connected, closed, received: () => received };
}

/** Sends an upgrade with this bearer and resets the connection as soon as it is written. */
export async function upgradeThenReset(at: Address, bearer: string): Promise<void> {
  const { socket, connected, closed } = rawSocket(at);
  await connected;
  socket.write(upgradeRequest(bearer), () => socket.resetAndDestroy());
  await closed;
}

/** Completes an upgrade with a valid key, then writes bytes that are no valid WebSocket frame. */
export async function upgradeThenGarbage(at: Address, apiKey: string, garbage: Buffer) {
  const raw = rawSocket(at);
  await raw.connected;
  raw.socket.write(upgradeRequest(apiKey));
  const deadline = Date.now() + 10_000;
  while (!raw.received().includes("\r\n\r\n") && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 5));
  if (raw.received().startsWith("HTTP/1.1 101")) raw.socket.write(garbage);
  await raw.closed;
  return raw.received().split("\r\n")[0];
}

/**
 * Issues a command the way the agent-command activity does (stored, then a NATS notice), without
 * a workflow: tests that need many commands measure the gateway, not Temporal.
 */
export async function issueDirect(
  db: Db,
  nc: NatsConnection,
  agentId: string,
  details: Record<string, unknown> = { pid: 4242 },
): Promise<string> {
  const id = `test/${randomBytes(6).toString("hex")}`;
  await issueCommand(db, {
    id,
    agentId,
    command: "kill-process",
    priority: "high",
    details,
    origin: "operator",
    requestedBy: "operator:test",
    workflowId: null,
    ttlMs: 120_000,
    taskToken: null,
  });
  nc.publish(commandSubject(agentId), encode({ ids: [id] }));
  return id;
}
