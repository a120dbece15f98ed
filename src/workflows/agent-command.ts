import { proxyActivities } from "@temporalio/workflow";
import type { AgentCommandInput, AgentCommandResult } from "../activities/agent-commands.ts";

/** The agent-command activity as operator workflows call it: with who asked and a time to live. */
export interface OperatorCommandActivities {
  runAgentCommand(
    input: AgentCommandInput & { requestedBy: string; ttlMs: number },
  ): Promise<AgentCommandResult>;
}

export type AgentCommandRequest = Parameters<OperatorCommandActivities["runAgentCommand"]>[0];

/** Time an agent gets to finish a command it acknowledged, on top of the delivery deadline. */
export const COMPLETION_ALLOWANCE_MS = 10 * 60_000;

/** The activity waits for delivery (up to the command's time to live) and then for the agent's work. */
export function commandActivities(ttlMs: number) {
  return proxyActivities<OperatorCommandActivities>({
    startToCloseTimeout: ttlMs + COMPLETION_ALLOWANCE_MS,
    // Delivery is durable in the gateway; a Temporal retry would only issue the same id again.
    retry: { maximumAttempts: 1 },
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
