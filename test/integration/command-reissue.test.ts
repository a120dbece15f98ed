import type { Client } from "@temporalio/client";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { AgentCommandInput, AgentCommandResult } from "../../src/activities/agent-commands.ts";
import { agentCommandWorkflow, COMMAND_REISSUE_MS } from "../../src/workflows/agent-command.ts";
import { memoryWorker } from "../support/memory-worker.ts";
import type { Scratch } from "../support/scratch.ts";

// An agent command's activity lost mid-way (its worker killed before it issued the command, so no
// outcome will ever come) is tried again after COMMAND_REISSUE_MS, not after its whole timeout
// (the TTL plus 10 minutes): the chaos run's worker kill left commands waiting that long. The
// real workflow on the dev server; the activity is a stand-in whose first attempt never answers.
const attempts: { commandId: string; at: number }[] = [];
let releaseLost: () => void = () => {};
let scratch: Scratch;
let client: Client;
let close: () => Promise<void> = async () => {};

beforeAll(async () => {
  ({ scratch, client, close } = await memoryWorker("reissue", {
    async runAgentCommand(input: AgentCommandInput): Promise<AgentCommandResult> {
      attempts.push({ commandId: input.commandId, at: Date.now() });
      if (attempts.length === 1)
        await new Promise<void>((resolve) => {
          releaseLost = resolve;
        });
      return { success: true, message: "done", details: {} };
    },
  }));
});
afterAll(async () => {
  releaseLost();
  await close();
});

it("tries a lost command activity again after a minute, as the same command", {
  timeout: 180_000,
}, async () => {
  const started = Date.now();
  const result = await client.workflow.execute(agentCommandWorkflow, {
    taskQueue: scratch.config.temporal.taskQueue,
    workflowId: `command/agent-1/${scratch.suffix}`,
    args: [
      {
        agentId: "agent-1",
        command: "kill-process",
        details: { pid: 1 },
        priority: "high",
        commandId: `command/agent-1/${scratch.suffix}`,
        requestedBy: "operator:test",
        ttlMs: 300_000,
      },
    ],
  });
  expect(result).toMatchObject({ success: true });
  expect(attempts.map((a) => a.commandId)).toEqual([
    `command/agent-1/${scratch.suffix}`,
    `command/agent-1/${scratch.suffix}`,
  ]);
  const waited = (attempts[1]?.at ?? 0) - started;
  expect(waited).toBeGreaterThanOrEqual(COMMAND_REISSUE_MS - 1_000);
  expect(waited).toBeLessThan(COMMAND_REISSUE_MS + 60_000);
});
