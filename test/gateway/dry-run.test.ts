import { afterAll, beforeAll, expect, it } from "vitest";
import { wazuhAlert } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { succeed } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// POST /api/alert/dry-run on the seed's configuration with a real agent: what an alert would do,
// decided by the engine's own code, with nothing stored, signalled or sent.
let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_dry_run", { loadDefaults: true });
});
afterAll(async () => {
  await g?.cleanup();
});

const decisions = async (host: string) =>
  (await g.rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}`)).body
    .items as { kind: string }[];

it("rehearses the seed's first alert: the node, every candidate and the resolved commands, with no effect", async () => {
  const host = g.ctx.host("rehearsal");
  const agent = await g.agent(host, { autoAnswer: succeed });
  const res = await g.rest.post("/api/alert/dry-run", wazuhAlert("100002-ncat-connection", host));
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({
    dryRun: true,
    alert: { host, techniques: ["T1041", "T1219"] },
    incident: { id: `incident/${host}`, open: false, instances: [] },
    nodes: [{ flow: "ncat_to_ransomware", node: "ncat_connection", instance: null, holds: true }],
    reached: [
      {
        flow: "ncat_to_ransomware",
        node: "ncat_connection",
        preemptive: false,
        chosen: "close_conn",
        candidates: [
          {
            key: "close_conn",
            applies: true,
            steps: [
              {
                kind: "agent",
                agentId: agent.agentId,
                command: "kill-process",
                details: { pid: "3613", ip: "192.168.200.1", process_name: "ncat" },
              },
              { kind: "agent", command: "block-ip", details: { pid: "3613", ip: "192.168.200.1" } },
            ],
          },
        ],
      },
    ],
  });
  // Nothing stored, decided, started or sent.
  expect((await g.rest.get(`/api/alerts?host=${host}`)).body.total).toBe(0);
  expect(await decisions(host)).toEqual([]);
  expect((await g.rest.get(`/api/incidents?host=${host}`)).body.items).toEqual([]);
  expect(agent.commands()).toEqual([]);
});

it("rehearses against the host's open incident: a middle step counts only once the flow began", async () => {
  const host = g.ctx.host("rehearsal-flow");
  await g.agent(host, { autoAnswer: succeed });
  const second = wazuhAlert("100003-exec-permission-added", host);
  const before = (await g.rest.post("/api/alert/dry-run", second)).body;
  expect(before.nodes).toEqual([]);
  expect(before.reached).toEqual([]);

  await g.rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host));
  await eventually("close_conn done", async () =>
    (await decisions(host)).some((d) => d.kind === "mitigation_succeeded"),
  );
  const after = (await g.rest.post("/api/alert/dry-run", second)).body;
  expect(after.incident.open).toBe(true);
  expect(after.reached).toMatchObject([{ node: "exec_permission", chosen: "delete_file" }]);
  // Conditions are reported one by one with their verdicts.
  expect(after.nodes[0].conditions.length).toBeGreaterThan(0);
  expect(after.nodes[0].conditions.every((c: { holds: boolean }) => c.holds)).toBe(true);
});

it("names the offending field of a malformed alert", async () => {
  const alert = wazuhAlert("100002-ncat-connection", "x");
  delete (alert as { rule?: unknown }).rule;
  const res = await g.rest.post("/api/alert/dry-run", alert);
  expect(res.status).toBe(400);
  expect(res.body.errors.map((e: { field: string }) => e.field)).toContain("rule");
});
