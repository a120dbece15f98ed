import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixture, wazuhAlert } from "../support/fixtures.ts";
import { syslogCollector } from "../support/syslog-collector.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, succeed } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// Through the real gateway: an agent's alert, the commands it causes and an isolation all reach
// the SIEM, each command's state changes in the order they happened.
let collector: Awaited<ReturnType<typeof syslogCollector>>;
let g: GatewayTestContext;

beforeAll(async () => {
  collector = await syslogCollector();
  g = await gatewayTestContext("gw_siem", {
    loadDefaults: true,
    siem: {
      syslogUrl: `tcp://127.0.0.1:${collector.port}`,
      natsSubject: undefined,
      queueMax: 10_000,
    },
  });
});
afterAll(async () => {
  await g?.cleanup();
  await collector?.close();
});

describe("SIEM events from the gateway", () => {
  it("forwards the agent's alert, every state change of its commands in order, and isolations", async () => {
    const host = g.ctx.host("siem");
    const agent = await g.agent(host, { autoAnswer: succeed });
    // Its own alert (Fibratus's, forwarded), and a Wazuh alert that makes the engine command it.
    agent.send({ ...fixture<Frame>("agent-protocol/agent-alert.json"), seq: 1 });
    expect(
      (await g.rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host))).status,
    ).toBe(202);

    const forHost = () => collector.messages.map((m) => m.event).filter((e) => e.host === host);
    await eventually("the agent's alert", () =>
      forHost().some((e) => e.kind === "alert" && e.event_id.startsWith("alert:")),
    );
    const lifecycle = [
      "command.issued",
      "command.delivered",
      "command.acknowledged",
      "command.completed",
    ];
    await eventually("both commands completed", () =>
      forHost().filter((e) => e.action === "command.completed").length === 2 ? true : undefined,
    );
    const commands = forHost().filter((e) => e.kind === "command");
    const ids = [...new Set(commands.map((e) => e.command_id))];
    expect(ids).toHaveLength(2);
    for (const id of ids)
      expect(commands.filter((e) => e.command_id === id).map((e) => e.action)).toEqual(lifecycle);

    const isolated = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "isolate-host",
      details: { reason: "SIEM test", allow_portal_communication: true, allow_dns: true },
    });
    expect(isolated.status).toBe(202);
    await eventually("the isolation request", () =>
      forHost().some((e) => e.kind === "isolation" && e.action === "isolation.requested"),
    );
    await eventually("the isolate-host completion", () =>
      forHost().some((e) => e.command === "isolate-host" && e.action === "command.completed"),
    );
    // At least once, and here exactly once: no event twice.
    const eventIds = collector.messages.map((m) => m.event.event_id);
    expect(collector.errors).toEqual([]);
    expect(new Set(eventIds).size).toBe(eventIds.length);
  });
});
