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
  opts: { capabilities?: string[]; answer?: (cmd: AgentCommandInput) => AgentCommandResult } = {},
) {
  const capabilities = opts.capabilities ?? [...AGENT_COMMANDS];
  const answer = opts.answer ?? (() => ({ success: true, message: "done", details: {} }));
  const commands: AgentCommandInput[] = [];
  const gateway: AgentGateway = {
    async resolveAgent(host: HostIdentity) {
      return { agentId: `agent-${host.name}`, capabilities };
    },
    async runAgentCommand(input) {
      commands.push(input);
      const result = answer(input);
      if (!result.success) throw new Error(result.message);
      return result;
    },
  };
  return { gateway, commands };
}
