// A minimal gateway at the protocol boundary: POST /api/enroll and the agent WebSocket at
// /agent/ws, recording every frame. Frames are validated with the protocol's own parser, so a
// malformed agent frame fails the test that sent it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { type WebSocket, WebSocketServer } from "ws";
import {
  type AgentMessage,
  type GatewayMessage,
  parseAgentMessage,
} from "../../../src/protocol/messages.ts";

export const ENROLL_TOKEN = "enroll-token-1";
export const AGENT_ID = "agent-1";
export const API_KEY = "api-key-1";

export interface Frame {
  connection: number;
  message: AgentMessage;
}

export class FakeGateway {
  readonly frames: Frame[] = [];
  readonly invalid: string[] = [];
  connections = 0;
  /** Upgrade attempts, including refused ones, with their time. */
  readonly attempts: number[] = [];
  refuseUpgradesWith: number | null = null;
  autoAckAlerts = true;
  heartbeatIntervalMs = 30_000;
  enrollments = 0;
  /** Sent at enrollment as command_signing_key (SPKI PEM); null: an older service's reply. */
  commandSigningKey: string | null = null;
  private socket: WebSocket | null = null;

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  /** With `tls`, the gateway is https/wss (e.g. a self-signed portal certificate). */
  static async start(
    host = "127.0.0.1",
    tls?: { key: Buffer; cert: Buffer },
  ): Promise<FakeGateway> {
    const wss = new WebSocketServer({ noServer: true });
    const server = tls ? createTlsServer(tls) : createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const { port } = server.address() as AddressInfo;
    const gateway = new FakeGateway(
      server,
      wss,
      `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`,
    );
    server.on("request", (request, response) => gateway.enroll(request, response));
    server.on("upgrade", (request, socket, head) =>
      gateway.upgrade(request, socket as Socket, head),
    );
    return gateway;
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  send(message: GatewayMessage | Record<string, unknown>): void {
    if (!this.socket) throw new Error("no agent connected");
    this.socket.send(JSON.stringify(message));
  }

  /** Cuts the connection as a network failure would (no close handshake). */
  drop(): void {
    this.socket?.terminate();
  }

  messages<T extends AgentMessage>(pick: (message: AgentMessage) => message is T): T[] {
    return this.frames.map((frame) => frame.message).filter(pick);
  }

  async waitFor<T extends AgentMessage>(
    pick: (message: AgentMessage) => message is T,
    test: (message: T) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages(pick).find(test);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(`timed out; frames so far: ${JSON.stringify(this.frames).slice(-2000)}`);
      }
      await sleep(10);
    }
  }

  /** The nth (1-based) message of a kind, once it has arrived. */
  async nth<T extends AgentMessage>(
    pick: (message: AgentMessage) => message is T,
    n: number,
  ): Promise<T> {
    await this.waitFor(pick, () => this.messages(pick).length >= n);
    return this.messages(pick)[n - 1] as T;
  }

  async stop(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private enroll(request: IncomingMessage, response: ServerResponse) {
    let body = "";
    request.on("data", (chunk) => {
      body += chunk;
    });
    request.on("end", () => {
      const reply = (status: number, value: unknown) => {
        response.writeHead(status, { "content-type": "application/json" });
        response.end(JSON.stringify(value));
      };
      if (request.method !== "POST" || request.url !== "/api/enroll")
        return reply(404, { error: "not found" });
      const { token, hostname } = JSON.parse(body || "{}") as { token?: string; hostname?: string };
      if (!hostname) return reply(400, { error: "hostname is required" });
      if (token !== ENROLL_TOKEN) return reply(401, { error: "unknown enrollment token" });
      this.enrollments++;
      reply(201, {
        agent_id: AGENT_ID,
        api_key: API_KEY,
        ...(this.commandSigningKey !== null && { command_signing_key: this.commandSigningKey }),
      });
    });
  }

  private upgrade(request: IncomingMessage, socket: Socket, head: Buffer) {
    this.attempts.push(Date.now());
    const status =
      this.refuseUpgradesWith ??
      (request.url !== "/agent/ws"
        ? 404
        : request.headers.authorization !== `Bearer ${API_KEY}`
          ? 401
          : null);
    if (status !== null) {
      socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = ++this.connections;
      this.socket = ws;
      ws.on("message", (data) => {
        const parsed = parseAgentMessage(data.toString());
        if (!parsed.ok) {
          this.invalid.push(`${parsed.code}: ${parsed.message}`);
          return;
        }
        this.frames.push({ connection, message: parsed.message });
        const message = parsed.message;
        if ("type" in message && message.type === "hello") {
          ws.send(
            JSON.stringify({
              type: "welcome",
              agent_id: AGENT_ID,
              heartbeat_interval_ms: this.heartbeatIntervalMs,
            }),
          );
        }
        if ("alert" in message && this.autoAckAlerts && message.seq !== undefined) {
          ws.send(JSON.stringify({ type: "alert_ack", seq: message.seq }));
        }
      });
      ws.on("close", () => {
        if (this.socket === ws) this.socket = null;
      });
    });
  }
}

// Narrowing helpers for waitFor / messages.
export const isHello = (m: AgentMessage): m is Extract<AgentMessage, { type: "hello" }> =>
  "type" in m && m.type === "hello";
export const isHeartbeat = (m: AgentMessage): m is Extract<AgentMessage, { type: "heartbeat" }> =>
  "type" in m && m.type === "heartbeat";
export const isRulesStatus = (
  m: AgentMessage,
): m is Extract<AgentMessage, { type: "rules_status" }> => "type" in m && m.type === "rules_status";
export const isAck = (m: AgentMessage): m is Extract<AgentMessage, { status: "received" }> =>
  "command_id" in m && m.status === "received";
export const isCompletion = (
  m: AgentMessage,
): m is Extract<AgentMessage, { status: "completed" | "failed" }> =>
  "command_id" in m && m.status !== "received";
export const isAlert = (m: AgentMessage): m is Extract<AgentMessage, { alert: unknown }> =>
  "alert" in m;
