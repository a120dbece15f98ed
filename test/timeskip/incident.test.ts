import { randomBytes } from "node:crypto";
import type { WorkflowHandle } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentCommandInput, AgentCommandResult } from "../../src/activities/agent-commands.ts";
import type { GateResult } from "../../src/activities/approvals.ts";
import type { NextMitigation } from "../../src/activities/engine.ts";
import {
  advance,
  candidateNodes,
  type FlowInstance,
  instanceIdOf,
} from "../../src/domain/attack-flow.ts";
import type { AttackFlow } from "../../src/domain/model.ts";
import { incidentWorkflowId } from "../../src/workflows/ids.ts";
import {
  alertSignal,
  type IncidentAlert,
  type IncidentInput,
  type IncidentState,
  incidentWorkflow,
  stateQuery,
} from "../../src/workflows/incident.ts";
import { eventually } from "../support/wait.ts";
import { type TimeSkipping, timeSkipping } from "./support.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// The incident continues as new past its history limit (5,000 events by default; 1,000 here, so a
// test crosses it in seconds); the alerts of the task that crossed it may add a few more. A run
// longer than the bound did not continue as new when it should have.
const HISTORY_LIMIT = 1_000;
const HISTORY_BOUND = 2_000;
// Alerts per batch: signalled together, then awaited until handled, as a busy host sends them.
// Some 2,500 alerts reach the continue-as-new threshold (about two events each: the signal and
// a marker per batch of matched alerts): about a minute on a busy two-core machine, hence the long timeouts.
const BATCH = 50;

let ts: TimeSkipping;
beforeAll(async () => {
  ts = await timeSkipping();
});
afterAll(async () => {
  await ts?.teardown();
});

// recon (T1046) → exec (T1059) → exfil (T1041): an instance that reaches exfil has carried its
// path through every alert before, whichever run of the incident handled them.
const FLOW: AttackFlow = {
  identifier: "timeskip-flow",
  name: "recon to exfiltration",
  start: ["recon"],
  nodes: [
    { id: "recon", techniques: ["T1046"], next: ["exec"] },
    { id: "exec", techniques: ["T1059"], next: ["exfil"] },
    { id: "exfil", techniques: ["T1041"] },
  ],
};
const NOISE = "T1082"; // covered by no node: the alert is remembered and matches nothing

/**
 * The engine's activities, stubbed: every condition holds (the candidates are the pure engine's),
 * no mitigation covers anything unless `agentStep` plans one agent command, whose answer waits
 * for `commandGate`.
 */
function stubEngine(opts: { agentStep?: boolean } = {}) {
  const matched: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const commands: string[] = [];
  let open: () => void = () => {};
  const commandGate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const activities = {
    // As the engine's: alerts in order, the instances advancing between them with the same ids.
    async matchAlerts(input: {
      alerts: { id: string; techniques: string[] }[];
      instances: FlowInstance[];
      instanceCounter: number;
    }) {
      let { instances, instanceCounter } = input;
      const holding = input.alerts.map((a) => {
        matched.push(a.id);
        const reached = candidateNodes([FLOW], instances, a.techniques);
        if (reached.length)
          instances = advance([FLOW], instances, reached, () =>
            instanceIdOf(++instanceCounter),
          ).instances;
        return reached;
      });
      for (const w of waiters.filter((w) => matched.length >= w.count)) w.resolve();
      return { flows: [FLOW], holding };
    },
    async planNextMitigation(input: { tried: string[] }): Promise<NextMitigation> {
      if (!opts.agentStep || input.tried.length > 0) return { found: false, candidates: 0 };
      return {
        found: true,
        passedOver: [],
        candidate: { key: "kill", name: "kill the process", cost: 1 },
        steps: [
          {
            kind: "agent",
            agentId: "agent-1",
            command: "kill-process",
            details: { pid: 4242 },
            priority: "high",
          },
        ],
      };
    },
    async recordDecision(): Promise<void> {},
    // Every chosen mitigation passes its approval gate (modes and policies are the integration tests').
    async gateMitigation(): Promise<GateResult> {
      return { gate: "act" };
    },
    async callWebhook(): Promise<{ status: number }> {
      return { status: 200 };
    },
    async runAgentCommand(input: AgentCommandInput): Promise<AgentCommandResult> {
      commands.push(input.commandId);
      await commandGate;
      return { success: true, message: "killed", details: {} };
    },
  };
  /** Resolves once `count` alerts in all were handled (matched), without polling. */
  const handled = (count: number) =>
    new Promise<void>((resolve) => {
      if (matched.length >= count) resolve();
      else waiters.push({ count, resolve });
    });
  return { activities, matched, handled, commands, releaseCommands: () => open() };
}

let alerts = 0;
function alert(techniques: string[]): IncidentAlert {
  return {
    id: `alert-${++alerts}-${randomBytes(3).toString("hex")}`,
    time: new Date().toISOString(),
    techniques,
    severity: "medium",
    ruleId: "100001",
  };
}

/**
 * Starts the host's incident as the intake does: signal-with-start, one alert per signal. The Java
 * test server answers "Completed workflow" to a signal-with-start that lands while a run is
 * continuing as new (a real server hands it to the new run): asked again, it does.
 */
async function signalAlert(taskQueue: string, host: string, a: IncidentAlert, idleMs = HOUR) {
  const start = () =>
    ts.env.client.workflow.signalWithStart(incidentWorkflow, {
      workflowId: incidentWorkflowId(host),
      taskQueue,
      args: [{ host, idleMs, historyLimit: HISTORY_LIMIT }],
      signal: alertSignal,
      signalArgs: [a],
    });
  return eventually("the alert signalled", start);
}

const newHost = () => `host-${randomBytes(4).toString("hex")}`;

/**
 * Sends noise alerts until the incident has continued as new, or its first run's history passed
 * HISTORY_BOUND without doing so. Each batch is awaited until handled and its workflow task done,
 * so the history grows as under a steady stream of batches. (A signal arriving while the task that
 * continues as new completes makes the server refuse that completion, and the worker replays the
 * whole run, ~5,000 events: tens of seconds per refusal on a busy machine.)
 */
async function feedUntilContinuedAsNew(
  handle: WorkflowHandle,
  engine: ReturnType<typeof stubEngine>,
  send: (a: IncidentAlert) => Promise<unknown>,
) {
  const { runId: firstRunId } = await handle.describe();
  const sent: string[] = [];
  for (;;) {
    const batch = Array.from({ length: BATCH }, () => alert([NOISE]));
    const done = engine.handled(engine.matched.length + BATCH);
    await Promise.all(batch.map(send));
    await done;
    sent.push(...batch.map((a) => a.id));
    const { runId, historyLength } = await eventually(
      "the batch's workflow task done",
      async () => {
        const d = await handle.describe();
        return !d.raw.pendingWorkflowTask && d;
      },
    );
    if (runId !== firstRunId || historyLength > HISTORY_BOUND) break;
  }
  return { firstRunId, sent };
}

/** Awaits the incident's end (skipping ahead to its idle timer): closed an idle hour after `lastAlertAt`. */
async function expectClosedAnIdleTimeAfter(
  handle: WorkflowHandle<typeof incidentWorkflow>,
  lastAlertAt: number,
  alerts: number,
) {
  const final: IncidentState = await handle.result();
  const closedAt = (await handle.describe()).closeTime?.getTime() ?? 0;
  expect(final.status).toBe("closed");
  expect(final.alerts).toHaveLength(alerts);
  expect(closedAt - lastAlertAt).toBeGreaterThanOrEqual(HOUR);
  expect(closedAt - lastAlertAt).toBeLessThan(HOUR + MINUTE);
}

/** The input a run handed to its successor when it continued as new. */
async function continuedAsNewInput(workflowId: string, runId: string): Promise<IncidentInput> {
  const history = await ts.env.client.workflow.getHandle(workflowId, runId).fetchHistory();
  const last = history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes;
  const payload = last?.input?.payloads?.[0];
  if (!payload?.data) throw new Error(`run ${runId} did not continue as new`);
  return JSON.parse(Buffer.from(payload.data).toString("utf8")) as IncidentInput;
}

async function historyLength(workflowId: string, runId: string): Promise<number> {
  const history = await ts.env.client.workflow.getHandle(workflowId, runId).fetchHistory();
  return history.events?.length ?? 0;
}

describe("incident workflow in skipped time", () => {
  it("closes once its host sent no alert for the idle time", async () => {
    const engine = stubEngine();
    await ts.withWorker(engine.activities, async (taskQueue) => {
      const host = newHost();
      const handle = await signalAlert(taskQueue, host, alert(["T1046"]));
      const sentAt = await ts.env.currentTimeMs();
      await expectClosedAnIdleTimeAfter(handle, sentAt, 1);
    });
  });

  it("stays open while alerts keep arriving within the idle time, then closes an idle time after the last", async () => {
    const engine = stubEngine();
    await ts.withWorker(engine.activities, async (taskQueue) => {
      const host = newHost();
      const handle = await signalAlert(taskQueue, host, alert(["T1046"]));
      // Four alerts 45 minutes apart: three hours in all, never an idle hour.
      for (let i = 0; i < 4; i++) {
        await ts.env.sleep(45 * MINUTE);
        expect((await handle.query(stateQuery)).status).toBe("open");
        await signalAlert(taskQueue, host, alert([NOISE]));
      }
      const lastAt = await ts.env.currentTimeMs();
      await ts.env.sleep(50 * MINUTE);
      expect((await handle.query(stateQuery)).status).toBe("open");
      await expectClosedAnIdleTimeAfter(handle, lastAt, 5);
    });
  });

  it("continues as new under a stream of alerts, carrying instances and remembered alerts, losing none", async () => {
    const engine = stubEngine();
    await ts.withWorker(engine.activities, async (taskQueue) => {
      const host = newHost();
      const send = (a: IncidentAlert) => signalAlert(taskQueue, host, a);
      const first = [alert(["T1046"]), alert(["T1059"])];
      const handle = await send(first[0] as IncidentAlert);
      await send(first[1] as IncidentAlert);
      const { firstRunId, sent } = await feedUntilContinuedAsNew(handle, engine, send);
      const all = [...first.map((a) => a.id), ...sent];

      const { runId } = await handle.describe();
      expect(runId, "the incident never continued as new").not.toBe(firstRunId);
      expect(await historyLength(handle.workflowId, firstRunId)).toBeLessThanOrEqual(HISTORY_BOUND);

      // What the first run handed over (its continue-as-new input): the flow instance and the
      // alerts it had handled.
      const carried = await continuedAsNewInput(handle.workflowId, firstRunId);
      expect(carried.state?.instances.map((i) => [i.flowId, i.node])).toEqual([
        ["timeskip-flow", "exec"],
      ]);
      const handedOver = carried.state?.alerts ?? [];
      expect(handedOver.length).toBeGreaterThan(0);
      expect(handedOver.filter((id) => !all.includes(id))).toEqual([]);

      // No alert lost across the boundary (those pending at it included), none remembered twice.
      // (The last batch may still be pending in the new run: wait for it, do not race it.)
      await eventually("every alert sent matched", () => {
        const matched = new Set(engine.matched);
        return all.every((id) => matched.has(id));
      });
      const state = await handle.query(stateQuery);
      expect(new Set(state.alerts).size).toBe(state.alerts.length);
      expect(state.alerts).toEqual(expect.arrayContaining(sent.slice(-BATCH * 10)));

      // Remembered across the boundary: an alert of the first run, delivered again, is not handled
      // again; and the first run's instance moves on (exfil is reached only from exec).
      const redelivered = handedOver.at(-1) as string;
      const times = () => engine.matched.filter((id) => id === redelivered).length;
      const before = times();
      await send({ ...(first[0] as IncidentAlert), id: redelivered });
      const exfil = alert(["T1041"]);
      await send(exfil);
      // matchAlert has run when the instance moves: wait for the move, not for the activity.
      const done = await eventually("the instance reached exfil", async () => {
        const st = await handle.query(stateQuery);
        return st.finished.length > 0 && st;
      });
      expect(done.alerts.at(-1)).toBe(exfil.id);
      expect(times()).toBe(before);
      expect(done.instances).toEqual([]);
      expect(done.finished.map((i) => i.path)).toEqual([["recon", "exec", "exfil"]]);
      await handle.terminate("test done");
    });
  }, 300_000);

  // Issue 10, "Continue-as-new that cannot be starved": once only when no mitigation ran, one agent
  // command that waited let the history grow without bound; runs now report their outcome by signal.
  it("continues as new while a mitigation is still running, and still learns its outcome", async () => {
    const engine = stubEngine({ agentStep: true });
    await ts.withWorker(engine.activities, async (taskQueue) => {
      const host = newHost();
      const send = (a: IncidentAlert) => signalAlert(taskQueue, host, a);
      const handle = await send(alert(["T1046"]));
      try {
        await eventually("the mitigation's agent command", () => engine.commands.length === 1);
        const { firstRunId } = await feedUntilContinuedAsNew(handle, engine, send);
        const { runId } = await handle.describe();
        expect(runId, "the incident never continued as new").not.toBe(firstRunId);
        expect(await historyLength(handle.workflowId, firstRunId)).toBeLessThanOrEqual(
          HISTORY_BOUND,
        );

        engine.releaseCommands();
        const state = await eventually("the mitigation's outcome", async () => {
          const s = await handle.query(stateQuery);
          return s.mitigations.some((m) => m.outcome === "succeeded") && s;
        });
        expect(state.mitigations.filter((m) => m.nodeId === "recon")).toHaveLength(1);
      } finally {
        // Before the worker stops: it waits for the stubbed command, which waits for this.
        engine.releaseCommands();
        await handle.terminate("test done");
      }
    });
  }, 300_000);
});
