import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  mitigationAttemptId,
  mitigationCommandId,
  mitigationWorkflowId,
} from "../../src/workflows/ids.ts";
import { releaseSignal } from "../../src/workflows/isolation.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { type Json, restClient } from "../support/http.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, succeed } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// Power exercised outside the engine's own path leaves a trace: catalog changes, isolations
// released from Temporal; and operators cannot take the command ids the engine will use.
let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_audit", { loadDefaults: true });
});
afterAll(async () => {
  await g?.cleanup();
});

const audit = async (query: string) =>
  (await g.rest.get(`/api/audit?${query}&limit=500`)).body.items as Json[];

describe("catalog changes", () => {
  it("are audited with the operator token's name; the default catalog with system", async () => {
    const created = await g.rest.post("/api/tokens", { name: "alice", role: "admin" });
    expect(created.status).toBe(201);
    const alice = restClient(() => g.service.apiUrl, created.body.token);
    const condition = {
      identifier: "audited_condition",
      name: "audited",
      description: "",
      params: {},
      args: {},
      check: "(true)",
    };
    expect((await alice.post("/api/condition", condition)).status).toBe(201);
    const renamed = { ...condition, name: "renamed" };
    expect((await alice.put("/api/condition?id=audited_condition", renamed)).status).toBe(200);
    expect((await alice.call("DELETE", "/api/condition?id=audited_condition")).status).toBe(204);

    const changes = (await audit("action=catalog.")).map((e) => [
      e.actor,
      e.action,
      e.details.kind,
      e.details.key,
      e.details.document?.name,
    ]);
    expect(changes).toContainEqual([
      "system",
      "catalog.created",
      "mitigation",
      "close_conn",
      "close_conn",
    ]);
    expect(changes.filter(([actor]) => actor === "operator:alice")).toEqual([
      ["operator:alice", "catalog.created", "condition", "audited_condition", "audited"],
      ["operator:alice", "catalog.updated", "condition", "audited_condition", "renamed"],
      ["operator:alice", "catalog.deleted", "condition", "audited_condition", undefined],
    ]);
  });
});

describe("isolation releases", () => {
  const isolated = async (hostname: string) => {
    const agent = await g.agent(hostname, { autoAnswer: succeed });
    const res = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "isolate-host",
      details: { reason: "audit test", allow_portal_communication: true, allow_dns: true },
    });
    expect(res.status).toBe(202);
    await eventually(
      "isolated",
      async () =>
        (await g.rest.get(`/api/agents/${agent.agentId}/isolation`)).body.status === "isolated",
    );
    return { agent, handle: g.temporal.workflow.getHandle(`isolation/${agent.agentId}`) };
  };
  const releases = async (agentId: string) =>
    (await audit(`agent=${agentId}&action=isolation.released`)).map((e) => [
      e.actor,
      e.details.reason,
      e.details.workflow_id,
    ]);

  it("are audited when signalled from Temporal without any payload, as `temporal signal`", async () => {
    const { agent, handle } = await isolated("released-bare");
    // As the Temporal UI or CLI sends it when nobody types an input.
    await (handle.signal as (s: typeof releaseSignal) => Promise<void>)(releaseSignal);
    expect(await handle.result()).toMatchObject({
      status: "released",
      releaseRequestedBy: "temporal signal",
    });
    expect(await releases(agent.agentId)).toEqual([
      ["temporal signal", null, `isolation/${agent.agentId}`],
    ]);
    expect(agent.commands().map((c: Frame) => c.command)).toEqual(["isolate-host", "release-host"]);
  });

  it("are audited with who and why when the signal says so, and when released over REST", async () => {
    const signalled = await isolated("released-signal");
    await signalled.handle.signal(releaseSignal, {
      requestedBy: "operator:temporal-ui",
      reason: "false positive",
    });
    await signalled.handle.result();
    expect(await releases(signalled.agent.agentId)).toEqual([
      ["operator:temporal-ui", "false positive", `isolation/${signalled.agent.agentId}`],
    ]);

    const viaRest = await isolated("released-rest");
    expect(
      (
        await g.rest.post("/api/commands", {
          agent_id: viaRest.agent.agentId,
          command: "release-host",
        })
      ).status,
    ).toBe(202);
    await viaRest.handle.result();
    expect(await releases(viaRest.agent.agentId)).toEqual([
      ["operator:MM_ADMIN_TOKEN", null, `isolation/${viaRest.agent.agentId}`],
    ]);
  });
});

describe("operator command ids", () => {
  it("cannot take the id of an engine's command: the mitigation still runs", async () => {
    const host = g.ctx.host("sabotage");
    const agent = await g.agent(host, { autoAnswer: succeed });
    const alert = wazuhAlert("100002-ncat-connection", host);
    const engineId = mitigationCommandId(
      mitigationAttemptId(
        mitigationWorkflowId({
          host,
          alertId: alert.id,
          flowId: "ncat_to_ransomware",
          nodeId: "ncat_connection",
        }),
        "close_conn",
      ),
      0,
    );
    // A responder stakes the id close_conn's kill-process will use, with a command bound to fail.
    const staked = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "kill-process",
      details: { pid: 999_999, process_name: "ncat" },
      id: engineId,
    });
    expect(staked.status).toBe(400);
    expect(staked.body.error).toMatch(/^invalid request: id: /);

    const own = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "block-ip",
      details: { ip: "10.9.9.9" },
      id: "change-4711",
    });
    expect(own.status).toBe(202);
    expect(own.body.id).toBe(`command/${agent.agentId}/change-4711`);

    expect((await g.rest.post("/api/alert", alert)).status).toBe(202);
    await eventually("close_conn succeeded", async () =>
      (
        await g.rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}`)
      ).body.items.some((d: Json) => d.kind === "mitigation_succeeded"),
    );
    const kill = agent.commands().find((c: Frame) => c.command === "kill-process");
    expect(kill).toMatchObject({ details: { pid: "3613" } });
    // The engine's id names this alert's stored key (its id and a part no client chooses).
    expect(kill.id).toMatch(
      new RegExp(
        `^mitigation/${host}/${alert.id.replace(/\./g, "\\.")}/rest-[0-9a-f]{12}/ncat_to_ransomware\\.ncat_connection/close_conn/0$`,
      ),
    );
  });
});
