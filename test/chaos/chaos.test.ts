// The reduced chaos run (README "Chaos run"): the harness of `npm run chaos` with 150 alerts over 10
// hosts, one phase per fault, on a stack of its own (ports + 10000, MM_CHAOS_DATA_DIR or
// .data/chaos-stack) that it stops afterwards. It fails when any phase loses an alert, leaves a
// reached node undecided, decides one twice or has an agent execute an action twice.
import path from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "./environment.ts";
import { type ChaosReport, formatTable, KILLS, runChaos } from "./harness.ts";

const COUNTED = [
  "alertsLost",
  "alertsDuplicated",
  "nodesUndecided",
  "decisionsDuplicated",
  "commandsExecutedTwice",
  "contradictions",
] as const;

it("survives a SIGKILL of every process and server, an agent's, and a cut gateway: nothing lost, decided twice or run twice", async () => {
  const report: ChaosReport = await runChaos({
    hosts: 10,
    alerts: 150,
    rate: 4,
    faults: ["none", ...KILLS, "gateway-nats-cut"],
    cutSeconds: 30,
    outageSeconds: 300,
    settleSeconds: 45,
    dataDir: process.env.MM_CHAOS_DATA_DIR ?? path.join(ROOT, ".data/chaos-stack"),
    portOffset: 10_000,
    keepStack: false,
    // bin/mm runs src/ through tsx when dist/ is stale: slower restarts, no two-minute build here.
    build: false,
    log: (line) => console.log(line),
  });
  console.log(formatTable(report));
  const published = report.phases.reduce((n, p) => n + p.published, 0);
  expect(published).toBe(150);
  // Each alert's mitigation is one agent command: the ledgers must have seen them run.
  expect(report.executions).toBeGreaterThanOrEqual(
    published - report.phases.reduce((n, p) => n + p.nodesUndecided + p.notMitigated, 0),
  );
  expect(report.phases[0]).toMatchObject({ fault: "none", notMitigated: 0, nodesUndecided: 0 });
  const counts = report.phases.map((p) => ({
    fault: p.fault,
    ...Object.fromEntries(COUNTED.map((k) => [k, p[k]])),
    ...(p.undecidedExamples.length && { undecidedExamples: p.undecidedExamples }),
  }));
  expect(counts).toEqual(
    report.phases.map((p) => ({
      fault: p.fault,
      ...Object.fromEntries(COUNTED.map((k) => [k, 0])),
    })),
  );
}, 900_000);
