import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { jetstream } from "@nats-io/jetstream";
import { sql } from "kysely";
import { noAgentGateway } from "../src/activities/agent-commands.ts";
import { startService } from "../src/service.ts";
import { createDb } from "../src/store/db.ts";
import { wazuhAlert } from "../test/support/fixtures.ts";
import { connectPublisher } from "../test/support/nats.ts";
import { createScratch } from "../test/support/scratch.ts";
import { webhookReceiver } from "../test/support/webhook-receiver.ts";

const tag = randomBytes(3).toString("hex");
const firewall = await webhookReceiver();
const scratch = await createScratch("bench_prof", {
  logLevel: "error",
  firewallWebhookUrl: firewall.url("/firewall/block"),
});
const { config } = scratch;
const db = createDb(config.databaseUrl, 2);
const nc = await connectPublisher();
const js = jetstream(nc);
const service = await startService(config, ["api", "worker", "ingest"], { agents: noAgentGateway });
const N = Number(process.env.N ?? 2000);
const alerts = Array.from({ length: N }, (_, i) => {
  const a = wazuhAlert("100100-flow-processor", `tp-${tag}-m${i % 50}`, `m-${tag}-${i}`);
  (a.data as { attack_flow_alert: { destination_ip: string } }).attack_flow_alert.destination_ip =
    `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  return JSON.stringify(a);
});
// warm up: 50 alerts, one per host
for (let i = 0; i < 50; i++) await js.publish(config.nats.alertSubject, alerts[i] as string);
const done = async () =>
  Number(
    (
      await sql<{
        n: string;
      }>`SELECT count(*) AS n FROM decisions WHERE kind = 'mitigation_succeeded'`.execute(db)
    ).rows[0]?.n,
  );
while ((await done()) < 50) await new Promise((r) => setTimeout(r, 200));
const session = new Session();
session.connect();
await session.post("Profiler.enable");
await session.post("Profiler.start");
const t0 = performance.now();
const cpu0 = process.cpuUsage();
for (let i = 50; i < N; i += 100)
  await Promise.all(alerts.slice(i, i + 100).map((a) => js.publish(config.nats.alertSubject, a)));
while ((await done()) < N) await new Promise((r) => setTimeout(r, 200));
const secs = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const { profile } = await session.post("Profiler.stop");
writeFileSync("/tmp/mit.cpuprofile", JSON.stringify(profile));
console.log(
  `${N - 50} alerts in ${secs.toFixed(1)} s = ${((N - 50) / secs).toFixed(0)}/s; process CPU user ${(cpu.user / 1e6).toFixed(1)} s sys ${(cpu.system / 1e6).toFixed(1)} s`,
);
await service.close();
await firewall.close();
await db.destroy();
await nc.close();
if (!process.env.KEEP) await scratch.drop();
process.exit(0);
