import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { UNACKED_HOLD_MS } from "../../src/gateway/session.ts";
import { agentCommandWorkflow } from "../../src/workflows/agent-command.ts";
import { succeed } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// The gateway's delivery window bounds the commands sent and not yet completed (here 1, so one
// unanswered command fills it). A critical command (an isolation) must not queue behind it: in a
// burst of thousands that wait was tens of seconds.
let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_window", {
    gateway: { ...loadConfig().gateway, deliveryWindow: 1 },
  });
});
afterAll(async () => {
  await g?.cleanup();
});

async function issue(agentId: string, pid: number, priority: "high" | "critical" = "high") {
  const commandId = `window/${randomBytes(6).toString("hex")}`;
  const handle = await g.temporal.workflow.start(agentCommandWorkflow, {
    workflowId: `command/${agentId}/${commandId}`,
    taskQueue: g.ctx.config.temporal.taskQueue,
    args: [
      {
        agentId,
        command: "kill-process",
        details: { pid },
        priority,
        commandId,
        requestedBy: "operator:test",
        ttlMs: 60_000,
      },
    ],
  });
  return { commandId, handle };
}

it("sends a critical command at once past a full delivery window, while others wait for room", async () => {
  const busy = await g.agent(g.ctx.host("busy")); // answers nothing: holds the only slot
  const waiting = await g.agent(g.ctx.host("waiting"), { autoAnswer: succeed });
  const urgent = await g.agent(g.ctx.host("urgent"), { autoAnswer: succeed });

  const held = await issue(busy.agentId, 1);
  await busy.command("kill-process");
  const full = Date.now();
  const normal = await issue(waiting.agentId, 2);
  const critical = await issue(urgent.agentId, 3, "critical");
  expect(await critical.handle.result()).toMatchObject({ success: true });
  // Sent well before the gateway frees an unanswered slot by itself (UNACKED_HOLD_MS, 10 s): it
  // did not wait for room. The ordinary command, issued first, is still waiting for it.
  expect(Date.now() - full).toBeLessThan(UNACKED_HOLD_MS - 2_000);
  expect(waiting.commands()).toEqual([]);

  busy.complete(held.commandId, { success: true, message: "done", details: {} });
  expect(await normal.handle.result()).toMatchObject({ success: true });
  expect(await held.handle.result()).toMatchObject({ success: true });
});
