import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// The seed scenario on the default configuration, with a recording double at the agent boundary.
let ctx: TestContext;
let service: Service;
let firewall: Awaited<ReturnType<typeof webhookReceiver>>;
const agents = recordingAgents();

beforeAll(async () => {
  firewall = await webhookReceiver();
  ctx = await createTestContext("engine");
  service = await ctx.start({
    agents: agents.gateway,
    config: { firewallWebhookUrl: firewall.url("/firewall/block") },
  });
});
afterAll(async () => {
  await ctx?.cleanup();
  await firewall?.close();
});

const rest = restClient(() => service.apiUrl);
const get = async (path: string) => (await rest.get(path)).body;

interface DecisionRow {
  kind: string;
  mitigation: string | null;
  flow_id: string | null;
  node_id: string | null;
  reason: string;
}
const decisions = async (host: string): Promise<DecisionRow[]> =>
  (await get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`)).items;
const commandsFor = (host: string) => agents.commands.filter((c) => c.agentId === `agent-${host}`);

async function postAlert(alert: unknown) {
  const res = await rest.post("/api/alert", alert);
  expect(res.status).toBe(202);
  return res.body;
}

describe("the seed scenario: ncat → exec permission → ransomware", () => {
  it("runs close_conn, delete_file, then handle_ransomware once each with the alert's details", async () => {
    const host = ctx.host("seed");
    const first = await postAlert(wazuhAlert("100002-ncat-connection", host));
    expect(first).toEqual({
      id: `1729589475.25117-${host}`,
      incident: `incident/${host}`,
      duplicate: false,
    });
    await eventually("close_conn", () => commandsFor(host).length === 2);
    await postAlert(wazuhAlert("100003-exec-permission-added", host));
    await eventually("delete_file", () => commandsFor(host).length === 3);
    await postAlert(wazuhAlert("100004-executable-file-added", host));
    await eventually("handle_ransomware", () => commandsFor(host).length === 5);

    expect(commandsFor(host).map((c) => [c.command, c.details])).toEqual([
      ["kill-process", { pid: "3613", ip: "192.168.200.1", process_name: "ncat" }],
      ["block-ip", { pid: "3613", ip: "192.168.200.1" }],
      [
        "delete-file",
        {
          path: "/tmp/zerologon_tester.py",
          sha256: "b8ae48c2e46c28f1004e006348af557c7d912036b9ead88be67bca2bafde01d3",
        },
      ],
      [
        "quarantine-file",
        {
          path: "/tmp/zerologon_tester.py",
          sha256: "b8ae48c2e46c28f1004e006348af557c7d912036b9ead88be67bca2bafde01d3",
        },
      ],
      [
        "isolate-host",
        {
          path: "/tmp/zerologon_tester.py",
          sha256: "b8ae48c2e46c28f1004e006348af557c7d912036b9ead88be67bca2bafde01d3",
          reason: "Ransomware detection",
          allow_portal_communication: true,
          allow_dns: true,
        },
      ],
    ]);
    const isolate = commandsFor(host).find((c) => c.command === "isolate-host");
    expect(isolate?.priority).toBe("critical");
    // The engine's isolation is the agent's isolation workflow: held and verified like an operator's.
    expect(isolate?.commandId).toMatch(new RegExp(`^isolation/agent-${host}/[^/]+/isolate$`));
    const isolation = await eventually("the isolation held", async () => {
      const res = await rest.get(`/api/agents/agent-${host}/isolation`);
      return res.status === 200 && res.body.status === "isolated" && res.body;
    });
    expect(isolation).toMatchObject({
      requestedBy: expect.stringMatching(/^workflow:mitigation\//),
      verification: { isolation_level: "full" },
      releaseAt: null,
    });
    // Command ids are derived from the mitigation run, so a retry reaches the agent with the same id.
    expect(new Set(commandsFor(host).map((c) => c.commandId)).size).toBe(5);

    await eventually(
      "three successes recorded",
      async () =>
        (await decisions(host)).filter((d) => d.kind === "mitigation_succeeded").length === 3,
    );
    expect(
      (await decisions(host))
        .filter((d) => d.kind === "mitigation_succeeded")
        .map((d) => [d.mitigation, d.node_id]),
    ).toEqual([
      ["close_conn", "ncat_connection"],
      ["delete_file", "exec_permission"],
      ["handle_ransomware", "ransomware_file"],
    ]);

    // The flow instance finished at its last node; the incident saw every mitigation's outcome.
    const state = await eventually("the incident to see the outcomes", async () => {
      const s = await get(`/api/incidents/${host}`);
      return s.mitigations.every((m: { outcome: string }) => m.outcome !== "running") && s;
    });
    expect(state.instances).toEqual([]);
    expect(state.finished).toHaveLength(1);
    expect(state.finished[0].path).toEqual([
      "ncat_connection",
      "exec_permission",
      "ransomware_file",
    ]);
    expect(state.mitigations.map((m: { outcome: string }) => m.outcome)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded",
    ]);

    // Posted again: stored once, nothing runs twice.
    for (const name of [
      "100002-ncat-connection",
      "100003-exec-permission-added",
      "100004-executable-file-added",
    ] as const) {
      expect(await postAlert(wazuhAlert(name, host))).toMatchObject({ duplicate: true });
    }
    await new Promise((r) => setTimeout(r, 1_500));
    expect(commandsFor(host)).toHaveLength(5);
    const alerts = await get(`/api/alerts?host=${host}`);
    expect(alerts.total).toBe(3);
  });

  it("does nothing for a flow's middle step without its beginning", async () => {
    const host = ctx.host("middle");
    await postAlert(wazuhAlert("100003-exec-permission-added", host));
    await eventually(
      "the alert stored",
      async () => (await get(`/api/alerts?host=${host}`)).total === 1,
    );
    await new Promise((r) => setTimeout(r, 1_000));
    expect(commandsFor(host)).toEqual([]);
  });

  it("keeps two hosts interleaving the same attack in separate incidents", async () => {
    const [a, b] = [ctx.host("twin"), ctx.host("twin")];
    await postAlert(wazuhAlert("100002-ncat-connection", a));
    await postAlert(wazuhAlert("100002-ncat-connection", b));
    await eventually(
      "both close_conn",
      () => commandsFor(a).length === 2 && commandsFor(b).length === 2,
    );
    await postAlert(wazuhAlert("100003-exec-permission-added", b));
    await eventually("delete_file on b", () => commandsFor(b).length === 3);
    await postAlert(wazuhAlert("100003-exec-permission-added", a));
    await postAlert(wazuhAlert("100004-executable-file-added", a));
    await eventually("a's flow complete", () => commandsFor(a).length === 5);
    // a's last two alerts came back to back: their mitigations touch one file, so they run in alert order.
    const steps = (host: string, node: string) =>
      commandsFor(host)
        .filter((c) => c.commandId.includes(`.${node}/`))
        .map((c) => c.command);
    expect(steps(a, "ncat_connection")).toEqual(["kill-process", "block-ip"]);
    expect(steps(a, "exec_permission")).toEqual(["delete-file"]);
    expect(steps(a, "ransomware_file")).toEqual(["quarantine-file"]);
    expect(commandsFor(a).filter((c) => c.command === "isolate-host")).toHaveLength(1);
    expect(commandsFor(b).map((c) => c.command)).toEqual([
      "kill-process",
      "block-ip",
      "delete-file",
    ]);
    const incidents = await get(`/api/incidents?host=${b}`);
    expect(incidents.items.map((i: { id: string }) => i.id)).toEqual([`incident/${b}`]);
  });
});

describe("never-block list", () => {
  it("skips a mitigation that would block a loopback address, and says why", async () => {
    const host = ctx.host("loopback-attacker");
    const alert = wazuhAlert("100002-ncat-connection", host);
    // An attacker who controls the alert text names the host's own loopback as the remote end.
    (alert.data as Record<string, unknown>).dst_ip = "127.0.0.1";
    await postAlert(alert);
    const skipped = await eventually(
      "close_conn skipped",
      async () => (await decisions(host)).find((d) => d.kind === "mitigation_skipped") ?? false,
    );
    expect(skipped.reason).toBe("close_conn skipped: 127.0.0.1 is never blocked: loopback");
    expect(commandsFor(host)).toEqual([]);
  });
});

describe("flow-processor alerts (rule 100100)", () => {
  it("runs filter_packets against the attacker's IP for Slowloris through the DoS flow", async () => {
    const host = ctx.host("fp");
    await postAlert(wazuhAlert("100100-flow-processor", host));
    const call = await eventually("the firewall webhook", () =>
      firewall.received.find((r) => r.idempotencyKey?.includes(host)),
    );
    expect(call.body).toEqual({ attacker_ip: "10.185.2.97" });
    await eventually("the success recorded", async () =>
      (await decisions(host)).some((d) => d.kind === "mitigation_succeeded"),
    );
    const matched = (await decisions(host))
      .filter((d) => d.kind === "node_matched")
      .map((d) => d.flow_id);
    expect(matched).toEqual(["dos_slowloris"]);
  });

  it("runs the brute-force flow instead when attack_type is Bruteforce", async () => {
    const host = ctx.host("bf");
    const alert = wazuhAlert("100100-flow-processor", host);
    (alert.data as { attack_flow_alert: { attack_type: string } }).attack_flow_alert.attack_type =
      "Bruteforce";
    await postAlert(alert);
    await eventually("the success recorded", async () =>
      (await decisions(host)).some((d) => d.kind === "mitigation_succeeded"),
    );
    const rows = await decisions(host);
    expect(rows.filter((d) => d.kind === "node_matched").map((d) => d.flow_id)).toEqual([
      "brute_force",
    ]);
    expect(rows.find((d) => d.kind === "mitigation_succeeded")?.mitigation).toBe("filter_packets");
    expect(firewall.received.filter((r) => r.idempotencyKey?.includes(host))).toHaveLength(1);
  });
});
