import { randomBytes } from "node:crypto";
import { WorkflowFailedError } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueCommand } from "../../src/store/commands.ts";
import { agentCommandWorkflow } from "../../src/workflows/agent-command.ts";
import { fixture } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, succeed, TestAgent } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_commands");
});
afterAll(async () => {
  await g?.cleanup();
});

/** Issues a command the way operator workflows (and the engine) do: the agent-command activity. */
async function issue(
  agentId: string,
  command: string,
  details: Record<string, unknown>,
  opts: { id?: string; priority?: string; ttlMs?: number } = {},
) {
  const commandId = opts.id ?? `test/${randomBytes(6).toString("hex")}`;
  const handle = await g.temporal.workflow.start(agentCommandWorkflow, {
    workflowId: `command/${agentId}/${commandId}/${randomBytes(3).toString("hex")}`,
    taskQueue: g.ctx.config.temporal.taskQueue,
    args: [
      {
        agentId,
        command: command as "kill-process",
        details,
        priority: (opts.priority ?? "high") as "high",
        commandId,
        requestedBy: "operator:test",
        ttlMs: opts.ttlMs ?? 60_000,
      },
    ],
  });
  return { commandId, handle };
}

const commandRow = (id: string) =>
  g.db.selectFrom("commands").selectAll().where("id", "=", id).executeTakeFirst();
const auditOf = async (id: string) =>
  (
    await g.db
      .selectFrom("audit_log")
      .selectAll()
      .where("command_id", "=", id)
      .orderBy("id")
      .execute()
  ).map((r) => r.action);

describe("the seed's exchange: isolate-host → ack → completion", () => {
  it("delivers the seed's command frame exactly and completes the activity with the seed's completion", async () => {
    const seedCommand = fixture<Frame>("agent-protocol/agent-command-isolate-host.json");
    const seedAck = fixture<Frame>("agent-protocol/agent-ack.json");
    const seedCompletion = fixture<Frame>("agent-protocol/agent-completion.json");
    const agent = await g.agent("seed-host");

    const { handle } = await issue(agent.agentId, "isolate-host", seedCommand.details, {
      id: seedCommand.id,
      priority: "critical",
    });
    await agent.command("isolate-host");
    // Byte for byte the seed's frame (same keys, same order, same values), then its expiry and
    // the service's signature.
    const raw = agent.raw.find((text) => text.includes('"command"'));
    expect(raw?.startsWith(`${JSON.stringify(seedCommand).slice(0, -1)},"expires_at":`)).toBe(true);
    expect(Object.keys(JSON.parse(raw as string)).slice(-2)).toEqual(["expires_at", "signature"]);

    agent.send(seedAck);
    await eventually(
      "the ack recorded",
      async () => (await commandRow("cmd-12345"))?.status === "acknowledged",
    );
    agent.send(seedCompletion);
    expect(await handle.result()).toEqual({
      success: true,
      message: "Host isolated successfully",
      details: { firewall_rules_added: 4, execution_time_ms: 237, isolation_level: "full" },
    });

    // The workflow can see the result before the gateway marks the report made: wait for the mark.
    const row = await eventually("the report marked", async () => {
      const r = await commandRow("cmd-12345");
      return r?.reported_at ? r : false;
    });
    expect(row).toMatchObject({
      status: "completed",
      agent_id: agent.agentId,
      priority: "critical",
      delivery_count: 1,
    });
    expect(row?.acknowledged_at).toBeInstanceOf(Date);
    expect(row?.reported_at).toBeInstanceOf(Date);
    expect(row?.result).toEqual({
      success: true,
      message: "Host isolated successfully",
      details: seedCompletion.details,
      timestamp: seedCompletion.timestamp,
    });
    expect(await auditOf("cmd-12345")).toEqual([
      "command.issued",
      "command.delivered",
      "command.acknowledged",
      "command.completed",
    ]);
    // The registry follows the agent's completion.
    const detail = await g.rest.get(`/api/agents/${agent.agentId}`);
    expect(detail.body.isolation).toMatchObject({
      isolated: true,
      since: seedCompletion.timestamp,
    });
  });
});

describe("durable delivery", () => {
  it("delivers an offline agent's commands when it connects, critical first", async () => {
    const { agentId, apiKey } = await g.enroll("offline-host");
    const low = await issue(agentId, "unblock-ip", { ip: "10.0.0.1" }, { priority: "low" });
    const normal = await issue(agentId, "block-ip", { ip: "10.0.0.2" }, { priority: "normal" });
    const critical = await issue(
      agentId,
      "isolate-host",
      { reason: "test" },
      { priority: "critical" },
    );
    await eventually("three pending commands", async () => {
      const rows = await g.db
        .selectFrom("commands")
        .select("status")
        .where("agent_id", "=", agentId)
        .execute();
      return rows.length === 3 && rows.every((r) => r.status === "pending");
    });

    const agent = await TestAgent.connect(g.gatewayUrl, apiKey, "offline-host", {
      autoAnswer: succeed,
    });
    await eventually("all three delivered", () => agent.commands().length === 3);
    expect(agent.commands().map((c: Frame) => c.priority)).toEqual(["critical", "normal", "low"]);
    for (const { handle } of [low, normal, critical])
      expect((await handle.result()).success).toBe(true);
    await agent.close();
  });

  it("reports a command the agent did not take in time as expired, and never delivers it late", async () => {
    const { agentId, apiKey } = await g.enroll("late-host");
    const { commandId, handle } = await issue(
      agentId,
      "kill-process",
      { pid: 4242 },
      { ttlMs: 1_000 },
    );
    const failure = await handle.result().then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(causeMessage(failure)).toMatch(
      /^expired: the agent did not receive the command before its deadline/,
    );
    expect(await commandRow(commandId)).toMatchObject({ status: "expired", delivered_at: null });
    expect(await auditOf(commandId)).toEqual(["command.issued", "command.expired"]);

    const agent = await TestAgent.connect(g.gatewayUrl, apiKey, "late-host");
    await new Promise((r) => setTimeout(r, 1_000));
    expect(agent.commands()).toEqual([]);
    await agent.close();
  });

  it("claims the backlog on every heartbeat, so a lost NATS notice only delays a command", async () => {
    const agent = await g.agent("quiet-bus-host");
    // Stored as the activity stores it, but nobody is told (as if the notice were lost).
    await issueCommand(g.db, {
      id: `lost/${randomBytes(4).toString("hex")}`,
      agentId: agent.agentId,
      command: "kill-process",
      priority: "high",
      details: { pid: 31, process_name: "sleep" },
      origin: "operator",
      requestedBy: "operator:test",
      workflowId: null,
      ttlMs: 60_000,
      taskToken: null,
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(agent.commands()).toEqual([]);
    agent.send({ type: "heartbeat", timestamp: new Date().toISOString() });
    expect(await agent.command("kill-process")).toMatchObject({ details: { pid: 31 } });
  });

  it("sends an acknowledged command again on reconnect, so a completion lost with the connection still arrives", async () => {
    const { agentId, apiKey } = await g.enroll("flaky-host");
    const first = await TestAgent.connect(g.gatewayUrl, apiKey, "flaky-host");
    const { commandId, handle } = await issue(agentId, "block-ip", { ip: "10.9.9.9" });
    await first.command("block-ip");
    first.ack(commandId);
    await eventually(
      "acknowledged",
      async () => (await commandRow(commandId))?.status === "acknowledged",
    );
    first.ws.terminate(); // the completion never made it out

    const second = await TestAgent.connect(g.gatewayUrl, apiKey, "flaky-host");
    const again = await second.command("block-ip");
    expect(again.id).toBe(commandId);
    // What the reference agent does with an id it already ran: its stored completion, not a second run.
    second.complete(commandId, {
      success: true,
      message: "IP blocked",
      details: { ip: "10.9.9.9", blocked: true },
    });
    expect(await handle.result()).toMatchObject({ success: true, message: "IP blocked" });
    expect(await commandRow(commandId)).toMatchObject({ status: "completed", delivery_count: 2 });
    await second.close();
  });
});

describe("duplicate suppression", () => {
  it("delivers a command id once however often it is issued, and answers every issue with the one outcome", async () => {
    const agent = await g.agent("dup-host", { autoAnswer: succeed });
    const commandId = `dup/${randomBytes(4).toString("hex")}`;
    const first = await issue(agent.agentId, "kill-process", { pid: 77 }, { id: commandId });
    expect(await first.handle.result()).toMatchObject({ success: true });
    // A retried activity or a repeated mitigation run reuses the id: answered from the record.
    const second = await issue(agent.agentId, "kill-process", { pid: 77 }, { id: commandId });
    expect(await second.handle.result()).toEqual(await first.handle.result());
    await new Promise((r) => setTimeout(r, 500));
    expect(agent.commands().filter((c: Frame) => c.id === commandId)).toHaveLength(1);
    expect(await auditOf(commandId)).toEqual([
      "command.issued",
      "command.delivered",
      "command.acknowledged",
      "command.completed",
      "command.duplicate",
    ]);
  });

  it("delivers concurrent issues of one id once", async () => {
    const agent = await g.agent("race-host", { autoAnswer: succeed });
    const commandId = `race/${randomBytes(4).toString("hex")}`;
    const issues = await Promise.all(
      [1, 2, 3].map(() => issue(agent.agentId, "block-ip", { ip: "10.1.1.1" }, { id: commandId })),
    );
    const results = await Promise.all(issues.map((i) => i.handle.result()));
    expect(new Set(results.map((r) => JSON.stringify(r))).size).toBe(1);
    await new Promise((r) => setTimeout(r, 500));
    expect(agent.commands().filter((c: Frame) => c.id === commandId)).toHaveLength(1);
  });

  it("answers a repeated operator POST with the same id with the existing command", async () => {
    const agent = await g.agent("rest-dup-host", { autoAnswer: succeed });
    const body = {
      agent_id: agent.agentId,
      command: "kill-process",
      details: { pid: 1234, process_name: "sleep" },
      id: `op-${randomBytes(4).toString("hex")}`,
    };
    const first = await g.rest.post("/api/commands", body);
    expect(first.status).toBe(202);
    const id = `command/${agent.agentId}/${body.id}`;
    expect(first.body.id).toBe(id);
    await eventually(
      "completed",
      async () =>
        (await g.rest.get(`/api/commands?id=${encodeURIComponent(id)}`)).body.status ===
        "completed",
    );
    const second = await g.rest.post("/api/commands", body);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ id, status: "completed", duplicate: true });
    expect(agent.commands()).toHaveLength(1);
  });
});

describe("failures", () => {
  it("fails the activity non-retryably with the agent's message", async () => {
    const agent = await g.agent("failing-host", {
      autoAnswer: () => ({ success: false, message: "no such process: 999", details: {} }),
    });
    const { commandId, handle } = await issue(agent.agentId, "kill-process", { pid: 999 });
    const failure = await handle.result().catch((err: unknown) => err);
    expect(causeMessage(failure)).toBe("no such process: 999");
    expect(await commandRow(commandId)).toMatchObject({ status: "failed" });
    expect(
      (await g.rest.get(`/api/commands?id=${encodeURIComponent(commandId)}`)).body,
    ).toMatchObject({
      status: "failed",
      result: { success: false, message: "no such process: 999" },
    });
  });

  it("fails at once for an agent that is not enrolled", async () => {
    const { handle } = await issue("agt_nobody", "kill-process", { pid: 1 });
    const failure = await handle.result().catch((err: unknown) => err);
    expect(causeMessage(failure)).toBe("agent agt_nobody is not enrolled");
  });
});

describe("operator commands over REST", () => {
  it("runs each as a workflow and shows its status, the command list and the audit log", async () => {
    const agent = await g.agent("ops-host");
    const res = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "delete-file",
      details: { path: "/tmp/evil.py" },
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      agent_id: agent.agentId,
      command: "delete-file",
      status: "pending",
    });
    expect(res.body.workflow_id).toBe(res.body.id);
    expect(res.body.id).toMatch(new RegExp(`^command/${agent.agentId}/[0-9a-f]{16}$`));
    const frame = await agent.command("delete-file");
    expect(frame).toEqual({
      command: "delete-file",
      priority: "high",
      id: res.body.id,
      details: { path: "/tmp/evil.py" },
      expires_at: expect.any(String),
      signature: expect.any(String),
    });
    agent.ack(frame.id);
    agent.complete(frame.id, {
      success: true,
      message: "deleted",
      details: { path: "/tmp/evil.py", sha256: "a".repeat(64), deleted: true },
    });
    const result = await g.temporal.workflow.getHandle(res.body.workflow_id).result();
    expect(result).toMatchObject({ success: true, message: "deleted" });

    const list = await g.rest.get(`/api/commands?agent=${agent.agentId}`);
    expect(
      list.body.items.map((c: Frame) => [c.command, c.status, c.origin, c.requested_by]),
    ).toEqual([["delete-file", "completed", "operator", "operator:MM_ADMIN_TOKEN"]]);
    const audit = await g.rest.get(`/api/audit?command=${encodeURIComponent(res.body.id)}`);
    expect(audit.body.items.map((e: Frame) => [e.action, e.actor])).toEqual([
      ["command.issued", "operator:MM_ADMIN_TOKEN"],
      ["command.delivered", expect.stringMatching(/^gateway:gw_/)],
      ["command.acknowledged", `agent:${agent.agentId}`],
      ["command.completed", `agent:${agent.agentId}`],
    ]);
  });

  it("refuses bad commands with 400 and unknown agents with 404", async () => {
    const agent = await g.agent("bad-ops-host");
    expect(
      (await g.rest.post("/api/commands", { agent_id: agent.agentId, command: "format-disk" }))
        .status,
    ).toBe(400);
    const badDetails = await g.rest.post("/api/commands", {
      agent_id: agent.agentId,
      command: "block-ip",
      details: { ip: "not-an-ip" },
    });
    expect(badDetails.status).toBe(400);
    expect(badDetails.body.error).toMatch(/ip/);
    expect(
      (
        await g.rest.post("/api/commands", {
          agent_id: "agt_missing",
          command: "kill-process",
          details: { pid: 1, process_name: "sleep" },
        })
      ).status,
    ).toBe(404);
    expect((await g.rest.get("/api/commands?id=nope")).status).toBe(404);
  });
});

function causeMessage(err: unknown): string {
  let cause = err as { cause?: unknown; message?: string } | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  return cause?.message ?? String(err);
}
