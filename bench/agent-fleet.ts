// A share of a benchmark's simulated agents (bench/gateway.ts, bench/rollout.ts), in a process of
// its own so that the gateway's CPU and memory are measured alone (the agents' JSON, sockets and
// timers are not the gateway's). Forked by the benchmark (bench/fleets.ts) with an IPC channel;
// each agent behaves as the reference agent does on the wire: hello, a heartbeat every
// heartbeat_interval_ms (first one at a random point of the interval, as a fleet started over time
// would), every command acknowledged then completed, and every update_rules frame checked, applied
// and answered with a rules_status as its simulation mode does (test/gateway/support/rules-fleet.ts).
//
//   parent → fleet  {type: "connect", url, agents: [{agentId, apiKey, hostname}], width}
//                   {type: "close"}
//   fleet → parent  {type: "ready"}                                          loaded, waiting
//                   {type: "connected", ok, failed: [agentId…], ms}
//                   {type: "received", frames: [[commandId, epochMs], …]}   batched, bounded
//                   {type: "rules", reports: [[agentId, epochMs, applied], …]} batched, bounded:
//                                  a rules_status sent, every rule of its frame applied or not
//                   {type: "lost", agentId, code}                          a session the gateway ended
import WebSocket from "ws";
import { AGENT_COMMANDS } from "../src/domain/model.ts";
import type { UpdateRules } from "../src/protocol/messages.ts";
import { helloFor } from "../test/gateway/support/agent.ts";
import { SimulatedRules } from "../test/gateway/support/rules-fleet.ts";
import type { Identity } from "./fleets.ts";
import { answerCommand } from "./support.ts";

type FromParent =
  | { type: "connect"; url: string; agents: Identity[]; width: number }
  | { type: "close" };

/** Receive times go to the parent in batches: one IPC message per flush, never per command. */
const FLUSH_MS = 100;
const MAX_BATCH = 5_000;
/** A connection that gets no welcome in this time counts as failed (the phase has its own bound). */
const WELCOME_TIMEOUT_MS = 30_000;

const send = (message: object) => process.send?.(message);
// Epoch milliseconds with sub-millisecond precision, comparable with the parent's (same clock).
const now = () => performance.timeOrigin + performance.now();

const sockets: WebSocket[] = [];
const timers = new Set<NodeJS.Timeout>();
const received: [string, number][] = [];
const reports: [string, number, boolean][] = [];
let closing = false;

function flush() {
  while (received.length) send({ type: "received", frames: received.splice(0, MAX_BATCH) });
  while (reports.length) send({ type: "rules", reports: reports.splice(0, MAX_BATCH) });
}
const flusher = setInterval(flush, FLUSH_MS);

function connectOne(url: string, agent: Identity): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/agent/ws`, {
      headers: { authorization: `Bearer ${agent.apiKey}` },
    });
    sockets.push(ws);
    let welcomed = false;
    const rules = new SimulatedRules(agent.agentId);
    const deadline = setTimeout(() => {
      ws.terminate();
      resolve(false);
    }, WELCOME_TIMEOUT_MS);
    ws.on("error", () => {
      clearTimeout(deadline);
      resolve(false);
    });
    ws.on("close", (code) => {
      clearTimeout(deadline);
      if (!welcomed) resolve(false);
      else if (!closing) send({ type: "lost", agentId: agent.agentId, code });
    });
    ws.on("open", () =>
      ws.send(
        JSON.stringify(
          helloFor(agent.hostname, {
            agent_version: "bench",
            ips: ["10.0.0.1"],
            capabilities: [...AGENT_COMMANDS, "update_rules"],
          }),
        ),
      ),
    );
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type === "welcome") {
        welcomed = true;
        clearTimeout(deadline);
        rules.trust(frame.command_signing_key);
        const every = frame.heartbeat_interval_ms as number;
        const heartbeat = () => {
          if (ws.readyState === WebSocket.OPEN)
            ws.send(JSON.stringify({ type: "heartbeat", timestamp: new Date().toISOString() }));
        };
        const first = setTimeout(() => {
          timers.delete(first);
          heartbeat();
          const repeat = setInterval(heartbeat, every);
          timers.add(repeat);
        }, Math.random() * every);
        timers.add(first);
        resolve(true);
        return;
      }
      if (frame.operation === "update_rules") {
        void rules.answer(frame as UpdateRules).then((status) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          ws.send(JSON.stringify(status));
          reports.push([agent.agentId, now(), status.rules.every((r) => r.status === "applied")]);
        });
        return;
      }
      if (!("command" in frame)) return;
      received.push([String(frame.id), now()]);
      answerCommand(ws, String(frame.id));
    });
  });
}

process.on("message", async (message: FromParent) => {
  if (message.type === "close") {
    closing = true;
    for (const timer of timers) clearTimeout(timer);
    clearInterval(flusher);
    flush();
    for (const ws of sockets) ws.terminate();
    process.disconnect?.();
    process.exit(0);
  }
  if (message.type !== "connect") return;
  const started = now();
  let next = 0;
  let ok = 0;
  const failed: string[] = [];
  // A bounded number of handshakes at a time, as agents starting over a few minutes would.
  await Promise.all(
    Array.from({ length: message.width }, async () => {
      while (next < message.agents.length) {
        const agent = message.agents[next++] as Identity;
        if (await connectOne(message.url, agent)) ok++;
        else failed.push(agent.agentId);
      }
    }),
  );
  send({ type: "connected", ok, failed, ms: now() - started });
});

// The parent gone (killed, crashed): nothing is left holding sockets.
process.on("disconnect", () => process.exit(0));
// Loaded and listening: the connect phase's clock starts after every fleet's start-up.
send({ type: "ready" });
