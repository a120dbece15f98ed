// Command delivery through one agent gateway with 1,000 connected agents.
//   npx tsx bench/gateway.ts [agents=1000] [commands=20000]     (the stack must be up)
//   MM_PG_POOL_SIZE=40 npx tsx bench/gateway.ts                  (the gateway's PostgreSQL pool)
//
// The gateway runs as its own process (`mm gateway`); the simulated agents are WebSocket clients
// in this process that acknowledge and complete every command at once. Commands are issued the
// way the agent-command activity issues them (stored in PostgreSQL, then a NATS notice), so the
// figures are the gateway's: Temporal is measured separately at the end, through real workflows.
//   ack round trip   command stored → NATS → gateway claims it → agent → ack recorded (PostgreSQL clock)
//   delivery         issue call starts → the command frame reaches the agent (this process's clock)
//   commands/s       a burst: every command claimed, sent, acknowledged and its completion recorded
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { createInterface } from "node:readline";
import { connect } from "@nats-io/transport-node";
import { Client, Connection } from "@temporalio/client";
import { sql } from "kysely";
import WebSocket from "ws";
import { commandSubject, encode } from "../src/gateway/subjects.ts";
import { issueCommand } from "../src/store/commands.ts";
import { createDb } from "../src/store/db.ts";
import { createEnrollmentToken } from "../src/store/enrollment-tokens.ts";
import { agentCommandWorkflow } from "../src/workflows/agent-command.ts";
import { helloFor } from "../test/gateway/support/agent.ts";
import { createScratch } from "../test/support/scratch.ts";
import { answerCommand } from "./support.ts";

const AGENTS = Number(process.argv[2] ?? 1000);
const COMMANDS = Number(process.argv[3] ?? 20_000);
const PACED = AGENTS; // one command per agent, spread over a few seconds
const PACED_RATE = 200; // commands/s, well under capacity: latency without queueing
const WORKFLOWS = 500;
const tag = randomBytes(3).toString("hex");

const scratch = await createScratch("bench_gateway", { logLevel: "error", loadDefaults: false });
const { config } = scratch;
const root = path.resolve(import.meta.dirname, "..");
const children: ChildProcess[] = [];

/** A service role as its own process, e.g. `mm gateway`; resolves with its "listening" log line. */
async function startRole(role: string, ready: string): Promise<Record<string, string>> {
  const child = spawn(path.join(root, "bin/mm"), [role], {
    env: {
      ...process.env,
      DATABASE_URL: config.databaseUrl,
      MM_GATEWAY_PORT: "0",
      MM_API_PORT: "0",
      MM_TASK_QUEUE: config.temporal.taskQueue,
      MM_LOAD_DEFAULTS: "false",
      MM_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`mm ${role} exited with ${code}`)));
    lines.on("line", (line) => {
      if (line.includes(ready)) resolve(JSON.parse(line));
    });
  });
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
  );
};
const summary = (values: number[]) =>
  `p50 ${percentile(values, 50).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms, max ${Math.max(...values).toFixed(1)} ms`;

async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

async function until(probe: () => Promise<boolean>, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("benchmark timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

// --- the gateway and the fleet --------------------------------------------------------------------
const db = createDb(config.databaseUrl, 16);
const nc = await connect({ servers: config.nats.url });
const gateway = await startRole("gateway", '"agent gateway listening"');
const gatewayUrl = gateway.url as string;
console.log(`gateway: one mm gateway process, PostgreSQL pool of ${config.databasePoolSize}`);
const token = await createEnrollmentToken(db, {
  group: "bench",
  description: null,
  maxUses: AGENTS,
  expiresInMs: 3_600_000,
  createdBy: "bench",
});

let t = performance.now();
const identities: { agentId: string; apiKey: string; hostname: string }[] = [];
await pool(
  Array.from({ length: AGENTS }, (_, i) => `bench-${tag}-${i}`),
  32,
  async (hostname) => {
    const res = await fetch(`${gatewayUrl}/api/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: token.token, hostname }),
    });
    const body = (await res.json()) as { agent_id: string; api_key: string };
    if (res.status !== 201) throw new Error(`enrollment: ${res.status} ${JSON.stringify(body)}`);
    identities.push({ agentId: body.agent_id, apiKey: body.api_key, hostname });
  },
);
const enrollMs = performance.now() - t;

const received = new Map<string, number>(); // command id → when its frame arrived here
const sockets: WebSocket[] = [];
const timers: NodeJS.Timeout[] = [];
t = performance.now();
await pool(identities, 50, async ({ apiKey, hostname }) => {
  const ws = new WebSocket(`${gatewayUrl.replace(/^http/, "ws")}/agent/ws`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  sockets.push(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject);
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === "welcome") {
        // Heartbeats as the reference agent sends them, spread over the interval.
        const every = frame.heartbeat_interval_ms as number;
        setTimeout(() => {
          timers.push(
            setInterval(
              () =>
                ws.send(JSON.stringify({ type: "heartbeat", timestamp: new Date().toISOString() })),
              every,
            ),
          );
        }, Math.random() * every);
        resolve();
        return;
      }
      if (!("command" in frame)) return;
      received.set(frame.id, performance.now());
      answerCommand(ws, String(frame.id));
    });
    ws.once("open", () =>
      ws.send(JSON.stringify(helloFor(hostname, { agent_version: "bench", ips: ["10.0.0.1"] }))),
    );
  });
});
const connectMs = performance.now() - t;
console.log(
  `fleet: ${AGENTS} agents enrolled in ${(enrollMs / 1000).toFixed(1)} s (${((AGENTS / enrollMs) * 1000).toFixed(0)}/s), ` +
    `connected (hello → welcome) in ${(connectMs / 1000).toFixed(1)} s`,
);

// --- issuing, as the agent-command activity does ----------------------------------------------------
const issuedAt = new Map<string, number>();
async function issue(agentId: string, n: number) {
  const id = `bench/${tag}/${n}`;
  issuedAt.set(id, performance.now());
  await issueCommand(db, {
    id,
    agentId,
    command: "kill-process",
    priority: "high",
    details: { pid: 1000 + n },
    origin: "operator",
    requestedBy: "operator:bench",
    workflowId: null,
    ttlMs: 300_000,
    taskToken: null,
  });
  nc.publish(commandSubject(agentId), encode({ ids: [id] }));
  return id;
}

const completedCount = async (ids: string[]) =>
  Number(
    (
      await db
        .selectFrom("commands")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .where("id", "in", ids)
        .where("status", "=", "completed")
        .executeTakeFirstOrThrow()
    ).n,
  );

async function timings(ids: string[]) {
  const rows = await db
    .selectFrom("commands")
    .select([
      "id",
      sql<number>`extract(epoch from acknowledged_at - created_at) * 1000`.as("ack_ms"),
    ])
    .where("id", "in", ids)
    .execute();
  return {
    ack: rows.map((r) => Number(r.ack_ms)),
    delivery: ids.map((id) => (received.get(id) ?? Number.NaN) - (issuedAt.get(id) ?? 0)),
  };
}

// Paced: one command per agent at a steady rate.
const paced: string[] = [];
t = performance.now();
for (let i = 0; i < PACED; i++) {
  const agent = identities[i % identities.length] as (typeof identities)[0];
  paced.push(await issue(agent.agentId, i));
  const due = t + ((i + 1) / PACED_RATE) * 1000;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
await until(async () => (await completedCount(paced)) === paced.length);
const light = await timings(paced);
console.log(`paced: ${PACED} commands at ${PACED_RATE}/s, one per agent`);
console.log(`  ack round trip   ${summary(light.ack)}`);
console.log(`  delivery         ${summary(light.delivery)}`);

// Burst: the gateway's own rate. Issuing from this one process (a transaction per command, while
// it also plays 1,000 agents) tops out below what the gateway takes, so the burst's commands are
// stored up front, as many workers would have issued them, and then all notified at once.
const burst = Array.from({ length: COMMANDS }, (_, i) => `bench/${tag}/burst/${i}`);
for (let i = 0; i < COMMANDS; i += 1_000) {
  await db
    .insertInto("commands")
    .values(
      burst.slice(i, i + 1_000).map((id, k) => ({
        id,
        agent_id: (identities[(i + k) % identities.length] as (typeof identities)[0]).agentId,
        command: "kill-process",
        priority: "high" as const,
        details: JSON.stringify({ pid: i + k + 1 }),
        status: "pending" as const,
        origin: "operator" as const,
        requested_by: "operator:bench",
        expires_at: sql<Date>`now() + interval '10 minutes'`,
      })),
    )
    .execute();
}
const publishedAt = Date.now();
t = performance.now();
for (const [i, id] of burst.entries()) {
  issuedAt.set(id, t);
  nc.publish(
    commandSubject((identities[i % identities.length] as (typeof identities)[0]).agentId),
    encode({ ids: [id] }),
  );
}
await until(async () => (await completedCount(burst)) === burst.length);
const wallMs = performance.now() - t;
// Same machine, so PostgreSQL's clock and this process's agree to well under a millisecond.
const since = await db
  .selectFrom("commands")
  .select([
    sql<number>`extract(epoch from acknowledged_at) * 1000 - ${publishedAt}`.as("ack_ms"),
    sql<number>`extract(epoch from completed_at) * 1000 - ${publishedAt}`.as("done_ms"),
  ])
  .where("id", "in", burst)
  .execute();
console.log(
  `burst: ${COMMANDS} commands to ${AGENTS} agents (${COMMANDS / AGENTS} each), all notified at once`,
);
console.log(
  `  commands/s       ${((COMMANDS / wallMs) * 1000).toFixed(0)} (last completion recorded after ${(wallMs / 1000).toFixed(1)} s)`,
);
console.log(`  ack recorded     ${summary(since.map((r) => Number(r.ack_ms)))} after the notice`);
console.log(
  `  delivery         ${summary(burst.map((id) => (received.get(id) ?? Number.NaN) - t))} after the notice`,
);

// --- through Temporal: operator command workflows, asynchronously completed by the gateway ---------
await startRole("worker", '"worker polling"');
const connection = await Connection.connect({ address: config.temporal.address });
const temporal = new Client({ connection, namespace: config.temporal.namespace });
t = performance.now();
const results: number[] = [];
await pool(
  Array.from({ length: WORKFLOWS }, (_, i) => i),
  32,
  async (i) => {
    const agent = identities[i % identities.length] as (typeof identities)[0];
    const started = performance.now();
    const result = await temporal.workflow.execute(agentCommandWorkflow, {
      workflowId: `bench/${tag}/wf/${i}`,
      taskQueue: config.temporal.taskQueue,
      args: [
        {
          agentId: agent.agentId,
          command: "kill-process",
          details: { pid: i + 1 },
          priority: "high",
          commandId: `bench/${tag}/wf/${i}`,
          requestedBy: "operator:bench",
          ttlMs: 300_000,
        },
      ],
    });
    if (!result.success) throw new Error(result.message);
    results.push(performance.now() - started);
  },
);
const workflowMs = performance.now() - t;
console.log(`temporal: ${WORKFLOWS} agentCommandWorkflow runs, 32 at a time`);
console.log(`  workflows/s      ${((WORKFLOWS / workflowMs) * 1000).toFixed(0)}`);
console.log(`  workflow start → result  ${summary(results)}`);

for (const timer of timers) clearInterval(timer);
for (const ws of sockets) ws.terminate();
await connection.close();
for (const child of children) child.kill("SIGTERM");
await Promise.all(
  children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once("exit", r)))),
);
await nc.close();
await db.destroy();
await scratch.drop();
process.exit(0);
