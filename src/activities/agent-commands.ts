// The agent-command activity: it stores the command, tells whichever gateway holds the agent's
// session, and returns without a result. It completes asynchronously (reportOutcome) when the
// agent's completion arrives or the command expires, so no worker slot is held while the agent
// works. Any process with PostgreSQL and NATS can run it; host resolution lives beside it.
import type { NatsConnection } from "@nats-io/transport-node";
import { ApplicationFailure, CompleteAsyncError, Context } from "@temporalio/activity";
import type { Client } from "@temporalio/client";
import { ActivityNotFoundError } from "@temporalio/client";
import type { Config } from "../config.ts";
import type { AgentCommand } from "../domain/model.ts";
import { type CommandNotice, commandSubject, encode } from "../gateway/subjects.ts";
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { resolveHost } from "../store/agents.ts";
import {
  FINAL_STATUSES,
  issueCommand,
  markReported,
  type OutcomeToReport,
  UnknownAgentError,
} from "../store/commands.ts";
import type { Db } from "../store/db.ts";
import type { CommandOutcome, CommandStatus } from "../store/schema.ts";
import { traceparentOf } from "../tracing.ts";

export type CommandPriority = "critical" | "high" | "normal" | "low";

export interface AgentCommandInput {
  agentId: string;
  command: AgentCommand;
  details: Record<string, unknown>;
  priority: CommandPriority;
  /** Idempotent: a retried command reaches the agent with the same id and runs once. */
  commandId: string;
  /** Who asked (`operator:<name>`); the engine's commands are attributed to their workflow. */
  requestedBy?: string;
  /** Overrides the configured time to live. */
  ttlMs?: number;
}

export interface AgentCommandResult {
  success: boolean;
  message: string;
  details: Record<string, unknown>;
}

export interface AgentCommandActivities {
  /** Resolves with the agent's completion; rejects (non-retryable) when it failed or expired. */
  runAgentCommand(input: AgentCommandInput): Promise<AgentCommandResult>;
}

export interface HostIdentity {
  name: string;
  agentId?: string | null;
  ip?: string | null;
}

export interface AgentTarget {
  agentId: string;
  capabilities: string[];
}

/** Several agents claim the host: the engine acts on none of them. */
export interface AmbiguousHost {
  ambiguous: string[];
}

export type HostResolution = AgentTarget | AmbiguousHost | null;

/**
 * The engine's boundary with the agents: who runs on a host, and delivery of commands.
 * agentCommandActivities implements it; tests of the engine use a recording double.
 */
export interface AgentGateway extends AgentCommandActivities {
  resolveAgent(host: HostIdentity): Promise<HostResolution>;
}

/** Used when no gateway runs in this deployment: agent steps are skipped with that reason. */
export const noAgentGateway: AgentGateway = {
  async resolveAgent() {
    return null;
  },
  async runAgentCommand(input) {
    throw new Error(
      `no agent gateway is configured to deliver ${input.command} to ${input.agentId}`,
    );
  },
};

export function agentCommandActivities(deps: {
  db: Db;
  nc: NatsConnection;
  commands: Config["commands"];
}): AgentGateway {
  return {
    resolveAgent: (host) => resolveHost(deps.db, host),

    async runAgentCommand(input: AgentCommandInput): Promise<AgentCommandResult> {
      const { info } = Context.current();
      // Standalone activities have no workflow; the engine's and operators' commands always do.
      const workflowId = info.workflowExecution?.workflowId ?? null;
      const details =
        input.command === "isolate-host" ? withPortal(input.details, deps.commands) : input.details;
      let row: Awaited<ReturnType<typeof issueCommand>>;
      try {
        row = await issueCommand(deps.db, {
          id: input.commandId,
          agentId: input.agentId,
          command: input.command,
          priority: input.priority,
          details,
          // The engine's isolations reach here through the isolation workflow, which names the
          // mitigation run that asked (`workflow:<id>`): still the engine's, not an operator's.
          origin:
            input.requestedBy && !input.requestedBy.startsWith("workflow:") ? "operator" : "engine",
          requestedBy: input.requestedBy ?? `workflow:${workflowId ?? info.activityId}`,
          workflowId,
          ttlMs: input.ttlMs ?? deps.commands.ttlMs,
          taskToken: info.taskToken,
          traceparent: traceparentOf(),
        });
      } catch (err) {
        if (err instanceof UnknownAgentError)
          throw ApplicationFailure.nonRetryable(err.message, "UnknownAgent");
        throw err;
      }
      if (row.agent_id !== input.agentId) {
        throw ApplicationFailure.nonRetryable(
          `command id ${input.commandId} was issued to agent ${row.agent_id}`,
          "CommandIdConflict",
        );
      }
      // Issued before and already decided: the same answer again, and nothing reaches the agent.
      if (isFinal(row.status) && row.result) {
        await markReported(deps.db, row.id);
        return settle(row.status, row.result);
      }
      // A retry (commandActivities re-issues every minute) is the same command, counted once.
      if (row.inserted) metrics.command("issued");
      const notice: CommandNotice = {
        ids: [input.commandId],
        ...(input.priority === "critical" && { critical: true }),
      };
      deps.nc.publish(commandSubject(input.agentId), encode(notice));
      throw new CompleteAsyncError();
    },
  };
}

/** Isolation must leave the portal reachable: configured portal addresses fill what the details lack. */
function withPortal(
  details: Record<string, unknown>,
  portal: Config["commands"],
): Record<string, unknown> {
  return {
    ...details,
    ...(details.portal_ips === undefined &&
      portal.portalIps.length > 0 && { portal_ips: portal.portalIps }),
    ...(details.portal_ports === undefined &&
      portal.portalPorts.length > 0 && { portal_ports: portal.portalPorts }),
  };
}

const isFinal = (status: CommandStatus) => (FINAL_STATUSES as readonly string[]).includes(status);

/** The activity's result, or its non-retryable failure carrying the agent's message. */
function settle(status: CommandStatus, outcome: CommandOutcome): AgentCommandResult {
  if (outcome.success) return { success: true, message: outcome.message, details: outcome.details };
  throw failureOf(status, outcome);
}

function failureOf(status: CommandStatus, outcome: CommandOutcome): ApplicationFailure {
  // Not retried by Temporal: the mitigation falls back to its next candidate instead, and a
  // command is never delivered twice anyway.
  return ApplicationFailure.nonRetryable(
    outcome.message,
    status === "expired" ? "AgentCommandExpired" : "AgentCommandFailed",
    outcome.details,
  );
}

/**
 * Completes every activity waiting for a command with its outcome, then marks it reported. An
 * activity that is gone (completed already, timed out, workflow terminated) has nobody left to
 * tell. Any other failure leaves the outcome unreported, for the supervisor to try again.
 */
export async function reportOutcome(
  deps: { db: Db; temporal: Client; log: Logger },
  o: OutcomeToReport,
): Promise<void> {
  const outcome = o.result;
  if (!outcome) return;
  const results = await Promise.allSettled(
    o.task_tokens.map((token) =>
      outcome.success
        ? deps.temporal.activity.complete(token, {
            success: true,
            message: outcome.message,
            details: outcome.details,
          })
        : deps.temporal.activity.fail(token, failureOf(o.status, outcome)),
    ),
  );
  const failed = results.flatMap((r) =>
    r.status === "rejected" && !(r.reason instanceof ActivityNotFoundError)
      ? [r.reason as Error]
      : [],
  );
  if (failed.length) {
    deps.log.warn("command outcome not reported yet", { command: o.id, error: failed[0]?.message });
    return;
  }
  await markReported(deps.db, o.id);
}
