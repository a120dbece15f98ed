// A rollout of the Fibratus rule catalogue to fleets of simulated agents (issue 11, 5d).
//   npm run bench:rollout -- [--temporal dev|server] [--agents 1000,10000] [--fleets 4]
//       [--wave-size <the API's default>] [--timeout 900]
//
// For each fleet size, on a scratch database and task queue of its own: `mm api`, `mm worker` and
// `mm gateway` as processes of their own; the agents enrolled through the gateway into one group
// and connected from `--fleets` processes (bench/agent-fleet.ts: heartbeat 30 s, every
// update_rules frame checked, applied and answered as the reference agent's simulation mode does);
// then through the REST API, as test/gateway/rollout.test.ts does: the corpus's macros and rules
// (read from /work/shared/corpus at run time), a rule set of every rule, assigned to the group,
// and its rollout with the API's defaults (canary share, wave size, agent timeout, retries).
// Measured from the rollout's start: every agent's applied report at its agent, the workflow's
// end, what the gateway (resident memory peak, CPU), the service (api + worker), Temporal,
// PostgreSQL and the fleets used, and the rollout workflow's history. Zero lost is counted three
// ways: the workflow's per-agent status, the agents' own reports, and the agents PostgreSQL
// records as running exactly the set's files. Each phase is bounded by `--timeout` seconds;
// everything is on loopback.
import { loadavg } from "node:os";
import { Client, Connection } from "@temporalio/client";
import { sql } from "kysely";
import { temporalConnection } from "../src/connections.ts";
import { createDb, type Db, migrate } from "../src/store/db.ts";
import { ruleSetFiles } from "../src/store/rules-rollout.ts";
import type { RolloutState } from "../src/workflows/rollout.ts";
import { postCatalogue } from "../test/support/fibratus-rules.ts";
import { restClient } from "../test/support/http.ts";
import { createScratch } from "../test/support/scratch.ts";
import {
  connectFleets,
  enrollAgents,
  enrollmentTokens,
  type FleetMessage,
  fleetsLoaded,
  type Role,
  rssSampler,
  sleep,
  startFleet,
  startRole,
  stopFleet,
} from "./fleets.ts";
import {
  checkTemporalMode,
  cpuMeter,
  optionArg,
  positiveIntArg,
  report,
  residentMiB,
  round,
  sizesArg,
  stackPids,
  temporalModeFromArgs,
} from "./support.ts";

const mode = temporalModeFromArgs();
const SIZES = sizesArg("agents", "1000,10000");
const FLEETS = positiveIntArg("fleets", 4);
const WAVE_SIZE = optionArg("wave-size", "") ? positiveIntArg("wave-size", 1) : undefined;
const PHASE_MS = positiveIntArg("timeout", 900) * 1_000;
const GROUP = "windows-fleet";
const RULE_SET = "fibratus";

const rows: Record<string, unknown>[] = [];
let temporalLabel = "";
console.log(
  `rollout benchmark: the Fibratus catalogue to ${SIZES.join(", ")} agents in ${FLEETS} fleet ` +
    `processes, Temporal ${mode}`,
);

/** Agents that hold exactly the set's files (each with its checksum), as PostgreSQL records. */
async function agentsInSync(db: Db, version: number): Promise<number> {
  const files = await ruleSetFiles(db, RULE_SET, version);
  const held = JSON.stringify(files.map((f) => ({ name: f.name, checksum: f.checksum })));
  const row = await db
    .selectFrom("agents")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where(sql<boolean>`${GROUP} = ANY(groups)`)
    .where(sql<boolean>`rules @> ${held}::jsonb`)
    .where(sql<boolean>`jsonb_array_length(rules) = ${files.length}`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

for (const size of SIZES) {
  const scratch = await createScratch("bench_rollout", { logLevel: "error", loadDefaults: false });
  const { config } = scratch;
  temporalLabel ||= await checkTemporalMode(config, mode);
  const db = createDb(config.databaseUrl, 4);
  await migrate(db); // before the roles: the enrollment tokens are needed first
  const connection = await Connection.connect(temporalConnection(config.temporal));
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const starting = await Promise.allSettled([
    startRole(config, "gateway", '"agent gateway listening"'),
    startRole(config, "api", '"REST API listening"'),
    startRole(config, "worker", '"worker polling"'),
  ]);
  const failedRole = starting.find((r) => r.status === "rejected");
  if (failedRole) {
    // No role left running behind the error.
    for (const r of starting) if (r.status === "fulfilled") await r.value.stop();
    throw failedRole.reason;
  }
  const [gateway, api, worker] = starting.map((r) => (r as PromiseFulfilledResult<Role>).value) as [
    Role,
    Role,
    Role,
  ];
  const rest = restClient(() => api.url);
  const row: Record<string, unknown> = { agents: size };

  // Each agent's rules_status reports, from its fleet: how many, and when the first applied one.
  const reports = new Map<string, { n: number; appliedAt: number | null }>();
  const fromFleet = (m: FleetMessage) => {
    if (m.type !== "rules") return;
    for (const [agentId, at, applied] of m.reports as [string, number, boolean][]) {
      const r = reports.get(agentId) ?? { n: 0, appliedAt: null };
      r.n++;
      if (applied) r.appliedAt ??= at;
      reports.set(agentId, r);
    }
  };
  const fleets = Array.from({ length: Math.min(FLEETS, size) }, () => startFleet(fromFleet));
  const stopAll = async () => {
    await Promise.all(fleets.map(stopFleet));
    await Promise.all([gateway.stop(), api.stop(), worker.stop()]);
    await connection.close();
    await db.destroy();
    await scratch.drop();
  };

  try {
    let t = performance.now();
    const hostnames = Array.from({ length: size }, (_, i) => `rollout-${size}-${i}`);
    const agents = await enrollAgents(
      gateway.url as string,
      await enrollmentTokens(db, GROUP, size),
      hostnames,
    );
    row.enrollPerS = round((size / (performance.now() - t)) * 1000, 0);
    await fleetsLoaded(fleets);
    t = performance.now();
    const { failed } = await connectFleets(fleets, gateway.url as string, agents, PHASE_MS);
    row.connectPerS = round((size / (performance.now() - t)) * 1000, 0);
    // Refused handshakes (a loaded machine's) are those agents' loss: counted, not hidden.
    if (failed.size) row.connectFailed = failed.size;
    row.connectedRssMiB = residentMiB(gateway.pid);

    // The catalogue, a rule set of every rule's newest version, assigned to the fleet's group.
    const posted = await postCatalogue(rest);
    const rules = (await rest.get("/api/rule?limit=500")).body.items.map(
      (r: { id: string; version: string }) => ({ id: r.id, version: r.version }),
    );
    await rest.created("/api/rule-set", { name: RULE_SET, rules, macros_version: 1 });
    const assigned = await rest.put("/api/rule-set/assignment", {
      group: GROUP,
      name: RULE_SET,
      version: 1,
    });
    if (assigned.status !== 200)
      throw new Error(`assignment: ${assigned.status} ${JSON.stringify(assigned.body)}`);
    row.rules = posted.rules.length;

    // The rollout, measured.
    const rss = rssSampler(gateway.pid);
    const workerRss = rssSampler(worker.pid);
    const cpu = cpuMeter({
      gateway: [gateway.pid],
      service: [api.pid, worker.pid],
      ...stackPids(mode),
      fleets: fleets.map((f) => f.child.pid as number),
    });
    const startedAt = performance.timeOrigin + performance.now();
    t = performance.now();
    const started = await rest.post("/api/rule-set/rollout", {
      name: RULE_SET,
      version: 1,
      ...(WAVE_SIZE && { wave_size: WAVE_SIZE }),
    });
    if (started.status !== 202)
      throw new Error(`rollout: ${started.status} ${JSON.stringify(started.body)}`);
    const handle = temporal.workflow.getHandle(started.body.workflow_id as string);
    const progress = setInterval(() => {
      const applied = [...reports.values()].filter((r) => r.appliedAt !== null).length;
      console.log(
        `  ${size} agents: ${applied} applied after ${round((performance.now() - t) / 1000)} s`,
      );
    }, 10_000);
    const state = await Promise.race([
      handle.result() as Promise<RolloutState>,
      sleep(PHASE_MS).then(() => {
        const applied = [...reports.values()].filter((r) => r.appliedAt !== null).length;
        throw new Error(
          `the rollout to ${size} agents did not end in ${PHASE_MS / 1000} s (${applied} applied at their agents); raise --timeout`,
        );
      }),
    ]).finally(() => clearInterval(progress));
    const endedS = (performance.now() - t) / 1000;
    const usage = cpu();
    row.peakRssMiB = rss.reset();
    row.workerPeakRssMiB = workerRss.reset();
    rss.stop();
    workerRss.stop();

    const appliedAt = [...reports.values()].flatMap((r) =>
      r.appliedAt === null ? [] : [r.appliedAt],
    );
    const allAppliedS =
      appliedAt.length === size ? (Math.max(...appliedAt) - startedAt) / 1000 : Number.NaN;
    row.status = state.status;
    row.allAppliedS = round(allAppliedS);
    row.workflowEndedS = round(endedS);
    row.agentsPerS = round(size / allAppliedS, 0);
    row.counts = state.counts;
    row.agentsInState = Object.keys(state.agents).length;
    row.appliedAtAgents = appliedAt.length;
    row.inSync = await agentsInSync(db, 1);
    // Every agent applied by all three counts; anything short of that is lost.
    row.lost = size - Math.min(state.counts.applied, appliedAt.length, row.inSync as number);
    row.rulesStatusSent = [...reports.values()].reduce((n, r) => n + r.n, 0);
    row.waves = state.waves;
    row.cpu = usage;
    row.gatewayCpuPercent = round(((usage.gateway ?? 0) / endedS) * 100, 0);
    const description = await handle.describe();
    row.historyEvents = description.historyLength;
    row.historyKiB = round((description.historySize ?? 0) / 1024, 0);
    row.loadAverage = loadavg().map((l) => round(l, 2));
    console.log(JSON.stringify(row));
  } finally {
    await stopAll();
  }
  rows.push(row);
}

const table = rows.map((r) => ({
  agents: r.agents,
  rules: r.rules,
  status: r.status,
  "all applied s": r.allAppliedS,
  "workflow ended s": r.workflowEndedS,
  "agents/s": r.agentsPerS,
  "applied (workflow / agents / in sync)": `${(r.counts as { applied: number }).applied} / ${r.appliedAtAgents} / ${r.inSync}`,
  lost: r.lost,
  "gateway peak RSS MiB": r.peakRssMiB,
  "gateway CPU s (% of a core)": `${(r.cpu as { gateway: number }).gateway} (${r.gatewayCpuPercent}%)`,
  "service CPU s": (r.cpu as { service: number }).service,
  "Temporal CPU s": (r.cpu as { temporal: number }).temporal,
  "history events": r.historyEvents,
  "load 1m": (r.loadAverage as number[])[0],
}));
report(`rollout: the Fibratus catalogue, Temporal ${mode}`, table, {
  temporal: temporalLabel,
  fleets: FLEETS,
  details: rows,
});
const lost = rows.some((r) => r.lost !== 0 || r.status !== "completed");
process.exit(lost ? 1 : 0);
