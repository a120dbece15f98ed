import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import {
  approvalAnswerOf,
  effectiveMode,
  type GateFacts,
  type GatePolicy,
  gateOf,
} from "../../src/domain/approval.ts";

const policy: GatePolicy = {
  criticalLabels: [{ key: "criticality", value: "critical" }],
  isolationLimit: 3,
  isolationWindowMinutes: 10,
};
const facts = (over: Partial<GateFacts> = {}): GateFacts => ({
  mode: { mode: "act", scope: "global" },
  requiresApproval: false,
  isolates: false,
  labels: {},
  recentIsolations: 0,
  ...over,
});

describe("effectiveMode", () => {
  const settings = {
    global: "observe" as const,
    groups: { prod: "act" as const, lab: "approve" as const },
  };
  it("takes a group's own mode over the global one, the strictest of several", () => {
    expect(effectiveMode(settings, ["prod"])).toEqual({ mode: "act", scope: "group prod" });
    expect(effectiveMode(settings, ["prod", "lab"])).toEqual({
      mode: "approve",
      scope: "group lab",
    });
    expect(effectiveMode(settings, ["other"])).toEqual({ mode: "observe", scope: "global" });
    expect(effectiveMode(settings, [])).toEqual({ mode: "observe", scope: "global" });
  });
  it("does not let a group named like an Object property stand in for a mode", () => {
    expect(effectiveMode({ global: "approve", groups: {} }, ["constructor", "__proto__"])).toEqual({
      mode: "approve",
      scope: "global",
    });
  });
});

describe("gateOf", () => {
  it("acts when nothing asks for a person", () => {
    expect(gateOf(facts(), policy)).toEqual({ gate: "act" });
    // Labels and the isolation count concern isolations only.
    expect(
      gateOf(facts({ labels: { criticality: "critical" }, recentIsolations: 99 }), policy),
    ).toEqual({ gate: "act" });
  });
  it("observes in observe mode whatever else holds", () => {
    expect(
      gateOf(
        facts({ mode: { mode: "observe", scope: "group lab" }, requiresApproval: true }),
        policy,
      ),
    ).toEqual({ gate: "observe", reason: "observe mode (group lab): nothing is executed" });
  });
  it("names every reason a mitigation waits", () => {
    const gate = gateOf(
      facts({
        mode: { mode: "approve", scope: "global" },
        requiresApproval: true,
        isolates: true,
        labels: { criticality: "critical" },
        recentIsolations: 3,
      }),
      policy,
    );
    expect(gate).toEqual({
      gate: "approve",
      reasons: [
        "approve mode (global): every action waits for a person",
        "the mitigation requires approval (catalog)",
        "the host is labelled criticality=critical: isolating it needs a person",
        "3 isolations in the last 10 minutes (limit 3): further isolations wait for a person",
      ],
    });
  });
  it("lets isolations through up to the limit, and none with a limit of 0", () => {
    expect(gateOf(facts({ isolates: true, recentIsolations: 2 }), policy).gate).toBe("act");
    expect(gateOf(facts({ isolates: true, recentIsolations: 3 }), policy).gate).toBe("approve");
    expect(gateOf(facts({ isolates: true }), { ...policy, isolationLimit: 0 }).gate).toBe(
      "approve",
    );
  });
});

describe("approvalAnswerOf (a signal anyone with Temporal access can send)", () => {
  it("takes only approve or deny, and bounds the text it keeps", () => {
    for (const hostile of [null, "approve", 1, [], {}, { decision: "APPROVE" }, { decision: 1 }])
      expect(approvalAnswerOf(hostile)).toBeNull();
    expect(
      approvalAnswerOf({ decision: "deny", by: "b".repeat(500), comment: "c".repeat(5_000), x: 1 }),
    ).toEqual({ decision: "deny", by: "b".repeat(200), comment: "c".repeat(1_000) });
    expect(
      approvalAnswerOf({ decision: "approve", by: 7, comment: "  ", approval_id: "apr_1" }),
    ).toEqual({
      decision: "approve",
      approval_id: "apr_1",
    });
  });
});

describe("approval configuration", () => {
  it("has safe defaults and names a malformed setting", () => {
    const { approvals } = loadConfig({});
    expect(approvals).toEqual({
      mode: "act",
      timeoutMs: 3_600_000,
      onTimeout: "deny",
      policy: {
        criticalLabels: [{ key: "criticality", value: "critical" }],
        isolationLimit: 10,
        isolationWindowMinutes: 10,
      },
    });
    expect(
      loadConfig({ MM_APPROVAL_CRITICAL_LABELS: "tier=0, env=prod" }).approvals.policy
        .criticalLabels,
    ).toEqual([
      { key: "tier", value: "0" },
      { key: "env", value: "prod" },
    ]);
    expect(() => loadConfig({ MM_MODE: "yolo" })).toThrow(
      /MM_MODE: must be one of act, approve, observe/,
    );
    expect(() => loadConfig({ MM_APPROVAL_CRITICAL_LABELS: "critical" })).toThrow(
      /MM_APPROVAL_CRITICAL_LABELS.*must be key=value/,
    );
  });
});
