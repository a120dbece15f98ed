// The agent's session logic against a minimal gateway at the protocol boundary. Enforcement here is
// real for files and processes; firewall commands are only ever sent in simulation (this runs in
// the machine's own network namespace — isolation.test.ts enforces inside namespaces of its own).
import { execFile, spawn } from "node:child_process";
import {
  appendFile,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { supportedCapabilities } from "../../src/agent/commands.ts";
import { ruleChecksum } from "../../src/agent/enforce/rules.ts";
import { type AgentOptions, type RunningAgent, startAgent } from "../../src/agent/index.ts";
import { StateStore } from "../../src/agent/state.ts";
import { AGENT_COMMANDS, type AgentMessage } from "../../src/protocol/messages.ts";
import {
  generateSigningKeys,
  privateSigningKey,
  signCommand,
  signRules,
} from "../../src/protocol/signing.ts";
import { SHARED } from "../support/fixtures.ts";
import {
  AGENT_ID,
  ENROLL_TOKEN,
  FakeGateway,
  isAck,
  isAlert,
  isCompletion,
  isHeartbeat,
  isHello,
  isRulesStatus,
} from "./support/fake-gateway.ts";

// The reference agent reports the package version it ships in.
const PACKAGE_VERSION: string = createRequire(import.meta.url)("../../package.json").version;

let gateway: FakeGateway;
let root: string;
const running: RunningAgent[] = [];
let logs: string[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "mm-session-"));
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((agent) => agent.stop()));
  await gateway?.stop();
  logs = [];
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirs = 0;
const newDir = () => join(root, String(++dirs));

const record = (event: string, fields?: object) => {
  logs.push(`${event} ${JSON.stringify(fields ?? {})}`);
};

async function agent(options: Partial<AgentOptions> & { stateDir: string }) {
  const started = await startAgent({
    gateway: gateway.url,
    enrollToken: ENROLL_TOKEN,
    rulesDir: join(options.stateDir, "rules"),
    backoff: { initialMs: 50, maxMs: 200 },
    alertPollMs: 20,
    insecure: true, // the fake gateway speaks plain http

    log: { debug: record, info: record, warn: record, error: record },
    ...options,
  });
  running.push(started);
  return started;
}

async function stop(agent: RunningAgent) {
  running.splice(running.indexOf(agent), 1);
  await agent.stop();
}

const command = (
  id: string,
  name: string,
  details: Record<string, unknown>,
  priority = "high",
) => ({
  command: name,
  priority,
  id,
  details,
});

type CompletionFrame = Extract<AgentMessage, { status: "completed" | "failed" }>;
async function completionOf(id: string, nth = 1): Promise<CompletionFrame> {
  const of = (m: AgentMessage): m is CompletionFrame => isCompletion(m) && m.command_id === id;
  return gateway.nth(of, nth);
}

describe("session", () => {
  it("enrolls once, says hello with its facts, heartbeats, and reuses its key after a restart", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    const first = await agent({ stateDir, heartbeatMs: 50 });
    expect(first.agentId).toBe(AGENT_ID);
    const hello = await gateway.waitFor(isHello);
    expect(hello).toMatchObject({
      type: "hello",
      os: { platform: "linux" },
      agent_version: PACKAGE_VERSION,
      fibratus_version: null,
      isolation: { isolated: false },
      rules: [],
      simulation: false,
    });
    expect(hello.hostname).toBeTruthy();
    expect(hello.capabilities).toEqual([...AGENT_COMMANDS, "update_rules"]); // root, Linux, nftables
    await gateway.nth(isHeartbeat, 3);
    expect((await stat(join(stateDir, "identity.json"))).mode & 0o777).toBe(0o600);

    await stop(first);
    await agent({ stateDir, heartbeatMs: 50 });
    await gateway.nth(isHello, 2);
    expect(gateway.enrollments).toBe(1);
    expect(logs.some((line) => line.startsWith("enroll_token_ignored"))).toBe(true);
  });

  it("acks at once, then completes; a command id runs at most once, also across a restart", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    const target = join(root, "malware.py");
    await writeFile(target, "evil");
    const first = await agent({ stateDir });
    await gateway.waitFor(isHello);

    gateway.send(
      command("cmd-del-1", "delete-file", { path: target, reason: "extra keys are ignored" }),
    );
    const done = await completionOf("cmd-del-1");
    const order = gateway.frames.map((f) => f.message);
    expect(order.findIndex((m) => isAck(m) && m.command_id === "cmd-del-1")).toBeLessThan(
      order.indexOf(done),
    );
    expect(done).toMatchObject({
      status: "completed",
      success: true,
      details: { path: target, deleted: true },
    });
    await expect(stat(target)).rejects.toThrow(/ENOENT/);

    // Redelivered (e.g. an engine retry): acked again, answered from the ledger, not run again.
    await writeFile(target, "evil again");
    gateway.send(command("cmd-del-1", "delete-file", { path: target }));
    expect(await completionOf("cmd-del-1", 2)).toEqual(done);
    expect(gateway.messages(isAck).filter((a) => a.command_id === "cmd-del-1")).toHaveLength(2);

    await stop(first);
    await agent({ stateDir });
    await gateway.nth(isHello, 2);
    gateway.send(command("cmd-del-1", "delete-file", { path: target }));
    expect(await completionOf("cmd-del-1", 3)).toEqual(done);
    expect(await readFile(target, "utf8")).toBe("evil again");
  });

  it("does not run again a command that a crash cut short", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    const target = join(root, "half.py");
    await writeFile(target, "x");
    const state = await StateStore.open(stateDir);
    await state.ledgerPut({
      id: "cmd-cut",
      command: "delete-file",
      received_at: new Date().toISOString(),
    });
    await agent({ stateDir });
    await gateway.waitFor(isHello);
    gateway.send(command("cmd-cut", "delete-file", { path: target }));
    expect(await completionOf("cmd-cut")).toMatchObject({
      status: "failed",
      success: false,
      message: expect.stringMatching(/interrupted.*not run again/),
    });
    expect(await readFile(target, "utf8")).toBe("x");
  });

  it("answers unsupported, disallowed and malformed commands with failed results", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    await agent({ stateDir, allow: ["delete-file", "update_rules"] });
    expect((await gateway.waitFor(isHello)).capabilities).toEqual(["delete-file", "update_rules"]);
    gateway.send(command("c-reg", "set-registry-value", { key: "HKLM\\Software\\Run" }));
    gateway.send(command("c-kill", "kill-process", { pid: 12345 }));
    gateway.send(command("c-bad", "delete-file", { sha256: "nothex" }));
    expect(await completionOf("c-reg")).toMatchObject({
      status: "failed",
      success: false,
      message: expect.stringMatching(
        /"set-registry-value" is not supported by this agent on linux/,
      ),
    });
    expect(await completionOf("c-kill")).toMatchObject({
      status: "failed",
      message: expect.stringMatching(/"kill-process" is not allowed by this agent's configuration/),
    });
    const bad = await completionOf("c-bad");
    expect(bad).toMatchObject({ status: "failed" });
    expect(bad.message).toMatch(/invalid details for delete-file: .*path/);
    expect(gateway.invalid).toEqual([]);

    expect(supportedCapabilities({ platform: "win32", firewall: false, simulate: false })).toEqual([
      "delete-file",
      "quarantine-file",
      "update_rules",
    ]);
    await expect(startAgent({ stateDir, allow: ["format-disk"] })).rejects.toThrow(
      /--allow: unknown command format-disk/,
    );
  });

  it("simulation declares itself in hello and in every result, and enforces nothing", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    await agent({ stateDir, simulate: true });
    expect(await gateway.waitFor(isHello)).toMatchObject({
      simulation: true,
      capabilities: [...AGENT_COMMANDS, "update_rules"],
    });
    const victim = spawn("sleep", ["300"]);
    try {
      gateway.send(
        command(
          "s1",
          "isolate-host",
          { reason: "load test", portal_ips: ["192.0.2.10"], portal_ports: [443] },
          "critical",
        ),
      );
      gateway.send(command("s2", "kill-process", { pid: victim.pid, process_name: "sleep" }));
      gateway.send(command("s3", "block-ip", { ip: "203.0.113.9" }));
      gateway.send(command("s4", "set-registry-value", {}));
      const isolated = await completionOf("s1");
      expect(isolated).toMatchObject({
        success: true,
        details: {
          simulated: true,
          isolation_level: "full",
          firewall_rules_added: expect.any(Number),
        },
      });
      expect(await completionOf("s2")).toMatchObject({
        success: true,
        details: { simulated: true, pid: victim.pid },
      });
      expect(await completionOf("s3")).toMatchObject({
        success: true,
        details: { simulated: true },
      });
      expect(await completionOf("s4")).toMatchObject({
        success: false,
        details: { simulated: true },
      });
      expect(victim.exitCode).toBeNull();
      await expect(
        promisify(execFile)("nft", ["list", "table", "inet", "mm_agent_isolation"]),
      ).rejects.toThrow();

      const content = "name: r\ncondition: true\n";
      gateway.send({
        operation: "update_rules",
        rules: [{ name: "r", content, version: 1, checksum: ruleChecksum(content) }],
      });
      expect(await gateway.waitFor(isRulesStatus)).toMatchObject({
        simulated: true,
        rules: [{ name: "r", status: "applied" }],
      });
      await expect(stat(join(stateDir, "rules", "r.yml"))).rejects.toThrow(/ENOENT/);

      // The reconnection's hello reports the (simulated) isolation: the portal and the gateway.
      gateway.drop();
      const hello = await gateway.nth(isHello, 2);
      expect(hello.isolation).toMatchObject({
        isolated: true,
        portal_ips: ["192.0.2.10", "127.0.0.1"],
      });
    } finally {
      victim.kill("SIGKILL");
    }
  });

  it("reconnects with exponential backoff and jitter while the gateway refuses it", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    await agent({ stateDir, backoff: { initialMs: 100, maxMs: 400 } });
    await gateway.waitFor(isHello);
    gateway.refuseUpgradesWith = 401;
    gateway.drop();
    const start = gateway.attempts.length;
    while (gateway.attempts.length < start + 6) await sleep(20);
    const at = gateway.attempts.slice(start);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    // Delay after the nth failed attempt: [ceiling/2, ceiling], ceiling = min(400, 100·2ⁿ):
    // [100,200], [200,400], then capped at [200,400] where uncapped would be [800,1600].
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[3]).toBeGreaterThanOrEqual(195);
    expect(gaps[3]).toBeLessThan(700);
    expect(logs.some((line) => line.includes("Unexpected server response: 401"))).toBe(true);
    gateway.refuseUpgradesWith = null;
    await gateway.nth(isHello, 2);
  });

  it("forwards alerts at least once across reconnects and restarts, keeping their seq", async () => {
    gateway = await FakeGateway.start();
    gateway.autoAckAlerts = false;
    const stateDir = newDir();
    const alertsFile = join(root, "alerts.jsonl");
    await writeFile(alertsFile, `${JSON.stringify({ rule: { id: "old" } })}\n`); // history: not forwarded
    const fibratus = JSON.parse(
      await readFile(join(SHARED, "fixtures/agent-protocol/agent-alert.json"), "utf8"),
    ).alert;
    const wazuh = JSON.parse(
      await readFile(join(SHARED, "fixtures/wazuh/100002-ncat-connection.json"), "utf8"),
    );
    const first = await agent({ stateDir, alertsFile });
    await gateway.waitFor(isHello);
    await appendFile(
      alertsFile,
      `${JSON.stringify(fibratus)}\nnot json\n${JSON.stringify(wazuh)}\n{"n":3}\n{"partial":`,
    );
    await gateway.nth(isAlert, 3);
    await sleep(100);
    expect(gateway.messages(isAlert)).toEqual([
      { alert: fibratus, seq: 0 },
      { alert: wazuh, seq: 1 },
      { alert: { n: 3 }, seq: 2 },
    ]);

    gateway.send({ type: "alert_ack", seq: 0 });
    gateway.send({ type: "alert_ack", seq: 2 }); // 1 is not acknowledged: 1 and 2 come again
    await sleep(1_000); // the acks reach the agent before the connection drops, even on a loaded machine
    gateway.drop();
    await gateway.nth(isAlert, 5);
    expect(
      gateway.frames.filter((f) => f.connection === 2 && isAlert(f.message)).map((f) => f.message),
    ).toEqual([
      { alert: wazuh, seq: 1 },
      { alert: { n: 3 }, seq: 2 },
    ]);
    gateway.send({ type: "alert_ack", seq: 1 });
    gateway.send({ type: "alert_ack", seq: 2 });
    await sleep(1_000); // the acks are recorded before the agent stops, even on a loaded machine

    // After a restart only what is new is sent, numbered on; the partial line completed meanwhile.
    await stop(first);
    await appendFile(alertsFile, `true}\n`);
    const second = await agent({ stateDir, alertsFile });
    await gateway.nth(isAlert, 6);
    expect(gateway.messages(isAlert).slice(5)).toEqual([{ alert: { partial: true }, seq: 3 }]);
    // Not acknowledged before a restart: sent again after it, with the same seq.
    await stop(second);
    await agent({ stateDir, alertsFile });
    expect(await gateway.nth(isAlert, 7)).toEqual({ alert: { partial: true }, seq: 3 });
    gateway.send({ type: "alert_ack", seq: 3 });

    // Rotation: the new file is read from its start; seqs never repeat.
    await rename(alertsFile, `${alertsFile}.1`);
    await writeFile(alertsFile, `${JSON.stringify({ n: 5 })}\n`);
    expect(await gateway.nth(isAlert, 8)).toEqual({ alert: { n: 5 }, seq: 4 });
  });

  it("applies a rule set whole or not at all, and reports what it runs in hello", async () => {
    // Before rule sets were atomic, the good rule of a frame with a bad one was applied alone;
    // now one bad file fails the frame and nothing is written.
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    await agent({ stateDir });
    await gateway.waitFor(isHello);
    const content = await readFile(
      join(SHARED, "corpus/fibratus-rules/credential_access_potential_lsass_memory_dump.yml"),
      "utf8",
    );
    const lsass = { name: "lsass_dump", content, version: 7, checksum: ruleChecksum(content) };
    gateway.send({
      operation: "update_rules",
      rules: [
        lsass,
        {
          name: "credential_dumping_vaultcmd",
          content: "rule x {",
          version: 2,
          checksum: "sha256:8a7b3ab6...",
        },
      ],
    });
    const refused = await gateway.waitFor(isRulesStatus);
    expect(refused.error).toBe("1 of 2 rules failed verification; none applied");
    expect(refused.rules).toEqual([
      {
        ...withoutContent(lsass),
        status: "failed",
        error: "not applied: credential_dumping_vaultcmd failed",
      },
      expect.objectContaining({
        name: "credential_dumping_vaultcmd",
        status: "failed",
        error: expect.stringMatching(/checksum mismatch/),
      }),
    ]);
    await expect(stat(join(stateDir, "rules"))).rejects.toThrow(/ENOENT/);

    const other = "name: other\ncondition: true\n";
    const otherFile = { name: "other", content: other, version: 1, checksum: ruleChecksum(other) };
    gateway.send({ operation: "update_rules", rules: [lsass, otherFile] });
    expect((await gateway.nth(isRulesStatus, 2)).rules.map((r) => r.status)).toEqual([
      "applied",
      "applied",
    ]);
    expect(await readFile(join(stateDir, "rules", "lsass_dump.yml"), "utf8")).toBe(content);
    // A complete set: the rule it does not name is removed.
    gateway.send({
      operation: "update_rules",
      rules: [lsass],
      rule_set: { name: "windows", version: 3 },
      complete: true,
    });
    expect(await gateway.nth(isRulesStatus, 3)).toMatchObject({
      rule_set: { name: "windows", version: 3 },
      complete: true,
      rules: [{ name: "lsass_dump", status: "applied" }],
    });
    expect(await readdir(join(stateDir, "rules"))).toEqual(["lsass_dump.yml"]);
    expect(await readFile(join(stateDir, "rules", "lsass_dump.yml"), "utf8")).toBe(content);
    gateway.drop();
    const hello = await gateway.nth(isHello, 2);
    expect(hello.rules).toEqual([withoutContent(lsass)]);
  });
});

const withoutContent = ({ content: _, ...rest }: { content: string } & Record<string, unknown>) =>
  rest;

describe("signed rule sets", () => {
  const keys = generateSigningKeys();
  const serviceKey = privateSigningKey(keys.privateKeyPem);
  const text = (n: number) => `name: rule ${n}\ncondition: true\n`;
  const ruleFile = (n: number) => ({
    name: `rule_${n}`,
    content: text(n),
    version: n,
    checksum: ruleChecksum(text(n)),
  });
  const signedRules = (
    n: number,
    { agentId = AGENT_ID, issuedAt = Date.now(), ttlMs = 60_000 } = {},
  ) => {
    const frame = {
      operation: "update_rules" as const,
      rules: [ruleFile(n)],
      rule_set: { name: "set", version: n },
      complete: true,
      issued_at: new Date(issuedAt).toISOString(),
      expires_at: new Date(issuedAt + ttlMs).toISOString(),
    };
    return { ...frame, signature: signRules(serviceKey, agentId, frame) };
  };

  it("refuses a forged, misaddressed, unsigned, expired or replayed frame, writing nothing", async () => {
    gateway = await FakeGateway.start();
    gateway.commandSigningKey = keys.publicKeyPem;
    const stateDir = newDir();
    const rulesDir = join(stateDir, "rules");
    await agent({ stateDir });
    await gateway.waitFor(isHello);

    const first = signedRules(1, { issuedAt: Date.now() - 5_000 });
    gateway.send(first);
    expect(await gateway.nth(isRulesStatus, 1)).toMatchObject({
      complete: true,
      rules: [{ name: "rule_1", status: "applied" }],
    });
    const attacks: [string, Record<string, unknown>, RegExp][] = [
      // The signature of rule 2's frame over rule 3's files.
      ["forged", { ...signedRules(2), rules: [ruleFile(3)] }, /^rules signature invalid$/],
      ["for another agent", signedRules(2, { agentId: "agent-2" }), /^rules signature invalid$/],
      ["unsigned", { ...signedRules(2), signature: undefined }, /the frame is not signed/],
      ["expired", signedRules(2, { ttlMs: -1000 }), /rules frame expired at .*; not applied/],
      [
        "replayed (older)",
        signedRules(0, { issuedAt: Date.now() - 60_000, ttlMs: 600_000 }),
        /is not newer than the set applied/,
      ],
      ["replayed (the same frame)", first, /is not newer than the set applied/],
    ];
    for (const [i, [what, frame, error]] of attacks.entries()) {
      gateway.send(frame);
      const status = await gateway.nth(isRulesStatus, i + 2);
      expect(status.error, what).toMatch(error);
      expect(status.complete, what).toBeUndefined();
      expect(
        status.rules.every((r) => r.status === "failed" && error.test(r.error ?? "")),
        what,
      ).toBe(true);
      expect(await readdir(rulesDir), what).toEqual(["rule_1.yml"]);
    }
    expect(logs.filter((l) => l.startsWith("rules_refused"))).toHaveLength(attacks.length);
    // A rollback is a new frame, newer than the last: it applies, even to an older rule set.
    gateway.send(signedRules(0));
    expect(await gateway.nth(isRulesStatus, attacks.length + 2)).toMatchObject({
      rules: [{ name: "rule_0", status: "applied" }],
    });
    expect(await readdir(rulesDir)).toEqual(["rule_0.yml"]);
    const persisted = await StateStore.open(stateDir);
    expect(persisted.state.rules).toEqual({
      rule_0: { version: 0, checksum: ruleChecksum(text(0)) },
    });
  });
});

describe("signed commands", () => {
  const keys = generateSigningKeys();
  const serviceKey = privateSigningKey(keys.privateKeyPem);
  const future = () => new Date(Date.now() + 60_000).toISOString();
  const signed = (
    id: string,
    details: Record<string, unknown>,
    { agentId = AGENT_ID, expiresAt = future() } = {},
  ) => {
    const frame = { command: "delete-file", priority: "high", id, details, expires_at: expiresAt };
    return { ...frame, signature: signCommand(serviceKey, agentId, frame) };
  };

  it("runs a signed command; refuses a tampered, misaddressed, unsigned or expired one", async () => {
    gateway = await FakeGateway.start();
    gateway.commandSigningKey = keys.publicKeyPem;
    const stateDir = newDir();
    // insecure only for http: with a key known, every command is verified all the same
    await agent({ stateDir });
    await gateway.waitFor(isHello);
    const malware = join(root, "signed-malware.py");
    const bystander = join(root, "bystander.txt");
    await writeFile(malware, "evil");
    await writeFile(bystander, "keep me");

    gateway.send(signed("sig-ok", { path: malware }));
    expect(await completionOf("sig-ok")).toMatchObject({ success: true });
    await expect(stat(malware)).rejects.toThrow(/ENOENT/);

    const tampered = { ...signed("sig-tampered", { path: malware }), details: { path: bystander } };
    gateway.send(tampered);
    gateway.send(signed("sig-other", { path: bystander }, { agentId: "agent-2" }));
    gateway.send(command("sig-none", "delete-file", { path: bystander }));
    gateway.send(
      signed(
        "sig-expired",
        { path: bystander },
        { expiresAt: new Date(Date.now() - 1000).toISOString() },
      ),
    );
    for (const id of ["sig-tampered", "sig-other"]) {
      expect(await completionOf(id), id).toMatchObject({
        status: "failed",
        message: "command signature invalid",
      });
    }
    expect(await completionOf("sig-none")).toMatchObject({
      status: "failed",
      message: "command signature invalid: the command is not signed",
    });
    expect(await completionOf("sig-expired")).toMatchObject({
      status: "failed",
      message: expect.stringMatching(/^command expired at .*; not run$/),
    });
    expect(await readFile(bystander, "utf8")).toBe("keep me");
    const ledger = await StateStore.open(stateDir);
    expect(await ledger.ledgerGet("sig-tampered")).toMatchObject({
      refused: "command signature invalid",
      completion: { success: false },
    });
    // A forged frame does not take the id from the real command: the service's one still runs.
    await writeFile(malware, "evil again");
    gateway.send(signed("sig-tampered", { path: malware }));
    expect(await completionOf("sig-tampered", 2)).toMatchObject({ success: true });
    await expect(stat(malware)).rejects.toThrow(/ENOENT/);
  });

  it("refuses a plain http gateway unless --insecure", async () => {
    gateway = await FakeGateway.start();
    await expect(
      startAgent({ gateway: gateway.url, enrollToken: ENROLL_TOKEN, stateDir: newDir() }),
    ).rejects.toThrow(
      /refusing the plain-text gateway http:\/\/127\.0\.0\.1:\d+: .*pass --insecure/,
    );
    expect(gateway.enrollments).toBe(0);
  });
});

describe("wss with a self-signed portal certificate", () => {
  it("enrolls and connects when given the CA, and refuses an unknown certificate", async () => {
    const key = join(root, "portal.key");
    const cert = join(root, "portal.pem");
    await promisify(execFile)("openssl", [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=portal"],
      ...["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
    ]);
    gateway = await FakeGateway.start("127.0.0.1", {
      key: await readFile(key),
      cert: await readFile(cert),
    });
    expect(gateway.url).toMatch(/^https:/);
    await expect(
      startAgent({ gateway: gateway.url, enrollToken: ENROLL_TOKEN, stateDir: newDir() }),
    ).rejects.toThrow(/self-signed certificate/);
    const stateDir = newDir();
    const first = await agent({ stateDir, caFile: cert, insecure: false });
    expect(await gateway.waitFor(isHello)).toMatchObject({ type: "hello" });
    expect(gateway.enrollments).toBe(1);

    // Enrolled by a service that gives no signing key, and not --insecure: nothing runs unsigned.
    const target = join(root, "unsigned.py");
    await writeFile(target, "evil");
    gateway.send(command("tls-unsigned", "delete-file", { path: target }));
    expect(await completionOf("tls-unsigned")).toMatchObject({
      status: "failed",
      message: expect.stringMatching(
        /^command signature invalid: this agent has no command signing key/,
      ),
    });
    expect(logs.filter((line) => line.startsWith("commands_unsigned"))).toHaveLength(1);
    expect(await readFile(target, "utf8")).toBe("evil");

    // --command-key gives it the service's key: the signed command runs.
    const keys = generateSigningKeys();
    const keyFile = join(root, "command-key.pem");
    await writeFile(keyFile, keys.publicKeyPem);
    await stop(first);
    await agent({ stateDir, caFile: cert, insecure: false, commandKeyFile: keyFile });
    await gateway.nth(isHello, 2);
    const frame = {
      command: "delete-file",
      priority: "high",
      id: "tls-signed",
      details: { path: target },
    };
    gateway.send({
      ...frame,
      signature: signCommand(privateSigningKey(keys.privateKeyPem), AGENT_ID, frame),
    });
    expect(await completionOf("tls-signed")).toMatchObject({ success: true });
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });
});

describe("mm agent (cli)", () => {
  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "test/agent/support/run-agent.ts", ...args],
        {
          cwd: join(import.meta.dirname, "../.."),
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      let stderr = "";
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      child.once("close", (code) => resolve({ code, stderr }));
    });

  it("rejects bad flags clearly", async () => {
    const unknown = await cli(["--gatway", "http://x"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/mm agent: Unknown option '--gatway'[\s\S]*usage: mm agent/);
    const heartbeat = await cli(["--heartbeat-ms", "soon"]);
    expect(heartbeat).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--heartbeat-ms must be a positive integer/),
    });
    expect(await cli(["--protected", "10.0.0.0/8,wazuh.local"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--protected: not an IP address or CIDR range: "wazuh.local"/),
    });
    expect(await cli(["--dns-servers", "10.0.0.53,resolver"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--dns-servers: not an IP address: "resolver"/),
    });
    expect(await cli(["--protected-paths", "opt/app"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--protected-paths: not an absolute path: "opt\/app"/),
    });
  });

  it("explains a missing or refused enrollment", async () => {
    gateway = await FakeGateway.start();
    const stateDir = newDir();
    const plain = await cli(["--gateway", gateway.url, "--state-dir", stateDir]);
    expect(plain).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/refusing the plain-text gateway .*pass --insecure/),
    });
    const missing = await cli(["--gateway", gateway.url, "--state-dir", stateDir, "--insecure"]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/not enrolled: pass --enroll <token>/),
    });
    const refused = await cli([
      "--gateway",
      gateway.url,
      "--state-dir",
      stateDir,
      "--enroll",
      "wrong",
      "--insecure",
    ]);
    expect(refused).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/refused \(HTTP 401\): unknown enrollment token/),
    });
  });
});
