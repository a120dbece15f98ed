import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentCommandWorkflow } from "../../src/workflows/agent-command.ts";
import { scrapeMetrics } from "../support/metrics.ts";
import { eventually } from "../support/wait.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// The gateway's metrics through a real agent session: sessions, frames, commands by state and ack
// latency. This file's worker process holds one service, so every count is this file's doing.
let g: GatewayTestContext;
let viewer: string;
beforeAll(async () => {
  g = await gatewayTestContext("gw_metrics");
  const res = await g.rest.post("/api/tokens", { name: "metrics-viewer", role: "viewer" });
  viewer = res.body.token;
});
afterAll(async () => {
  await g?.cleanup();
});

async function scrape(): Promise<(series: string) => number> {
  const scraped = await scrapeMetrics(g.gatewayUrl, viewer);
  expect(scraped.status).toBe(200);
  return scraped.value;
}

function issue(agentId: string, command: "kill-process" | "block-ip", details: object) {
  const commandId = `test/${randomBytes(6).toString("hex")}`;
  return g.temporal.workflow.execute(agentCommandWorkflow, {
    workflowId: `command/${agentId}/${commandId}`,
    taskQueue: g.ctx.config.temporal.taskQueue,
    args: [
      {
        agentId,
        command,
        details: details as Record<string, unknown>,
        priority: "high",
        commandId,
        requestedBy: "operator:test",
        ttlMs: 60_000,
      },
    ],
  });
}

describe("gateway metrics", () => {
  it("count the session, its frames, its commands by state and time their acks", async () => {
    const agent = await g.agent("metrics-host", {
      // The agent acknowledges at once; kill-process succeeds, block-ip fails.
      autoAnswer: (c) => ({ success: c.command === "kill-process", message: "done", details: {} }),
    });
    expect((await scrape())("mm_gateway_sessions")).toBe(1);

    await issue(agent.agentId, "kill-process", { pid: "42" });
    await expect(issue(agent.agentId, "block-ip", { ip: "203.0.113.9" })).rejects.toThrow();

    const m = await scrape();
    expect(m('mm_commands_total{state="issued"}')).toBe(2);
    expect(m('mm_commands_total{state="delivered"}')).toBe(2);
    expect(m('mm_commands_total{state="acknowledged"}')).toBe(2);
    expect(m('mm_commands_total{state="completed"}')).toBe(1);
    expect(m('mm_commands_total{state="failed"}')).toBe(1);
    expect(m("mm_gateway_ack_seconds_count")).toBe(2);
    // In: hello, then an ack and a completion per command. Out: welcome and the two commands.
    expect(m('mm_gateway_frames_total{direction="in"}')).toBe(5);
    expect(m('mm_gateway_frames_total{direction="out"}')).toBe(3);

    await agent.close();
    await eventually(
      "the session to close",
      async () => (await scrape())("mm_gateway_sessions") === 0,
    );
  });
});
