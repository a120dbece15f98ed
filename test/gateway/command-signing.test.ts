// Issue 9: commands are signed by the service. The key is made once per install (a file only its
// owner reads), handed to agents at enrollment, and every command frame carries its expiry and a
// signature that verifies with that key for that agent only.
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { connectNatsAs } from "../../src/connections.ts";
import { loadCommandSigningKey } from "../../src/gateway/signing-key.ts";
import { publicSigningKey, verifyCommand } from "../../src/protocol/signing.ts";
import { enroll, type Frame, TestAgent } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";
import { issueDirect } from "./support/hostile.ts";

let g: GatewayTestContext;
let nc: NatsConnection;
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "mm-signing-"));
  g = await gatewayTestContext("gw_signing", {
    commandSigningKeyFile: path.join(dataDir, "secrets/command-signing.pem"),
  });
  nc = await connectNatsAs(g.ctx.config.nats, "worker");
});
afterAll(async () => {
  await nc?.close();
  await g?.cleanup();
  await rm(dataDir, { recursive: true, force: true });
});

describe("the service's command signing key", () => {
  it("is created on first start, readable by its owner only", async () => {
    const file = g.ctx.config.commandSigningKeyFile;
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect(await readFile(file, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("is kept across starts, and a file that holds no Ed25519 key is named in the error", async () => {
    const first = await loadCommandSigningKey(g.ctx.config.commandSigningKeyFile);
    expect(first.created).toBe(false);
    const again = await loadCommandSigningKey(g.ctx.config.commandSigningKeyFile);
    expect(again.publicKeyPem).toBe(first.publicKeyPem);
    await expect(loadCommandSigningKey(path.join(dataDir, "secrets"))).rejects.toThrow(
      /MM_COMMAND_SIGNING_KEY_FILE/,
    );
  });

  it("defaults to secrets/command-signing.pem under MM_DATA_DIR", () => {
    expect(loadConfig({ MM_DATA_DIR: "/srv/mm" }).commandSigningKeyFile).toBe(
      "/srv/mm/secrets/command-signing.pem",
    );
  });
});

describe("signed command frames", () => {
  it("verify with the public key the agent got at enrollment, for that agent only", async () => {
    const { status, body } = await enroll(g.gatewayUrl, await g.enrollmentToken(), "signed-host");
    expect(status).toBe(201);
    const key = publicSigningKey(body.command_signing_key);
    const agent = await TestAgent.connect(g.gatewayUrl, body.api_key, "signed-host");
    try {
      const welcome = agent.frames.find((f: Frame) => f.type === "welcome");
      expect(welcome.command_signing_key).toBe(body.command_signing_key);

      const before = Date.now();
      const id = await issueDirect(g.db, nc, body.agent_id, { pid: 77 });
      const frame = await agent.next((f: Frame) => f.id === id);
      expect(Object.keys(frame)).toEqual([
        "command",
        "priority",
        "id",
        "details",
        "expires_at",
        "signature",
      ]);
      expect(Date.parse(frame.expires_at)).toBeGreaterThan(before);
      expect(verifyCommand(key, body.agent_id, frame, frame.signature)).toBe(true);
      expect(verifyCommand(key, "agt_other", frame, frame.signature)).toBe(false);
      expect(
        verifyCommand(key, body.agent_id, { ...frame, details: { pid: 1 } }, frame.signature),
      ).toBe(false);
      expect(
        verifyCommand(
          key,
          body.agent_id,
          { ...frame, expires_at: new Date(Date.now() + 86_400_000).toISOString() },
          frame.signature,
        ),
      ).toBe(false);
    } finally {
      await agent.close();
    }
  });
});
