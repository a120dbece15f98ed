// One agent gateway (`mm gateway`, its own process) under fleets of simulated agents.
//   npm run bench:gateway -- [--agents 1000,5000,10000,20000] [--burst 20000] [--paced 1000]
//       [--rate 200] [--idle 30] [--fleets 4] [--timeout 300] [--cpu-prof] [--temporal [dev|server]]
//   MM_PG_POOL_SIZE=40 npm run bench:gateway                 (the gateway's PostgreSQL pool)
//
// For each fleet size a fresh gateway is started; the agents run in `--fleets` processes of their
// own (bench/agent-fleet.ts) so the gateway's resident memory and CPU (/proc/<pid>) are its own.
// Each agent says hello, heartbeats every 30 s (the gateway's interval) and acknowledges and
// completes every command at once. Commands are issued the way the agent-command activity issues
// them (stored in PostgreSQL, then a NATS notice), so the figures are the gateway's.
//   connect     enrolled agents open their WebSocket and say hello, 128 handshakes at a time
//   idle        `--idle` seconds of heartbeats only: resident memory and CPU of a connected fleet
//   paced       `--paced` commands at `--rate`/s, to agents spread over the fleet:
//               ack = command stored → ack recorded (PostgreSQL's clock: NATS, claim, agent, ack)
//   burst       `--burst` commands stored up front, then every notice published at once:
//               commands/s until the last completion is recorded; ack = frame at the agent → ack
//               recorded (what mm_gateway_ack_seconds measures, less the loopback hop), and from
//               the claim (delivered_at) → ack recorded: the round trip the delivery window keeps
//               short while the rest of the burst waits in PostgreSQL;
//               queued = notice → ack recorded (includes waiting behind the rest of the burst);
//               probe = a `--rate`/10 trickle of commands issued during the burst, stored → ack
//               (what a new mitigation command meets while the gateway is busy)
// `--temporal` adds agent-command workflows through Temporal (needs a worker: measured elsewhere).
// Every phase is bounded by `--timeout` seconds; everything is on loopback.
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { sql } from "kysely";
import { connectNatsAs, temporalConnection } from "../src/connections.ts";
import { commandSubject, encode } from "../src/gateway/subjects.ts";
import { issueCommand } from "../src/store/commands.ts";
import { createDb, migrate } from "../src/store/db.ts";
import { agentCommandWorkflow } from "../src/workflows/agent-command.ts";
import { createScratch } from "../test/support/scratch.ts";
import {
  connectFleets,
  enrollAgents,
  enrollmentTokens,
  type Fleet,
  type FleetMessage,
  fleetsLoaded,
  type Identity,
  pool,
  rssSampler,
  sleep,
  startFleet,
  startRole,
  stopFleet,
} from "./fleets.ts";
import {
  checkTemporalMode,
  cpuMeter,
  cpuSeconds,
  latencySummary,
  optionArg,
  positiveIntArg,
  report,
  residentMiB,
  round,
  sizesArg,
  stackPids,
  type TemporalMode,
  until,
} from "./support.ts";

// --- arguments ---------------------------------------------------------------------------------
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const SIZES = sizesArg("agents", "1000");
const BURST = positiveIntArg("burst", 20_000);
const PACED = positiveIntArg("paced", 1_000);
const RATE = positiveIntArg("rate", 200);
const IDLE_MS = positiveIntArg("idle", 30) * 1_000;
const FLEETS = positiveIntArg("fleets", 4);
const PHASE_MS = positiveIntArg("timeout", 300) * 1_000;
const CPU_PROFILE = flag("cpu-prof");
const PROBE_RATE = Math.max(1, Math.round(RATE / 10));
let temporalMode: TemporalMode | null = null;
if (flag("temporal")) {
  temporalMode = optionArg("temporal", "dev") === "server" ? "server" : "dev";
  // The full server's address is the dev server's + 100 (bench/support.ts), set before config.
  if (temporalMode === "server" && !process.env.MM_BENCH_KEEP_ADDRESS) {
    const address = process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233";
    const at = address.lastIndexOf(":");
    process.env.TEMPORAL_ADDRESS = `${address.slice(0, at)}:${Number(address.slice(at + 1)) + 100}`;
  }
}

const tag = randomBytes(3).toString("hex");
const scratch = await createScratch("bench_gateway", { logLevel: "error", loadDefaults: false });
const { config } = scratch;
const profiles = path.resolve(process.env.MM_DATA_DIR ?? ".data", "artifacts", "bench-gateway");

/** Receive times reported by the fleets, by command id (epoch ms). */
const received = new Map<string, number>();
const lost: { agentId: string; code: number }[] = [];
const fromFleet = (m: FleetMessage) => {
  if (m.type === "received")
    for (const [id, at] of m.frames as [string, number][]) received.set(id, at);
  else if (m.type === "lost") lost.push(m as unknown as { agentId: string; code: number });
};

/**
 * CPU seconds of the gateway over a phase and the share of one core that is; beside it what
 * PostgreSQL and the fleets used (where the rest of the machine went).
 */
function cpuPhase(pid: number, fleets: Fleet[] = []) {
  const cpu0 = cpuSeconds(pid) ?? 0;
  const others = cpuMeter({
    postgres: stackPids("dev").postgres,
    fleets: fleets.map((f) => f.child.pid as number),
  });
  const t0 = performance.now();
  return () => {
    const seconds = (cpuSeconds(pid) ?? 0) - cpu0;
    const wall = (performance.now() - t0) / 1000;
    return {
      seconds: round(seconds, 2),
      percent: round((seconds / wall) * 100, 0),
      ...others(),
    };
  };
}

const epochNow = () => performance.timeOrigin + performance.now();

// --- commands, issued as the agent-command activity does --------------------------------------------
const db = createDb(config.databaseUrl, 16);
// Workers publish command notices: the same NATS user, the same permissions.
const nc = await connectNatsAs(config.nats, "worker", { reconnect: false });
const issuedAt = new Map<string, number>();

async function issue(agentId: string, id: string) {
  issuedAt.set(id, epochNow());
  await issueCommand(db, {
    id,
    agentId,
    command: "kill-process",
    priority: "high",
    details: { pid: 4242 },
    origin: "operator",
    requestedBy: "operator:bench",
    workflowId: null,
    ttlMs: 300_000,
    taskToken: null,
  });
  nc.publish(commandSubject(agentId), encode({ ids: [id] }));
}

const completed = async (prefix: string) =>
  Number(
    (
      await db
        .selectFrom("commands")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .where("id", "like", `${prefix}%`)
        .where("status", "=", "completed")
        .executeTakeFirstOrThrow()
    ).n,
  );

/** Per command: stored → ack, sent → ack, and ack after a given instant (all PostgreSQL's clock). */
async function ackTimes(prefix: string, since = 0) {
  const rows = await db
    .selectFrom("commands")
    .select([
      "id",
      sql<number>`extract(epoch from acknowledged_at - created_at) * 1000`.as("stored"),
      sql<number>`extract(epoch from acknowledged_at - delivered_at) * 1000`.as("sent"),
      sql<number>`extract(epoch from acknowledged_at) * 1000 - ${since}`.as("after"),
      sql<number>`extract(epoch from acknowledged_at) * 1000`.as("acked"),
    ])
    .where("id", "like", `${prefix}%`)
    .execute();
  return {
    stored: rows.map((r) => Number(r.stored)),
    claimed: rows.map((r) => Number(r.sent)),
    // The frame at its agent → the ack recorded: the round trip the gateway's own metric
    // (mm_gateway_ack_seconds, send → recorded) measures, less the loopback hop.
    sent: rows.map((r) => Number(r.acked) - (received.get(r.id) ?? Number.NaN)),
    after: rows.map((r) => Number(r.after)),
    // Same machine: the fleets' clock and this process's are one.
    delivery: rows.map((r) => (received.get(r.id) ?? Number.NaN) - (issuedAt.get(r.id) ?? 0)),
  };
}

/** Commands at a steady rate to agents spread over the fleet, until `stop()` or `count` are sent. */
function trickle(agents: Identity[], prefix: string, rate: number, count: number) {
  let stopped = false;
  let sent = 0;
  const done = (async () => {
    const t0 = performance.now();
    for (; sent < count && !stopped; sent++) {
      // Spread over the fleet: evenly for a known count, by a stride coprime with most sizes else.
      const k =
        Number.isFinite(count) && count <= agents.length
          ? Math.floor((sent * agents.length) / count)
          : sent * 7_919;
      const agent = agents[k % agents.length] as Identity;
      await issue(agent.agentId, `${prefix}${sent}`);
      const wait = t0 + ((sent + 1) / rate) * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
    }
  })();
  return {
    done,
    stop: async () => {
      stopped = true;
      await done;
      return sent;
    },
  };
}

// --- the run -------------------------------------------------------------------------------------
await migrate(db); // the gateways would on start; the enrollment token is needed before the first
const temporalInfo = temporalMode ? await checkTemporalMode(config, temporalMode) : null;
const tokens = await enrollmentTokens(db, "bench", Math.max(...SIZES));
const identities: Identity[] = [];
const rows: Record<string, unknown>[] = [];
const extra: Record<string, unknown> = {};
console.log(
  `gateway benchmark: fleets of ${SIZES.join(", ")} agents in ${FLEETS} processes, ` +
    `burst ${BURST}, paced ${PACED} at ${RATE}/s, PostgreSQL pool ${config.databasePoolSize}`,
);

for (const [round_, size] of SIZES.entries()) {
  if (CPU_PROFILE) mkdirSync(profiles, { recursive: true });
  const gateway = await startRole(
    config,
    "gateway",
    '"agent gateway listening"',
    CPU_PROFILE
      ? {
          NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profiles} --cpu-prof-name=gateway-${size}.cpuprofile`,
        }
      : {},
  );
  const url = gateway.url as string;
  const rss = rssSampler(gateway.pid);
  const row: Record<string, unknown> = { agents: size, startRssMiB: residentMiB(gateway.pid) };
  const prefix = `bench/${tag}/${size}/`;

  // Enrollment of the agents this size adds (the earlier sizes' are reused).
  let t = performance.now();
  const fresh = Array.from(
    { length: Math.max(0, size - identities.length) },
    (_, i) => `bench-${tag}-${identities.length + i}`,
  );
  identities.push(...(await enrollAgents(url, tokens, fresh)));
  if (fresh.length) row.enrollPerS = round((fresh.length / (performance.now() - t)) * 1000, 0);
  const agents = identities.slice(0, size);

  // Connect: every fleet its share, handshakes bounded; the clock starts once they are loaded.
  const fleets = Array.from({ length: Math.min(FLEETS, size) }, () => startFleet(fromFleet));
  await fleetsLoaded(fleets);
  let cpu = cpuPhase(gateway.pid, fleets);
  t = performance.now();
  const { failed, online } = await connectFleets(fleets, url, agents, PHASE_MS);
  const connectMs = performance.now() - t;
  // Agents whose handshake was refused get no commands.
  if (failed.size) row.connectFailed = failed.size;
  row.connectPerS = round((size / connectMs) * 1000, 0);
  row.connectCpu = cpu();
  row.connectPeakRssMiB = rss.reset();

  // Idle: heartbeats only.
  cpu = cpuPhase(gateway.pid, fleets);
  await sleep(IDLE_MS);
  row.idleRssMiB = residentMiB(gateway.pid);
  row.idleCpu = cpu();
  rss.reset();

  // Paced: latency without queueing.
  cpu = cpuPhase(gateway.pid, fleets);
  const paced = Math.min(PACED, size);
  await trickle(online, `${prefix}paced/`, RATE, paced).done;
  await until(async () => (await completed(`${prefix}paced/`)) === paced, PHASE_MS, "paced");
  const light = await ackTimes(`${prefix}paced/`);
  row.pacedAck = latencySummary(light.stored);
  row.pacedDelivery = latencySummary(light.delivery);
  row.pacedCpu = cpu();
  rss.reset();

  // Burst: stored up front (as many workers would have issued them), then all notified at once.
  const burst = Array.from({ length: BURST }, (_, i) => `${prefix}burst/${i}`);
  for (let i = 0; i < BURST; i += 1_000) {
    await db
      .insertInto("commands")
      .values(
        burst.slice(i, i + 1_000).map((id, k) => ({
          id,
          agent_id: (online[(i + k) % online.length] as Identity).agentId,
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
  cpu = cpuPhase(gateway.pid, fleets);
  rss.reset();
  const publishedAt = epochNow();
  t = performance.now();
  for (const [i, id] of burst.entries()) {
    issuedAt.set(id, publishedAt);
    nc.publish(
      commandSubject((online[i % online.length] as Identity).agentId),
      encode({ ids: [id] }),
    );
  }
  await nc.flush();
  // The probe goes to the agents the burst reaches last (the fleet's other end from paced).
  const probe = trickle(
    [...online].reverse(),
    `${prefix}probe/`,
    PROBE_RATE,
    Number.POSITIVE_INFINITY,
  );
  await until(
    async () => (await completed(`${prefix}burst/`)) === BURST,
    PHASE_MS,
    "burst",
  ).finally(() => probe.stop());
  const wallMs = performance.now() - t;
  const probes = await probe.stop();
  await until(async () => (await completed(`${prefix}probe/`)) === probes, PHASE_MS, "probe");
  const heavy = await ackTimes(`${prefix}burst/`, publishedAt);
  const probed = await ackTimes(`${prefix}probe/`);
  row.burstPerS = round((BURST / wallMs) * 1000, 0);
  row.burstSeconds = round(wallMs / 1000, 1);
  row.burstAck = latencySummary(heavy.sent);
  row.burstClaimedAck = latencySummary(heavy.claimed);
  row.burstQueued = latencySummary(heavy.after);
  row.burstProbeAck = latencySummary(probed.stored);
  row.burstPeakRssMiB = rss.reset();
  row.burstCpu = cpu();
  row.afterRssMiB = residentMiB(gateway.pid);
  if (lost.length) row.sessionsLost = lost.length;

  if (temporalMode && round_ === 0) extra.temporal = await temporalPhase(online);

  rss.stop();
  await Promise.all(fleets.map(stopFleet));
  await gateway.stop();
  rows.push(row);
  console.log(JSON.stringify(row));
  received.clear();
  issuedAt.clear();
}

/** Operator command workflows through Temporal, completed asynchronously by the gateway. */
async function temporalPhase(agents: Identity[]) {
  const WORKFLOWS = 500;
  const worker = await startRole(config, "worker", '"worker polling"');
  const connection = await Connection.connect(temporalConnection(config.temporal));
  try {
    const temporal = new Client({ connection, namespace: config.temporal.namespace });
    const t = performance.now();
    const results: number[] = [];
    await pool(
      Array.from({ length: WORKFLOWS }, (_, i) => i),
      32,
      async (i) => {
        const agent = agents[i % agents.length] as Identity;
        const started = performance.now();
        const result = await temporal.workflow.execute(agentCommandWorkflow, {
          workflowId: `bench/${tag}/wf/${i}`,
          taskQueue: config.temporal.taskQueue,
          workflowExecutionTimeout: PHASE_MS,
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
    return {
      mode: temporalInfo,
      workflows: WORKFLOWS,
      perS: round((WORKFLOWS / (performance.now() - t)) * 1000, 0),
      startToResult: latencySummary(results),
    };
  } finally {
    await connection.close();
    await worker.stop();
  }
}

// The table: one row per fleet size, the figures the README quotes.
const ms = (s: unknown) => (s as { p99: number }).p99;
const table = rows.map((r) => ({
  agents: r.agents,
  "enroll/s": r.enrollPerS ?? "",
  "connect/s": r.connectPerS,
  "idle RSS MiB": r.idleRssMiB,
  "idle CPU %": (r.idleCpu as { percent: number }).percent,
  "paced ack p50/p99 ms": `${(r.pacedAck as { p50: number }).p50} / ${ms(r.pacedAck)}`,
  "burst cmds/s": r.burstPerS,
  "burst ack p99 ms (sent / claimed)": `${ms(r.burstAck)} / ${ms(r.burstClaimedAck)}`,
  "probe ack p99 ms": ms(r.burstProbeAck),
  "burst queued p99 ms": ms(r.burstQueued),
  "burst peak RSS MiB": r.burstPeakRssMiB,
  "burst CPU %": (r.burstCpu as { percent: number }).percent,
}));
report(
  `gateway: ${BURST}-command burst, paced ${PACED} at ${RATE}/s, ${FLEETS} fleet processes`,
  table,
  {
    fleets: FLEETS,
    burst: BURST,
    paced: { commands: PACED, rate: RATE },
    poolSize: config.databasePoolSize,
    ...(CPU_PROFILE && { profiles }),
    ...extra,
    details: rows,
  },
);

await nc.close();
await db.destroy();
await scratch.drop();
process.exit(0);
