import type { Client } from "@temporalio/client";
import { Worker } from "@temporalio/worker";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import type { ApprovalActivities } from "../../src/activities/approvals.ts";
import type { EngineActivities, PlannedStep } from "../../src/activities/engine.ts";
import type { NodeCandidate } from "../../src/domain/attack-flow.ts";
import type { AttackFlow } from "../../src/domain/model.ts";
import type { TimedCommandActivities } from "../../src/workflows/agent-command.ts";
import { incidentWorkflowId } from "../../src/workflows/ids.ts";
import {
  alertSignal,
  alertsSignal,
  type IncidentAlert,
  type IncidentState,
  incidentWorkflow,
  stateQuery,
} from "../../src/workflows/incident.ts";
import { memoryWorker } from "../support/memory-worker.ts";
import type { Scratch } from "../support/scratch.ts";
import { eventually } from "../support/wait.ts";

// One host under a steady stream of 20,000 alerts while mitigations run: the incident continues as
// new whatever runs, each run's history stays bounded, and no alert or step is lost or repeated
// across the boundaries. The workflows are the real ones; the activities answer from memory
// (the engine's database work is not what is under test here).
const ALERTS = 20_000;
const REACHING_EVERY = 1_000;
// The incident continues as new past this many events (5,000 by default; lower here: batched
// signals and matching make 20,000 alerts only ~1,500 events, and they must cross boundaries); a
// run may exceed it by the signals that arrive while one batch is matched.
const HISTORY_LIMIT = 200;
const HISTORY_BOUND = 1_500;

const flow: AttackFlow = {
  identifier: "stream",
  name: "stream",
  nodes: [{ id: "hit", techniques: ["T1059"] }],
  start: ["hit"],
};
const matched = new Map<string, number>();
const planned = new Map<string, number>();
const hit = (techniques: string[]): NodeCandidate[] =>
  techniques.includes("T1059")
    ? [{ flowId: "stream", nodeId: "hit", instanceId: null, techniques: ["T1059"], conditions: [] }]
    : [];
// Alerts of the resumption test: their run plans one agent step whose command the test holds.
const KILL: PlannedStep = {
  kind: "agent",
  agentId: "agt_resume",
  command: "kill-process",
  details: { pid: "4242" },
  priority: "high",
  ttlMs: 60_000,
};
const issued: string[] = [];
const recorded: string[] = [];
let releaseCommands = () => {};
const commandsReleased = new Promise<void>((resolve) => {
  releaseCommands = resolve;
});
const activities: Pick<EngineActivities, "matchAlerts" | "planNextMitigation" | "recordDecision"> &
  Pick<ApprovalActivities, "gateMitigation" | "answerApproval"> &
  TimedCommandActivities = {
  async matchAlerts(input: { alerts: { id: string; techniques: string[] }[] }) {
    for (const a of input.alerts) matched.set(a.id, (matched.get(a.id) ?? 0) + 1);
    return { flows: [flow], holding: input.alerts.map((a) => hit(a.techniques)) };
  },
  async planNextMitigation(input) {
    planned.set(input.alertId, (planned.get(input.alertId) ?? 0) + 1);
    // The interleaving test's slow alert takes a while to plan, its fast one none.
    if (input.alertId.startsWith("slow")) await new Promise((r) => setTimeout(r, 500));
    const acts = input.alertId.startsWith("r") || input.alertId.startsWith("slow");
    if (!acts || input.tried.length > 0) return { found: false, candidates: 0 };
    return { found: true, candidate: { key: "kill", name: "kill", cost: 1 }, steps: [KILL] };
  },
  async gateMitigation() {
    return { gate: "act" };
  },
  async answerApproval() {},
  async runAgentCommand(input) {
    issued.push(input.commandId);
    await commandsReleased;
    return { success: true, message: "killed", details: {} };
  },
  async recordDecision(decision) {
    recorded.push(`${decision.workflowId} ${decision.kind}`);
  },
};

let scratch: Scratch;
let client: Client;
let close: () => Promise<void> = async () => {};

beforeAll(async () => {
  ({ scratch, client, close } = await memoryWorker("history", activities));
});
afterAll(() => close());

it("stays bounded over 20,000 alerts for one host and loses no step", {
  timeout: 600_000,
}, async () => {
  const host = `stream-${scratch.suffix.replace(/_/g, "-")}`;
  const workflowId = incidentWorkflowId(host);
  const alert = (i: number): IncidentAlert => ({
    id: `a${i}`,
    time: new Date(1_800_000_000_000 + i).toISOString(),
    techniques: i % REACHING_EVERY === 0 ? ["T1059"] : ["T0000"],
    severity: "low",
    ruleId: "1",
  });
  await client.workflow.signalWithStart(incidentWorkflow, {
    workflowId,
    taskQueue: scratch.config.temporal.taskQueue,
    args: [{ host, idleMs: 10 * 60_000, historyLimit: HISTORY_LIMIT }],
    signal: alertSignal,
    signalArgs: [alert(0)],
  });
  const handle = client.workflow.getHandle(workflowId);
  // As the intake sends them under load: one signal per host per batch of alerts.
  const BATCH = 20;
  let next = 1;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = next; i < ALERTS; i = next) {
        next = Math.min(ALERTS, i + BATCH);
        const batch = Array.from({ length: next - i }, (_, k) => alert(i + k));
        await handle.signal(alertsSignal, batch);
      }
    }),
  );
  await eventually("every alert matched", () => matched.size === ALERTS, 300_000);
  const reaching = ALERTS / REACHING_EVERY;
  const state = await eventually(
    "every mitigation reported",
    async () => {
      const s: IncidentState = await handle.query(stateQuery);
      return s.mitigations.filter((m) => m.outcome === "none").length === reaching && s;
    },
    120_000,
  );

  // Every alert was matched (a local activity may run again when its workflow task is retried,
  // e.g. a continue-as-new refused for a signal that arrived meanwhile: its decisions are written
  // once by key), and each reaching alert got one mitigation run, none a second. A run still in
  // flight when the incident continues as new resumes in the next run and plans again, which its
  // id makes idempotent: planned at least once, started once.
  expect(matched.size).toBe(ALERTS);
  expect(planned.size).toBe(reaching);
  expect(state.mitigations).toHaveLength(reaching);
  expect(new Set(state.mitigations.map((m) => m.alertId)).size).toBe(reaching);

  // The incident continued as new several times, each run's history within its bound.
  // (Visibility lists closed runs a moment after they close.)
  const runs = await eventually("the runs listed", async () => {
    const listed = [];
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
      listed.push(run);
    return listed.length >= 2 && listed;
  });
  for (const run of runs) expect(run.historyLength).toBeLessThanOrEqual(HISTORY_BOUND);
  // The carried state stays bounded too: remembered alert ids and ended runs are capped.
  expect(state.alerts.length).toBeLessThanOrEqual(2_000);
  expect(JSON.stringify(state).length).toBeLessThan(200_000);
});

it("resumes a mitigation run in flight across continue-as-new: same command id, ended once", {
  timeout: 120_000,
}, async () => {
  const host = `resume-${scratch.suffix.replace(/_/g, "-")}`;
  const workflowId = incidentWorkflowId(host);
  const alert = (id: string, technique: string): IncidentAlert => ({
    id,
    time: new Date().toISOString(),
    techniques: [technique],
    severity: "high",
    ruleId: "1",
  });
  await client.workflow.signalWithStart(incidentWorkflow, {
    workflowId,
    taskQueue: scratch.config.temporal.taskQueue,
    args: [{ host, idleMs: 10 * 60_000, historyLimit: 30 }],
    signal: alertSignal,
    signalArgs: [{ ...alert("r1", "T1059") }],
  });
  const handle = client.workflow.getHandle(workflowId);
  await eventually("the run's command issued", () => issued.length === 1);
  const firstRun = (await handle.describe()).runId;
  // Alerts reaching no flow grow the history past its limit while the command is out.
  for (let i = 0; (await handle.describe()).runId === firstRun; i++) {
    expect(i).toBeLessThan(200);
    await handle.signal(alertsSignal, [alert(`quiet-${i}`, "T0000")]);
  }
  // The next run resumed the run and issued the same command again (the gateway answers a
  // second issue of an id with the one outcome: the agent runs it once).
  await eventually("the resumed run's command issued", () => issued.length === 2);
  expect(issued[1]).toBe(issued[0]);
  expect(issued[0]).toMatch(new RegExp(`^mitigation/${host}/r1/stream.hit/kill/0$`));
  releaseCommands();
  const state = await eventually("the run ended", async () => {
    const s: IncidentState = await handle.query(stateQuery);
    return s.mitigations[0]?.outcome === "succeeded" && s;
  });
  expect(state.mitigations).toHaveLength(1);
  const runId = state.mitigations[0]?.workflowId;
  expect(recorded.filter((r) => r.startsWith(`${runId} `))).toEqual([
    `${runId} mitigation_succeeded`,
  ]);
  expect(issued).toHaveLength(2);
});

it("replays an incident whose runs' local activities finished in another order than they began", {
  timeout: 60_000,
}, async () => {
  const host = `interleave-${scratch.suffix.replace(/_/g, "-")}`;
  const workflowId = incidentWorkflowId(host);
  const alert = (id: string): IncidentAlert => ({
    id,
    time: new Date().toISOString(),
    techniques: ["T1059"],
    severity: "high",
    ruleId: "1",
  });
  // Two runs at once: the slow alert's planning ends after the fast one's, whose run then
  // records its decision while the slow one's goes on to its gate and its command.
  await client.workflow.signalWithStart(incidentWorkflow, {
    workflowId,
    taskQueue: scratch.config.temporal.taskQueue,
    args: [{ host, idleMs: 10 * 60_000 }],
    signal: alertsSignal,
    signalArgs: [[alert(`slow-${host}`), alert(`fast-${host}`)]],
  });
  const handle = client.workflow.getHandle(workflowId);
  await eventually("both runs ended", async () => {
    const s: IncidentState = await handle.query(stateQuery);
    return s.mitigations.length === 2 && s.mitigations.every((m) => m.outcome !== "running");
  });
  // A worker that lost the incident replays it from its history: the same commands, in order.
  const history = await handle.fetchHistory();
  await Worker.runReplayHistory(
    { workflowBundle: { codePath: inject("workflowBundlePath") } },
    history,
    workflowId,
  );
});
