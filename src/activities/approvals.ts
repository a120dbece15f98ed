// Approval gates (src/domain/approval.ts) as the mitigation workflow meets them: before a chosen
// mitigation runs, gateMitigation says whether it runs now, waits for a person or is only recorded;
// once a person answers (or no one does in time), answerApproval closes the approval. Both record
// their decision with its reason; the approval's request and answer are audited.
import { createHash } from "node:crypto";
import { effectiveMode, type Gate, gateOf, type Mode } from "../domain/approval.ts";
import { agentGroupsAndLabels } from "../store/agents.ts";
import { readAlert } from "../store/alerts.ts";
import {
  admitIsolation,
  closeApproval,
  countRecentIsolations,
  getApproval,
  openApproval,
  readModes,
  recordIsolationAdmission,
} from "../store/approvals.ts";
import { catalogSnapshots } from "../store/catalog.ts";
import type { HostIdentity } from "./agent-commands.ts";
import { type EngineDeps, type PlannedStep, recordMeasured, stepsRecord } from "./engine.ts";

export interface GateInput {
  incidentId: string;
  alertId: string;
  workflowId: string;
  flowId: string;
  nodeId: string;
  host: string;
  mitigation: { key: string; name: string };
  steps: PlannedStep[];
  /** The Temporal workflow that takes the answer, when not the run's own (an incident's run). */
  approvalWorkflowId?: string;
}

export type GateResult =
  | { gate: "act" }
  | { gate: "observe" }
  | {
      gate: "approve";
      approvalId: string;
      timeoutMs: number;
      onTimeout: "approve" | "deny";
      /** The agent the held mitigation isolates, if it does (answerApproval counts it). */
      isolatingAgentId: string | null;
    };

export interface ApprovalAnswerInput
  extends Omit<GateInput, "steps" | "host" | "approvalWorkflowId"> {
  approvalId: string;
  outcome: "approved" | "denied" | "expired";
  /** Whether the mitigation runs (an expired approval runs when MM_APPROVAL_ON_TIMEOUT=approve). */
  runs: boolean;
  by: string;
  comment: string | null;
  /** The agent an approved isolation isolates: it counts toward the fleet-wide limit. */
  isolatingAgentId: string | null;
}

/** One approval per mitigation run and candidate, URL-safe (workflow ids contain slashes). */
export function approvalIdOf(workflowId: string, mitigation: string): string {
  return `apr_${createHash("sha256").update(`${workflowId}\0${mitigation}`).digest("hex").slice(0, 24)}`;
}

const isolatingAgent = (steps: PlannedStep[]) =>
  steps.flatMap((s) =>
    s.kind === "agent" && s.command === "isolate-host" ? [s.agentId] : [],
  )[0] ?? null;

/**
 * What the gate reads: the mode for the host's agent, the catalog's flag, the agent's labels. A
 * webhook-only mitigation has no agent step: the host's agent (if any) still decides which group's
 * mode applies, resolved from `host` as the engine resolves it.
 */
async function gateFacts(
  deps: EngineDeps,
  input: { mitigation: string; steps: PlannedStep[] },
  host: () => Promise<HostIdentity | null>,
) {
  let agentId = input.steps.flatMap((s) => (s.kind === "webhook" ? [] : [s.agentId]))[0] ?? null;
  if (!agentId) {
    const identity = await host();
    const resolved = identity && (await deps.agents.resolveAgent(identity));
    agentId = resolved && "agentId" in resolved ? resolved.agentId : null;
  }
  const agent = agentId ? await agentGroupsAndLabels(deps.db, agentId) : { groups: [], labels: {} };
  const modes = await readModes(deps.db, deps.approvals.mode);
  const mitigation = (await catalogSnapshots(deps.db).current()).get(
    "mitigation",
    input.mitigation,
  );
  return {
    agentId,
    mode: effectiveMode(modes, agent.groups),
    requiresApproval: mitigation?.requires_approval === true,
    isolates: isolatingAgent(input.steps) !== null,
    labels: agent.labels,
  };
}

const decisionBase = (i: ApprovalAnswerInput | GateInput) => ({
  incidentId: i.incidentId,
  alertId: i.alertId,
  workflowId: i.workflowId,
  flowId: i.flowId,
  nodeId: i.nodeId,
  mitigation: i.mitigation.key,
});

export function approvalActivities(deps: EngineDeps) {
  const { db } = deps;
  const { policy } = deps.approvals;
  return {
    async gateMitigation(input: GateInput): Promise<GateResult> {
      const approvalId = approvalIdOf(input.workflowId, input.mitigation.key);
      // A retry after the approval was opened: the same approval, its deadline unchanged.
      const opened = await getApproval(db, approvalId);
      if (opened?.status === "pending") return heldFor(opened, isolatingAgent(input.steps));
      // A run resumed after its answer was recorded (its incident continued as new): the
      // recorded answer stands, and is not asked for again.
      if (opened) {
        const ran =
          opened.status === "approved" ||
          (opened.status === "expired" && opened.on_timeout === "approve");
        return { gate: ran ? "act" : "observe" };
      }
      const facts = await gateFacts(
        deps,
        { mitigation: input.mitigation.key, steps: input.steps },
        async () => {
          const alert = await readAlert(db, input.alertId);
          return alert ? { name: alert.host, agentId: alert.agent_id, ip: alert.host_ip } : null;
        },
      );
      let gate: Gate;
      const isolating = isolatingAgent(input.steps);
      if (isolating && facts.mode.mode !== "observe") {
        // Counted and admitted under one lock, so a burst cannot overshoot the limit.
        let counted: Gate = { gate: "act" };
        await admitIsolation(
          db,
          { attempt: approvalId, agentId: isolating, windowMinutes: policy.isolationWindowMinutes },
          (recent) => {
            counted = gateOf({ ...facts, recentIsolations: recent }, policy);
            return counted.gate === "act";
          },
        );
        gate = counted;
      } else {
        gate = gateOf({ ...facts, recentIsolations: 0 }, policy);
      }
      if (gate.gate === "act") return { gate: "act" };
      if (gate.gate === "observe") {
        await recordMeasured(db, {
          ...decisionBase(input),
          kind: "mitigation_observed",
          reason: `${input.mitigation.name} not run: ${gate.reason}`,
          details: { mode: facts.mode, steps: stepsRecord(input.steps) },
        });
        return { gate: "observe" };
      }
      const row = await openApproval(
        db,
        {
          id: approvalId,
          incidentId: input.incidentId,
          workflowId: input.approvalWorkflowId ?? input.workflowId,
          alertId: input.alertId,
          host: input.host,
          agentId: facts.agentId,
          mitigation: input.mitigation.key,
          mitigationName: input.mitigation.name,
          steps: stepsRecord(input.steps),
          reasons: gate.reasons,
          onTimeout: deps.approvals.onTimeout,
          timeoutMs: deps.approvals.timeoutMs,
        },
        `workflow:${input.workflowId}`,
      );
      await recordMeasured(db, {
        ...decisionBase(input),
        kind: "approval_requested",
        reason: `${input.mitigation.name} waits for a person: ${gate.reasons.join("; ")}`,
        details: {
          approval_id: approvalId,
          reasons: gate.reasons,
          deadline: row.deadline,
          on_timeout: row.on_timeout,
        },
      });
      return heldFor(row, isolating);
    },

    async answerApproval(input: ApprovalAnswerInput): Promise<void> {
      await closeApproval(db, {
        id: input.approvalId,
        status: input.outcome,
        by: input.by,
        comment: input.comment,
      });
      if (input.runs && input.isolatingAgentId)
        await recordIsolationAdmission(db, input.approvalId, input.isolatingAgentId);
      const said = input.comment ? `: ${input.comment}` : "";
      const { name } = input.mitigation;
      await recordMeasured(db, {
        ...decisionBase(input),
        kind: `approval_${input.outcome === "approved" ? "granted" : input.outcome}`,
        reason:
          input.outcome === "expired"
            ? `${name}: no one answered in time; ${input.runs ? "approved" : "denied"} by default (MM_APPROVAL_ON_TIMEOUT)`
            : `${name} ${input.outcome} by ${input.by}${said}`,
        details: { approval_id: input.approvalId, by: input.by, comment: input.comment },
      });
    },
  };
}

export type ApprovalActivities = ReturnType<typeof approvalActivities>;

function heldFor(
  row: { id: string; deadline: Date; on_timeout: "approve" | "deny" },
  isolatingAgentId: string | null,
): GateResult {
  return {
    isolatingAgentId,
    gate: "approve",
    approvalId: row.id,
    timeoutMs: Math.max(0, row.deadline.getTime() - Date.now()),
    onTimeout: row.on_timeout,
  };
}

/**
 * What the gate would say now, for a rehearsal (POST /api/alert/dry-run): the same facts, the
 * isolations counted but nothing admitted, opened or recorded.
 */
export function gatePreview(deps: EngineDeps) {
  return async (input: {
    mitigation: string;
    steps: PlannedStep[];
    host: HostIdentity;
  }): Promise<Gate & { mode: { mode: Mode; scope: string } }> => {
    const facts = await gateFacts(deps, input, async () => input.host);
    const recentIsolations = facts.isolates
      ? await countRecentIsolations(deps.db, deps.approvals.policy.isolationWindowMinutes)
      : 0;
    return { ...gateOf({ ...facts, recentIsolations }, deps.approvals.policy), mode: facts.mode };
  };
}
