// The worker's workflow bundle: every workflow type the worker runs.
export { incidentWorkflow } from "./incident.ts";
export { mitigationWorkflow } from "./mitigation.ts";
export { agentCommandWorkflow } from "./agent-command.ts";
export { isolationWorkflow } from "./isolation.ts";
