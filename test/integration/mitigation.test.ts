import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// Mitigation choice on a catalog of the test's own: ranking, skips, fallback, preemption.
let ctx: TestContext;
let service: Service;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
const agents = recordingAgents({ capabilities: ["kill-process", "block-ip"] });
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  hooks = await webhookReceiver((req) =>
    req.path.startsWith("/fail500")
      ? 500
      : req.path.startsWith("/fail400")
        ? 400
        : req.path.startsWith("/redirect")
          ? 302
          : 200,
  );
  ctx = await createTestContext("mitigation", { loadDefaults: false, incidentIdleMs: 2_000 });
  service = await ctx.start({ agents: agents.gateway });
});
afterAll(async () => {
  await ctx?.cleanup();
  await hooks?.close();
});

/** A seed alert for `host` carrying the given techniques. */
function alertWith(host: string, techniques: string[], id: string) {
  const alert = wazuhAlert("100002-ncat-connection", host, id);
  (alert.rule as { mitre: { id: string[] } }).mitre.id = techniques;
  return alert;
}

interface Row {
  kind: string;
  mitigation: string | null;
  node_id: string | null;
  reason: string;
}
const decisions = async (host: string): Promise<Row[]> =>
  (await rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`))
    .body.items;
const settled = (host: string) =>
  eventually("the mitigation to settle", async () => {
    const rows = await decisions(host);
    return (
      rows.some((d) => d.kind === "mitigation_succeeded" || d.kind === "no_mitigation") && rows
    );
  });

describe("cost-ranked mitigation with fallback", () => {
  beforeAll(async () => {
    await rest.created("/api/condition", { identifier: "never", name: "never", check: "false" });
    await rest.created("/api/condition", {
      identifier: "broken",
      name: "broken",
      args: { pid: "alert.data.pid" },
      check: "int(args.pid + 'x') > 0",
    });
    await rest.created("/api/workflow", {
      identifier: "m_missing_args",
      name: "needs a path",
      url: hooks.url("/ok/args"),
      effective_attacks: ["T1566"],
      cost: 0,
      args: { path: "alert.syscheck.path" },
    });
    await rest.created("/api/workflow", {
      identifier: "m_condition_false",
      name: "guarded",
      url: hooks.url("/ok/guarded"),
      effective_attacks: ["T1566"],
      cost: 1,
      conditions: ["never"],
    });
    await rest.created("/api/workflow", {
      identifier: "m_condition_error",
      name: "erroring",
      url: hooks.url("/ok/erroring"),
      effective_attacks: ["T1566"],
      cost: 2,
      conditions: ["broken"],
    });
    await rest.created("/api/workflow", {
      identifier: "m_no_capability",
      name: "isolate",
      steps: [{ agent: "isolate-host" }],
      effective_attacks: ["T1566"],
      cost: 3,
    });
    await rest.created("/api/workflow", {
      identifier: "m_500",
      name: "flaky soar",
      url: hooks.url("/fail500"),
      effective_attacks: ["T1566"],
      cost: 4,
    });
    await rest.created("/api/workflow", {
      identifier: "m_400",
      name: "rejecting soar",
      url: hooks.url("/fail400"),
      effective_attacks: ["T1566"],
      cost: 5,
    });
    await rest.created("/api/workflow", {
      identifier: "m_ok",
      name: "working soar",
      url: hooks.url("/ok/final"),
      effective_attacks: ["T1566"],
      cost: 6,
      params: { playbook: "phishing" },
      args: { pid: "alert.data.pid" },
    });
    await rest.created("/api/workflow", {
      identifier: "m_never_reached",
      name: "dearer",
      url: hooks.url("/ok/dearer"),
      effective_attacks: ["T1566"],
      cost: 7,
    });
    await rest.created("/api/attack-flow", {
      identifier: "phishing",
      name: "phishing",
      nodes: [{ id: "phish", techniques: ["T1566"] }],
      start: ["phish"],
    });
  });

  it("skips, retries and falls back in ascending cost, recording every reason", async () => {
    const host = ctx.host("fallback");
    expect(
      (await rest.post("/api/alert", alertWith(host, ["T1566.001"], `phish-${host}`))).status,
    ).toBe(202);
    const rows = (await settled(host)).filter((d) => d.kind.startsWith("mitigation"));
    expect(rows.map((d) => [d.kind, d.mitigation])).toEqual([
      ["mitigation_skipped", "m_missing_args"],
      ["mitigation_skipped", "m_condition_false"],
      ["mitigation_skipped", "m_condition_error"],
      ["mitigation_skipped", "m_no_capability"],
      ["mitigation_chosen", "m_500"],
      ["mitigation_failed", "m_500"],
      ["mitigation_chosen", "m_400"],
      ["mitigation_failed", "m_400"],
      ["mitigation_chosen", "m_ok"],
      ["mitigation_succeeded", "m_ok"],
    ]);
    const reason = (m: string, kind: string) =>
      rows.find((d) => d.mitigation === m && d.kind === kind)?.reason;
    expect(reason("m_missing_args", "mitigation_skipped")).toMatch(/missing args path/);
    expect(reason("m_condition_false", "mitigation_skipped")).toMatch(/condition never is false/);
    expect(reason("m_condition_error", "mitigation_skipped")).toMatch(
      /condition broken: check failed/,
    );
    expect(reason("m_no_capability", "mitigation_skipped")).toMatch(/lacks isolate-host/);
    expect(reason("m_500", "mitigation_failed")).toMatch(/answered 500/);
    expect(reason("m_400", "mitigation_failed")).toMatch(/answered 400/);

    // 500 is retried (three attempts, same idempotency key); 400 is permanent.
    const calls = (path: string) =>
      hooks.received.filter((r) => r.path === path && r.idempotencyKey?.includes(host));
    expect(calls("/fail500")).toHaveLength(3);
    expect(new Set(calls("/fail500").map((c) => c.idempotencyKey)).size).toBe(1);
    expect(calls("/fail400")).toHaveLength(1);
    expect(calls("/ok/final").map((c) => c.body)).toEqual([{ playbook: "phishing", pid: "3613" }]);
    expect(calls("/ok/dearer")).toEqual([]);
  });
});

describe("hostile catalogue entries and alerts", () => {
  beforeAll(async () => {
    await rest.created("/api/condition", {
      identifier: "cubic",
      name: "cubic",
      args: { items: "alert.data.items" },
      check: "args.items.all(a, args.items.all(b, args.items.all(c, a + b + c >= 0)))",
    });
    await rest.created("/api/workflow", {
      identifier: "e_over_budget",
      name: "guarded by a costly check",
      url: hooks.url("/ok/over-budget"),
      effective_attacks: ["T1048"],
      cost: 0,
      conditions: ["cubic"],
    });
    await rest.created("/api/workflow", {
      identifier: "e_metadata",
      name: "metadata service",
      url: "http://169.254.169.254/latest/meta-data/",
      effective_attacks: ["T1048"],
      cost: 1,
    });
    await rest.created("/api/workflow", {
      identifier: "e_redirect",
      name: "redirecting soar",
      url: hooks.url("/redirect"),
      effective_attacks: ["T1048"],
      cost: 2,
    });
    await rest.created("/api/workflow", {
      identifier: "e_ok",
      name: "working soar",
      url: hooks.url("/ok/egress"),
      effective_attacks: ["T1048"],
      cost: 3,
    });
    await rest.created("/api/attack-flow", {
      identifier: "exfiltration",
      name: "exfiltration",
      nodes: [{ id: "exfil", techniques: ["T1048"] }],
      start: ["exfil"],
    });
  });

  it("fails a check over its budget, refuses link-local and redirects once each, then falls back", async () => {
    const host = ctx.host("egress");
    const alert = alertWith(host, ["T1048"], `exfil-${host}`);
    (alert.data as Record<string, unknown>).items = Array.from({ length: 400 }, (_, i) => i);
    expect((await rest.post("/api/alert", alert)).status).toBe(202);
    const rows = (await settled(host)).filter((d) => d.kind.startsWith("mitigation"));
    expect(rows.map((d) => [d.kind, d.mitigation])).toEqual([
      ["mitigation_skipped", "e_over_budget"],
      ["mitigation_chosen", "e_metadata"],
      ["mitigation_failed", "e_metadata"],
      ["mitigation_chosen", "e_redirect"],
      ["mitigation_failed", "e_redirect"],
      ["mitigation_chosen", "e_ok"],
      ["mitigation_succeeded", "e_ok"],
    ]);
    const reason = (m: string, kind: string) =>
      rows.find((d) => d.mitigation === m && d.kind === kind)?.reason;
    expect(reason("e_over_budget", "mitigation_skipped")).toMatch(
      `check exceeded its budget of ${ctx.config.checkBudgetMs} ms`,
    );
    expect(reason("e_metadata", "mitigation_failed")).toMatch(/link-local address 169.254.169.254/);
    expect(reason("e_redirect", "mitigation_failed")).toMatch(/302 \(redirects are not followed\)/);
    // A refused destination and a redirect are permanent: no retries.
    const calls = (path: string) =>
      hooks.received.filter((r) => r.path === path && r.idempotencyKey?.includes(host));
    expect(calls("/redirect")).toHaveLength(1);
    expect(calls("/ok/over-budget")).toEqual([]);
    expect(calls("/ok/egress")).toHaveLength(1);
  });
});

describe("preemptive nodes", () => {
  beforeAll(async () => {
    await rest.created("/api/workflow", {
      identifier: "stop_lateral",
      name: "stop lateral movement",
      steps: [{ agent: "block-ip" }],
      effective_attacks: ["T1021"],
      cost: 1,
      args: { ip: "alert.data.dst_ip" },
    });
    await rest.created("/api/workflow", {
      identifier: "stop_discovery",
      name: "stop discovery",
      steps: [{ agent: "kill-process" }],
      effective_attacks: ["T1046"],
      cost: 1,
      args: { pid: "alert.data.pid" },
    });
    await rest.created("/api/attack-flow", {
      identifier: "recon_then_lateral",
      name: "discovery then lateral movement",
      nodes: [
        { id: "discovery", techniques: ["T1046"], next: ["lateral"] },
        { id: "lateral", techniques: ["T1021"], preemptive: true },
      ],
      start: ["discovery"],
    });
  });

  it("runs a preemptive node's mitigation when the node before it is reached, and not again later", async () => {
    const host = ctx.host("preempt");
    const mine = () => agents.commands.filter((c) => c.agentId === `agent-${host}`);
    await rest.post("/api/alert", alertWith(host, ["T1046"], `scan-${host}`));
    await eventually("both mitigations", () => mine().length === 2);
    expect(
      mine()
        .map((c) => c.command)
        .sort(),
    ).toEqual(["block-ip", "kill-process"]);
    await rest.post("/api/alert", alertWith(host, ["T1021"], `lateral-${host}`));
    await eventually("the lateral alert handled", async () =>
      (await decisions(host)).some(
        (d) => d.node_id === "lateral" && d.kind === "node_matched" && d.reason.includes("T1021"),
      ),
    );
    await new Promise((r) => setTimeout(r, 1_000));
    expect(mine()).toHaveLength(2);
    const state = (await rest.get(`/api/incidents/${host}`)).body;
    expect(
      state.mitigations.map((m: { nodeId: string; preemptive: boolean }) => [
        m.nodeId,
        m.preemptive,
      ]),
    ).toEqual([
      ["discovery", false],
      ["lateral", true],
    ]);
  });
});

describe("incident lifecycle", () => {
  it("closes an idle incident and opens a new one on the host's next alert", async () => {
    const host = ctx.host("idle");
    await rest.post("/api/alert", alertWith(host, ["T1566"], `idle-1-${host}`));
    const closed = await eventually("the incident to close", async () => {
      const res = await rest.get(`/api/incidents?host=${host}&status=closed`);
      return res.body.items.length === 1 && res.body.items[0];
    });
    expect(closed).toMatchObject({
      id: `incident/${host}`,
      host,
      status: "closed",
      severity: "high",
      techniques: ["T1566"],
    });
    await rest.post("/api/alert", alertWith(host, ["T1566"], `idle-2-${host}`));
    await eventually(
      "a new open incident",
      async () =>
        (await rest.get(`/api/incidents?host=${host}&status=open`)).body.items.length === 1,
    );
    const all = (await rest.get(`/api/incidents?host=${host}`)).body.items;
    expect(all).toHaveLength(2);
    expect(new Set(all.map((i: { runId: string }) => i.runId)).size).toBe(2);
  });

  it("answers 404 for a host without incidents and 400 for a bad status filter", async () => {
    expect((await rest.get(`/api/incidents/${ctx.host("nobody")}`)).status).toBe(404);
    expect((await rest.get("/api/incidents?status=maybe")).body.errors[0].field).toBe("status");
  });
});

describe("one alert, one run of each mitigation", () => {
  beforeAll(async () => {
    await rest.created("/api/workflow", {
      identifier: "d_hook",
      name: "notify soar",
      url: hooks.url("/ok/dedupe"),
      effective_attacks: ["T1204"],
      cost: 1,
    });
    for (const flow of ["user_execution_a", "user_execution_b"])
      await rest.created("/api/attack-flow", {
        identifier: flow,
        name: flow,
        nodes: [{ id: "exec", techniques: ["T1204"] }],
        start: ["exec"],
      });
  });

  it("records the second node's run as a duplicate instead of calling the webhook twice", async () => {
    const host = ctx.host("dedupe");
    expect((await rest.post("/api/alert", alertWith(host, ["T1204"], `dup-${host}`))).status).toBe(
      202,
    );
    const rows = await eventually("both runs decided", async () => {
      const all = await decisions(host);
      const ended = all.filter(
        (d) => d.kind === "mitigation_succeeded" || d.kind === "mitigation_duplicate",
      );
      return ended.length === 2 && all;
    });
    const byKind = (kind: string) => rows.filter((d) => d.kind === kind);
    expect(byKind("node_matched")).toHaveLength(2);
    expect(byKind("mitigation_succeeded").map((d) => d.mitigation)).toEqual(["d_hook"]);
    const [duplicate] = byKind("mitigation_duplicate");
    expect(duplicate?.reason).toMatch(
      new RegExp(`notify soar already runs for this alert in mitigation/${host}/`),
    );
    const calls = hooks.received.filter(
      (r) => r.path === "/ok/dedupe" && r.idempotencyKey?.includes(host),
    );
    expect(calls).toHaveLength(1);
    const state = await eventually("the incident to see both outcomes", async () => {
      const s = (await rest.get(`/api/incidents/${host}`)).body;
      return s.mitigations.every((m: { outcome: string }) => m.outcome !== "running") && s;
    });
    expect(state.mitigations.map((m: { outcome: string }) => m.outcome).sort()).toEqual([
      "duplicate",
      "succeeded",
    ]);
  });
});

describe("fallback by candidate identity", () => {
  let release: () => void = () => {};
  let held: Awaited<ReturnType<typeof webhookReceiver>>;
  beforeAll(async () => {
    // A SOAR that answers the first call only when the test says so, and refuses it (400).
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    held = await webhookReceiver(() => 400, { before: () => gate });
    await rest.created("/api/workflow", {
      identifier: "f_first",
      name: "first try",
      url: held.url("/held"),
      effective_attacks: ["T1059"],
      cost: 10,
    });
    await rest.created("/api/workflow", {
      identifier: "f_second",
      name: "second try",
      url: hooks.url("/ok/second"),
      effective_attacks: ["T1059"],
      cost: 20,
    });
    await rest.created("/api/attack-flow", {
      identifier: "scripting",
      name: "scripting",
      nodes: [{ id: "script", techniques: ["T1059"] }],
      start: ["script"],
    });
  });
  afterAll(async () => held?.close());

  it("neither repeats nor skips a candidate when the catalog changes during the run", async () => {
    const host = ctx.host("identity");
    await rest.post("/api/alert", alertWith(host, ["T1059"], `script-${host}`));
    await eventually("the first candidate called", () => held.received.length === 1);
    // Two cheaper mitigations appear while the first is in flight: by position, the run would
    // now try f_first again (it moved to index 2); by identity it is done with it.
    await rest.created("/api/workflow", {
      identifier: "f_new_a",
      name: "new a",
      url: hooks.url("/ok/new-a"),
      effective_attacks: ["T1059"],
      cost: 1,
      conditions: ["never"],
    });
    await rest.created("/api/workflow", {
      identifier: "f_new_b",
      name: "new b",
      url: hooks.url("/fail400/new-b"),
      effective_attacks: ["T1059"],
      cost: 2,
    });
    release();
    const rows = (await settled(host)).filter((d) => d.kind.startsWith("mitigation"));
    expect(rows.map((d) => [d.kind, d.mitigation])).toEqual([
      ["mitigation_chosen", "f_first"],
      ["mitigation_failed", "f_first"],
      ["mitigation_skipped", "f_new_a"],
      ["mitigation_chosen", "f_new_b"],
      ["mitigation_failed", "f_new_b"],
      ["mitigation_chosen", "f_second"],
      ["mitigation_succeeded", "f_second"],
    ]);
    expect(held.received).toHaveLength(1);
  });
});
