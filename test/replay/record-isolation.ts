// Records an isolation workflow's history for the replay test: a host isolated through the REST
// API, then released by a `release` signal sent straight to the workflow (as from the Temporal UI).
// Each recording keeps the behaviour of the code that made it; give a new one a new name:
//   npx tsx test/replay/record-isolation.ts <history name> [release signal payload as JSON]

import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { startService } from "../../src/service.ts";
import { releaseSignal } from "../../src/workflows/isolation.ts";
import { enrolled, succeed, TestAgent } from "../gateway/support/agent.ts";
import { restClient } from "../support/http.ts";
import { createScratch } from "../support/scratch.ts";
import { eventually } from "../support/wait.ts";

const [name, payload] = process.argv.slice(2);
if (!name) throw new Error("usage: record-isolation.ts <history name> [release payload JSON]");
const file = path.join(import.meta.dirname, "histories", `${name}.json`);
if (existsSync(file)) throw new Error(`${file} exists: recorded histories are never overwritten`);

const scratch = await createScratch("record_isolation", { logLevel: "warn", loadDefaults: false });
const { config } = scratch;
const service = await startService(config, ["api", "worker", "gateway"], {});
const rest = restClient(() => service.apiUrl);
const client = new Client({
  connection: await Connection.connect({ address: config.temporal.address }),
});

const token = await rest.post("/api/enrollment-tokens", {});
const hostname = `replay-${scratch.suffix.replace(/_/g, "-")}`;
const enrollment = await enrolled(service.gatewayUrl as string, token.body.token, hostname);
const agent = await TestAgent.connect(service.gatewayUrl as string, enrollment.apiKey, hostname, {
  autoAnswer: succeed,
});
const isolated = await rest.post("/api/commands", {
  agent_id: enrollment.agentId,
  command: "isolate-host",
  details: { reason: "replay recording", allow_portal_communication: true, allow_dns: true },
});
if (isolated.status !== 202) throw new Error(`isolate refused: ${JSON.stringify(isolated.body)}`);
const workflowId = `isolation/${enrollment.agentId}`;
const handle = client.workflow.getHandle(workflowId);
await eventually(
  "isolated",
  async () =>
    (await rest.get(`/api/agents/${enrollment.agentId}/isolation`)).body.status === "isolated",
);
// Sent as the Temporal UI does: whatever payload the person typed, possibly none at all.
const args = payload === undefined ? [] : [JSON.parse(payload)];
await (handle.signal as (...a: unknown[]) => Promise<void>)(releaseSignal, ...args);
await handle.result();

// The temporal CLI writes the JSON history format every Temporal tool reads.
const temporal = path.join(process.env.MM_CACHE_DIR ?? "", "bin/temporal-1.5.1");
const json = execFileSync(
  temporal,
  ["workflow", "show", "--address", config.temporal.address, "-w", workflowId, "-o", "json"],
  { encoding: "utf8" },
);
writeFileSync(file, json);
console.log(`recorded ${name} (${JSON.parse(json).events.length} events)`);
await agent.close();
await service.close();
await scratch.drop();
process.exit(0);
