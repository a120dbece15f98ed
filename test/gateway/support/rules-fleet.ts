// A light fleet of simulated agents for rule rollouts: real WebSocket sessions that say hello and
// answer update_rules as the reference agent's simulation mode does (its signature check,
// src/agent/trust.ts, and its all-or-nothing rule set bookkeeping, src/agent/enforce/rules.ts:
// nothing written), keeping only what they run, not every frame (a thousand agents receiving the
// whole catalogue several times would otherwise hold gigabytes).
import WebSocket from "ws";
import { applyRuleSet, refuseAll } from "../../../src/agent/enforce/rules.ts";
import { type RulesCheck, rulesCheck } from "../../../src/agent/trust.ts";
import type { RuleStatus, RulesStatus, UpdateRules } from "../../../src/protocol/messages.ts";
import { enrolled, helloFor, wsUrlOf } from "./agent.ts";

/**
 * One agent's rules as the reference agent's simulation mode keeps them: the frames it is sent
 * checked against the welcome's signing key, applied all or nothing, and answered. Also what the
 * rollout benchmark's agents (bench/agent-fleet.ts) run.
 */
export class SimulatedRules {
  /** What the agent runs: rule file name → checksum. */
  readonly rules = new Map<string, { version: number; checksum: string }>();
  /** Frames refused before any rule was looked at (signature, expiry, replay), with the reason. */
  readonly refused: string[] = [];
  /** When set, every rule is refused with this error (a broken agent). */
  failWith: string | null = null;
  private issuedAt: string | undefined;
  private check: RulesCheck | null = null;

  constructor(readonly agentId: string) {}

  /** The welcome's command signing key: rules frames must be signed with it. */
  trust(keyPem: string): void {
    this.check = rulesCheck({ agentId: this.agentId, keyPem, insecure: false });
  }

  /** The rules_status frame that answers an update_rules frame, once it is applied or refused. */
  async answer(message: UpdateRules): Promise<RulesStatus> {
    const refusal = this.check ? this.check(message, this.issuedAt) : "no welcome yet";
    let statuses: RuleStatus[];
    let complete = false;
    if (refusal || this.failWith) {
      if (refusal) this.refused.push(refusal);
      statuses = refuseAll(message, refusal ?? (this.failWith as string));
    } else {
      const current = Object.fromEntries(this.rules);
      const outcome = await applyRuleSet(message, current, null);
      statuses = outcome.statuses;
      if (outcome.rules) {
        this.rules.clear();
        for (const [name, r] of Object.entries(outcome.rules)) this.rules.set(name, r);
        this.issuedAt = message.issued_at;
        complete = message.complete === true;
      }
    }
    return {
      type: "rules_status",
      rules: statuses,
      ...(message.rule_set && { rule_set: message.rule_set }),
      ...(complete && { complete }),
      simulated: true,
    };
  }
}

export class FleetAgent extends SimulatedRules {
  updates = 0;
  /** When set, the agent answers only once this settles (a slow agent). */
  hold: Promise<void> | null = null;
  private ws: WebSocket | null = null;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    readonly gatewayUrl: string,
    agentId: string,
    private readonly apiKey: string,
    readonly hostname: string,
  ) {
    super(agentId);
  }

  async connect(): Promise<void> {
    const ws = new WebSocket(wsUrlOf(this.gatewayUrl), {
      headers: { authorization: `Bearer ${this.apiKey}` },
    });
    this.ws = ws;
    ws.on("error", () => {});
    const welcomed = new Promise<void>((resolve, reject) => {
      ws.once("close", (code) => reject(new Error(`${this.hostname}: closed ${code}`)));
      ws.on("message", (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.type === "welcome") {
          // Heartbeats as a real agent sends them: a session silent for a few beats is ended
          // (a thousand agents take longer to enroll than that).
          if (this.heartbeat) clearInterval(this.heartbeat);
          this.heartbeat = setInterval(() => {
            if (ws.readyState === WebSocket.OPEN)
              ws.send(JSON.stringify({ type: "heartbeat", timestamp: new Date().toISOString() }));
          }, frame.heartbeat_interval_ms);
          this.trust(frame.command_signing_key);
          resolve();
        }
        if (frame.operation === "update_rules") void this.update(frame as UpdateRules);
      });
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const rules = [...this.rules].map(([name, r]) => ({ name, ...r }));
    // It runs no command; rules are what it takes.
    ws.send(JSON.stringify(helloFor(this.hostname, { rules, capabilities: ["update_rules"] })));
    await welcomed;
  }

  private async update(message: UpdateRules): Promise<void> {
    this.updates++;
    if (this.hold) await this.hold;
    this.ws?.send(JSON.stringify(await this.answer(message)));
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once("close", () => resolve());
      ws.close();
    });
  }
}

/** Runs `task` over `items`, `width` at a time. */
export async function inPool<T>(items: T[], width: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

/** Enrolls `count` agents on one token (whose group they join) and connects them. */
export async function fleet(
  gatewayUrl: string,
  token: string,
  prefix: string,
  count: number,
): Promise<FleetAgent[]> {
  const agents: FleetAgent[] = [];
  await inPool(
    Array.from({ length: count }, (_, i) => `${prefix}-${i}`),
    32,
    async (hostname) => {
      const e = await enrolled(gatewayUrl, token, hostname);
      const agent = new FleetAgent(gatewayUrl, e.agentId, e.apiKey, hostname);
      await agent.connect();
      agents.push(agent);
    },
  );
  return agents;
}
