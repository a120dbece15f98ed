// Records the incident and mitigation histories the replay test guards, into histories/<release>/
// (histories.ts; an existing file is never overwritten). Run it with the stack up when workflow
// code changes on purpose (behind patched() for running workflows) and at every release; a label
// tells a second recording of one release apart:
//   npx tsx test/replay/record.ts [label]

import { Client, Connection } from "@temporalio/client";
import { startService } from "../../src/service.ts";
import type { incidentWorkflow } from "../../src/workflows/incident.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { createScratch } from "../support/scratch.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";
import { newHistoryFiles, saveHistory } from "./histories.ts";

const label = process.argv[2] ? `-${process.argv[2]}` : "";
const names = {
  incident: `incident-seed-scenario${label}`,
  agentSteps: `mitigation-agent-steps${label}`,
  fallback: `mitigation-fallback-after-webhook-failure${label}`,
};
const files = newHistoryFiles(Object.values(names));

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
const incident = client.workflow.getHandle<typeof incidentWorkflow>(`incident/${host}`);
const final = await incident.result(); // closes after the idle time
// The mitigation runs by the node they ran for (their ids carry the stored alerts' keys).
const runOf = (nodeId: string) => {
  const run = final.mitigations.find((m) => m.nodeId === nodeId);
  if (!run) throw new Error(`no mitigation ran for ${nodeId}`);
  return run.workflowId;
};

const histories: Record<string, string> = {
  [names.incident]: `incident/${host}`,
  [names.agentSteps]: runOf("ncat_connection"),
  [names.fallback]: runOf("ransomware_file"),
};
for (const [name, workflowId] of Object.entries(histories))
  saveHistory(config.temporal.address, workflowId, files[name] as string);
await service.close();
await hooks.close();
await scratch.drop();
process.exit(0);
