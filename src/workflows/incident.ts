import {
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  ParentClosePolicy,
  proxyLocalActivities,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  WorkflowIdReusePolicy,
  workflowInfo,
} from "@temporalio/workflow";
import type { EngineActivities } from "../activities/engine.ts";
import type { Severity } from "../domain/alert.ts";
import { advance, type FlowInstance, type Reached } from "../domain/attack-flow.ts";
import { mitigationWorkflowId } from "./ids.ts";
import { type MitigationOutcome, mitigationWorkflow } from "./mitigation.ts";
import { HOST, INCIDENT_STATUS, SEVERITY, TECHNIQUES } from "./search-attributes.ts";

/** What the incident workflow learns of an alert; the raw alert stays in PostgreSQL. */
export interface IncidentAlert {
  /** The stored alert's key (unique, unlike the id its source chose). */
  id: string;
  time: string;
  techniques: string[];
  severity: Severity;
  ruleId: string;
}

export interface MitigationRun {
  workflowId: string;
  alertId: string;
  flowId: string;
  nodeId: string;
  techniques: string[];
  preemptive: boolean;
  outcome: MitigationOutcome["outcome"] | "running";
  mitigation?: string;
}

export interface IncidentState {
  host: string;
  status: "open" | "closed";
  openedAt: string;
  lastAlertAt: string | null;
  severity: Severity | null;
  techniques: string[];
  alerts: string[];
  instances: FlowInstance[];
  finished: FlowInstance[];
  mitigations: MitigationRun[];
  instanceCounter: number;
}

export interface IncidentInput {
  host: string;
  idleMs: number;
  state?: IncidentState;
  pending?: IncidentAlert[];
}

export const alertSignal = defineSignal<[IncidentAlert]>("alert");
/** A host's alerts of one intake batch in one signal: one history event instead of one each. */
export const alertsSignal = defineSignal<[IncidentAlert[]]>("alerts");
export const stateQuery = defineQuery<IncidentState>("state");

// Local: a few PostgreSQL/Neo4j reads that take milliseconds need no task queue round trip.
const { matchAlert } = proxyLocalActivities<EngineActivities>({
  startToCloseTimeout: "30 seconds",
  retry: { initialInterval: "1 second", maximumAttempts: 5 },
});

const SEVERITY_ORDER: Severity[] = ["low", "medium", "high", "critical"];
// Alert ids remembered for de-duplication; older ones are also guarded by the alerts table.
const REMEMBERED_ALERTS = 2_000;
const MAX_FINISHED_KEPT = 100;
// Continue-as-new well before Temporal's own suggestion so an entity's history stays quick to replay.
const HISTORY_LIMIT = 5_000;

/**
 * One incident per host: alerts arrive as signals, advance the attack-flow instances of the host
 * and start a mitigation workflow for every node they reach. The incident closes after an idle
 * period; the next alert for the host opens a new one.
 */
export async function incidentWorkflow(input: IncidentInput): Promise<IncidentState> {
  const state: IncidentState = input.state ?? {
    host: input.host,
    status: "open",
    openedAt: new Date(workflowInfo().startTime).toISOString(),
    lastAlertAt: null,
    severity: null,
    techniques: [],
    alerts: [],
    instances: [],
    finished: [],
    mitigations: [],
    instanceCounter: 0,
  };
  const pending: IncidentAlert[] = [...(input.pending ?? [])];
  let running = 0;

  const receive = (alert: IncidentAlert) => {
    if (state.alerts.includes(alert.id) || pending.some((p) => p.id === alert.id)) return;
    pending.push(alert);
  };
  setHandler(alertSignal, receive);
  setHandler(alertsSignal, (alerts) => {
    for (const alert of alerts) receive(alert);
  });
  setHandler(stateQuery, () => state);

  const startMitigation = async (alert: IncidentAlert, reached: Reached): Promise<void> => {
    // The id is derived from the alert and the node: a second attempt is refused by Temporal, so a
    // mitigation never runs twice for the same alert and node, whatever happens to this workflow.
    const workflowId = mitigationWorkflowId({
      host: state.host,
      alertId: alert.id,
      flowId: reached.flowId,
      nodeId: reached.nodeId,
    });
    const run: MitigationRun = {
      workflowId,
      alertId: alert.id,
      flowId: reached.flowId,
      nodeId: reached.nodeId,
      techniques: reached.techniques,
      preemptive: reached.preemptive,
      outcome: "running",
    };
    state.mitigations.push(run);
    running++;
    try {
      const child = await startChild(mitigationWorkflow, {
        workflowId,
        args: [
          {
            incidentId: workflowInfo().workflowId,
            host: state.host,
            alertId: alert.id,
            flowId: reached.flowId,
            nodeId: reached.nodeId,
            techniques: reached.techniques,
            preemptive: reached.preemptive,
          },
        ],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      });
      const outcome = await child.result();
      run.outcome = outcome.outcome;
      run.mitigation = outcome.mitigation;
    } catch (err) {
      run.outcome = isAlreadyStarted(err) ? "duplicate" : "failed";
    } finally {
      running--;
    }
  };

  const handleAlert = async (alert: IncidentAlert): Promise<void> => {
    state.alerts.push(alert.id);
    if (state.alerts.length > REMEMBERED_ALERTS)
      state.alerts.splice(0, state.alerts.length - REMEMBERED_ALERTS);
    state.lastAlertAt = alert.time;
    const techniques = [...new Set([...state.techniques, ...alert.techniques])].sort();
    const severity =
      state.severity &&
      SEVERITY_ORDER.indexOf(state.severity) >= SEVERITY_ORDER.indexOf(alert.severity)
        ? state.severity
        : alert.severity;
    // Visibility is updated only when what operators filter on changes.
    if (severity !== state.severity || techniques.length !== state.techniques.length) {
      state.techniques = techniques;
      state.severity = severity;
      upsertSearchAttributes([
        { key: TECHNIQUES, value: techniques },
        { key: SEVERITY, value: severity },
      ]);
    }

    const { flows, holding } = await matchAlert({
      incidentId: workflowInfo().workflowId,
      alertId: alert.id,
      techniques: alert.techniques,
      instances: state.instances,
    });
    if (holding.length === 0) return;
    const step = advance(flows, state.instances, holding, () => `i${++state.instanceCounter}`);
    state.instances = step.instances;
    state.finished = [...state.finished, ...step.finished].slice(-MAX_FINISHED_KEPT);
    for (const reached of step.reached) void startMitigation(alert, reached);
  };

  upsertSearchAttributes([
    { key: HOST, value: state.host },
    { key: INCIDENT_STATUS, value: "open" },
  ]);
  // One idle timer at a time, re-armed for what is left when it fires: a fresh timer per alert
  // would add two history events to every alert.
  let lastAlertAt = Date.now();
  let idle = false;
  const watchIdle = async () => {
    for (let left = input.idleMs; left > 0; left = lastAlertAt + input.idleMs - Date.now())
      await sleep(left);
    idle = true;
  };
  void watchIdle();
  for (;;) {
    await condition(() => pending.length > 0 || (idle && running === 0));
    const alert = pending.shift();
    if (!alert) break; // idle, and no mitigation still running
    lastAlertAt = Date.now();
    if (idle) {
      idle = false;
      void watchIdle();
    }
    await handleAlert(alert);
    const info = workflowInfo();
    if ((info.continueAsNewSuggested || info.historyLength > HISTORY_LIMIT) && running === 0) {
      await continueAsNew<typeof incidentWorkflow>({
        host: state.host,
        idleMs: input.idleMs,
        state,
        pending,
      });
    }
  }
  state.status = "closed";
  upsertSearchAttributes([{ key: INCIDENT_STATUS, value: "closed" }]);
  return state;
}

function isAlreadyStarted(err: unknown): boolean {
  return err instanceof Error && err.name === "WorkflowExecutionAlreadyStartedError";
}
