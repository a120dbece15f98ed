import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enroll as agentEnroll } from "../../src/agent/session.ts";
import { selfSignedCertificate } from "../support/tls.ts";
import { eventually } from "../support/wait.ts";
import { enroll, helloFor, TestAgent, upgradeStatus, wsUrlOf } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

let g: GatewayTestContext;
beforeAll(async () => {
  g = await gatewayTestContext("gw_enrollment");
});
afterAll(async () => {
  await g?.cleanup();
});

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

describe("enrollment", () => {
  it("exchanges a token for an agent id and an API key, stored only as a digest, in the token's group", async () => {
    const created = await g.rest.post("/api/enrollment-tokens", {
      group: "web-servers",
      max_uses: 2,
      description: "rollout",
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      group: "web-servers",
      max_uses: 2,
      uses: 0,
      token: expect.stringMatching(/^mme_/),
    });
    const { status, body } = await enroll(g.gatewayUrl, created.body.token, "web-1");
    expect(status).toBe(201);
    expect(body).toEqual({
      agent_id: expect.stringMatching(/^agt_[0-9a-f]{20}$/),
      api_key: expect.stringMatching(/^mmk_/),
      command_signing_key: expect.stringMatching(/^-----BEGIN PUBLIC KEY-----/),
    });

    const keys = await g.db
      .selectFrom("agent_keys")
      .selectAll()
      .where("agent_id", "=", body.agent_id)
      .execute();
    expect(keys).toHaveLength(1);
    expect(keys[0]?.key_hash).toBe(sha256(body.api_key));
    const everything = JSON.stringify(await g.db.selectFrom("agent_keys").selectAll().execute());
    expect(everything).not.toContain(body.api_key);
    const tokens = JSON.stringify(await g.db.selectFrom("enrollment_tokens").selectAll().execute());
    expect(tokens).not.toContain(created.body.token);

    const agent = await g.rest.get(`/api/agents/${body.agent_id}`);
    expect(agent.body).toMatchObject({
      id: body.agent_id,
      hostname: "web-1",
      groups: ["web-servers"],
      status: "offline",
    });
    // The listing shows the token by prefix only.
    const listed = await g.rest.get("/api/enrollment-tokens");
    expect(JSON.stringify(listed.body)).not.toContain(created.body.token);
    expect(listed.body.items.find((t: { id: string }) => t.id === created.body.id)).toMatchObject({
      uses: 1,
      prefix: created.body.token.slice(0, 12),
    });
  });

  it("refuses used-up, expired, revoked and unknown tokens with 401, and malformed requests with 400", async () => {
    const once = await g.enrollmentToken({ max_uses: 1 });
    expect((await enroll(g.gatewayUrl, once, "a")).status).toBe(201);
    expect(await enroll(g.gatewayUrl, once, "b")).toEqual({
      status: 401,
      body: { error: expect.stringMatching(/unknown, revoked, expired or used up/) },
    });

    const shortLived = await g.enrollmentToken({ expires_in_seconds: 1 });
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await enroll(g.gatewayUrl, shortLived, "c")).status).toBe(401);

    const revoked = await g.rest.post("/api/enrollment-tokens", {});
    expect((await g.rest.delete(`/api/enrollment-tokens/${revoked.body.id}`)).status).toBe(204);
    expect((await enroll(g.gatewayUrl, revoked.body.token, "d")).status).toBe(401);

    expect((await enroll(g.gatewayUrl, "mme_not-a-real-token", "e")).status).toBe(401);
    const valid = await g.enrollmentToken();
    const noHost = await fetch(`${g.gatewayUrl}/api/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: valid }),
    });
    expect(noHost.status).toBe(400);
    expect(((await noHost.json()) as { error: string }).error).toMatch(/hostname/);
    const notJson = await fetch(`${g.gatewayUrl}/api/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{nope",
    });
    expect(notJson.status).toBe(400);
    expect((await enroll(g.gatewayUrl, valid, "f")).status).toBe(201); // the 400s did not use it
  });

  it("counts uses atomically: an N-use token enrolls exactly N of many concurrent agents", async () => {
    const token = await g.enrollmentToken({ max_uses: 5 });
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => enroll(g.gatewayUrl, token, `burst-${i}`)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(5);
    expect(results.filter((r) => r.status === 401)).toHaveLength(7);
  });
});

describe("WebSocket authentication (before the upgrade)", () => {
  it("answers 401 without a key, with a malformed header, an unknown key or a revoked key", async () => {
    const url = wsUrlOf(g.gatewayUrl);
    const { agentId, apiKey } = await g.enroll("auth-host");
    expect(await upgradeStatus(url, {})).toBe(401);
    expect(await upgradeStatus(url, { authorization: apiKey })).toBe(401);
    expect(await upgradeStatus(url, { authorization: `Basic ${apiKey}` })).toBe(401);
    expect(await upgradeStatus(url, { authorization: "Bearer mmk_unknown" })).toBe(401);
    expect(await upgradeStatus(url, { authorization: `Bearer ${apiKey}` })).toBe("open");
    await g.rest.delete(`/api/agents/${agentId}/keys`);
    expect(await upgradeStatus(url, { authorization: `Bearer ${apiKey}` })).toBe(401);
    // Not a WebSocket request: the key is fine, the protocol is not.
    const plain = await fetch(`${g.gatewayUrl}/agent/ws`, {
      headers: { authorization: `Bearer ${(await g.enroll("plain-host")).apiKey}` },
    });
    expect(plain.status).toBe(426);
  });
});

describe("the registry", () => {
  it("records what hello reports, never groups or labels from the agent, and filters by them", async () => {
    const { agentId, apiKey } = await g.enroll("db-7", { group: "databases" });
    const hello = helloFor("db-7.internal", {
      ips: ["10.7.0.7", "fe80::1"],
      external_ids: { wazuh_agent_id: "017" },
      capabilities: ["kill-process", "block-ip"],
      fibratus_version: "2.4.0",
      isolation: { isolated: false },
      config: { rules_dir: "/etc/fibratus/rules" },
    });
    // Fields an agent has no say over are dropped by the protocol's schema.
    const agent = await TestAgent.connect(g.gatewayUrl, apiKey, "db-7", {
      hello: { ...hello, groups: ["admins"], labels: { owner: "me" } } as never,
    });
    expect(
      (await g.rest.patch(`/api/agents/${agentId}`, { labels: { env: "prod", tier: "1" } })).status,
    ).toBe(200);

    const detail = (await g.rest.get(`/api/agents/${agentId}`)).body;
    expect(detail).toMatchObject({
      id: agentId,
      hostname: "db-7.internal",
      os: { platform: "linux", release: "6.1.0", arch: "x64" },
      ips: ["10.7.0.7", "fe80::1"],
      agent_version: "0.1.0",
      fibratus_version: "2.4.0",
      external_ids: { wazuh_agent_id: "017" },
      capabilities: ["kill-process", "block-ip"],
      groups: ["databases"],
      labels: { env: "prod", tier: "1" },
      isolation: { isolated: false },
      config: { rules_dir: "/etc/fibratus/rules" },
      simulation: true,
      status: "online",
      gateway_id: expect.stringMatching(/^gw_/),
    });
    expect(detail.last_seen_at).toBeTruthy();

    const byGroup = await g.rest.get("/api/agents?group=databases");
    expect(byGroup.body.items.map((a: { id: string }) => a.id)).toEqual([agentId]);
    expect(
      (await g.rest.get("/api/agents?label=env=prod&label=tier=1")).body.items.map(
        (a: { id: string }) => a.id,
      ),
    ).toEqual([agentId]);
    expect((await g.rest.get("/api/agents?label=env=dev")).body.items).toEqual([]);
    expect(
      (await g.rest.get("/api/agents?hostname=DB-7.INTERNAL&status=online")).body.items,
    ).toHaveLength(1);
    expect(
      (await g.rest.get("/api/agents?capability=isolate-host&hostname=db-7.internal")).body.items,
    ).toEqual([]);
    expect((await g.rest.get("/api/agent-groups")).body.items).toContainEqual({
      name: "databases",
      agents: 1,
    });
    expect((await g.rest.get("/api/agents?status=sleeping")).status).toBe(400);
    expect(
      (await g.rest.patch(`/api/agents/${agentId}`, { groups: ["no spaces allowed"] })).status,
    ).toBe(400);
    expect((await g.rest.get("/api/agents/agt_unknown")).status).toBe(404);

    await agent.close();
    await eventually(
      "offline",
      async () => (await g.rest.get(`/api/agents/${agentId}`)).body.status === "offline",
    );
  });

  it("replaces the first session when a second one connects with the same key", async () => {
    const { agentId, apiKey } = await g.enroll("twin-host");
    const first = await TestAgent.connect(g.gatewayUrl, apiKey, "twin-host");
    const second = await TestAgent.connect(g.gatewayUrl, apiKey, "twin-host");
    expect(await first.closed).toEqual({
      code: 4000,
      reason: "replaced by a newer session of this agent",
    });
    expect(second.isOpen).toBe(true);
    // Commands go to the live session.
    const res = await g.rest.post("/api/commands", {
      agent_id: agentId,
      command: "kill-process",
      details: { pid: 5, process_name: "sleep" },
    });
    expect((await second.command("kill-process")).id).toBe(res.body.id);
    await second.close();
  });
});

describe("key rotation and revocation", () => {
  it("rotates in two steps (both keys work) or in one (the old key's session ends at once)", async () => {
    const { agentId, apiKey: oldKey } = await g.enroll("rotating-host");
    const session = await TestAgent.connect(g.gatewayUrl, oldKey, "rotating-host");
    const added = await g.rest.post(`/api/agents/${agentId}/keys`, {});
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({
      key_id: expect.stringMatching(/^key_/),
      api_key: expect.stringMatching(/^mmk_/),
      revoked_key_ids: [],
    });
    expect(
      await upgradeStatus(wsUrlOf(g.gatewayUrl), { authorization: `Bearer ${added.body.api_key}` }),
    ).toBe("open");
    expect(session.isOpen).toBe(true);

    const rotated = await g.rest.post(`/api/agents/${agentId}/keys`, { revoke_others: true });
    expect(rotated.body.revoked_key_ids).toHaveLength(2);
    expect((await session.closed).code).toBe(4001);
    expect(await upgradeStatus(wsUrlOf(g.gatewayUrl), { authorization: `Bearer ${oldKey}` })).toBe(
      401,
    );
    const fresh = await TestAgent.connect(g.gatewayUrl, rotated.body.api_key, "rotating-host");
    expect(fresh.isOpen).toBe(true);
    const keys = (await g.rest.get(`/api/agents/${agentId}/keys`)).body.items;
    expect(keys.map((k: { revoked_at: string | null }) => k.revoked_at === null)).toEqual([
      false,
      false,
      true,
    ]);
    expect(JSON.stringify(keys)).not.toContain(rotated.body.api_key);
    await fresh.close();
  });

  it("revoking an agent closes its live session at once and keeps it out", async () => {
    const { agentId, apiKey } = await g.enroll("revoked-host");
    const session = await TestAgent.connect(g.gatewayUrl, apiKey, "revoked-host");
    const started = Date.now();
    const res = await g.rest.delete(`/api/agents/${agentId}/keys`);
    expect(res.status).toBe(200);
    expect(res.body.revoked_key_ids).toHaveLength(1);
    expect(await session.closed).toEqual({ code: 4001, reason: "API key revoked" });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await upgradeStatus(wsUrlOf(g.gatewayUrl), { authorization: `Bearer ${apiKey}` })).toBe(
      401,
    );
    expect((await g.rest.get(`/api/agents/${agentId}`)).body.status).toBe("revoked");
    const command = await g.rest.post("/api/commands", {
      agent_id: agentId,
      command: "kill-process",
      details: { pid: 1, process_name: "sleep" },
    });
    expect(command.status).toBe(409);
    const audit = (await g.rest.get(`/api/audit?agent=${agentId}`)).body.items.map(
      (e: { action: string }) => e.action,
    );
    expect(audit).toEqual(["agent.enrolled", "agent.key_revoked", "agent.session_closed"]);
  });

  it("revoking one key leaves sessions with other keys alone", async () => {
    const { agentId, apiKey } = await g.enroll("two-key-host");
    const second = await g.rest.post(`/api/agents/${agentId}/keys`, {});
    const session = await TestAgent.connect(g.gatewayUrl, second.body.api_key, "two-key-host");
    const keys = (await g.rest.get(`/api/agents/${agentId}/keys`)).body.items as { id: string }[];
    const firstKeyId = keys[0]?.id as string;
    expect((await g.rest.delete(`/api/agents/${agentId}/keys/${firstKeyId}`)).body).toEqual({
      revoked_key_ids: [firstKeyId],
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(session.isOpen).toBe(true);
    expect(await upgradeStatus(wsUrlOf(g.gatewayUrl), { authorization: `Bearer ${apiKey}` })).toBe(
      401,
    );
    expect((await g.rest.delete(`/api/agents/${agentId}/keys/key_unknown`)).status).toBe(404);
    await session.close();
  });
});

describe("TLS", () => {
  it("serves enrollment over https and sessions over wss with a configured (self-signed) certificate", async () => {
    // The example of docs/gateway.md: a self-signed certificate for the gateway's address.
    const { certFile: cert, keyFile: key } = await selfSignedCertificate("mm-gateway");
    const tlsGateway = await g.ctx.start({
      roles: ["gateway"],
      config: {
        logLevel: "warn",
        gateway: { ...g.ctx.config.gateway, tls: { certFile: cert, keyFile: key } },
      },
    });
    const url = tlsGateway.gatewayUrl as string;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = readFileSync(cert);

    // The reference agent's own enrollment, trusting the certificate as `mm agent --ca` does.
    const enrolled = await agentEnroll(url, await g.enrollmentToken(), "tls-host", ca);
    expect(enrolled.agent_id).toMatch(/^agt_/);
    const agent = await TestAgent.connect(url, enrolled.api_key, "tls-host", { ca });
    expect(agent.frames[0]).toEqual({
      type: "welcome",
      agent_id: enrolled.agent_id,
      heartbeat_interval_ms: 30_000,
      command_signing_key: expect.stringMatching(/^-----BEGIN PUBLIC KEY-----/),
    });
    // Without trusting it, the handshake fails: no plaintext fallback.
    await expect(TestAgent.connect(url, enrolled.api_key, "tls-host")).rejects.toThrow(
      /self-signed|certificate/i,
    );
    await agent.close();
  });
});
