// What metrics cost on the alert path: the exact calls one alert's intake makes (received, the
// intake timer, stored, signalled, and the engine's decision counters), timed in a tight loop, and
// the cost of one scrape (GET /metrics renders the whole registry on the event loop). Compare the
// per-alert figure with the intake's own latency (mm_alert_intake_seconds, or bench/alerts.ts).
//   npx tsx bench/metrics.ts [iterations=1000000]
import { metrics, metricsText } from "../src/metrics.ts";

const N = Number(process.argv[2] ?? 1_000_000);

function perCall(label: string, work: () => void): number {
  for (let i = 0; i < 10_000; i++) work(); // warm-up: let the JIT settle
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) work();
  const ns = Number(process.hrtime.bigint() - started) / N;
  console.log(`${label.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns`);
  return ns;
}

const baseline = perCall("empty loop (baseline)", () => {});
const alert = perCall("one alert's intake metrics (REST)", () => {
  metrics.alertReceived("rest");
  const stop = metrics.intakeTimer("rest");
  metrics.alertStored("rest");
  metrics.alertSignalled("rest");
  stop();
});
const decisions = perCall("five decisions counted", () => {
  for (const kind of ["node_matched", "mitigation_chosen", "mitigation_succeeded", "x", "y"])
    metrics.decisionRecorded(kind);
});
console.log(
  `per alert, with ~5 decisions: ${((alert + decisions - 2 * baseline) / 1_000).toFixed(2)} µs`,
);

const scrapes = 200;
const started = performance.now();
for (let i = 0; i < scrapes; i++) await metricsText();
console.log(
  `one scrape (render the registry): ${((performance.now() - started) / scrapes).toFixed(2)} ms`,
);
