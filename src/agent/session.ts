// The management channel: enrollment over HTTP, then one WebSocket to the gateway at a time,
// re-established with exponential backoff and jitter whenever it drops.
import { lookup } from "node:dns/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import WebSocket from "ws";
import type { Logger } from "../log.ts";
import type { AgentMessage, GatewayMessage, Hello } from "../protocol/messages.ts";
import { parseGatewayMessage } from "../protocol/messages.ts";
import { publicSigningKey } from "../protocol/signing.ts";
import { normalizeIp } from "./enforce/firewall.ts";
import type { Endpoint } from "./state.ts";

const WELCOME_TIMEOUT_MS = 10_000;

export interface GatewayAddress {
  enrollUrl: string;
  wsUrl: string;
  host: string;
  port: number;
}

/** `http(s)://host[:port][/prefix]` → the enrollment URL and the agent WebSocket URL. */
export function gatewayAddress(base: string): GatewayAddress {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new Error(
      `--gateway must be a URL such as http://127.0.0.1:8334, got ${JSON.stringify(base)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`--gateway must be an http:// or https:// URL, got ${JSON.stringify(base)}`);
  }
  const prefix = url.pathname.replace(/\/+$/, "");
  const tls = url.protocol === "https:";
  return {
    enrollUrl: `${url.origin}${prefix}/api/enroll`,
    wsUrl: `${tls ? "wss" : "ws"}://${url.host}${prefix}/agent/ws`,
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: Number(url.port) || (tls ? 443 : 80),
  };
}

/**
 * Over plain http the API key and every command cross the network readable and forgeable, so a
 * plain gateway is refused unless the operator asked for it (tests, labs).
 */
export function refusePlainText(gateway: string, insecure: boolean): void {
  if (!insecure && new URL(gatewayAddress(gateway).enrollUrl).protocol === "http:") {
    throw new Error(
      `refusing the plain-text gateway ${gateway}: its API key and commands would cross the network unencrypted; use https:// (with --ca for a private CA), or pass --insecure to allow it`,
    );
  }
}

/** POST /api/enroll {token, hostname} → 201 {agent_id, api_key, command_signing_key?}. */
export async function enroll(
  gateway: string,
  token: string,
  hostname: string,
  ca?: Buffer,
): Promise<{ agent_id: string; api_key: string; command_signing_key?: string }> {
  const url = new URL(gatewayAddress(gateway).enrollUrl);
  const body = JSON.stringify({ token, hostname });
  const { status, text } = await new Promise<{ status: number; text: string }>(
    (resolve, reject) => {
      const send = url.protocol === "https:" ? httpsRequest : httpRequest;
      const request = send(
        url,
        { method: "POST", headers: { "content-type": "application/json" }, ca, timeout: 15_000 },
        (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => {
            text += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
          response.on("error", reject);
        },
      );
      request.on("timeout", () => request.destroy(new Error("enrollment timed out")));
      request.on("error", reject);
      request.end(body);
    },
  );
  let reply: {
    agent_id?: unknown;
    api_key?: unknown;
    command_signing_key?: unknown;
    error?: unknown;
  } = {};
  try {
    reply = JSON.parse(text);
  } catch {
    // reported below with the status
  }
  if (status !== 201 || typeof reply.agent_id !== "string" || typeof reply.api_key !== "string") {
    const reason = typeof reply.error === "string" ? reply.error : text.slice(0, 200);
    throw new Error(`enrollment at ${url.href} refused (HTTP ${status}): ${reason}`);
  }
  const key = reply.command_signing_key;
  if (key !== undefined && key !== null) {
    // Checked now: a key that cannot verify would refuse every command of this enrollment.
    if (typeof key !== "string")
      throw new Error("enrollment reply: command_signing_key is not a string");
    publicSigningKey(key);
  }
  return {
    agent_id: reply.agent_id,
    api_key: reply.api_key,
    ...(typeof key === "string" && { command_signing_key: key }),
  };
}

export interface SessionOptions {
  gateway: string;
  apiKey: string;
  ca?: Buffer;
  /** Overrides the interval the gateway asks for in welcome. */
  heartbeatMs?: number;
  backoff: { initialMs: number; maxMs: number };
  log: Logger;
  hello: () => Promise<Hello>;
  /** Runs before every connection attempt with the gateway's resolved addresses. */
  beforeConnect: (endpoints: Endpoint[]) => Promise<void>;
  /** After welcome: the session is established. */
  onConnected: () => void;
  onDisconnected: () => void;
  onMessage: (message: GatewayMessage) => void;
}

export class Session {
  private readonly address: GatewayAddress;
  private socket: WebSocket | null = null;
  private live: Endpoint | null = null;
  private resolved: Endpoint[] = [];
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly o: SessionOptions) {
    this.address = gatewayAddress(o.gateway);
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const socket = this.socket;
    socket?.close(1000, "agent stopping");
    const closing = setTimeout(() => socket?.terminate(), 2000);
    await this.loop;
    clearTimeout(closing);
  }

  /** The gateway as the firewall must let it through: the live peer and every resolved address. */
  endpoints(): Endpoint[] {
    const all = this.live ? [this.live, ...this.resolved] : this.resolved;
    const key = (e: Endpoint) => `${normalizeIp(e.address)}|${e.port}`;
    return all.filter((e, i) => all.findIndex((other) => key(other) === key(e)) === i);
  }

  /** Sends on the current connection; false when there is none (the caller keeps what it needs). */
  send(message: AgentMessage): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  private async run() {
    let failures = 0;
    while (!this.stopped) {
      const welcomed = await this.connectOnce().catch((error: Error) => {
        this.o.log.warn("connect_failed", { error: error.message });
        return false;
      });
      if (this.stopped) break;
      failures = welcomed ? 0 : failures + 1;
      // The ceiling doubles per failed attempt; the jitter spreads a fleet's reconnections after
      // a gateway restart.
      const ceiling = Math.min(this.o.backoff.maxMs, this.o.backoff.initialMs * 2 ** failures);
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this.o.log.info("reconnecting", { in_ms: delay, failures });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** One connection, from attempt to close; true when it got as far as the welcome. */
  private async connectOnce(): Promise<boolean> {
    const { host, port, wsUrl } = this.address;
    const addresses = await lookup(host, { all: true }).catch(() => []);
    this.resolved = addresses.map(({ address }) => ({ address, port }));
    await this.o.beforeConnect(this.resolved);
    if (this.stopped) return false;

    return new Promise<boolean>((resolve) => {
      const socket = new WebSocket(wsUrl, {
        headers: { Authorization: `Bearer ${this.o.apiKey}` },
        ...(this.o.ca && { ca: this.o.ca }),
        handshakeTimeout: 10_000,
      });
      this.socket = socket;
      let welcomed = false;
      let welcomeTimer: NodeJS.Timeout | undefined;
      let heartbeat: NodeJS.Timeout | undefined;
      let awaitingPong = false;

      socket.on("upgrade", (response) => {
        const { remoteAddress, remotePort } = response.socket;
        if (remoteAddress && remotePort)
          this.live = { address: normalizeIp(remoteAddress), port: remotePort };
      });
      socket.on("open", () => {
        this.o.log.info("connected", { url: wsUrl });
        welcomeTimer = setTimeout(() => {
          this.o.log.warn("no_welcome", { waited_ms: WELCOME_TIMEOUT_MS });
          socket.terminate();
        }, WELCOME_TIMEOUT_MS);
        this.o.hello().then(
          (hello) => this.send(hello),
          (error: Error) => {
            this.o.log.error("hello_failed", { error: error.message });
            socket.terminate();
          },
        );
      });
      socket.on("message", (data) => {
        const parsed = parseGatewayMessage(data.toString());
        if (!parsed.ok) {
          this.o.log.warn("message_rejected", { code: parsed.code, error: parsed.message });
          return;
        }
        const message = parsed.message;
        if ("type" in message && message.type === "welcome") {
          welcomed = true;
          clearTimeout(welcomeTimer);
          // A dead peer is noticed by the unanswered ping at the next heartbeat.
          const interval = this.o.heartbeatMs ?? message.heartbeat_interval_ms;
          heartbeat = setInterval(() => {
            if (socket.readyState !== WebSocket.OPEN) return; // closing: "close" clears this timer
            if (awaitingPong) {
              this.o.log.warn("gateway_silent", { interval_ms: interval });
              socket.terminate();
              return;
            }
            awaitingPong = true;
            socket.ping();
            this.send({ type: "heartbeat", timestamp: new Date().toISOString() });
          }, interval);
          this.o.log.info("welcome", { agent_id: message.agent_id, heartbeat_ms: interval });
          this.o.onConnected();
          return;
        }
        if ("type" in message && message.type === "error") {
          this.o.log.warn("gateway_error", {
            code: message.code,
            error: message.message,
            ref: message.ref,
          });
          return;
        }
        this.o.onMessage(message);
      });
      socket.on("pong", () => {
        awaitingPong = false;
      });
      socket.on("error", (error) => this.o.log.warn("connection_error", { error: error.message }));
      socket.on("close", (code, reason) => {
        clearTimeout(welcomeTimer);
        clearInterval(heartbeat);
        this.socket = null;
        this.live = null;
        this.o.log.info("disconnected", { code, reason: reason.toString() });
        if (welcomed) this.o.onDisconnected();
        resolve(welcomed);
      });
    });
  }
}
