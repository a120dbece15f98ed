import type { AgentCommand } from "../domain/model.ts";

export type CommandPriority = "critical" | "high" | "normal" | "low";

export interface AgentCommandInput {
  agentId: string;
  command: AgentCommand;
  details: Record<string, unknown>;
  priority: CommandPriority;
  /** Idempotent: a retried command reaches the agent with the same id and runs once. */
  commandId: string;
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

/**
 * The engine's boundary with the agent gateway: who runs on a host, and delivery of commands.
 * The gateway implements it; tests of the engine use a recording double.
 */
export interface AgentGateway extends AgentCommandActivities {
  resolveAgent(host: HostIdentity): Promise<AgentTarget | null>;
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
