import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { releaseSignal } from "../../src/workflows/isolation.ts";
import { fixture } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, succeed, TestAgent } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_isolation", {
    commands: { ttlMs: 60_000, portalIps: ["192.168.1.10"], portalPorts: [443, 8443] },
  });
});
afterAll(async () => {
  await g?.cleanup();
});

const seedCommand = fixture<Frame>("agent-protocol/agent-command-isolate-host.json");
const seedCompletion = fixture<Frame>("agent-protocol/agent-completion.json");
const isolate = (agentId: string, extra: Record<string, unknown> = {}) =>
  g.rest.post("/api/commands", {
    agent_id: agentId,
    command: "isolate-host",
    details: { reason: "Ransomware detection", allow_portal_communication: true, allow_dns: true },
    ...extra,
  });
const isolation = async (agentId: string, rest = g.rest) =>
  (await rest.get(`/api/agents/${agentId}/isolation`)).body;

describe("the isolation workflow", () => {
  it("isolates, verifies from the completion, holds, treats a second isolate as a no-op, and releases on request", async () => {
    const agent = await g.agent("isolated-host");
    const started = await isolate(agent.agentId);
    expect(started.status).toBe(202);
    expect(started.body).toEqual({
      command: "isolate-host",
      agent_id: agent.agentId,
      workflow_id: `isolation/${agent.agentId}`,
      no_op: false,
    });

    const command = await agent.command("isolate-host");
    // The configured portal (MM_PORTAL_IPS / MM_PORTAL_PORTS) fills what the request lacked: the seed's details.
    expect(command).toEqual({
      ...seedCommand,
      id: expect.stringMatching(new RegExp(`^isolation/${agent.agentId}/.+/isolate$`)),
      expires_at: expect.any(String),
      signature: expect.any(String),
    });
    agent.ack(command.id);
    agent.complete(command.id, {
      success: true,
      message: seedCompletion.message,
      details: seedCompletion.details,
    });
    await eventually(
      "isolated",
      async () => (await isolation(agent.agentId)).status === "isolated",
    );
    expect(await isolation(agent.agentId)).toMatchObject({
      agentId: agent.agentId,
      status: "isolated",
      requestedBy: "operator:MM_ADMIN_TOKEN",
      reason: "Ransomware detection",
      verification: seedCompletion.details,
      releaseAt: null,
    });
    expect((await g.rest.get(`/api/agents/${agent.agentId}`)).body.isolation).toMatchObject({
      isolated: true,
      workflow_id: `isolation/${agent.agentId}`,
    });
    expect(
      (await g.rest.get(`/api/agents?isolated=true&hostname=isolated-host`)).body.items,
    ).toHaveLength(1);

    const again = await isolate(agent.agentId);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ no_op: true, state: { status: "isolated" } });

    const release = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "release-host",
    });
    expect(release.status).toBe(202);
    expect(release.body).toMatchObject({
      workflow_id: `isolation/${agent.agentId}`,
      state: "releasing",
    });
    const releaseCommand = await agent.command("release-host");
    expect(releaseCommand).toMatchObject({ priority: "critical", details: {} });
    agent.ack(releaseCommand.id);
    agent.complete(releaseCommand.id, succeed(releaseCommand));
    const final = await g.temporal.workflow.getHandle(`isolation/${agent.agentId}`).result();
    expect(final).toMatchObject({
      status: "released",
      releaseRequestedBy: "operator:MM_ADMIN_TOKEN",
      error: null,
    });
    expect(agent.commands().map((c: Frame) => c.command)).toEqual(["isolate-host", "release-host"]);
    expect((await g.rest.get(`/api/agents/${agent.agentId}`)).body.isolation).toEqual({
      isolated: false,
    });
    const audit = (await g.rest.get(`/api/audit?agent=${agent.agentId}&action=`)).body.items.map(
      (e: Frame) => e.action,
    );
    expect(audit.filter((a: string) => a.endsWith(".requested"))).toEqual([
      "isolation.requested",
      "release.requested",
    ]);

    // Released: the next isolate starts a new isolation.
    const next = await isolate(agent.agentId);
    expect(next.status).toBe(202);
    const second = await agent.next((f) => f.command === "isolate-host" && f.id !== command.id);
    expect(second.id).not.toBe(command.id);
  });

  it("releases by itself when the time limit passes", async () => {
    const agent = await g.agent("timed-host", { autoAnswer: succeed });
    expect((await isolate(agent.agentId, { release_after_seconds: 2 })).status).toBe(202);
    await eventually(
      "isolated",
      async () => (await isolation(agent.agentId)).status === "isolated",
    );
    expect((await isolation(agent.agentId)).releaseAt).toBeTruthy();
    const final = await g.temporal.workflow.getHandle(`isolation/${agent.agentId}`).result();
    expect(final).toMatchObject({ status: "released", releaseRequestedBy: "time limit" });
    expect(agent.commands().map((c: Frame) => c.command)).toEqual(["isolate-host", "release-host"]);
  });

  it("releases on the workflow's release signal (Temporal UI or CLI)", async () => {
    const agent = await g.agent("signalled-host", { autoAnswer: succeed });
    await isolate(agent.agentId);
    await eventually(
      "isolated",
      async () => (await isolation(agent.agentId)).status === "isolated",
    );
    const handle = g.temporal.workflow.getHandle(`isolation/${agent.agentId}`);
    await handle.signal(releaseSignal, { requestedBy: "operator:temporal-ui" });
    expect(await handle.result()).toMatchObject({
      status: "released",
      releaseRequestedBy: "operator:temporal-ui",
    });
  });

  it("fails when the completion does not prove a full isolation", async () => {
    const agent = await g.agent("partial-host", {
      autoAnswer: () => ({
        success: true,
        message: "partly",
        details: { firewall_rules_added: 0, execution_time_ms: 3, isolation_level: "partial" },
      }),
    });
    await isolate(agent.agentId);
    const failure = await g.temporal.workflow
      .getHandle(`isolation/${agent.agentId}`)
      .result()
      .catch((err: Error) => err);
    expect(String((failure as Error & { cause?: Error }).cause?.message)).toMatch(
      /isolation_level "partial", not "full"/,
    );
    expect(await isolation(agent.agentId)).toMatchObject({
      status: "failed",
      error: expect.stringMatching(/partial/),
    });
  });

  it("keeps holding across a restart of the service and its agent, then releases", async () => {
    const agent = await g.agent("durable-host", { autoAnswer: succeed });
    await isolate(agent.agentId);
    await eventually(
      "isolated",
      async () => (await isolation(agent.agentId)).status === "isolated",
    );
    await agent.close();
    await g.service.close();

    const restarted = await g.ctx.start({ config: { logLevel: "warn" } });
    const rest = restClient(() => restarted.apiUrl);
    expect(await isolation(agent.agentId, rest)).toMatchObject({ status: "isolated" });
    expect(
      (await rest.post("/api/commands", { agent_id: agent.agentId, command: "release-host" }))
        .status,
    ).toBe(202);
    const back = await TestAgent.connect(
      restarted.gatewayUrl as string,
      agent.apiKey,
      "durable-host",
      { autoAnswer: succeed },
    );
    await back.command("release-host");
    expect(
      await g.temporal.workflow.getHandle(`isolation/${agent.agentId}`).result(),
    ).toMatchObject({ status: "released" });
    await back.close();
  });
});
