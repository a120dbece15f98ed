// Records the workflow histories the replay test guards. Run it when workflow code changes on
// purpose (behind patched() for running workflows), with the stack up:
//   npx tsx test/replay/record.ts

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { startService } from "../../src/service.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { createScratch } from "../support/scratch.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

const hooks = await webhookReceiver((req) => (req.path === "/soar-down" ? 500 : 200));
const scratch = await createScratch("record", { logLevel: "warn", incidentIdleMs: 4_000 });
const { config } = scratch;
const service = await startService(config, ["api", "worker"], {
  agents: recordingAgents().gateway,
});
const rest = restClient(() => service.apiUrl);
const client = new Client({
  connection: await Connection.connect({ address: config.temporal.address }),
});
const host = `replay-${scratch.suffix.replace(/_/g, "-")}`;

await rest.post("/api/workflow", {
  identifier: "soar_down",
  name: "soar_down",
  url: hooks.url("/soar-down"),
  effective_attacks: ["T1204"],
  cost: 0,
});
for (const name of [
  "100002-ncat-connection",
  "100003-exec-permission-added",
  "100004-executable-file-added",
  "100004-executable-file-added",
] as const) {
  const res = await rest.post("/api/alert", wazuhAlert(name, host));
  if (res.status !== 202) throw new Error(`alert refused: ${JSON.stringify(res.body)}`);
  await new Promise((r) => setTimeout(r, 1_500));
}
const incident = client.workflow.getHandle(`incident/${host}`);
await incident.result(); // closes after the idle time

const histories: Record<string, string> = {
  "incident-seed-scenario": `incident/${host}`,
  "mitigation-agent-steps": `mitigation/${host}/1729589475.25117-${host}/ncat_to_ransomware.ncat_connection`,
  "mitigation-fallback-after-webhook-failure": `mitigation/${host}/1729589139.24598-${host}/ncat_to_ransomware.ransomware_file`,
};
// The temporal CLI writes the JSON history format every Temporal tool reads.
const temporal = path.join(process.env.MM_CACHE_DIR ?? "", "bin/temporal-1.5.1");
for (const [name, workflowId] of Object.entries(histories)) {
  const json = execFileSync(
    temporal,
    ["workflow", "show", "--address", config.temporal.address, "-w", workflowId, "-o", "json"],
    { encoding: "utf8" },
  );
  writeFileSync(path.join(import.meta.dirname, "histories", `${name}.json`), json);
  console.log(`recorded ${name} (${JSON.parse(json).events.length} events)`);
}
await service.close();
await hooks.close();
await scratch.drop();
process.exit(0);
