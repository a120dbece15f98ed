import { proxyActivities } from "@temporalio/workflow";
import type { AgentCommandInput, AgentCommandResult } from "../activities/agent-commands.ts";

/** The agent-command activity as workflows call it: with a time to live (and who asked, for operators). */
export interface TimedCommandActivities {
  runAgentCommand(input: AgentCommandInput): Promise<AgentCommandResult>;
}

export type AgentCommandRequest = AgentCommandInput & { requestedBy: string; ttlMs: number };

/** How long an issued command's activity waits before it is tried again (see commandActivities). */
export const COMMAND_REISSUE_MS = 60_000;

/** Time an agent gets to finish a command it acknowledged, on top of the delivery deadline. */
export const COMPLETION_ALLOWANCE_MS = 10 * 60_000;

/**
 * The one place an agent command's activity timeout is derived from its time to live: the activity
 * waits for delivery (up to the TTL, after which the supervisor expires the command) and then for
 * the agent's work. Retried without a cap while the service cannot issue it (PostgreSQL or NATS
 * down): the command id makes a retry the same command, never a second one. The agent's failure
 * and expiry are non-retryable, so they end the activity at once. `activityId` names the
 * activity in the workflow's history (a mitigation step's command id); a sequence number otherwise.
 */
export function commandActivities(ttlMs: number, options: { activityId?: string } = {}) {
  return proxyActivities<TimedCommandActivities>({
    ...options,
    startToCloseTimeout: ttlMs + COMPLETION_ALLOWANCE_MS,
    // The activity issues the command and completes asynchronously (the gateway reports the
    // outcome), so nothing heartbeats it: every minute it is tried again, which re-issues the same
    // command (a no-op but for a fresh notice to the gateway). A worker killed before it issued the
    // command thus costs a minute, not the whole timeout above.
    heartbeatTimeout: COMMAND_REISSUE_MS,
    retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute" },
  });
}

/**
 * An operator's command to one agent (kill a process, block an IP, …), visible in the Temporal UI
 * as `command/<agent>/<id>`. Completes with the agent's completion; fails with its message, or as
 * expired when the agent did not take it in time.
 */
export async function agentCommandWorkflow(
  request: AgentCommandRequest,
): Promise<AgentCommandResult> {
  return commandActivities(request.ttlMs).runAgentCommand(request);
}
