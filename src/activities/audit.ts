// Audit entries that workflows write: what happened inside Temporal, where no API handler saw it
// (a release signalled from the Temporal UI or CLI, a time limit that ran out).
import { Context } from "@temporalio/activity";
import { appendAudit } from "../store/audit.ts";
import type { Db } from "../store/db.ts";

export interface IsolationRelease {
  agentId: string;
  /** As the release signal named them; `temporal signal` when it did not, `time limit`. */
  releasedBy: string;
  reason: string | null;
}

export interface AuditActivities {
  recordIsolationRelease(release: IsolationRelease): Promise<void>;
}

export function auditActivities(deps: { db: Db }): AuditActivities {
  return {
    async recordIsolationRelease(release) {
      const { workflowExecution } = Context.current().info;
      await appendAudit(deps.db, {
        actor: release.releasedBy,
        action: "isolation.released",
        agentId: release.agentId,
        details: {
          reason: release.reason,
          workflow_id: workflowExecution?.workflowId ?? null,
          run_id: workflowExecution?.runId ?? null,
        },
      });
    },
  };
}
