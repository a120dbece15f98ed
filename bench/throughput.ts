// Sustained alert throughput over NATS, with zero loss verified by counting, beside raw JetStream:
//   1. alerts that reach no attack flow: published as fast as the intake keeps up (at most
//      BACKLOG unacknowledged), for SECONDS; every one must be stored once.
//   2. alerts that mitigate (the flow-processor alert: one webhook per alert): published as fast as
//      mitigations keep up (at most BACKLOG_MITIGATING outstanding), for SECONDS; every one must
//      call the webhook once.
//   3. raw JetStream: as many messages as phase 1 stored, consumed and acknowledged with no work.
// CPU seconds of this process (api + worker + ingest), of Temporal and of PostgreSQL are counted
// per phase: where the time goes.
//   0. the intake's own speed: a backlog of no-flow alerts published before the service starts,
//      timed from its start to the last row stored.
//   npm run bench:throughput -- [--temporal dev|server] [seconds=60] [backlog=20000]
import { randomBytes } from "node:crypto";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { sql } from "kysely";
import { noAgentGateway } from "../src/activities/agent-commands.ts";
import { loadConfig } from "../src/config.ts";
import { connectNatsAs } from "../src/connections.ts";
import { ensureAlertStream } from "../src/ingest/nats.ts";
import { metricsText } from "../src/metrics.ts";
import { startService } from "../src/service.ts";
import { createDb } from "../src/store/db.ts";
import { wazuhAlert } from "../test/support/fixtures.ts";
import { connectPublisher } from "../test/support/nats.ts";
import { createScratch } from "../test/support/scratch.ts";
import { webhookReceiver } from "../test/support/webhook-receiver.ts";
import {
  checkTemporalMode,
  cpuMeter,
  numberArg,
  report,
  round,
  stackPids,
  statementMeter,
  temporalModeFromArgs,
  until,
} from "./support.ts";

const mode = temporalModeFromArgs();
const SECONDS = numberArg(0, 60);
const BACKLOG = 5_000;
const BACKLOG_MITIGATING = 400;
const HOSTS = 50;
const DRAIN_MS = 300_000;
const tag = randomBytes(3).toString("hex");

const firewall = await webhookReceiver();
const scratch = await createScratch("bench_throughput", {
  logLevel: "error",
  firewallWebhookUrl: firewall.url("/firewall/block"),
});
const { config } = scratch;
const temporalLabel = await checkTemporalMode(config, mode);
function noFlowAlert(i: number) {
  const a = wazuhAlert("100002-ncat-connection", `tp-${tag}-q${i % HOSTS}`, `q-${tag}-${i}`);
  (a.rule as { mitre: { id: string[] } }).mitre.id = ["T1595.002"];
  return a;
}
function mitigatingAlert(i: number) {
  const a = wazuhAlert("100100-flow-processor", `tp-${tag}-m${i % HOSTS}`, `m-${tag}-${i}`);
  (a.data as { attack_flow_alert: { destination_ip: string } }).attack_flow_alert.destination_ip =
    `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  return a;
}

const db = createDb(config.databaseUrl, 2);
// The service's own database, where the local stack keeps PostgreSQL's statement statistics.
const mainDb = createDb(loadConfig().databaseUrl, 1);
const scratchDatabase = new URL(config.databaseUrl).pathname.slice(1);
const nc = await connectPublisher();
const ingest = await connectNatsAs(config.nats, "ingest", { reconnect: false });
const js = jetstream(nc);
const jsm = await jetstreamManager(ingest);

// Phase 0, the intake at the database's speed: a backlog published before the service starts, so
// the publisher does not set the pace; timed from the service's start to the last row stored.
const BACKLOG_DRAIN = numberArg(1, 20_000);
await ensureAlertStream(ingest, {
  subject: config.nats.alertSubject,
  stream: config.nats.alertStream,
  consumer: config.nats.alertConsumer,
});
for (let i = 0; i < BACKLOG_DRAIN; i += 1_000)
  await Promise.all(
    Array.from({ length: Math.min(1_000, BACKLOG_DRAIN - i) }, (_, k) =>
      js.publish(config.nats.alertSubject, JSON.stringify(noFlowAlert(1_000_000 + i + k))),
    ),
  );
const drainStarted = performance.now();
const service = await startService(config, ["api", "worker", "ingest"], { agents: noAgentGateway });
const serviceStartMs = performance.now() - drainStarted;
const processes = {
  service: [process.pid],
  ...stackPids(mode),
};

const pendingInConsumer = async () => {
  const info = await jsm.consumers.info(config.nats.alertStream, config.nats.alertConsumer);
  return info.num_pending + info.num_ack_pending;
};
/**
 * Alerts stored from NATS so far, by the service's own counter (it runs in this process): cheap
 * to poll while a phase runs, where a count of the table would scan it every 250 ms and take
 * PostgreSQL's CPU from the service under test. Every phase's result is counted in the table.
 */
const storedSoFar = async () =>
  Number(/^mm_alerts_stored_total\{transport="nats"\} (\d+)$/m.exec(await metricsText())?.[1] ?? 0);
const storedCount = async (prefix: string) =>
  Number(
    (
      await sql<{
        n: string;
      }>`SELECT count(*) AS n FROM alerts WHERE id LIKE ${`${prefix}-${tag}-%`}`.execute(db)
    ).rows[0]?.n,
  );

/**
 * Publishes for SECONDS, never more than `backlog` ahead of `done()`; then waits until done()
 * reaches what was published, and counts the phase's result with `count()`. Returns the counts and
 * the rates.
 */
async function sustained(
  make: (i: number) => unknown,
  backlog: number,
  done: () => Promise<number>,
  count: () => Promise<number>,
) {
  const meter = cpuMeter(processes);
  const statements = await statementMeter(mainDb, scratchDatabase);
  const started = performance.now();
  let published = 0;
  let completed = await done();
  const base = completed;
  let lastPoll = 0;
  while (performance.now() - started < SECONDS * 1000) {
    if (published - (completed - base) >= backlog || performance.now() - lastPoll > 250) {
      completed = await done();
      lastPoll = performance.now();
      if (published - (completed - base) >= backlog) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
    }
    const burst = Array.from({ length: Math.min(1_000, backlog) }, () => make(published++));
    await Promise.all(burst.map((a) => js.publish(config.nats.alertSubject, JSON.stringify(a))));
  }
  const windowMs = performance.now() - started;
  const inWindow = (await done()) - base;
  console.error(`  published ${published}, ${inWindow} done in the window; draining`);
  await until(async () => (await done()) - base >= published, DRAIN_MS, "every alert");
  const totalMs = performance.now() - started;
  const finalCount = await count();
  return {
    published,
    counted: finalCount,
    lost: published - finalCount,
    perSecondInWindow: round(inWindow / (windowMs / 1000), 0),
    perSecondOverall: round(finalCount / (totalMs / 1000), 0),
    drainSeconds: round((totalMs - windowMs) / 1000),
    cpuSeconds: meter(),
    postgres: await statements(finalCount),
  };
}
/** A phase's row: PostgreSQL's work per alert in two figures (its top statements listed apart). */
const row = ({ postgres, ...phase }: Awaited<ReturnType<typeof sustained>>) => ({
  ...phase,
  ...(postgres && {
    pgStatementsPerAlert: postgres.statementsPerUnit,
    pgMsPerAlert: postgres.execMsPerUnit,
  }),
});

console.error(`throughput: ${SECONDS} s per phase, Temporal ${temporalLabel}`);
await until(async () => (await storedSoFar()) >= BACKLOG_DRAIN, DRAIN_MS, "the backlog stored");
const drainMs = performance.now() - drainStarted;
const drained = {
  published: BACKLOG_DRAIN,
  counted: await storedCount("q"),
  perSecondOverall: round(BACKLOG_DRAIN / ((drainMs - serviceStartMs) / 1000), 0),
  serviceStartSeconds: round(serviceStartMs / 1000),
};

console.error("phase 1: alerts reaching no flow");
const noFlow = await sustained(
  noFlowAlert,
  BACKLOG,
  storedSoFar,
  async () => (await storedCount("q")) - BACKLOG_DRAIN,
);
const unsignalled = await pendingInConsumer();

// An alert is done when the engine finished with it: a mitigation's outcome recorded, or no node
// of any flow matched (its conditions did not hold). Counted from the decision log, so an alert
// whose conditions fail (e.g. a CEL check over its budget on a loaded machine) is done, not lost.
const engineDone = async () =>
  Number(
    (
      await sql<{ n: string }>`SELECT count(*) AS n FROM (
        SELECT alert_id FROM decisions WHERE alert_id LIKE ${`m-${tag}-%`} GROUP BY alert_id
        HAVING bool_or(kind IN ('mitigation_succeeded', 'mitigation_failed', 'no_mitigation'))
          OR NOT bool_or(kind = 'node_matched')) done`.execute(db)
    ).rows[0]?.n,
  );
// The same, polled: only the decisions since the last poll (by id, with a margin for
// transactions that commit out of id order), not the whole log every 250 ms.
const engineProgress = (() => {
  const seen = new Set<string>();
  const alerts = new Map<string, { matched: boolean; ended: boolean }>();
  let highest = 0;
  return async () => {
    const { rows } = await sql<{ id: string; alert_id: string; kind: string }>`
      SELECT id::text AS id, alert_id, kind FROM decisions
      WHERE id > ${Math.max(0, highest - 1_000)} AND alert_id LIKE ${`m-${tag}-%`}`.execute(db);
    for (const r of rows) {
      if (seen.has(r.id)) continue;
      seen.add(r.id);
      highest = Math.max(highest, Number(r.id));
      const a = alerts.get(r.alert_id) ?? { matched: false, ended: false };
      if (r.kind === "node_matched") a.matched = true;
      if (["mitigation_succeeded", "mitigation_failed", "no_mitigation"].includes(r.kind))
        a.ended = true;
      alerts.set(r.alert_id, a);
    }
    let done = 0;
    for (const a of alerts.values()) if (a.ended || !a.matched) done++;
    return done;
  };
})();
console.error("phase 2: mitigating alerts");
const mitigating = await sustained(mitigatingAlert, BACKLOG_MITIGATING, engineProgress, engineDone);
const webhookCalls = new Set(firewall.received.map((r) => r.idempotencyKey)).size;
const succeeded = Number(
  (
    await sql<{ n: string }>`SELECT count(*) AS n FROM decisions
      WHERE alert_id LIKE ${`m-${tag}-%`} AND kind = 'mitigation_succeeded'`.execute(db)
  ).rows[0]?.n,
);
const mitigatingStored = await storedCount("m");

// Raw JetStream: the same number of the same messages as phase 1, consumed and acknowledged.
const rawStream = `BENCHRAW_${tag}`;
const rawSubject = `${config.nats.alertSubject}.benchraw_${tag}`;
await jsm.streams.add({ name: rawStream, subjects: [rawSubject] });
await jsm.consumers.add(rawStream, { durable_name: "raw", ack_policy: AckPolicy.Explicit });
const rawN = BACKLOG_DRAIN;
for (let i = 0; i < rawN; i += 500)
  await Promise.all(
    Array.from({ length: Math.min(500, rawN - i) }, (_, k) =>
      js.publish(rawSubject, JSON.stringify(noFlowAlert(i + k))),
    ),
  );
const rawStarted = performance.now();
const rawMessages = await (await jetstream(ingest).consumers.get(rawStream, "raw")).consume();
let rawSeen = 0;
for await (const m of rawMessages) {
  m.json();
  m.ack();
  if (++rawSeen === rawN) break;
}
const rawPerSecond = round(rawN / ((performance.now() - rawStarted) / 1000), 0);
await jsm.streams.delete(rawStream);

report(
  `Sustained NATS throughput, ${SECONDS} s per phase, Temporal ${mode}`,
  [
    {
      phase: "no-flow backlog drained (intake speed)",
      ...drained,
      target: "≥ 5,000/s, ≥ 0.5× raw",
    },
    { phase: "no flow, sustained (stored only)", ...row(noFlow) },
    {
      phase: "mitigating (engine done)",
      ...row(mitigating),
      stored: mitigatingStored,
      succeeded,
      webhookCalls,
      target: "≥ 100 mitigations/s",
    },
    { phase: "raw JetStream consume+ack", published: rawN, perSecondOverall: rawPerSecond },
  ],
  {
    temporal: temporalLabel,
    drainVsRaw: round(drained.perSecondOverall / rawPerSecond, 3),
    noFlowVsRaw: round(noFlow.perSecondOverall / rawPerSecond, 3),
    consumerPendingAfterNoFlow: unsignalled,
    pgTopStatements: { noFlow: noFlow.postgres?.top, mitigating: mitigating.postgres?.top },
  },
);
// Where PostgreSQL's time went per mitigating alert (the benchmark's own counting included).
for (const s of mitigating.postgres?.top ?? [])
  console.log(
    `  ${String(s.callsPerUnit).padStart(5)} calls/alert ${String(s.ms).padStart(6)} ms  ${s.query}`,
  );

await nc.close();
await ingest.close();
await db.destroy();
await mainDb.destroy();
await service.close();
await firewall.close();
await scratch.drop();
process.exit(noFlow.lost === 0 && mitigating.lost === 0 ? 0 : 1);
