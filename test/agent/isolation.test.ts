// Real enforcement in network namespaces (root): the agent runs as a process in a "host" namespace,
// managed by a gateway in the root namespace (the portal side); an "attacker" namespace shares the
// link. Reachability is checked with real TCP connections, IPv4 and IPv6, both directions.
import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentMessage } from "../../src/protocol/messages.ts";
import {
  ENROLL_TOKEN,
  FakeGateway,
  isCompletion,
  isHeartbeat,
  isHello,
} from "./support/fake-gateway.ts";
import {
  createTopology,
  inNs,
  listenInNs,
  spawnInNs,
  type Topology,
  tcpReachable,
} from "./support/netns.ts";

const RUN_AGENT = join(import.meta.dirname, "support/run-agent.ts");
const ATTACKER_PORT = 9000;
const HOST_PORT = 9001;

let net: Topology;
let gateway: FakeGateway;
let portal: Server[] = [];
let portalPort: number;
let stateDir: string;
let agent: ChildProcess | null = null;
const listeners: ChildProcess[] = [];
const agentLog: string[] = [];

function startAgentProcess(extra: string[] = []) {
  const child = spawnInNs(net.hostNs, process.execPath, [
    "--import",
    "tsx",
    RUN_AGENT,
    "--gateway",
    gateway.url,
    "--state-dir",
    stateDir,
    "--rules-dir",
    join(stateDir, "rules"),
    "--heartbeat-ms",
    "500", // short enough to see heartbeats flow, long enough for a pong on a loaded machine
    "--insecure", // the fake gateway speaks plain http
    ...extra,
  ]);
  child.stderr?.on("data", (chunk: Buffer) => agentLog.push(chunk.toString()));
  agent = child;
  return child;
}

/** Polls until `condition` holds (10 s at most). */
async function eventually(condition: () => Promise<boolean>) {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met within 10 s");
    await sleep(50);
  }
}

let commands = 0;
type CompletionFrame = Extract<AgentMessage, { status: "completed" | "failed" }>;
async function run(command: string, details: Record<string, unknown>): Promise<CompletionFrame> {
  const id = `iso-${++commands}`;
  gateway.send({ command, priority: "critical", id, details });
  const of = (m: AgentMessage): m is CompletionFrame => isCompletion(m) && m.command_id === id;
  return gateway.waitFor(of, () => true, 20_000);
}

async function reachability() {
  const { portal: p, attacker: a, host: h, hostNs, attackerNs } = net;
  const [portal4, portal6, attacker4, attacker6, resolver, c2, inbound4, inbound6] =
    await Promise.all([
      tcpReachable(hostNs, p.v4, portalPort),
      tcpReachable(hostNs, p.v6, portalPort),
      tcpReachable(hostNs, a.v4, ATTACKER_PORT),
      tcpReachable(hostNs, a.v6, ATTACKER_PORT),
      tcpReachable(hostNs, p.v4, 53),
      tcpReachable(hostNs, a.v4, 53),
      tcpReachable(attackerNs, h.v4, HOST_PORT),
      tcpReachable(attackerNs, h.v6, HOST_PORT),
    ]);
  return {
    portal: [portal4, portal6],
    hostToAttacker: [attacker4, attacker6],
    attackerToHost: [inbound4, inbound6],
    // port 53 of the host's resolver (the portal side, per its resolv.conf) and of the attacker
    dns: { resolver, attacker: c2 },
  };
}
const OPEN = {
  portal: [true, true],
  hostToAttacker: [true, true],
  attackerToHost: [true, true],
  dns: { resolver: true, attacker: true },
};
const NO_DNS = { resolver: false, attacker: false };

// `ip netns exec` shows /etc/netns/<ns>/resolv.conf as the namespace's /etc/resolv.conf.
const resolvConfDir = () => join("/etc/netns", net.hostNs);

const nftRuleset = () => inNs(net.hostNs, "nft", ["list", "ruleset"]);
function isolationRules(): number {
  const { nftables } = JSON.parse(
    inNs(net.hostNs, "nft", ["-j", "list", "table", "inet", "mm_agent_isolation"]),
  );
  return (nftables as object[]).filter((item) => "rule" in item).length;
}

describe("isolation in network namespaces", () => {
  beforeAll(async () => {
    net = createTopology();
    stateDir = await mkdtemp(join(tmpdir(), "mm-iso-"));
    gateway = await FakeGateway.start(net.portal.v4);
    // The portal's service, on the same address as the gateway but another port.
    const first = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => first.listen(0, net.portal.v4, resolve));
    portalPort = (first.address() as { port: number }).port;
    const second = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => second.listen(portalPort, net.portal.v6, resolve));
    // The host's resolver, on the portal side: what its resolv.conf names.
    const resolver = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => resolver.listen(53, net.portal.v4, resolve));
    portal = [first, second, resolver];
    await mkdir(resolvConfDir(), { recursive: true });
    await writeFile(join(resolvConfDir(), "resolv.conf"), `nameserver ${net.portal.v4}\n`);
    listeners.push(
      await listenInNs(net.attackerNs, ATTACKER_PORT),
      await listenInNs(net.attackerNs, 53),
      await listenInNs(net.hostNs, HOST_PORT),
    );
    startAgentProcess(["--enroll", ENROLL_TOKEN]);
    await gateway.waitFor(isHello, () => true, 20_000);
  });

  afterAll(async () => {
    agent?.kill("SIGKILL");
    for (const listener of listeners) listener.kill("SIGKILL");
    await gateway?.stop();
    for (const server of portal) server.close();
    if (net) await rm(resolvConfDir(), { recursive: true, force: true });
    net?.destroy();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it("starts with everything reachable", async () => {
    expect(await reachability()).toEqual(OPEN);
  });

  it("isolate-host: the portal stays reachable, the attacker is cut off both ways, IPv4 and IPv6", async () => {
    const before = nftRuleset();
    const heartbeats = gateway.messages(isHeartbeat).length;
    const done = await run("isolate-host", {
      reason: "Ransomware detection",
      allow_portal_communication: true,
      allow_dns: true,
      portal_ips: [net.portal.v4, net.portal.v6],
      portal_ports: [portalPort],
    });
    expect(done).toMatchObject({
      status: "completed",
      success: true,
      message: "Host isolated successfully",
      details: { isolation_level: "full", execution_time_ms: expect.any(Number) },
    });
    expect(done.details.firewall_rules_added).toBe(isolationRules());
    expect(done.details.dns_servers).toEqual([net.portal.v4]); // from the host's resolv.conf
    expect(await reachability()).toEqual({
      portal: [true, true],
      hostToAttacker: [false, false],
      attackerToHost: [false, false],
      dns: { resolver: true, attacker: false }, // allow_dns: the resolver only, no C2 over port 53
    });
    // No port-53 rule leaves the destination open.
    const dnsRules = nftRuleset()
      .split("\n")
      .filter((line) => /th [ds]port 53/.test(line));
    expect(dnsRules).toHaveLength(2);
    for (const rule of dnsRules) expect(rule).toMatch(/ip [ds]addr 10\.213\.\d+\.1 /);
    // The management channel never dropped: same connection, heartbeats still flowing.
    expect(gateway.connections).toBe(1);
    await gateway.nth(isHeartbeat, heartbeats + 3);

    const released = await run("release-host", {});
    expect(released).toMatchObject({
      success: true,
      details: { firewall_rules_removed: done.details.firewall_rules_added },
    });
    expect(nftRuleset()).toBe(before); // exactly what isolation added is gone
    expect(await reachability()).toEqual(OPEN);
  });

  it("keeps the gateway connection allowed even when portal_ips is wrong", async () => {
    const done = await run("isolate-host", {
      reason: "wrong list",
      portal_ips: ["192.0.2.1"],
      portal_ports: [443],
    });
    expect(done).toMatchObject({ success: true });
    expect(await reachability()).toEqual({
      portal: [false, false], // only the gateway's own address:port is let through
      hostToAttacker: [false, false],
      attackerToHost: [false, false],
      dns: NO_DNS,
    });
    expect(gateway.connected).toBe(true);
    expect((await run("release-host", {})).success).toBe(true);
  });

  it("block-ip / unblock-ip cut one address both ways, and never the gateway's", async () => {
    expect((await run("block-ip", { ip: net.attacker.v6 })).details).toEqual({
      ip: net.attacker.v6,
      blocked: true,
    });
    expect(await reachability()).toEqual({
      ...OPEN,
      hostToAttacker: [true, false],
      attackerToHost: [true, false],
    });
    // blocks are not isolation: releasing leaves them
    await run("isolate-host", { portal_ips: [net.portal.v4], portal_ports: [portalPort] });
    await run("release-host", {});
    expect((await reachability()).hostToAttacker).toEqual([true, false]);
    expect((await run("unblock-ip", { ip: net.attacker.v6 })).success).toBe(true);
    expect(await reachability()).toEqual(OPEN);

    const refused = await run("block-ip", { ip: net.portal.v4 });
    expect(refused).toMatchObject({
      success: false,
      message: expect.stringMatching(/managed through it/),
    });
  });

  it("stays isolated when killed and started again after a reboot", async () => {
    await run("isolate-host", {
      portal_ips: [net.portal.v4, net.portal.v6],
      portal_ports: [portalPort],
    });
    const killed = new Promise((resolve) => agent?.once("exit", resolve));
    agent?.kill("SIGKILL");
    await killed;
    // A reboot loses the kernel's ruleset; the agent's state dir survives.
    inNs(net.hostNs, "nft", ["delete", "table", "inet", "mm_agent_isolation"]);
    expect((await reachability()).hostToAttacker).toEqual([true, true]);

    const hellos = gateway.messages(isHello).length;
    startAgentProcess(); // no --enroll: the stored key
    const hello = await gateway.nth(isHello, hellos + 1);
    expect(hello.isolation).toMatchObject({ isolated: true, since: expect.any(String) });
    expect(await reachability()).toEqual({
      portal: [true, true],
      hostToAttacker: [false, false],
      attackerToHost: [false, false],
      dns: NO_DNS,
    });
    expect((await run("release-host", {})).success).toBe(true);
    expect(await reachability()).toEqual(OPEN);
  }, 60_000);

  it("isolate-host with dns_servers lets DNS reach those servers only", async () => {
    const done = await run("isolate-host", {
      allow_dns: true,
      dns_servers: [net.attacker.v4],
      portal_ips: [net.portal.v4],
      portal_ports: [portalPort],
    });
    expect(done.details.dns_servers).toEqual([net.attacker.v4]);
    expect((await reachability()).dns).toEqual({ resolver: false, attacker: true });
    expect((await reachability()).hostToAttacker).toEqual([false, false]);
    expect((await run("release-host", {})).success).toBe(true);
  });

  it("refuses to block loopback, link-local, the gateway and the portal of the isolation", async () => {
    const refusals: [string, RegExp][] = [
      ["127.0.0.1", /refusing to block 127\.0\.0\.1: loopback \(127\.0\.0\.0\/8\)/],
      ["::1", /refusing to block ::1: loopback/],
      ["fe80::1", /refusing to block fe80::1: link-local/],
      [net.portal.v4, /refusing to block 10\.213\.\d+\.1: this agent is managed through it/],
    ];
    for (const [ip, message] of refusals) {
      expect(await run("block-ip", { ip }), ip).toMatchObject({ success: false, message });
    }
    await run("isolate-host", { portal_ips: [net.portal.v6], portal_ports: [portalPort] });
    expect(await run("block-ip", { ip: net.portal.v6 })).toMatchObject({
      success: false,
      message: expect.stringMatching(/the portal of the current isolation/),
    });
    await run("release-host", {});
    expect(inNs(net.hostNs, "nft", ["list", "tables"])).not.toMatch(/mm_agent_block/);
  });

  it("lifts a block and an isolation at their expiry, also one that passed while it was down", async () => {
    const blocked = await run("block-ip", { ip: net.attacker.v4, duration_seconds: 5 });
    expect(blocked.details).toMatchObject({ blocked: true, expires_at: expect.any(String) });
    expect((await reachability()).hostToAttacker).toEqual([false, true]);
    // The agent's own timer, without any command from the gateway.
    await eventually(async () => (await reachability()).hostToAttacker[0] === true);
    expect(agentLog.join("")).toMatch(/"block_expired".*"ip":"10\.213\.\d+\.3"/);

    const isolated = await run("isolate-host", {
      portal_ips: [net.portal.v4, net.portal.v6],
      portal_ports: [portalPort],
      duration_seconds: 2,
    });
    const expiresAt = Date.parse(isolated.details.expires_at as string);
    const killed = new Promise((resolve) => agent?.once("exit", resolve));
    agent?.kill("SIGKILL");
    await killed;
    expect((await reachability()).hostToAttacker).toEqual([false, false]); // the kernel still isolates
    await eventually(async () => Date.now() > expiresAt);
    const hellos = gateway.messages(isHello).length;
    startAgentProcess();
    const hello = await gateway.nth(isHello, hellos + 1);
    expect(hello.isolation).toEqual({ isolated: false });
    expect(await reachability()).toEqual(OPEN);
  }, 60_000);

  it("never isolates the host away from --protected ranges", async () => {
    const killed = new Promise((resolve) => agent?.once("exit", resolve));
    agent?.kill("SIGKILL");
    await killed;
    const hellos = gateway.messages(isHello).length;
    startAgentProcess(["--protected", `${net.attacker.v6}/128`]);
    await gateway.nth(isHello, hellos + 1);
    await run("isolate-host", { portal_ips: [net.portal.v4], portal_ports: [portalPort] });
    const isolated = await reachability();
    expect(isolated.hostToAttacker).toEqual([false, true]);
    expect(isolated.attackerToHost).toEqual([false, true]);
    expect(await run("block-ip", { ip: net.attacker.v6 })).toMatchObject({
      success: false,
      message: expect.stringMatching(/protected \(--protected\)/),
    });
    expect((await run("release-host", {})).success).toBe(true);
  }, 60_000);
});
