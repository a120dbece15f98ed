import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { incidentWorkflowId } from "../../src/workflows/ids.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { oneNodeFlow, wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// Approval gates and modes with the real activities: the catalog's requires_approval, the
// fleet-wide isolation limit (1 within 10 minutes here), observe mode, and the REST API that
// answers a held mitigation. Timeouts and hostile signals: test/timeskip/approval.test.ts.
let ctx: TestContext;
let service: Service;
let hooks: Awaited<ReturnType<typeof webhookReceiver>>;
const agents = recordingAgents();
const rest = restClient(() => service.apiUrl);
const tokens: Record<"viewer" | "responder", string> = { viewer: "", responder: "" };
const as = (role: "viewer" | "responder") => restClient(() => service.apiUrl, tokens[role]);

beforeAll(async () => {
  hooks = await webhookReceiver();
  ctx = await createTestContext("approvals", { loadDefaults: false, incidentIdleMs: 2_000 });
  service = await ctx.start({
    agents: agents.gateway,
    config: {
      approvals: {
        ...ctx.config.approvals,
        policy: { ...ctx.config.approvals.policy, isolationLimit: 1, isolationWindowMinutes: 10 },
      },
    },
  });
  for (const role of ["viewer", "responder"] as const) {
    const res = await rest.post("/api/tokens", { name: `approvals-${role}`, role });
    expect(res.status).toBe(201);
    tokens[role] = res.body.token;
  }
  await rest.created("/api/workflow", {
    identifier: "gated_soar",
    name: "gated SOAR playbook",
    url: hooks.url("/gated"),
    effective_attacks: ["T1566"],
    cost: 1,
    requires_approval: true,
  });
  await rest.created("/api/workflow", {
    identifier: "isolate",
    name: "isolate the host",
    steps: [{ agent: "isolate-host" }],
    effective_attacks: ["T1048"],
    cost: 1,
  });
  await rest.created("/api/attack-flow", oneNodeFlow("phish", "T1566"));
  await rest.created("/api/attack-flow", oneNodeFlow("exfil", "T1048"));
});
afterAll(async () => {
  await ctx?.cleanup();
  await hooks?.close();
});

function alertFor(host: string, technique: string) {
  const alert = wazuhAlert("100002-ncat-connection", host, `${technique}-${host}`);
  (alert.rule as { mitre: { id: string[] } }).mitre.id = [technique];
  return alert;
}

interface Decision {
  kind: string;
  mitigation: string | null;
  reason: string;
  details: Record<string, unknown>;
}
const decisions = async (host: string): Promise<Decision[]> =>
  (await rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`))
    .body.items;
const decided = (host: string, kind: string) =>
  eventually(`${kind} for ${host}`, async () =>
    (await decisions(host)).find((d) => d.kind === kind),
  );
const pendingFor = (host: string) =>
  eventually(`a pending approval for ${host}`, async () =>
    (await rest.get("/api/approvals?status=pending")).body.items.find(
      (a: { host: string }) => a.host === host,
    ),
  );
const called = (host: string) =>
  hooks.received.filter((r) => r.path === "/gated" && r.idempotencyKey?.includes(host));

describe("a mitigation the catalog marks requires_approval", () => {
  it("waits for a person, and runs once a responder approves it with a comment", async () => {
    const host = ctx.host("approved");
    const rehearsal = await as("responder").post("/api/alert/dry-run", alertFor(host, "T1566"));
    expect(rehearsal.status).toBe(200);
    expect(rehearsal.body.reached[0].gate).toMatchObject({
      gate: "approve",
      reasons: ["the mitigation requires approval (catalog)"],
    });

    expect((await rest.post("/api/alert", alertFor(host, "T1566"))).status).toBe(202);
    const approval = await pendingFor(host);
    expect(approval).toMatchObject({
      status: "pending",
      mitigation: "gated_soar",
      mitigation_name: "gated SOAR playbook",
      reasons: ["the mitigation requires approval (catalog)"],
      steps: [{ webhook: hooks.url("/gated") }],
      on_timeout: "deny",
      decided_by: null,
      // The run is part of the host's incident, which takes the answer.
      workflow_id: incidentWorkflowId(host),
    });
    expect(new Date(approval.deadline).getTime()).toBeGreaterThan(Date.now() + 3_000_000);
    const requested = await decided(host, "approval_requested");
    expect(requested.details).toMatchObject({ approval_id: approval.id });
    expect(called(host)).toEqual([]);

    const path = `/api/approvals/${approval.id}`;
    expect((await as("viewer").post(path, { decision: "approve", comment: "ok" })).status).toBe(
      403,
    );
    const noComment = await as("responder").post(path, { decision: "approve" });
    expect(noComment.status).toBe(400);
    expect(noComment.body.errors.map((e: { field: string }) => e.field)).toEqual(["comment"]);
    const badDecision = await as("responder").post(path, { decision: "yes", comment: "ok" });
    expect(badDecision.body.errors.map((e: { field: string }) => e.field)).toEqual(["decision"]);
    expect(
      (await as("responder").post("/api/approvals/apr_unknown", { decision: "deny", comment: "x" }))
        .status,
    ).toBe(404);

    const answer = await as("responder").post(path, {
      decision: "approve",
      comment: "confirmed phishing, run it",
    });
    expect(answer.status).toBe(202);
    await decided(host, "mitigation_succeeded");
    expect(called(host)).toHaveLength(1);
    const granted = await decided(host, "approval_granted");
    expect(granted.reason).toBe(
      "gated SOAR playbook approved by operator:approvals-responder: confirmed phishing, run it",
    );
    const closed = (await rest.get(path)).body;
    expect(closed).toMatchObject({
      status: "approved",
      decided_by: "operator:approvals-responder",
      comment: "confirmed phishing, run it",
    });
    // Answered once: a second answer is refused, and nothing runs again.
    expect((await as("responder").post(path, { decision: "deny", comment: "late" })).status).toBe(
      409,
    );
    const audit = (await rest.get("/api/audit?action=approval.&limit=100")).body.items.filter(
      (e: { details: { approval_id?: string } }) => e.details.approval_id === approval.id,
    );
    expect(audit.map((e: { action: string; actor: string }) => [e.action, e.actor])).toEqual([
      // Requested by the mitigation run (part of the incident, which takes the answer).
      ["approval.requested", expect.stringMatching(/^workflow:mitigation\//)],
      ["approval.approved", "operator:approvals-responder"],
    ]);
  });

  it("runs nothing when a responder denies it, and says who and why", async () => {
    const host = ctx.host("denied");
    await rest.post("/api/alert", alertFor(host, "T1566"));
    const approval = await pendingFor(host);
    const answer = await as("responder").post(`/api/approvals/${approval.id}`, {
      decision: "deny",
      comment: "this is the pentest team",
    });
    expect(answer.status).toBe(202);
    const denied = await decided(host, "approval_denied");
    expect(denied.reason).toContain(
      "denied by operator:approvals-responder: this is the pentest team",
    );
    await eventually(
      "the approval closed",
      async () => (await rest.get(`/api/approvals/${approval.id}`)).body.status === "denied",
    );
    expect((await decisions(host)).map((d) => d.kind)).not.toContain("mitigation_succeeded");
    expect(called(host)).toEqual([]);
  });
});

describe("operating modes", () => {
  it("in observe mode records what would have run and runs nothing", async () => {
    expect((await rest.get("/api/modes")).body.global).toEqual({
      mode: "act",
      source: "config",
      updated_by: null,
      updated_at: null,
    });
    expect(
      (await as("responder").call("PUT", "/api/modes/global", { mode: "observe" })).status,
    ).toBe(403);
    const bad = await rest.put("/api/modes/global", { mode: "off" });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].field).toBe("mode");
    const set = await rest.put("/api/modes/global", { mode: "observe" });
    expect(set.body.global).toMatchObject({ mode: "observe", source: "operator" });
    try {
      const host = ctx.host("observed");
      await rest.post("/api/alert", alertFor(host, "T1048"));
      const observed = await decided(host, "mitigation_observed");
      expect(observed.reason).toBe(
        "isolate the host not run: observe mode (global): nothing is executed",
      );
      expect(observed.details.steps).toEqual([
        expect.objectContaining({ command: "isolate-host" }),
      ]);
      expect(agents.commands.filter((c) => c.agentId === `agent-${host}`)).toEqual([]);
      const audit = (await rest.get("/api/audit?action=mode.set")).body.items;
      expect(audit.at(-1)).toMatchObject({
        actor: "operator:MM_ADMIN_TOKEN",
        details: { scope: "global", mode: "observe" },
      });
    } finally {
      await rest.put("/api/modes/global", { mode: "act" });
    }
  });

  it("sets and clears a group's mode, refusing a malformed group name", async () => {
    expect((await rest.put("/api/modes/groups/lab", { mode: "approve" })).body.groups).toEqual([
      expect.objectContaining({
        group: "lab",
        mode: "approve",
        updated_by: "operator:MM_ADMIN_TOKEN",
      }),
    ]);
    expect((await rest.put("/api/modes/groups/..%2F..", { mode: "act" })).status).toBe(400);
    expect((await rest.delete("/api/modes/groups/lab")).status).toBe(204);
    expect((await rest.delete("/api/modes/groups/lab")).status).toBe(404);
    expect((await rest.get("/api/modes")).body.groups).toEqual([]);
  });
});

describe("the fleet-wide isolation limit", () => {
  it("lets one isolation of a storm act, holds the others for a person, and runs one on approval", async () => {
    // Five hosts' alerts in one request: their runs reach the gate together, and the count and
    // the admission are one step under a lock, so no two of them both see room for one more.
    const hosts = Array.from({ length: 5 }, () => ctx.host("storm"));
    const posted = await rest.post(
      "/api/alert",
      hosts.map((h) => alertFor(h, "T1048")),
    );
    expect(posted.status).toBe(202);
    const isolated = () =>
      hosts.filter((h) =>
        agents.commands.some((c) => c.agentId === `agent-${h}` && c.command === "isolate-host"),
      );
    const held = await eventually("one isolation and four held", async () => {
      const pending = (await rest.get("/api/approvals?status=pending")).body.items.filter(
        (a: { host: string }) => hosts.includes(a.host),
      );
      return pending.length === 4 && pending;
    });
    await eventually("the admitted isolation done", async () => isolated().length === 1);
    for (const approval of held)
      expect(approval.reasons).toEqual([
        "1 isolations in the last 10 minutes (limit 1): further isolations wait for a person",
      ]);

    const [chosen] = held;
    await as("responder").post(`/api/approvals/${chosen.id}`, {
      decision: "approve",
      comment: "contain it",
    });
    await decided(chosen.host, "mitigation_succeeded");
    expect(isolated()).toHaveLength(2);
    expect(isolated()).toContain(chosen.host);
  });
});
