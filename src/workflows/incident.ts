import {
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
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
import type { ApprovalAnswer } from "../domain/approval.ts";
import {
  advance,
  type FlowInstance,
  instanceIdOf,
  type NodeCandidate,
  type Reached,
} from "../domain/attack-flow.ts";
import { objectsOverlap } from "../domain/mitigation.ts";
import type { AttackFlow } from "../domain/model.ts";
import { mitigationWorkflowId } from "./ids.ts";
import {
  ApprovalInbox,
  approvalSignal,
  type MitigationOutcome,
  mitigationOutcomeSignal,
  mitigationWorkflow,
  objectsClaimSignal,
  objectsGrantedSignal,
  runMitigation,
} from "./mitigation.ts";
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
  /** What the run's current candidate touches on the host, once it said (per-host ordering). */
  objects?: string[];
  /** Whether the run has its turn on those objects. */
  granted?: boolean;
  /** Run inside the incident (since release 0.4.0), not as a child workflow: its progress so
   *  far, from which it resumes when the incident continues as new. */
  inline?: { tried: string[]; failures: number };
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
  /** Continue as new past this many history events (default HISTORY_LIMIT). */
  historyLimit?: number;
  state?: IncidentState;
  pending?: IncidentAlert[];
  /** Approval answers not yet taken by the inline run they name, carried across continue-as-new. */
  answers?: [string, ApprovalAnswer][];
}

export const alertSignal = defineSignal<[IncidentAlert]>("alert");
/** A host's alerts of one intake batch in one signal: one history event instead of one each. */
export const alertsSignal = defineSignal<[IncidentAlert[]]>("alerts");
export const stateQuery = defineQuery<IncidentState>("state");

// Local: a few PostgreSQL/Neo4j reads that take milliseconds need no task queue round trip.
// Retried without a cap: an incident waits out a dependency's outage (pending in the Temporal UI)
// instead of failing and losing its flow instances.
const { matchAlert, matchAlerts } = proxyLocalActivities<EngineActivities>({
  startToCloseTimeout: "60 seconds",
  retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "30 seconds" },
});

/** Alerts matched by one activity: bounded so one batch's evaluations fit its time limit. */
const MATCH_BATCH = 50;
const SEVERITY_ORDER: Severity[] = ["low", "medium", "high", "critical"];
// Alert ids remembered for de-duplication; older ones are also guarded by the alerts table.
const REMEMBERED_ALERTS = 2_000;
const MAX_FINISHED_KEPT = 100;
// Mitigation runs remembered once they ended (running ones are always kept): the decision log
// holds every one; the incident's state only needs the recent ones.
const MAX_ENDED_MITIGATIONS_KEPT = 200;
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
  // Ids of the remembered and the pending alerts, for de-duplication in constant time: a burst of
  // thousands of signals in one activation must not cost thousands of scans.
  const known = new Set([...state.alerts, ...pending.map((a) => a.id)]);
  // Since this patch mitigations run inside the incident (runMitigation) instead of as child
  // workflows: no child start, no ordering and outcome signals, a third of the history events
  // and round trips per mitigation. A run keeps its id (mitigation/…) for its decisions, claims,
  // approvals and commands; the incident's history shows its activities. Asked first: a run that
  // has it has every earlier patch too, and records one patch marker instead of three.
  const inline = patched("incident-inline-mitigations");
  // Since this patch mitigation runs report their outcome by signal and the incident holds none
  // of them: it continues as new whenever its history asks, however many mitigations run (before,
  // it awaited each child and continued as new only when none ran, which a steady stream of alerts
  // could postpone forever).
  const outcomesBySignal = inline || patched("incident-outcomes-by-signal");
  // Since this patch pending alerts are matched in batches (matchAlerts): a burst of alerts costs
  // one activity and one event per batch, not per alert.
  const batched = inline || patched("incident-batched-matching");
  const approvals = new ApprovalInbox();
  // The incident's local activities one at a time, once it runs mitigations inline (see
  // MitigationRunContext.local); before, it had one coroutine and left them as they were.
  let lastLocal: Promise<unknown> = Promise.resolve();
  const local = <T>(call: () => Promise<T>): Promise<T> => {
    if (!inline) return call();
    const result = lastLocal.then(call, call);
    lastLocal = result.catch(() => undefined);
    return result;
  };
  for (const [id, answer] of input.answers ?? []) approvals.answers.set(id, answer);
  let running = 0;
  // Child starts not yet confirmed: continuing as new in between would lose track of the run.
  let starting = 0;
  const stillRunning = () =>
    outcomesBySignal ? state.mitigations.filter((m) => m.outcome === "running").length : running;
  const runningInline = () =>
    state.mitigations.filter((m) => m.outcome === "running" && m.inline).length;

  // The pending alerts' batches, as sizes in order: one per signal (what one signal brought is
  // fixed by the history, so a batch never depends on when later signals happened to arrive,
  // which would make a replay take other alerts), the carried ones in MATCH_BATCH chunks.
  const batches: number[] = [];
  for (let left = pending.length; left > 0; left -= MATCH_BATCH)
    batches.push(Math.min(left, MATCH_BATCH));
  const receive = (alerts: IncidentAlert[]) => {
    let accepted = 0;
    for (const alert of alerts) {
      if (known.has(alert.id)) continue;
      known.add(alert.id);
      pending.push(alert);
      accepted++;
    }
    if (accepted > 0) batches.push(accepted);
  };
  /** The next batch to match: the oldest signal's alerts, at most MATCH_BATCH of them. */
  const nextBatch = (limit: number): IncidentAlert[] => {
    const size = Math.min(batches[0] ?? 0, limit);
    if (size === batches[0]) batches.shift();
    else batches[0] = (batches[0] ?? 0) - size;
    return pending.splice(0, size);
  };
  setHandler(alertSignal, (alert) => receive([alert]));
  setHandler(alertsSignal, (alerts) => receive(alerts));
  setHandler(stateQuery, () => state);
  setHandler(approvalSignal, (payload) => approvals.receive(payload));
  setHandler(mitigationOutcomeSignal, (report) => {
    // A run of an earlier incident of this host, or one already settled, changes nothing.
    const run = state.mitigations.find((m) => m.workflowId === report.workflowId);
    if (run?.outcome !== "running") return;
    run.outcome = report.outcome;
    run.mitigation = report.mitigation;
    trimMitigations(state);
    grantTurns();
  });
  setHandler(objectsClaimSignal, (claim) => {
    const run = state.mitigations.find(
      (m) => m.workflowId === claim.workflowId && m.outcome === "running",
    );
    // A run this incident does not know (an earlier incident's) has nothing to be ordered with.
    if (!run) return grant(claim.workflowId);
    run.objects = [...claim.objects];
    run.granted = false;
    grantTurns();
  });
  /**
   * Per-host ordering: a run waiting for its objects gets its turn when no earlier running run
   * touches them, and every earlier running run has said what it touches (one that has not yet
   * planned might). Runs are in start order, which is alert order.
   */
  const grantTurns = () => {
    const earlier: MitigationRun[] = [];
    for (const run of state.mitigations) {
      if (run.outcome !== "running") continue;
      if (run.objects && run.granted === false) {
        const blocked = earlier.some(
          (e) => !e.objects || objectsOverlap(e.objects, run.objects ?? []),
        );
        if (!blocked) {
          run.granted = true;
          if (!run.inline) grant(run.workflowId);
        }
      }
      earlier.push(run);
    }
  };
  const grant = (workflowId: string) => {
    // A run that is gone needs no turn.
    getExternalWorkflowHandle(workflowId)
      .signal(objectsGrantedSignal)
      .catch(() => undefined);
  };

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
    if (inline) {
      run.inline = { tried: [], failures: 0 };
      return runInline(run);
    }
    running++;
    starting++;
    let started = false;
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
      starting--;
      started = true;
      if (outcomesBySignal) return;
      const outcome = await child.result();
      run.outcome = outcome.outcome;
      run.mitigation = outcome.mitigation;
    } catch (err) {
      if (!started) starting--;
      run.outcome = isAlreadyStarted(err) ? "duplicate" : "failed";
    } finally {
      running--;
    }
  };

  /** Runs (or resumes) a mitigation inside the incident; its outcome settles its entry. */
  const runInline = async (run: MitigationRun): Promise<void> => {
    let outcome: MitigationOutcome;
    try {
      outcome = await runMitigation(
        {
          incidentId: workflowInfo().workflowId,
          host: state.host,
          alertId: run.alertId,
          flowId: run.flowId,
          nodeId: run.nodeId,
          techniques: run.techniques,
          preemptive: run.preemptive,
        },
        {
          runId: run.workflowId,
          approvalWorkflowId: workflowInfo().workflowId,
          approvals,
          progress: run.inline ?? { tried: [], failures: 0 },
          inIncident: true,
          local,
          async awaitTurn(objects, timeoutMs) {
            run.objects = [...objects];
            run.granted = false;
            grantTurns();
            await condition(() => run.granted === true, timeoutMs);
          },
        },
      );
    } catch (err) {
      // Only a permanent failure gets here (outages are retried): the run ends, the incident
      // and its other runs live on.
      log.error("mitigation run failed", { run: run.workflowId, error: (err as Error).message });
      outcome = { outcome: "failed" };
    }
    run.outcome = outcome.outcome;
    run.mitigation = outcome.mitigation;
    trimMitigations(state);
    grantTurns();
  };
  // Runs carried over from before a continue-as-new start again from their progress: every step
  // is idempotent by the run's id, so nothing that took effect is repeated.
  for (const run of state.mitigations) {
    if (run.outcome !== "running" || !run.inline) continue;
    delete run.objects;
    delete run.granted;
    void runInline(run);
  }

  /** What the incident remembers of an alert before matching it: id, time, techniques, severity. */
  const remember = (alert: IncidentAlert) => {
    state.alerts.push(alert.id);
    if (state.alerts.length > REMEMBERED_ALERTS)
      for (const forgotten of state.alerts.splice(0, state.alerts.length - REMEMBERED_ALERTS))
        known.delete(forgotten);
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
      visibilityChanged = true;
    }
  };
  let visibilityChanged = false;
  const publishVisibility = () => {
    if (!visibilityChanged) return;
    visibilityChanged = false;
    upsertSearchAttributes([
      { key: TECHNIQUES, value: state.techniques },
      { key: SEVERITY, value: state.severity ?? "low" },
    ]);
  };

  /** Advances the host's flow instances by one alert's holding nodes and starts their mitigations. */
  const apply = (alert: IncidentAlert, flows: AttackFlow[], holding: NodeCandidate[]) => {
    if (holding.length === 0) return;
    const step = advance(flows, state.instances, holding, () =>
      instanceIdOf(++state.instanceCounter),
    );
    state.instances = step.instances;
    state.finished = [...state.finished, ...step.finished].slice(-MAX_FINISHED_KEPT);
    for (const reached of step.reached) void startMitigation(alert, reached);
  };

  /**
   * Matches a batch of alerts in one local activity (one history event for the lot), in order:
   * the activity advances a copy of the instances between alerts exactly as apply() then does.
   */
  const handleBatch = async (batch: IncidentAlert[]): Promise<void> => {
    for (const alert of batch) remember(alert);
    publishVisibility();
    let matched: Awaited<ReturnType<typeof matchAlerts>>;
    try {
      matched = await local(() =>
        matchAlerts({
          incidentId: workflowInfo().workflowId,
          alerts: batch.map((a) => ({ id: a.id, techniques: a.techniques })),
          instances: state.instances,
          instanceCounter: state.instanceCounter,
        }),
      );
    } catch (err) {
      // Only a permanent failure gets here (outages are retried): these alerts are passed
      // over, the incident and its flow instances live on.
      log.error("alerts not matched", { alerts: batch.length, error: (err as Error).message });
      return;
    }
    for (const [i, alert] of batch.entries()) apply(alert, matched.flows, matched.holding[i] ?? []);
  };

  /** The incident's first form, one alert per activity: kept to replay the runs that used it. */
  const handleAlert = async (alert: IncidentAlert): Promise<void> => {
    remember(alert);
    publishVisibility();
    let matched: Awaited<ReturnType<typeof matchAlert>>;
    try {
      matched = await matchAlert({
        incidentId: workflowInfo().workflowId,
        alertId: alert.id,
        techniques: alert.techniques,
        instances: state.instances,
      });
    } catch (err) {
      log.error("alert not matched", { alert: alert.id, error: (err as Error).message });
      return;
    }
    apply(alert, matched.flows, matched.holding);
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
    if (outcomesBySignal) {
      await condition(() => pending.length > 0 || idle);
      // Idle: running mitigations get one more idle period to report before the incident closes
      // (their outcomes are in the decision log either way).
      // Runs inside the incident end with it, so it waits for them without a bound (each is
      // bounded by its own steps' timeouts and its approval's deadline).
      if (pending.length === 0 && stillRunning() > 0) {
        if (runningInline() > 0) await condition(() => pending.length > 0 || stillRunning() === 0);
        else await condition(() => pending.length > 0 || stillRunning() === 0, input.idleMs);
      }
    } else await condition(() => pending.length > 0 || (idle && running === 0));
    if (pending.length === 0) break; // idle, and no mitigation still running
    lastAlertAt = Date.now();
    if (idle) {
      idle = false;
      void watchIdle();
    }
    if (batched) await handleBatch(nextBatch(MATCH_BATCH));
    else await handleAlert(nextBatch(1)[0] as IncidentAlert);
    const info = workflowInfo();
    if (
      (info.continueAsNewSuggested || info.historyLength > (input.historyLimit ?? HISTORY_LIMIT)) &&
      (outcomesBySignal ? starting === 0 : running === 0)
    ) {
      await continueAsNew<typeof incidentWorkflow>({
        host: state.host,
        idleMs: input.idleMs,
        ...(input.historyLimit !== undefined && { historyLimit: input.historyLimit }),
        state,
        pending,
        ...(approvals.answers.size > 0 && { answers: [...approvals.answers] }),
      });
    }
  }
  state.status = "closed";
  upsertSearchAttributes([{ key: INCIDENT_STATUS, value: "closed" }]);
  return state;
}

/** Keeps every running mitigation and the latest ended ones, so carried state stays bounded. */
function trimMitigations(state: IncidentState): void {
  const ended = state.mitigations.filter((m) => m.outcome !== "running");
  const drop = ended.length - MAX_ENDED_MITIGATIONS_KEPT;
  if (drop <= 0) return;
  const dropped = new Set(ended.slice(0, drop));
  state.mitigations = state.mitigations.filter((m) => !dropped.has(m));
}

function isAlreadyStarted(err: unknown): boolean {
  return err instanceof Error && err.name === "WorkflowExecutionAlreadyStartedError";
}
