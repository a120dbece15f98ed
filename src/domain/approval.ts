// Approval gates and operating modes: whether a chosen mitigation runs now, waits for a person or
// is only recorded. Pure: the activities gather the facts (src/activities/approvals.ts) and the
// mitigation workflow waits for the person's signal.

export const MODES = ["act", "approve", "observe"] as const;
/** act: run what the engine chose; approve: every effect waits for a person; observe: record, never run. */
export type Mode = (typeof MODES)[number];

const STRICTNESS: Record<Mode, number> = { act: 0, approve: 1, observe: 2 };

export interface ModeSettings {
  global: Mode;
  /** Modes operators set for agent groups; a group without one follows the global mode. */
  groups: Record<string, Mode>;
}

/**
 * The mode for an agent in `groups`: a group's own mode wins over the global one (the more specific
 * setting), and of several groups with modes the strictest wins. No agent (a webhook-only
 * mitigation for an unenrolled host) or no group with a mode: the global mode.
 */
export function effectiveMode(
  settings: ModeSettings,
  groups: readonly string[],
): { mode: Mode; scope: string } {
  let found: { mode: Mode; scope: string } | null = null;
  for (const group of [...groups].sort()) {
    // Own keys only: a group may be called "constructor".
    const mode = Object.hasOwn(settings.groups, group) ? settings.groups[group] : undefined;
    if (mode && (!found || STRICTNESS[mode] > STRICTNESS[found.mode]))
      found = { mode, scope: `group ${group}` };
  }
  return found ?? { mode: settings.global, scope: "global" };
}

export interface GatePolicy {
  /** `key=value` labels marking a host critical: isolating it waits for a person. */
  criticalLabels: readonly { key: string; value: string }[];
  /** Automatic isolations fleet-wide within the window beyond which further ones wait (0: all wait). */
  isolationLimit: number;
  isolationWindowMinutes: number;
}

export interface GateFacts {
  mode: { mode: Mode; scope: string };
  /** The catalog's `requires_approval` on the mitigation. */
  requiresApproval: boolean;
  /** One of the mitigation's steps isolates its host. */
  isolates: boolean;
  /** The host agent's labels (none without an agent). */
  labels: Readonly<Record<string, string>>;
  /** Isolations admitted fleet-wide within the window, this one not counted. */
  recentIsolations: number;
}

export type Gate =
  | { gate: "act" }
  | { gate: "observe"; reason: string }
  | { gate: "approve"; reasons: string[] };

/** Observe wins over everything (nothing runs); otherwise every reason to wait is named. */
export function gateOf(facts: GateFacts, policy: GatePolicy): Gate {
  if (facts.mode.mode === "observe")
    return { gate: "observe", reason: `observe mode (${facts.mode.scope}): nothing is executed` };
  const reasons: string[] = [];
  if (facts.mode.mode === "approve")
    reasons.push(`approve mode (${facts.mode.scope}): every action waits for a person`);
  if (facts.requiresApproval) reasons.push("the mitigation requires approval (catalog)");
  if (facts.isolates) {
    const critical = policy.criticalLabels.find((l) => facts.labels[l.key] === l.value);
    if (critical)
      reasons.push(
        `the host is labelled ${critical.key}=${critical.value}: isolating it needs a person`,
      );
    if (facts.recentIsolations >= policy.isolationLimit)
      reasons.push(
        `${facts.recentIsolations} isolations in the last ${policy.isolationWindowMinutes} minutes ` +
          `(limit ${policy.isolationLimit}): further isolations wait for a person`,
      );
  }
  return reasons.length ? { gate: "approve", reasons } : { gate: "act" };
}

/** A person's answer as the mitigation workflow's `approval` signal carries it (REST, console or Temporal UI). */
export interface ApprovalAnswer {
  decision: "approve" | "deny";
  /** Who decided: `operator:<name>` from the API; whatever a Temporal UI user wrote, else `temporal signal`. */
  by?: string;
  comment?: string;
  /** The approval answered; absent (a hand-written signal) answers the one pending. */
  approval_id?: string;
}

/**
 * A signal's payload as the workflow may trust it: anyone with access to Temporal can send one,
 * so anything malformed is no answer (ignored), and text is bounded before it is stored.
 */
export function approvalAnswerOf(payload: unknown): ApprovalAnswer | null {
  if (typeof payload !== "object" || payload === null) return null;
  const p = payload as Record<string, unknown>;
  if (p.decision !== "approve" && p.decision !== "deny") return null;
  const text = (v: unknown, max: number) =>
    typeof v === "string" && v.trim() !== "" ? v.slice(0, max) : undefined;
  const by = text(p.by, 200);
  const comment = text(p.comment, 1_000);
  const approvalId = text(p.approval_id, 200);
  return {
    decision: p.decision,
    ...(by !== undefined && { by }),
    ...(comment !== undefined && { comment }),
    ...(approvalId !== undefined && { approval_id: approvalId }),
  };
}
