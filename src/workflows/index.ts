// The worker's workflow bundle: every workflow type the worker runs.

export { agentCommandWorkflow } from "./agent-command.ts";
export { incidentWorkflow } from "./incident.ts";
export { isolationWorkflow } from "./isolation.ts";
export { mitigationWorkflow } from "./mitigation.ts";
export { rolloutWorkflow } from "./rollout.ts";
