// Records an isolation workflow's history for the replay test: a host isolated through the REST
// API, then released by a `release` signal sent straight to the workflow (as from the Temporal UI).
// Each recording keeps the behaviour of the code that made it, in histories/<release>/ (histories.ts;
// an existing file is never overwritten); give a new one a new name:
//   npx tsx test/replay/record-isolation.ts <history name> [release signal payload as JSON]

import { releaseSignal } from "../../src/workflows/isolation.ts";
import { eventually } from "../support/wait.ts";
import { recordWithAgent } from "./agent-recording.ts";
import { newHistoryFiles } from "./histories.ts";

const [name, payload] = process.argv.slice(2);
if (!name) throw new Error("usage: record-isolation.ts <history name> [release payload JSON]");
const file = newHistoryFiles([name])[name] as string;

await recordWithAgent("record_isolation", file, async ({ rest, client, agentId }) => {
  const isolated = await rest.post("/api/commands", {
    agent_id: agentId,
    command: "isolate-host",
    details: { reason: "replay recording", allow_portal_communication: true, allow_dns: true },
  });
  if (isolated.status !== 202) throw new Error(`isolate refused: ${JSON.stringify(isolated.body)}`);
  const workflowId = `isolation/${agentId}`;
  const handle = client.workflow.getHandle(workflowId);
  await eventually(
    "isolated",
    async () => (await rest.get(`/api/agents/${agentId}/isolation`)).body.status === "isolated",
  );
  // Sent as the Temporal UI does: whatever payload the person typed, possibly none at all.
  const args = payload === undefined ? [] : [JSON.parse(payload)];
  await (handle.signal as (...a: unknown[]) => Promise<void>)(releaseSignal, ...args);
  await handle.result();
  return workflowId;
});
process.exit(0);
