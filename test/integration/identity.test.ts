import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveHost } from "../../src/store/agents.ts";
import { type Frame, succeed, TestAgent } from "../gateway/support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "../gateway/support/gateway-context.ts";
import { fixture, wazuhAlert } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";

// Attack 2, host hijack: an enrolled agent whose hello claims another host's name, Wazuh agent id
// and IPs must neither receive that host's mitigations nor file its own alerts under that host.
let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("identity", { loadDefaults: true });
});
afterAll(async () => {
  await g?.cleanup();
});

interface DecisionRow {
  kind: string;
  reason: string;
  alert_id: string;
}

const decisions = async (host: string) =>
  (await g.rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`))
    .body.items as DecisionRow[];

const audit = async (agentId: string, action: string) =>
  (await g.rest.get(`/api/audit?agent=${agentId}&action=${action}`)).body.items as Frame[];

/** The key a stored alert is referred to by (decisions carry it). */
const alertKey = async (host: string, id: string) =>
  (
    await g.db
      .selectFrom("alerts")
      .select("key")
      .where("host", "=", host)
      .where("id", "=", id)
      .executeTakeFirstOrThrow()
  ).key;

const victimIdentity = { external_ids: { wazuh_agent_id: "501" }, ips: ["10.66.0.1"] };

function victimAlert(victim: string, id: string) {
  const alert = wazuhAlert("100002-ncat-connection", victim, id);
  alert.agent = { name: victim, id: "501", ip: "10.66.0.1" };
  return alert;
}

describe("an agent claiming another host's identity", () => {
  let victim: string;
  let victimAgent: TestAgent & { agentId: string };
  let impostor: TestAgent;
  let impostorId: string;
  let impostorName: string;

  beforeAll(async () => {
    victim = g.ctx.host("victim");
    impostorName = g.ctx.host("impostor");
    victimAgent = await g.agent(victim, { hello: victimIdentity, autoAnswer: succeed });
    const enrollment = await g.enroll(impostorName);
    impostorId = enrollment.agentId;
    // Its first hello tells the truth and binds its own identity …
    const honest = await TestAgent.connect(g.gatewayUrl, enrollment.apiKey, impostorName, {
      hello: { external_ids: { wazuh_agent_id: "502" }, ips: ["10.66.0.2"] },
    });
    await honest.close();
    // … the next ones, once compromised, claim the victim's, and would report any command a success.
    for (let reconnect = 0; reconnect < 2; reconnect++) {
      await impostor?.close();
      impostor = await TestAgent.connect(g.gatewayUrl, enrollment.apiKey, victim, {
        hello: victimIdentity,
        autoAnswer: succeed,
      });
    }
  });
  afterAll(async () => {
    await impostor?.close();
  });

  it("keeps the claim as reported, flags it and audits it once, but trusts only the enrolled identity", async () => {
    expect((await g.rest.get(`/api/agents/${impostorId}`)).body).toMatchObject({
      hostname: victim,
      ips: ["10.66.0.1"],
      identity_hostname: impostorName,
      identity_wazuh_agent_id: "502",
      identity_ips: ["10.66.0.2"],
      identity_mismatch: true,
    });
    const claims = await audit(impostorId, "agent.identity_claim");
    expect(claims).toHaveLength(1); // two hellos with the same claim: one audit entry
    expect(claims[0]).toMatchObject({
      actor: `agent:${impostorId}`,
      details: {
        claimed: { hostname: victim, wazuh_agent_id: "501", ips: ["10.66.0.1"] },
        identity: { hostname: impostorName, wazuh_agent_id: "502", ips: ["10.66.0.2"] },
      },
    });
    expect((await g.rest.get(`/api/agents/${victimAgent.agentId}`)).body).toMatchObject({
      identity_hostname: victim,
      identity_wazuh_agent_id: "501",
      identity_mismatch: false,
    });
  });

  it("sends the victim's mitigation to the victim's agent only", async () => {
    const id = `hijack-${victim}`;
    expect((await g.rest.post("/api/alert", victimAlert(victim, id))).status).toBe(202);
    await eventually("close_conn succeeded", async () =>
      (await decisions(victim)).some((d) => d.kind === "mitigation_succeeded"),
    );
    expect(victimAgent.commands().map((c: Frame) => c.command)).toEqual([
      "kill-process",
      "block-ip",
    ]);
    expect(impostor.commands()).toEqual([]);
  });

  it("files the impostor's own alerts under its enrolled host, not the one it claims", async () => {
    impostor.send({ ...fixture<Frame>("agent-protocol/agent-alert.json"), seq: 1 });
    await impostor.next((f) => f.type === "alert_ack");
    const stored = await g.db
      .selectFrom("alerts")
      .select(["host", "agent_id", "host_ip"])
      .where("source", "=", "agent")
      .where("host", "in", [victim, impostorName])
      .execute();
    expect(stored).toEqual([{ host: impostorName, agent_id: "502", host_ip: "10.66.0.2" }]);
  });

  it("trusts the claim once an operator accepts it; two agents then claim the host and neither gets its mitigation", async () => {
    const accepted = await g.rest.post(`/api/agents/${impostorId}/identity/accept`, {});
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({
      identity_hostname: victim,
      identity_wazuh_agent_id: "501",
      identity_ips: ["10.66.0.1"],
      identity_mismatch: false,
    });
    expect(await audit(impostorId, "agent.identity_accepted")).toMatchObject([
      {
        actor: "operator:MM_ADMIN_TOKEN",
        details: {
          accepted: { hostname: victim, wazuh_agent_id: "501" },
          previous: { hostname: impostorName, wazuh_agent_id: "502" },
        },
      },
    ]);
    expect((await g.rest.post(`/api/agents/${impostorId}/identity/accept`, {})).status).toBe(409);
    expect((await g.rest.post("/api/agents/agt_unknown/identity/accept", {})).status).toBe(404);

    expect(await resolveHost(g.db, { name: victim, agentId: "501" })).toEqual({
      ambiguous: [victimAgent.agentId, impostorId].sort(),
    });
    const id = `ambiguous-${victim}`;
    await g.rest.post("/api/alert", victimAlert(victim, id));
    const key = await alertKey(victim, id);
    const mine = async () => (await decisions(victim)).filter((d) => d.alert_id === key);
    await eventually("the mitigation decided", async () =>
      (await mine()).some((d) => d.kind === "no_mitigation" || d.kind === "mitigation_succeeded"),
    );
    const skipped = (await mine()).find((d) => d.kind === "mitigation_skipped");
    expect(skipped?.reason).toMatch(/ambiguous/);
    expect(skipped?.reason).toContain(impostorId);
    expect(victimAgent.commands()).toHaveLength(2); // the previous test's, nothing since
    expect(impostor.commands()).toEqual([]);
  });
});

describe("an agent whose first hello names another host than it enrolled as", () => {
  it("binds nothing from that hello: its Wazuh id and IPs resolve to no agent", async () => {
    const enrolledAs = g.ctx.host("enrolled");
    const { agentId, apiKey } = await g.enroll(enrolledAs);
    const agent = await TestAgent.connect(g.gatewayUrl, apiKey, g.ctx.host("claimed"), {
      hello: { external_ids: { wazuh_agent_id: "503" }, ips: ["10.66.0.3"] },
    });
    await agent.close();
    expect((await g.rest.get(`/api/agents/${agentId}`)).body).toMatchObject({
      identity_hostname: enrolledAs,
      identity_wazuh_agent_id: null,
      identity_ips: [],
      identity_bound_at: null,
      identity_mismatch: true,
    });
    expect(await resolveHost(g.db, { name: "nobody", agentId: "503", ip: "10.66.0.3" })).toBeNull();
    expect(await resolveHost(g.db, { name: enrolledAs })).toMatchObject({ agentId });
  });
});
