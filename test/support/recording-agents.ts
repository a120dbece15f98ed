import type { AgentCommandInput, AgentCommandResult, AgentGateway, HostIdentity } from "../../src/activities/agent-commands.ts";
import { AGENT_COMMANDS } from "../../src/domain/model.ts";

/**
 * A double at the engine's agent boundary (the gateway's job in production): every host has an
 * agent with every capability, and every command is recorded and answered as told.
 */
export function recordingAgents(answer: (cmd: AgentCommandInput) => AgentCommandResult = () => ({ success: true, message: "done", details: {} })) {
  const commands: AgentCommandInput[] = [];
  const gateway: AgentGateway = {
    async resolveAgent(host: HostIdentity) {
      return { agentId: `agent-${host.name}`, capabilities: [...AGENT_COMMANDS] };
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
