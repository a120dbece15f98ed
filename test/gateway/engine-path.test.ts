import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveHost } from "../../src/store/agents.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, type helloFor, succeed, TestAgent } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// The engine with the real gateway at its agent boundary: the seed's default configuration.
let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_engine", { loadDefaults: true });
});
afterAll(async () => {
  await g?.cleanup();
});

const decisions = async (host: string) =>
  (await g.rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`))
    .body.items as {
    kind: string;
    reason: string;
    mitigation: string | null;
  }[];

describe("host resolution", () => {
  it("finds an alert's agent by Wazuh agent id, then host name, then IP, never a revoked one", async () => {
    const connect = async (hostname: string, hello: Parameters<typeof helloFor>[1]) => {
      const { agentId, apiKey } = await g.enroll(hostname);
      const agent = await TestAgent.connect(g.gatewayUrl, apiKey, hostname, { hello });
      await agent.close();
      return agentId;
    };
    const byWazuh = await connect("alpha", {
      external_ids: { wazuh_agent_id: "900" },
      ips: ["10.0.9.1"],
    });
    const byName = await connect("Bravo", { ips: ["10.0.9.2"] });
    const byIp = await connect("charlie", { ips: ["127.0.0.1", "10.0.9.3"] });
    const resolve = (host: { name: string; agentId?: string; ip?: string }) =>
      resolveHost(g.db, host).then((t) => (t && "agentId" in t ? t.agentId : t));

    expect(await resolve({ name: "bravo", agentId: "900", ip: "10.0.9.3" })).toBe(byWazuh);
    expect(await resolve({ name: "bravo", agentId: "999", ip: "10.0.9.3" })).toBe(byName);
    expect(await resolve({ name: "delta", agentId: "999", ip: "10.0.9.3" })).toBe(byIp);
    expect(await resolve({ name: "delta" })).toBeNull();
    expect(await resolveHost(g.db, { name: "alpha" })).toMatchObject({
      capabilities: expect.arrayContaining(["isolate-host"]),
    });

    await g.rest.delete(`/api/agents/${byWazuh}/keys`);
    expect(await resolve({ name: "bravo", agentId: "900" })).toBe(byName);
  });
});

describe("mitigations through the gateway", () => {
  it("sends close_conn's commands to the agent of the alert's host and records the success", async () => {
    const host = g.ctx.host("ncat");
    // The Wazuh agent id identifies the host even though the agent calls itself something else.
    const agent = await g.agent(`${host}.example.org`, {
      hello: { external_ids: { wazuh_agent_id: "001" } },
      autoAnswer: succeed,
    });
    const bystander = await g.agent(`bystander-${host}`, { autoAnswer: succeed });
    expect(
      (await g.rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host))).status,
    ).toBe(202);

    await eventually("close_conn succeeded", async () =>
      (await decisions(host)).some((d) => d.kind === "mitigation_succeeded"),
    );
    expect(agent.commands().map((c: Frame) => [c.command, c.priority, c.details])).toEqual([
      ["kill-process", "high", { pid: "3613", ip: "192.168.200.1", process_name: "ncat" }],
      ["block-ip", "high", { pid: "3613", ip: "192.168.200.1" }],
    ]);
    expect(agent.commands()[0].id).toMatch(new RegExp(`^mitigation/${host}/.+/close_conn/0$`));
    expect(bystander.commands()).toEqual([]);
    const rows = await g.db
      .selectFrom("commands")
      .select(["id", "origin", "status", "workflow_id"])
      .where("agent_id", "=", agent.agentId)
      .execute();
    expect(rows.map((r) => [r.origin, r.status])).toEqual([
      ["engine", "completed"],
      ["engine", "completed"],
    ]);
  });

  it("records the agent's failure message and falls back, as with any failed mitigation", async () => {
    const host = g.ctx.host("stubborn");
    const agent = await g.agent(host, {
      autoAnswer: (c) =>
        c.command === "kill-process"
          ? { success: false, message: "process 3613 is protected", details: {} }
          : succeed(c),
    });
    // Wazuh agent 002 has no agent here (001 is the previous test's): resolved by host name.
    const alert = wazuhAlert("100002-ncat-connection", host);
    alert.agent.id = "002";
    await g.rest.post("/api/alert", alert);
    await eventually("the failure recorded", async () =>
      (await decisions(host)).some((d) => d.kind === "no_mitigation"),
    );
    const failed = (await decisions(host)).find((d) => d.kind === "mitigation_failed");
    expect(failed?.reason).toContain("process 3613 is protected");
    expect(agent.commands().map((c: Frame) => c.command)).toEqual(["kill-process"]);
  });
});
