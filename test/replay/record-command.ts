// Records an operator command's history (the agent-command workflow) for the replay test: a
// kill-process posted to POST /api/commands, delivered by the real gateway to a connected agent
// that completes it. Into histories/<release>/ (histories.ts; an existing file is never
// overwritten); give a new recording a new name:
//   npx tsx test/replay/record-command.ts [history name, default agent-command-completed]

import { recordWithAgent } from "./agent-recording.ts";
import { newHistoryFiles } from "./histories.ts";

const name = process.argv[2] ?? "agent-command-completed";
const file = newHistoryFiles([name])[name] as string;

await recordWithAgent("record_command", file, async ({ rest, client, agentId }) => {
  const posted = await rest.post("/api/commands", {
    agent_id: agentId,
    command: "kill-process",
    details: { pid: 4242, process_name: "ncat" },
    id: "replay-recording",
  });
  if (posted.status !== 202) throw new Error(`command refused: ${JSON.stringify(posted.body)}`);
  const workflowId = posted.body.workflow_id as string;
  await client.workflow.getHandle(workflowId).result();
  return workflowId;
});
process.exit(0);
