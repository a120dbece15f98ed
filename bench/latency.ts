// Alert → agent command latency through the whole product (NATS intake, Temporal workflows, the
// agent gateway, a simulated agent's WebSocket), beside a raw relay measured in the same run: the
// same alert published to JetStream, consumed by a relay with no Temporal and no database that
// sends a command frame to the same simulated agent over its own WebSocket.
//   npm run bench:latency -- [--temporal dev|server] [seconds per rate=6]   (the stack must be up)
// Rates: 10 and 50 alerts/s, then higher ones; the highest sustainable is the highest whose p99
// stays under 1 s (beyond it the queue grows). Each alert goes to one of HOSTS hosts, each with
// its own simulated agent; its first command frame (kill-process of close_conn) is the end.
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import WebSocket, { WebSocketServer } from "ws";
import { connectNatsAs } from "../src/connections.ts";
import { startService } from "../src/service.ts";
import { createDb } from "../src/store/db.ts";
import { createEnrollmentToken } from "../src/store/enrollment-tokens.ts";
import { helloFor } from "../test/gateway/support/agent.ts";
import { wazuhAlert } from "../test/support/fixtures.ts";
import { connectPublisher } from "../test/support/nats.ts";
import { createScratch } from "../test/support/scratch.ts";
import {
  answerCommand,
  checkTemporalMode,
  cpuMeter,
  latencySummary,
  numberArg,
  report,
  round,
  stackPids,
  temporalModeFromArgs,
  until,
} from "./support.ts";

const mode = temporalModeFromArgs();
const SECONDS = numberArg(0, 6);
const RATES = [10, 50, 100, 200];
const HOSTS = 200;
const SUSTAINABLE_P99_MS = 1_000;
const QUIET_MS = 30_000;
const tag = randomBytes(3).toString("hex");

const scratch = await createScratch("bench_latency", { logLevel: "error" });
const { config } = scratch;
const temporalLabel = await checkTemporalMode(config, mode);
const service = await startService(config, ["api", "worker", "ingest", "gateway"], {});
const gatewayUrl = service.gatewayUrl as string;
const db = createDb(config.databaseUrl, 4);
const nc = await connectPublisher();
const ingest = await connectNatsAs(config.nats, "ingest", { reconnect: false });
const js = jetstream(nc);
const jsm = await jetstreamManager(ingest);
const processes = {
  service: [process.pid],
  ...stackPids(mode),
};

// --- the fleet: one simulated agent per host, on the gateway and on the raw relay ---------------
const hostname = (i: number) => `lat-${tag}-${i}`;
const token = await createEnrollmentToken(db, {
  group: "bench",
  description: null,
  maxUses: HOSTS,
  expiresInMs: 3_600_000,
  createdBy: "bench",
});
/** Alert id → when its first command frame reached the agent, per path. */
const arrived = { product: new Map<string, number>(), raw: new Map<string, number>() };
const sentAt = new Map<string, number>();

async function agentOnGateway(host: string) {
  const res = await fetch(`${gatewayUrl}/api/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: token.token, hostname: host }),
  });
  const body = (await res.json()) as { api_key: string };
  if (res.status !== 201) throw new Error(`enrollment: ${res.status} ${JSON.stringify(body)}`);
  const ws = new WebSocket(`${gatewayUrl.replace(/^http/, "ws")}/agent/ws`, {
    headers: { authorization: `Bearer ${body.api_key}` },
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject);
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === "welcome") return resolve();
      if (!("command" in frame)) return;
      // The command id names the alert (mitigation/<host>/<alert key>/…); the key starts with its id.
      const alertId = /\/(alert-[^/]+)\//.exec(String(frame.id))?.[1];
      if (alertId && !arrived.product.has(alertId)) arrived.product.set(alertId, performance.now());
      answerCommand(ws, String(frame.id));
    });
    ws.once("open", () => ws.send(JSON.stringify(helloFor(host, { agent_version: "bench" }))));
  });
  return ws;
}

// The raw relay: JetStream consumer → the host's socket, nothing else.
const relayServer = new WebSocketServer({ host: "127.0.0.1", port: 0 });
await new Promise<void>((r) => relayServer.once("listening", () => r()));
const relaySockets = new Map<string, WebSocket>();
relayServer.on("connection", (ws, req) => {
  relaySockets.set(new URL(req.url ?? "/", "http://x").searchParams.get("host") ?? "", ws);
});
const relayUrl = `ws://127.0.0.1:${(relayServer.address() as AddressInfo).port}/`;
async function agentOnRelay(host: string) {
  const ws = new WebSocket(`${relayUrl}?host=${host}`);
  ws.on("message", (data) => {
    const frame = JSON.parse(data.toString());
    if (!arrived.raw.has(frame.alert)) arrived.raw.set(frame.alert, performance.now());
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
}

const sockets: WebSocket[] = [];
for (let i = 0; i < HOSTS; i += 20)
  sockets.push(
    ...(await Promise.all(
      Array.from({ length: Math.min(20, HOSTS - i) }, (_, k) => agentOnGateway(hostname(i + k))),
    )),
  );
await Promise.all(Array.from({ length: HOSTS }, (_, i) => agentOnRelay(hostname(i))));
await until(() => relaySockets.size === HOSTS, 30_000, "the relay's sockets");

const rawStream = `LATRAW_${tag}`;
const rawSubject = `${config.nats.alertSubject}.latraw_${tag}`;
await jsm.streams.add({ name: rawStream, subjects: [rawSubject] });
await jsm.consumers.add(rawStream, { durable_name: "relay", ack_policy: AckPolicy.Explicit });
const relayMessages = await (await jetstream(ingest).consumers.get(rawStream, "relay")).consume();
void (async () => {
  for await (const m of relayMessages) {
    const alert = m.json<{ id: string; agent: { name: string } }>();
    relaySockets
      .get(alert.agent.name)
      ?.send(JSON.stringify({ command: "kill-process", id: `raw/${alert.id}`, alert: alert.id }));
    m.ack();
  }
})();

// --- the runs -------------------------------------------------------------------------------------
let sequence = 0;
function alertFor(i: number) {
  const id = `alert-${tag}-${sequence++}`;
  return wazuhAlert("100002-ncat-connection", hostname(i % HOSTS), id);
}

/** Publishes `rate` alerts/s for SECONDS to `subject`; returns the alert ids sent. */
async function paced(rate: number, subject: string): Promise<string[]> {
  const ids: string[] = [];
  const total = rate * SECONDS;
  const started = performance.now();
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const alert = alertFor(n);
    ids.push(alert.id);
    sentAt.set(alert.id, performance.now());
    void js.publish(subject, JSON.stringify(alert));
  }
  return ids;
}

const latencies = (ids: string[], path: Map<string, number>) =>
  ids.map((id) => (path.get(id) ?? Number.NaN) - (sentAt.get(id) ?? 0));

/**
 * Until every alert's command arrived, or none arrived for QUIET_MS: an alert whose conditions do
 * not hold gets no command at all, and must not stall the benchmark.
 */
async function settled(ids: string[]) {
  let count = -1;
  let lastChange = Date.now();
  await until(
    () => {
      const now = ids.filter((id) => arrived.product.has(id)).length;
      if (now !== count) [count, lastChange] = [now, Date.now()];
      return now === ids.length || Date.now() - lastChange > QUIET_MS;
    },
    600_000,
    "commands",
  );
}

const rows: Record<string, unknown>[] = [];
let sustainable = 0;
for (const rate of RATES) {
  console.error(`rate ${rate}/s: raw relay`);
  const rawIds = await paced(rate, rawSubject);
  await until(() => rawIds.every((id) => arrived.raw.has(id)), 60_000, "the raw relay");
  const raw = latencySummary(latencies(rawIds, arrived.raw));

  console.error(`rate ${rate}/s: through the product`);
  const meter = cpuMeter(processes);
  const ids = await paced(rate, config.nats.alertSubject);
  await settled(ids);
  const missing = ids.filter((id) => !arrived.product.has(id)).length;
  const product = latencySummary(latencies(ids, arrived.product).filter(Number.isFinite));
  rows.push({
    rate,
    alerts: ids.length,
    // No command: the engine decided none (a condition failed closed, e.g. a check over its budget).
    noCommand: missing,
    product,
    raw,
    ratioP50: round(product.p50 / raw.p50, 0),
    cpuSeconds: meter(),
  });
  if (product.p99 <= SUSTAINABLE_P99_MS && missing === 0) sustainable = rate;
  else break; // the queue grows: higher rates only wait longer
}

report(`Alert → agent command latency (ms), Temporal ${mode}`, rows, {
  temporal: temporalLabel,
  highestSustainableRate: sustainable,
  sustainableMeans: `p99 ≤ ${SUSTAINABLE_P99_MS} ms`,
  target: "p50 ≤ 150 ms, p99 ≤ 500 ms at 50 alerts/s",
});

await relayMessages.close();
for (const ws of sockets) ws.close();
for (const ws of relaySockets.values()) ws.close();
relayServer.close();
await jsm.streams.delete(rawStream);
await nc.close();
await ingest.close();
await db.destroy();
await service.close();
await scratch.drop();
process.exit(0);
