import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { fixture } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, helloFor, TestAgent } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_protocol", {
    gateway: {
      ...loadConfig().gateway,
      tls: undefined,
      heartbeatMs: 30_000,
      missedHeartbeats: 3,
      maxFrameBytes: 4_096,
      maxBadFrames: 5,
    },
  });
});
afterAll(async () => {
  await g?.cleanup();
});

const lastError = (agent: TestAgent) => agent.errors().at(-1);

describe("protocol errors", () => {
  it("answers each bad frame with an error frame naming the problem, and keeps the session", async () => {
    const { apiKey } = await g.enroll("sloppy-host");
    const cases: [unknown, string, RegExp][] = [
      ["{not json", "invalid_json", /JSON|Expected/i],
      [{ type: "goodbye" }, "unknown_message", /unknown message type "goodbye"/],
      [{ type: "heartbeat", timestamp: "yesterday" }, "invalid_message", /heartbeat: timestamp/],
      [
        {
          command_id: "x",
          status: "completed",
          success: false,
          message: "",
          details: {},
          timestamp: new Date().toISOString(),
        },
        "invalid_message",
        /completion/,
      ],
      [{ something: "else" }, "unknown_message", /expected a frame with type, command_id or alert/],
      [[1, 2, 3], "invalid_message", /expected a JSON object/],
    ];
    // A session each: more bad frames than the limit on one session would end it (tested below).
    for (const [frame, code, message] of cases) {
      const agent = await TestAgent.connect(g.gatewayUrl, apiKey, "sloppy-host");
      agent.send(frame);
      await eventually(`an error for ${JSON.stringify(frame)}`, () => agent.errors().length === 1);
      expect(lastError(agent)).toEqual({
        type: "error",
        code,
        message: expect.stringMatching(message),
      });
      expect(agent.isOpen).toBe(true);
      await agent.close();
    }
  });

  it("closes a session that never says hello (4002)", async () => {
    const { apiKey } = await g.enroll("mute-host");
    const agent = await TestAgent.connect(g.gatewayUrl, apiKey, "mute-host", { hello: false });
    expect(await agent.closed).toEqual({ code: 4002, reason: "no hello within 10 s" });
  }, 20_000);

  it("requires hello first, refuses a second hello and binary frames", async () => {
    const { apiKey } = await g.enroll("impatient-host");
    const agent = await TestAgent.connect(g.gatewayUrl, apiKey, "impatient-host", { hello: false });
    agent.send({ type: "heartbeat", timestamp: new Date().toISOString() });
    await eventually("hello_required", () => lastError(agent)?.code === "hello_required");
    agent.send(helloFor("impatient-host"));
    await agent.next((f) => f.type === "welcome");
    agent.send(helloFor("impatient-host"));
    await eventually("second hello refused", () =>
      /already received/.test(lastError(agent)?.message ?? ""),
    );
    agent.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await eventually("binary refused", () => /binary frames/.test(lastError(agent)?.message ?? ""));
    expect(agent.isOpen).toBe(true);
    await agent.close();
  });

  it("names an ack or completion for a command this agent was never sent, and changes nothing", async () => {
    const victim = await g.agent("victim-host");
    const intruder = await g.agent("intruder-host");
    const issued = await g.rest.post("/api/commands", {
      agent_id: victim.agentId,
      command: "kill-process",
      details: { pid: 42, process_name: "sleep" },
    });
    const command = await victim.command("kill-process");
    intruder.ack(command.id);
    intruder.complete(command.id, { success: false, message: "hijacked", details: {} });
    await eventually("two refusals", () => intruder.errors().length === 2);
    expect(intruder.errors()).toEqual([
      {
        type: "error",
        code: "unknown_command",
        message: "no such command was sent to this agent",
        ref: command.id,
      },
      {
        type: "error",
        code: "unknown_command",
        message: "no such command was sent to this agent",
        ref: command.id,
      },
    ]);
    expect(
      (await g.rest.get(`/api/commands?id=${encodeURIComponent(issued.body.id)}`)).body.status,
    ).toBe("delivered");
    victim.ack(command.id);
    victim.complete(command.id, {
      success: true,
      message: "killed",
      details: { pid: 42, killed: true },
    });
    expect(await g.temporal.workflow.getHandle(issued.body.workflow_id).result()).toMatchObject({
      message: "killed",
    });
  });
});

describe("abuse", () => {
  it("closes a session after repeated bad frames (1008) and records why", async () => {
    const agent = await g.agent("abusive-host");
    for (let i = 0; i < 5; i++) agent.send(`garbage ${i}`);
    expect(await agent.closed).toEqual({
      code: 1008,
      reason: "too many invalid frames (5 within a minute)",
    });
    await eventually("audited", async () => {
      const audit = (
        await g.rest.get(`/api/audit?agent=${agent.agentId}&action=agent.session_closed`)
      ).body.items;
      return audit.length === 1 && audit[0].details.code === 1008;
    });
  });

  it("closes a session on a frame over the size limit (1009) before reading it whole", async () => {
    const agent = await g.agent("oversized-host");
    agent.send({ alert: { rule_name: "x".repeat(5_000) }, seq: 1 });
    expect((await agent.closed).code).toBe(1009);
    await eventually("audited", async () => {
      const audit = (
        await g.rest.get(`/api/audit?agent=${agent.agentId}&action=agent.session_closed`)
      ).body.items;
      return (
        audit.length === 1 && audit[0].details.reason === "frame larger than the configured limit"
      );
    });
  });

  it("survives a frame the WebSocket layer itself rejects (invalid UTF-8 text: 1007)", async () => {
    const agent = await g.agent("mangled-host");
    const neighbour = await g.agent("calm-host");
    agent.ws.send(Buffer.from([0xc3, 0x28]), { binary: false });
    expect((await agent.closed).code).toBe(1007);
    // The gateway is still there for everyone else.
    neighbour.send({ type: "heartbeat", timestamp: new Date().toISOString() });
    const issued = await g.rest.post("/api/commands", {
      agent_id: neighbour.agentId,
      command: "kill-process",
      details: { pid: 9, process_name: "sleep" },
    });
    expect((await neighbour.command("kill-process")).id).toBe(issued.body.id);
  });

  it("keeps serving other agents while one floods the gateway with garbage", async () => {
    const flooder = await g.agent("flooder-host");
    const neighbour = await g.agent("neighbour-host", {
      autoAnswer: (c) => ({
        success: true,
        message: "ok",
        details: { pid: c.details.pid, killed: true },
      }),
    });
    const flooding = (async () => {
      for (let i = 0; i < 2_000 && flooder.isOpen; i++)
        flooder.send(i % 2 ? "\u0000\u0001" : { type: 42 });
    })();
    const issued = await g.rest.post("/api/commands", {
      agent_id: neighbour.agentId,
      command: "kill-process",
      details: { pid: 7, process_name: "sleep" },
    });
    expect(await g.temporal.workflow.getHandle(issued.body.workflow_id).result()).toMatchObject({
      success: true,
    });
    await flooding;
    expect((await flooder.closed).code).toBe(1008);
    expect(neighbour.isOpen).toBe(true);
    expect(neighbour.errors()).toEqual([]);
  });
});

describe("heartbeats and presence", () => {
  it("keeps a heartbeating agent online and drops one that falls silent", async () => {
    const quick = await g.ctx.start({
      roles: ["gateway"],
      config: {
        logLevel: "warn",
        gateway: {
          ...loadConfig().gateway,
          tls: undefined,
          heartbeatMs: 1_000,
          missedHeartbeats: 2,
          maxFrameBytes: 4_096,
          maxBadFrames: 5,
        },
      },
    });
    const url = quick.gatewayUrl as string;
    const live = await g.enroll("beating-host");
    const silent = await g.enroll("silent-host");
    const beating = await TestAgent.connect(url, live.apiKey, "beating-host");
    const quiet = await TestAgent.connect(url, silent.apiKey, "silent-host");
    expect(beating.frames[0]).toEqual({
      type: "welcome",
      agent_id: live.agentId,
      heartbeat_interval_ms: 1_000,
      command_signing_key: expect.stringMatching(/^-----BEGIN PUBLIC KEY-----/),
    });
    const timer = setInterval(
      () => beating.send({ type: "heartbeat", timestamp: new Date().toISOString() }),
      500,
    );
    try {
      expect((await quiet.closed).code).toBe(1006); // terminated: a silent peer gets no handshake
      const seen = (await g.rest.get(`/api/agents/${live.agentId}`)).body.last_seen_at;
      await new Promise((r) => setTimeout(r, 1_200));
      expect(beating.isOpen).toBe(true);
      const agent = (await g.rest.get(`/api/agents/${live.agentId}`)).body;
      expect(new Date(agent.last_seen_at).getTime()).toBeGreaterThan(new Date(seen).getTime());
      // Presence as operators see it: the API role counts missed heartbeats of its own configuration.
      expect(agent.gateway_id).toMatch(/^gw_/);
      expect((await g.rest.get(`/api/agents/${silent.agentId}`)).body.status).toBe("offline");
    } finally {
      clearInterval(timer);
      await beating.close();
    }
  });
});

describe("alerts forwarded by agents", () => {
  it("passes an alert to the engine's intake with the agent's identity as host, and acknowledges it once stored", async () => {
    const hostname = `fibratus-${randomBytes(3).toString("hex")}`;
    const agent = await g.agent(hostname, {
      hello: { external_ids: { wazuh_agent_id: "042" }, ips: ["127.0.0.1", "10.4.2.42"] },
    });
    const seed = fixture<Frame>("agent-protocol/agent-alert.json");
    agent.send({ ...seed, seq: 7 });
    expect(await agent.next((f) => f.type === "alert_ack")).toEqual({ type: "alert_ack", seq: 7 });
    const stored = await g.db
      .selectFrom("alerts")
      .selectAll()
      .where("host", "=", hostname)
      .execute();
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      source: "agent",
      agent_id: "042",
      host_ip: "10.4.2.42",
      rule_id: "credential_dumping_vaultcmd",
      techniques: ["T1003.005"],
    });
    expect(stored[0]?.handed_off_at).toBeInstanceOf(Date);
    // Sent again (the agent had not seen the ack): acknowledged again, stored once.
    agent.send({ ...seed, seq: 7 });
    await eventually(
      "second ack",
      () => agent.frames.filter((f) => f.type === "alert_ack").length === 2,
    );
    expect(
      await g.db.selectFrom("alerts").select("id").where("host", "=", hostname).execute(),
    ).toHaveLength(1);
  });

  it("keeps an unreadable alert for operators, says why, and acknowledges it so the agent moves on", async () => {
    const agent = await g.agent("bad-alert-host");
    agent.send({
      alert: {
        rule_name: "no technique",
        severity: "high",
        timestamp: new Date().toISOString(),
        details: {},
      },
      seq: 3,
    });
    await agent.next((f) => f.type === "alert_ack" && f.seq === 3);
    expect(agent.errors()).toEqual([
      {
        type: "error",
        code: "invalid_alert",
        message: expect.stringMatching(/alert\.details\.technique_id/),
        ref: "3",
      },
    ]);
    const rejected = await g.db
      .selectFrom("rejected_alerts")
      .selectAll()
      .where("source", "=", "agent")
      .execute();
    expect(rejected.some((r) => r.payload.includes("no technique"))).toBe(true);
  });

  it("records rule status reports", async () => {
    const agent = await g.agent("rules-host");
    agent.send({
      type: "rules_status",
      rules: [
        {
          name: "credential_dumping_vaultcmd",
          version: 2,
          checksum: `sha256:${"a".repeat(64)}`,
          status: "applied",
        },
      ],
    });
    await eventually(
      "stored",
      async () => (await g.rest.get(`/api/agents/${agent.agentId}`)).body.rules_status !== null,
    );
    expect((await g.rest.get(`/api/agents/${agent.agentId}`)).body.rules_status).toMatchObject({
      rules: [{ name: "credential_dumping_vaultcmd", version: 2, status: "applied" }],
    });
  });
});
