// A scripted agent for gateway tests: a real WebSocket client that enrolls over HTTP, connects with
// its API key and records every frame the gateway sends. It answers commands only when told to
// (or automatically with `autoAnswer`), so each test chooses the exchange it pins down.
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { AGENT_COMMANDS } from "../../../src/domain/model.ts";
import type { Hello } from "../../../src/protocol/messages.ts";

// biome-ignore lint/suspicious/noExplicitAny: frames are checked field by field with expect()
export type Frame = any;

export interface Enrollment {
  agentId: string;
  apiKey: string;
}

export async function enroll(
  gatewayUrl: string,
  token: string,
  hostname: string,
  init: RequestInit = {},
) {
  const res = await fetch(`${gatewayUrl}/api/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, hostname }),
    ...init,
  });
  return { status: res.status, body: (await res.json()) as Frame };
}

export async function enrolled(
  gatewayUrl: string,
  token: string,
  hostname: string,
): Promise<Enrollment> {
  const { status, body } = await enroll(gatewayUrl, token, hostname);
  if (status !== 201) throw new Error(`enrollment failed: ${status} ${JSON.stringify(body)}`);
  return { agentId: body.agent_id, apiKey: body.api_key };
}

export function helloFor(hostname: string, extra: Partial<Hello> = {}): Hello {
  return {
    type: "hello",
    hostname,
    os: { platform: "linux", release: "6.1.0", arch: "x64" },
    ips: ["127.0.0.1", "10.20.30.40"],
    agent_version: "0.1.0",
    fibratus_version: null,
    external_ids: {},
    capabilities: [...AGENT_COMMANDS],
    isolation: { isolated: false },
    rules: [],
    simulation: true,
    ...extra,
  };
}

/** The upgrade's HTTP status when the gateway refuses it (e.g. 401), or "open". */
export async function upgradeStatus(
  wsUrl: string,
  headers: Record<string, string>,
): Promise<number | "open"> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers });
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on("open", () => {
      resolve("open");
      ws.close();
    });
    ws.on("error", (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

export const wsUrlOf = (gatewayUrl: string) => `${gatewayUrl.replace(/^http/, "ws")}/agent/ws`;

export interface ConnectOptions {
  hello?: Partial<Hello> | false;
  /** Ack and complete every command at once, successfully, with this result. */
  autoAnswer?: (
    command: Frame,
  ) => { success: boolean; message: string; details: Record<string, unknown> } | null;
  ca?: Buffer;
}

export class TestAgent {
  readonly frames: Frame[] = [];
  readonly raw: string[] = [];
  closed: Promise<{ code: number; reason: string }>;
  private closedWith: { code: number; reason: string } | null = null;

  private constructor(
    readonly ws: WebSocket,
    readonly hostname: string,
    private readonly options: ConnectOptions,
  ) {
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closedWith = { code, reason: reason.toString() };
        resolve(this.closedWith);
      });
    });
    ws.on("message", (data) => {
      const text = data.toString();
      this.raw.push(text);
      const frame = JSON.parse(text);
      this.frames.push(frame);
      if ("command" in frame && this.options.autoAnswer) {
        const answer = this.options.autoAnswer(frame);
        if (answer) {
          this.ack(frame.id);
          this.complete(frame.id, answer);
        }
      }
    });
    ws.on("error", () => {});
  }

  /** Connects with the key, sends hello (unless told not to) and waits for the welcome. */
  static async connect(
    gatewayUrl: string,
    apiKey: string,
    hostname: string,
    options: ConnectOptions = {},
  ): Promise<TestAgent> {
    const ws = new WebSocket(wsUrlOf(gatewayUrl), {
      headers: { authorization: `Bearer ${apiKey}` },
      ...(options.ca && { ca: options.ca }),
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) =>
        reject(new Error(`upgrade refused: ${res.statusCode}`)),
      );
    });
    const agent = new TestAgent(ws, hostname, options);
    if (options.hello !== false) {
      agent.send(helloFor(hostname, options.hello ?? {}));
      await agent.next((f) => f.type === "welcome");
    }
    return agent;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN && this.closedWith === null;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  ack(commandId: string, timestamp = new Date().toISOString()): void {
    this.send({ command_id: commandId, status: "received", timestamp });
  }

  complete(
    commandId: string,
    outcome: { success: boolean; message: string; details: Record<string, unknown> },
  ): void {
    this.send({
      command_id: commandId,
      status: outcome.success ? "completed" : "failed",
      success: outcome.success,
      message: outcome.message,
      details: outcome.details,
      timestamp: new Date().toISOString(),
    });
  }

  commands(): Frame[] {
    return this.frames.filter((f) => "command" in f);
  }

  errors(): Frame[] {
    return this.frames.filter((f) => f.type === "error");
  }

  /** The first frame (already received or still to come) that matches. */
  async next(match: (frame: Frame) => boolean, timeoutMs = 15_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(
          `${this.hostname}: no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames).slice(-1500)}`,
        );
      await sleep(10);
    }
  }

  async command(name: string, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.command === name, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.closedWith) return;
    this.ws.close(1000, "test done");
    await Promise.race([this.closed, sleep(2_000).then(() => this.ws.terminate())]);
  }
}

/** Answers like the reference agent: the seed's isolate-host result, and plausible others. */
export function succeed(command: Frame) {
  const details: Record<string, Record<string, unknown>> = {
    "isolate-host": { firewall_rules_added: 4, execution_time_ms: 237, isolation_level: "full" },
    "release-host": { firewall_rules_removed: 4, execution_time_ms: 12 },
    "kill-process": { pid: Number(command.details.pid), killed: true },
    "block-ip": { ip: command.details.ip, blocked: true },
    "unblock-ip": { ip: command.details.ip, blocked: false },
  };
  return {
    success: true,
    message: `${command.command} done`,
    details: details[command.command] ?? {},
  };
}
