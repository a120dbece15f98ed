import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import {
  createTopology,
  inNs,
  listenInNs,
  spawnInNs,
  type Topology,
  tcpReachable,
} from "../agent/support/netns.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { eventually } from "../support/wait.ts";

// The seed scenario end to end with nothing stood in for: Wazuh alerts posted to the REST API →
// incident and mitigation workflows → the gateway → the reference agent enforcing for real inside
// a network namespace.
const ATTACKER_PORT = 36210;
const runAgent = path.resolve(import.meta.dirname, "../agent/support/run-agent.ts");

let ctx: TestContext;
let service: Service;
let net: Topology;
let agent: ChildProcess | undefined;
let ncat: ChildProcess | undefined;
let attackerListener: ChildProcess | undefined;
let work: string;
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  net = createTopology();
  work = mkdtempSync(path.join(tmpdir(), "mm-e2e-"));
  ctx = await createTestContext("e2e");
  // The portal (API and gateway) listens on the bridge address the host namespace reaches.
  service = await ctx.start({ config: { host: net.portal.v4 } });
  attackerListener = await listenInNs(net.attackerNs, ATTACKER_PORT);
}, 120_000);

afterAll(async () => {
  for (const child of [agent, ncat, attackerListener]) child?.kill("SIGKILL");
  await ctx?.cleanup();
  net?.destroy();
  rmSync(work, { recursive: true, force: true });
});

/** A real ncat with an established connection to the attacker, as in the seed's alert 100002. */
async function connectedNcat(): Promise<ChildProcess> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const child = spawnInNs(net.hostNs, "ncat", [
      "--recv-only",
      net.attacker.v4,
      String(ATTACKER_PORT),
    ]);
    child.stdout?.on("data", () => {});
    child.stderr?.on("data", () => {});
    for (let i = 0; i < 50 && child.exitCode === null; i++) {
      const established = inNs(net.hostNs, "ss", [
        "-Htn",
        "state",
        "established",
        `dport = :${ATTACKER_PORT}`,
      ]);
      if (established.trim()) return child;
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGKILL");
  }
  throw new Error("ncat could not connect to the attacker");
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

describe("the seed scenario, end to end with the reference agent", () => {
  it("kills ncat, deletes the script, quarantines the ransomware and isolates the host, portal still reachable", {
    timeout: 180_000,
  }, async () => {
    // Enrollment: an operator's token, exchanged by the agent for its key.
    const token = await rest.post("/api/enrollment-tokens", { group: "e2e", max_uses: 1 });
    expect(token.status).toBe(201);
    const gatewayUrl = service.gatewayUrl as string;
    const gatewayPort = Number(new URL(gatewayUrl).port);
    agent = spawnInNs(net.hostNs, process.execPath, [
      "--import",
      "tsx",
      runAgent,
      "--gateway",
      gatewayUrl,
      "--enroll",
      token.body.token,
      "--state-dir",
      path.join(work, "state"),
      "--rules-dir",
      path.join(work, "rules"),
      "--heartbeat-ms",
      "1000",
      "--insecure", // the test service's gateway is plain http
    ]);
    agent.stderr?.on("data", (d) => process.env.MM_E2E_DEBUG && process.stderr.write(d));
    agent.stdout?.on("data", () => {});
    await eventually(
      "the agent online",
      async () => (await rest.get("/api/agents?group=e2e&status=online")).body.items.length === 1,
      60_000,
    );
    // Another service on the portal machine: reachable until the host is isolated.
    const other = createServer((socket) => socket.end()).listen(0, net.portal.v4);
    await once(other, "listening");
    const otherPort = (other.address() as AddressInfo).port;
    expect(await tcpReachable(net.hostNs, net.portal.v4, otherPort)).toBe(true);

    // What the attacker did on the host: a live ncat connection and two Python files.
    ncat = await connectedNcat();
    const script = path.join(work, "zerologon_tester.py");
    const ransomware = path.join(work, "zerologon_payload.py");
    writeFileSync(script, "print('tester')\n");
    writeFileSync(ransomware, "print('encrypting')\n");
    await eventually(
      "ncat connected",
      () => ncat?.pid !== undefined && tcpReachable(net.hostNs, net.attacker.v4, ATTACKER_PORT),
    );

    // The alerts name the host by its address: the gateway resolves it to the enrolled agent.
    const host = ctx.host("e2e");
    const forHost = (name: Parameters<typeof wazuhAlert>[0]) => {
      const alert = wazuhAlert(name, host);
      alert.agent = { id: `e2e-${ctx.suffix}`, name: host, ip: net.host.v4 };
      return alert as typeof alert & {
        data: Record<string, string>;
        syscheck: Record<string, string>;
      };
    };
    const connection = forHost("100002-ncat-connection");
    connection.data.pid = String(ncat.pid);
    connection.data.dst_ip = net.attacker.v4;
    const permission = forHost("100003-exec-permission-added");
    permission.syscheck.path = script;
    permission.syscheck.sha256_after = sha256(script);
    const added = forHost("100004-executable-file-added");
    added.syscheck.path = ransomware;
    added.syscheck.sha256_after = sha256(ransomware);

    expect((await rest.post("/api/alert", connection)).status).toBe(202);
    await eventually(
      "ncat killed",
      () => ncat?.exitCode !== null || ncat?.signalCode !== null,
      60_000,
    );
    await eventually(
      "the attacker blocked",
      async () => !(await tcpReachable(net.hostNs, net.attacker.v4, ATTACKER_PORT)),
      30_000,
    );

    expect((await rest.post("/api/alert", permission)).status).toBe(202);
    await eventually("the script deleted", () => !existsSync(script), 60_000);

    expect((await rest.post("/api/alert", added)).status).toBe(202);
    await eventually("the ransomware quarantined", () => !existsSync(ransomware), 60_000);
    await eventually(
      "the host isolated",
      async () => !(await tcpReachable(net.hostNs, net.portal.v4, otherPort)),
      60_000,
    );

    // Isolated: the portal (gateway) still answers from the host, nothing else does.
    expect(await tcpReachable(net.hostNs, net.portal.v4, gatewayPort)).toBe(true);
    expect(await tcpReachable(net.hostNs, net.attacker.v4, ATTACKER_PORT)).toBe(false);
    other.close();
    const decisions = (
      await rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`)
    ).body.items;
    expect(
      decisions
        .filter((d: { kind: string }) => d.kind === "mitigation_succeeded")
        .map((d: { mitigation: string }) => d.mitigation),
    ).toEqual(["close_conn", "delete_file", "handle_ransomware"]);
  });
});
