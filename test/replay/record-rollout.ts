// Records a rule rollout's history (the rollout workflow) for the replay test: one Fibratus rule
// (with the corpus's macros) as a rule set, assigned to a group of one simulated agent that applies
// it (the rollout tests' FleetAgent), rolled out through the REST API. Into histories/<release>/
// (histories.ts; an existing file is never overwritten); give a new recording a new name:
//   npx tsx test/replay/record-rollout.ts [history name, default rollout-completed]

import { fleet } from "../gateway/support/rules-fleet.ts";
import { BASE_RULE, corpusFile, corpusMacros } from "../support/fibratus-rules.ts";
import { record } from "./agent-recording.ts";
import { newHistoryFiles } from "./histories.ts";

const name = process.argv[2] ?? "rollout-completed";
const file = newHistoryFiles([name])[name] as string;
const yaml = { "content-type": "application/yaml" };

await record("record_rollout", file, async ({ rest, client, gatewayUrl, hostname }) => {
  const ok = async (
    what: string,
    res: Promise<{ status: number; body: unknown }>,
    status: number,
  ) => {
    const r = await res;
    if (r.status !== status) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as Record<string, unknown>;
  };
  await ok("macros", rest.call("POST", "/api/rule-macros", corpusMacros(), yaml), 201);
  const posted = await ok("rule", rest.call("POST", "/api/rule", corpusFile(BASE_RULE), yaml), 201);
  const rules = (posted.rules as { id: string; version: string }[]).map(({ id, version }) => ({
    id,
    version,
  }));
  await ok(
    "rule set",
    rest.post("/api/rule-set", { name: "replay", rules, macros_version: 1 }),
    201,
  );
  const token = await ok("token", rest.post("/api/enrollment-tokens", { group: "replay" }), 201);
  const agents = await fleet(gatewayUrl, token.token as string, hostname, 1);
  try {
    await ok(
      "assignment",
      rest.put("/api/rule-set/assignment", { group: "replay", name: "replay", version: 1 }),
      200,
    );
    const started = await ok(
      "rollout",
      rest.post("/api/rule-set/rollout", { name: "replay", version: 1, agent_timeout_seconds: 20 }),
      202,
    );
    const workflowId = started.workflow_id as string;
    const state = (await client.workflow.getHandle(workflowId).result()) as { status: string };
    if (state.status !== "completed") throw new Error(`rollout ended ${JSON.stringify(state)}`);
    return workflowId;
  } finally {
    for (const a of agents) await a.close();
  }
});
process.exit(0);
