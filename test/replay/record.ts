// Records the incident histories the replay test guards (since 0.4.0 mitigations run inside
// them; earlier releases' folders hold mitigation workflows of their own), into histories/<release>/
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
  // The seed scenario: agent steps, a webhook that fails and the fallback after it.
  incident: `incident-seed-scenario${label}`,
  approved: `incident-mitigation-held-then-approved${label}`,
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
for (const nodeId of ["ncat_connection", "ransomware_file"])
  if (!final.mitigations.some((m) => m.nodeId === nodeId && m.outcome === "succeeded"))
    throw new Error(`no mitigation succeeded for ${nodeId}`);

// A mitigation held by its approval gate (the catalog's requires_approval), then approved.
await rest.post("/api/workflow", {
  identifier: "held_soar",
  name: "held_soar",
  url: hooks.url("/held"),
  effective_attacks: ["T1566"],
  cost: 0,
  requires_approval: true,
});
await rest.post("/api/attack-flow", {
  identifier: "phishing",
  name: "phishing",
  nodes: [{ id: "phish", techniques: ["T1566"] }],
  start: ["phish"],
});
const heldHost = `${host}-held`;
const phish = wazuhAlert("100002-ncat-connection", heldHost);
(phish.rule as { mitre: { id: string[] } }).mitre.id = ["T1566"];
await rest.post("/api/alert", phish);
let approval: { id: string; workflow_id: string } | undefined;
for (let i = 0; !approval && i < 300; i++) {
  await new Promise((r) => setTimeout(r, 100));
  approval = (await rest.get("/api/approvals?status=pending")).body.items[0];
}
if (!approval) throw new Error("the held mitigation never asked for approval");
await rest.post(`/api/approvals/${approval.id}`, { decision: "approve", comment: "recorded" });
await client.workflow.getHandle(approval.workflow_id).result();

const histories: Record<string, string> = {
  [names.incident]: `incident/${host}`,
  [names.approved]: approval.workflow_id,
};
for (const [name, workflowId] of Object.entries(histories))
  saveHistory(config.temporal.address, workflowId, files[name] as string);
await service.close();
await hooks.close();
await scratch.drop();
process.exit(0);
