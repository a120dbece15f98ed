import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { oneNodeFlow, wazuhAlert } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { succeed } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// Approval gates that read the host's agent: its groups (a group's mode) and its labels (a
// critical host), with real agents behind the real gateway.
let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_gates");
  await g.rest.created("/api/workflow", {
    identifier: "isolate",
    name: "isolate the host",
    steps: [{ agent: "isolate-host" }],
    effective_attacks: ["T1048"],
    cost: 1,
  });
  await g.rest.created("/api/attack-flow", oneNodeFlow("exfil", "T1048"));
});
afterAll(async () => {
  await g?.cleanup();
});

/** A connected agent for a new host, with the groups and labels an admin gave it. */
async function hostWith(
  label: string,
  change: { groups?: string[]; labels?: Record<string, string> },
) {
  const host = g.ctx.host(label);
  const agent = await g.agent(host, { autoAnswer: succeed });
  expect((await g.rest.patch(`/api/agents/${agent.agentId}`, change)).status).toBe(200);
  return { host, agent };
}

function exfiltration(host: string) {
  const alert = wazuhAlert("100002-ncat-connection", host);
  (alert.rule as { mitre: { id: string[] } }).mitre.id = ["T1048"];
  return alert;
}

const decided = (host: string, kind: string) =>
  eventually(`${kind} for ${host}`, async () =>
    (
      await g.rest.get(
        `/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`,
      )
    ).body.items.find((d: { kind: string }) => d.kind === kind),
  );

describe("approval gates on the host's agent", () => {
  it("holds the isolation of a host labelled critical, and isolates it once approved", async () => {
    const { host, agent } = await hostWith("crit", { labels: { criticality: "critical" } });
    await g.rest.post("/api/alert", exfiltration(host));
    const requested = await decided(host, "approval_requested");
    expect(requested.details.reasons).toEqual([
      "the host is labelled criticality=critical: isolating it needs a person",
    ]);
    expect(agent.commands()).toEqual([]);
    const answer = await g.rest.post(`/api/approvals/${requested.details.approval_id}`, {
      decision: "approve",
      comment: "domain controller is exfiltrating, isolate",
    });
    expect(answer.status).toBe(202);
    await decided(host, "mitigation_succeeded");
    expect(agent.commands().map((c) => c.command)).toEqual(["isolate-host"]);
    // Approved by a person, yet the engine's action (through the isolation workflow).
    const rows = await g.db
      .selectFrom("commands")
      .select(["origin", "requested_by"])
      .where("agent_id", "=", agent.agentId)
      .execute();
    expect(rows).toEqual([
      { origin: "engine", requested_by: expect.stringMatching(/^workflow:mitigation\//) },
    ]);
  });

  it("follows the mode of the agent's group over the global one", async () => {
    expect((await g.rest.put("/api/modes/groups/lab", { mode: "observe" })).status).toBe(200);
    expect((await g.rest.put("/api/modes/global", { mode: "approve" })).status).toBe(200);
    try {
      const lab = await hostWith("lab", { groups: ["lab"] });
      const other = await hostWith("other", { groups: ["web"] });
      await g.rest.post("/api/alert", exfiltration(lab.host));
      await g.rest.post("/api/alert", exfiltration(other.host));
      const observed = await decided(lab.host, "mitigation_observed");
      expect(observed.reason).toContain("observe mode (group lab)");
      const held = await decided(other.host, "approval_requested");
      expect(held.details.reasons).toEqual([
        "approve mode (global): every action waits for a person",
      ]);
      expect(lab.agent.commands()).toEqual([]);
      expect(other.agent.commands()).toEqual([]);
    } finally {
      await g.rest.put("/api/modes/global", { mode: "act" });
      await g.rest.delete("/api/modes/groups/lab");
    }
  });
});
