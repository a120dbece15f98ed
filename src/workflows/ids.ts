// Every workflow id, and the ids derived from them, built in one place. Ids are how Temporal keeps
// one workflow per entity and refuses a second start, so a change here changes what is a duplicate.
// Pure: imported by workflow code as well as by the API and the intake.

/** One incident per host, re-opened under the same id after it closes. */
export const incidentWorkflowId = (host: string) => `incident/${host}`;

/** Derived from the alert and the node it reached: one mitigation per alert and node, ever. */
export const mitigationWorkflowId = (m: {
  host: string;
  alertId: string;
  flowId: string;
  nodeId: string;
}) => `mitigation/${m.host}/${m.alertId}/${m.flowId}.${m.nodeId}`;

/** A mitigation's attempt of one candidate: the webhook's idempotency key. */
export const mitigationAttemptId = (mitigationWorkflowId: string, candidate: string) =>
  `${mitigationWorkflowId}/${candidate}`;

/** The command of a mitigation's agent step: the same on every retry, so the agent runs it once. */
export const mitigationCommandId = (attemptId: string, step: number) => `${attemptId}/${step}`;

/** One isolation per agent: asking again while it runs is a no-op. */
export const isolationWorkflowId = (agentId: string) => `isolation/${agentId}`;

/**
 * The commands of one isolation run (its first run id keeps a later isolation of the same agent
 * from reusing them): `isolate`, then `release/<attempt>`.
 */
export const isolationCommandId = (
  run: { workflowId: string; firstExecutionRunId: string },
  step: "isolate" | `release/${number}`,
) => `${run.workflowId}/${run.firstExecutionRunId}/${step}`;

/**
 * An operator's command, `command/<agent>/<id>`, is also its command id: `requestId` is the
 * operator's idempotency id, otherwise a random one. Operators' command ids thus live apart from
 * the engine's (`mitigation/…`, `isolation/…`): an operator who could choose a bare id could take
 * the one a mitigation is about to issue, and the mitigation would get that command's outcome.
 */
export function operatorCommandIds(agentId: string, requestId: string | undefined, random: string) {
  const workflowId = `command/${agentId}/${requestId ?? random}`;
  return { workflowId, commandId: workflowId };
}

/** One rollout per ruleset version. */
export const rolloutWorkflowId = (ruleset: string, version: string | number) =>
  `rollout/${ruleset}/${version}`;
