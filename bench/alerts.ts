// Alert throughput through REST and through NATS on the local stack, each beside a raw baseline
// measured in the same run: the same POSTs to an HTTP server that only answers 202, and the same
// messages consumed and acknowledged from JetStream with no work.
//   npx tsx bench/alerts.ts [alerts=1000]        (the stack must be up: npm run stack -- up)
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { noAgentGateway } from "../src/activities/agent-commands.ts";
import { connectNatsAs } from "../src/connections.ts";
import { startService } from "../src/service.ts";
import { createDb } from "../src/store/db.ts";
import { wazuhAlert } from "../test/support/fixtures.ts";
import { TEST_ADMIN_TOKEN } from "../test/support/http.ts";
import { connectPublisher } from "../test/support/nats.ts";
import { createScratch } from "../test/support/scratch.ts";
import { webhookReceiver } from "../test/support/webhook-receiver.ts";

const N = Number(process.argv[2] ?? 1000);
const HOSTS = 50;
const CONCURRENCY = 32;
const tag = randomBytes(3).toString("hex");

function alerts(prefix: string) {
  return Array.from({ length: N }, (_, i) => {
    const a = wazuhAlert(
      "100100-flow-processor",
      `bench-${tag}-${prefix}-${i % HOSTS}`,
      `${prefix}-${tag}-${i}`,
    );
    (a.data as { attack_flow_alert: { destination_ip: string } }).attack_flow_alert.destination_ip =
      `10.99.${i >> 8}.${i & 255}`;
    return a;
  });
}

async function pool<T>(items: T[], work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

async function until(probe: () => boolean | Promise<boolean>, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("benchmark timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const rate = (n: number, ms: number) => (n / (ms / 1000)).toFixed(0);
const post = (url: string, body: unknown) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    body: JSON.stringify(body),
  }).then(async (r) => {
    await r.body?.cancel();
    if (r.status !== 202) throw new Error(`${url} answered ${r.status}`);
  });

const firewall = await webhookReceiver();
const scratch = await createScratch("bench", {
  logLevel: "error",
  firewallWebhookUrl: firewall.url("/firewall/block"),
});
const { config } = scratch;
const service = await startService(config, ["api", "worker", "ingest"], { agents: noAgentGateway });
const db = createDb(config.databaseUrl, 2);
const mitigated = () => new Set(firewall.received.map((r) => r.idempotencyKey)).size;
const handedOff = async () =>
  Number(
    (
      await db
        .selectFrom("alerts")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .where("handed_off_at", "is not", null)
        .executeTakeFirstOrThrow()
    ).n,
  );

console.log(
  `alerts: ${N} per transport over ${HOSTS} hosts, ${CONCURRENCY} concurrent REST clients`,
);

// --- REST ---------------------------------------------------------------------------------------
const bare = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.statusCode = 202;
    res.end("{}");
  });
});
await new Promise<void>((r) => bare.listen(0, "127.0.0.1", r));
const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/api/alert`;
let t = performance.now();
await pool(alerts("raw"), (a) => post(bareUrl, a));
const rawRestMs = performance.now() - t;
bare.close();

t = performance.now();
await pool(alerts("rest"), (a) => post(`${service.apiUrl}/api/alert`, a));
const restIntakeMs = performance.now() - t;
await until(() => mitigated() >= N);
const restEndToEndMs = performance.now() - t;
console.log(`REST  intake      ${rate(N, restIntakeMs)} alerts/s (stored + handed to Temporal)`);
console.log(
  `REST  raw HTTP    ${rate(N, rawRestMs)} requests/s → intake is ${(rawRestMs / restIntakeMs).toFixed(3)}× the bare HTTP rate`,
);
console.log(`REST  mitigated   ${rate(N, restEndToEndMs)} alerts/s end to end (webhook called)`);

// --- NATS ---------------------------------------------------------------------------------------
// As in production: Wazuh's user publishes, the ingest user administers and consumes the streams.
const nc = await connectPublisher();
const ingest = await connectNatsAs(config.nats, "ingest", { reconnect: false });
const js = jetstream(nc);
const jsm = await jetstreamManager(ingest);
const rawStream = `BENCHRAW_${tag}`;
const rawSubject = `${config.nats.alertSubject}.benchraw_${tag}`;
await jsm.streams.add({ name: rawStream, subjects: [rawSubject] });
await jsm.consumers.add(rawStream, { durable_name: "raw", ack_policy: AckPolicy.Explicit });
for (const a of alerts("natsraw")) await js.publish(rawSubject, JSON.stringify(a));
t = performance.now();
const rawMessages = await (await jetstream(ingest).consumers.get(rawStream, "raw")).consume();
let rawSeen = 0;
for await (const m of rawMessages) {
  m.json();
  m.ack();
  if (++rawSeen === N) break;
}
const rawNatsMs = performance.now() - t;
await jsm.streams.delete(rawStream);

const before = await handedOff();
const batch = alerts("nats");
t = performance.now();
await Promise.all(batch.map((a) => js.publish(config.nats.alertSubject, JSON.stringify(a))));
await until(async () => (await handedOff()) - before >= N);
const natsIntakeMs = performance.now() - t;
await until(() => mitigated() >= 2 * N);
const natsEndToEndMs = performance.now() - t;
console.log(
  `NATS  intake      ${rate(N, natsIntakeMs)} alerts/s (published → stored + handed to Temporal)`,
);
console.log(
  `NATS  raw consume ${rate(N, rawNatsMs)} messages/s → intake is ${(rawNatsMs / natsIntakeMs).toFixed(3)}× the raw JetStream rate`,
);
console.log(`NATS  mitigated   ${rate(N, natsEndToEndMs)} alerts/s end to end (webhook called)`);

await nc.close();
await ingest.close();
await db.destroy();
await service.close();
await firewall.close();
await scratch.drop();
process.exit(0);
