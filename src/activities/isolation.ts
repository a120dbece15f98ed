// The engine's isolate-host step: not a bare command but the agent's isolation workflow
// (`isolation/<agent>`), the same one operators use, so an automatic isolation is held, verified
// as a whole, released by an operator or on a timer, and audited like a manual one.
import { ApplicationFailure, Context } from "@temporalio/activity";
import { appendAudit } from "../store/audit.ts";
import type { Db } from "../store/db.ts";
import { isolationWorkflowId } from "../workflows/ids.ts";
import { isolateSignal, isolationStateQuery, isolationWorkflow } from "../workflows/isolation.ts";
import { AGENT_ID } from "../workflows/search-attributes.ts";

export interface IsolateHostInput {
  agentId: string;
  details: Record<string, unknown>;
  /** The command TTL (the configured one when absent). */
  ttlMs?: number;
  releaseAfterMs?: number;
  /** The engine's run that asks (`workflow:<run>`); the calling workflow when absent. */
  requestedBy?: string;
}

export interface IsolationActivities {
  /** Resolves with the agent's verification once the host is isolated; fails when it could not be. */
  isolateHost(input: IsolateHostInput): Promise<Record<string, unknown>>;
}

const POLL_MS = 1_000;

export function isolationActivities(deps: { db: Db; commandTtlMs: number }): IsolationActivities {
  return {
    async isolateHost(input) {
      const context = Context.current();
      const { client, info } = context;
      const requestedBy =
        input.requestedBy ?? `workflow:${info.workflowExecution?.workflowId ?? info.activityId}`;
      const workflowId = isolationWorkflowId(input.agentId);
      for (;;) {
        // Starts the isolation, or joins the one that runs (a second isolate request is a no-op).
        const handle = await client.workflow.signalWithStart(isolationWorkflow, {
          workflowId,
          taskQueue: info.taskQueue,
          args: [{ agentId: input.agentId }],
          signal: isolateSignal,
          signalArgs: [
            {
              details: input.details,
              requestedBy,
              ttlMs: input.ttlMs ?? deps.commandTtlMs,
              ...(input.releaseAfterMs !== undefined && { releaseAfterMs: input.releaseAfterMs }),
            },
          ],
          typedSearchAttributes: [{ key: AGENT_ID, value: input.agentId }],
        });
        if (info.attempt === 1)
          await appendAudit(deps.db, {
            actor: requestedBy,
            action: "isolation.requested",
            agentId: input.agentId,
            details: {
              details: input.details,
              release_after_seconds:
                input.releaseAfterMs === undefined ? null : input.releaseAfterMs / 1_000,
            },
          });
        const run = client.workflow.getHandle(workflowId, handle.signaledRunId);
        for (;;) {
          context.heartbeat();
          const state = await run.query(isolationStateQuery);
          if (state.status === "isolated") return state.verification ?? {};
          if (state.status === "failed")
            throw ApplicationFailure.nonRetryable(
              `isolation of ${input.agentId} failed: ${state.error}`,
              "IsolationFailed",
            );
          if (state.status === "releasing" || state.status === "released") break;
          await context.sleep(POLL_MS);
        }
        // An earlier isolation of this host is being released: once it is, isolate anew.
        while ((await run.describe()).status.name === "RUNNING") {
          context.heartbeat();
          await context.sleep(POLL_MS);
        }
      }
    },
  };
}
