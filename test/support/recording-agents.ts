import { ApplicationFailure } from "@temporalio/activity";
import type {
  AgentCommandInput,
  AgentCommandResult,
  AgentGateway,
  HostIdentity,
} from "../../src/activities/agent-commands.ts";
import { AGENT_COMMANDS } from "../../src/domain/model.ts";

/**
 * A double at the engine's agent boundary (the gateway's job in production): every host has an
 * agent with the given capabilities (all by default), and every command is recorded and answered as told.
 */
export function recordingAgents(
  opts: {
    capabilities?: string[];
    answer?: (cmd: AgentCommandInput) => AgentCommandResult;
    /** Resolves when the agent finishes the command (an agent that takes its time). */
    working?: (cmd: AgentCommandInput) => Promise<void>;
  } = {},
) {
  const capabilities = opts.capabilities ?? [...AGENT_COMMANDS];
  // isolate-host answers as an agent that verified its isolation (what the isolation workflow checks).
  const answer =
    opts.answer ??
    ((cmd: AgentCommandInput) => ({
      success: true,
      message: "done",
      details:
        cmd.command === "isolate-host" ? { isolation_level: "full", firewall_rules_added: 4 } : {},
    }));
  const commands: AgentCommandInput[] = [];
  const gateway: AgentGateway = {
    async resolveAgent(host: HostIdentity) {
      return { agentId: `agent-${host.name}`, capabilities };
    },
    async runAgentCommand(input) {
      commands.push(input);
      await opts.working?.(input);
      const result = answer(input);
      // As the real activity: an agent's failure is final, for the engine to fall back.
      if (!result.success)
        throw ApplicationFailure.nonRetryable(result.message, "AgentCommandFailed");
      return result;
    },
  };
  return { gateway, commands };
}
