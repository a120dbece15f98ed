import { afterAll, beforeAll, expect, it } from "vitest";
import type { AgentCommandInput } from "../../src/activities/agent-commands.ts";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";

// Per-host ordering on the seed's flow: delete_file (second alert) and handle_ransomware (third
// alert) act on the same path. The agent takes its time deleting; the quarantine of the next
// alert waits for it instead of racing it.
let ctx: TestContext;
let service: Service;
let finishDelete: () => void = () => {};
const deleting = new Promise<void>((resolve) => {
  finishDelete = resolve;
});
const agents = recordingAgents({
  working: (cmd: AgentCommandInput) =>
    cmd.command === "delete-file" ? deleting : Promise.resolve(),
});
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  ctx = await createTestContext("ordering");
  service = await ctx.start({ agents: agents.gateway });
});
afterAll(async () => {
  finishDelete();
  await ctx?.cleanup();
});

it("runs mitigations touching the same file in alert order", async () => {
  const host = ctx.host("ordering");
  const mine = () => agents.commands.filter((c) => c.agentId === `agent-${host}`);
  const post = async (name: Parameters<typeof wazuhAlert>[0]) =>
    expect((await rest.post("/api/alert", wazuhAlert(name, host))).status).toBe(202);

  await post("100002-ncat-connection");
  await eventually("close_conn", () => mine().length === 2);
  await post("100003-exec-permission-added");
  await eventually("the delete under way", () => mine().some((c) => c.command === "delete-file"));
  await post("100004-executable-file-added");

  // The ransomware run has chosen its mitigation and waits for its turn on the file.
  const waiting = await eventually("the ransomware run waiting for its turn", async () => {
    const state = (await rest.get(`/api/incidents/${host}`)).body;
    return state.mitigations?.find(
      (m: { nodeId: string; granted?: boolean }) =>
        m.nodeId === "ransomware_file" && m.granted === false,
    );
  });
  expect(waiting.objects).toEqual(["file:/tmp/zerologon_tester.py", "network"]);
  expect(mine().map((c) => c.command)).not.toContain("quarantine-file");

  finishDelete();
  await eventually("the ransomware mitigation after the delete", () => mine().length === 5);
  expect(mine().map((c) => c.command)).toEqual([
    "kill-process",
    "block-ip",
    "delete-file",
    "quarantine-file",
    "isolate-host",
  ]);
});
