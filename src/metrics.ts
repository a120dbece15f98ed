// The service's Prometheus metrics, defined once: every name is `mm_…` with its HELP text here, and
// the rest of the code only calls the functions below (no prom-client import elsewhere), so what
// is measured and how it is named stays in one place. One registry per process: every role that
// runs in the process reports into it, and GET /metrics of any of its listeners shows all of it.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const registry = new Registry();
// Process CPU, memory, event-loop lag and GC: what tells a slow role from a slow dependency.
collectDefaultMetrics({ register: registry, prefix: "mm_" });

export type Transport = "rest" | "nats" | "agent";

const alertsReceived = new Counter({
  name: "mm_alerts_received_total",
  help: "Alerts that reached the intake, valid or not, by transport",
  labelNames: ["transport"] as const,
  registers: [registry],
});
const alertsRejected = new Counter({
  name: "mm_alerts_rejected_total",
  help: "Alerts refused as malformed (kept in rejected_alerts), by transport",
  labelNames: ["transport"] as const,
  registers: [registry],
});
const alertsStored = new Counter({
  name: "mm_alerts_stored_total",
  help: "Alerts stored for the engine, by transport; a repeated delivery of an alert already handed off is not counted",
  labelNames: ["transport"] as const,
  registers: [registry],
});
const alertsSignalled = new Counter({
  name: "mm_alerts_signalled_total",
  help: "Alerts handed to their host's incident workflow (signalWithStart), by transport",
  labelNames: ["transport"] as const,
  registers: [registry],
});
const alertsWithoutFlow = new Counter({
  name: "mm_alerts_without_flow_total",
  help: "Alerts stored whose techniques reach no attack flow: not signalled to Temporal, by transport",
  labelNames: ["transport"] as const,
  registers: [registry],
});
const intakeSeconds = new Histogram({
  name: "mm_alert_intake_seconds",
  help: "Time to validate, store and signal one alert, by transport",
  labelNames: ["transport"] as const,
  buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});
const decisions = new Counter({
  name: "mm_decisions_total",
  help: "Engine decisions recorded (each once), by kind: node_matched, mitigation_chosen, mitigation_succeeded, …",
  labelNames: ["kind"] as const,
  registers: [registry],
});
const mitigationSeconds = new Histogram({
  name: "mm_mitigation_duration_seconds",
  help: "From a mitigation's choice to its recorded outcome, by outcome (succeeded, failed)",
  labelNames: ["outcome"] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [registry],
});
const alertToCommandSeconds = new Histogram({
  name: "mm_alert_to_command_seconds",
  help: "From an alert's arrival to the choice of the mitigation whose agent commands it issues",
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});
const commands = new Counter({
  name: "mm_commands_total",
  help: "Agent command transitions, by state: issued (a retried issue counts again), delivered, acknowledged, completed, failed, expired",
  labelNames: ["state"] as const,
  registers: [registry],
});
const gatewaySessions = new Gauge({
  name: "mm_gateway_sessions",
  help: "Agent sessions open on this gateway (welcomed, not yet closed)",
  registers: [registry],
});
const frames = new Counter({
  name: "mm_gateway_frames_total",
  help: "WebSocket frames between this gateway and its agents, by direction (in, out)",
  labelNames: ["direction"] as const,
  registers: [registry],
});
const ackSeconds = new Histogram({
  name: "mm_gateway_ack_seconds",
  help: "From sending a command to an agent to its acknowledgment",
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const metrics = {
  alertReceived: (t: Transport) => alertsReceived.inc({ transport: t }),
  alertRejected: (t: Transport) => alertsRejected.inc({ transport: t }),
  alertStored: (t: Transport) => alertsStored.inc({ transport: t }),
  /** Refused before the intake could read it (not JSON): received and rejected at once. */
  unreadableAlert: (t: Transport) => {
    alertsReceived.inc({ transport: t });
    alertsRejected.inc({ transport: t });
  },
  alertSignalled: (t: Transport) => alertsSignalled.inc({ transport: t }),
  alertWithoutFlow: (t: Transport) => alertsWithoutFlow.inc({ transport: t }),
  /** Starts the intake timer; the returned function stops it. */
  intakeTimer: (t: Transport) => intakeSeconds.startTimer({ transport: t }),
  decisionRecorded: (kind: string) => decisions.inc({ kind }),
  mitigationFinished: (outcome: "succeeded" | "failed", seconds: number) =>
    mitigationSeconds.observe({ outcome }, seconds),
  alertToCommand: (seconds: number) => alertToCommandSeconds.observe(seconds),
  command: (
    state: "issued" | "delivered" | "acknowledged" | "completed" | "failed" | "expired",
    n = 1,
  ) => commands.inc({ state }, n),
  sessionOpened: () => gatewaySessions.inc(),
  sessionClosed: () => gatewaySessions.dec(),
  frame: (direction: "in" | "out") => frames.inc({ direction }),
};

/** How many sent commands one session remembers for ack latency; older ones are forgotten. */
const ACK_CLOCK_LIMIT = 1_000;

/**
 * Times commands from sending to acknowledgment within one agent session. Bounded: an agent that
 * never acknowledges costs at most ACK_CLOCK_LIMIT entries (the oldest are dropped unmeasured).
 */
export function ackClock() {
  const sent = new Map<string, number>();
  return {
    sent(commandId: string): void {
      sent.delete(commandId);
      sent.set(commandId, performance.now());
      if (sent.size > ACK_CLOCK_LIMIT) sent.delete(sent.keys().next().value as string);
    },
    /** A recorded (first) acknowledgment: counted, and timed when this session sent it. */
    acknowledged(commandId: string): void {
      commands.inc({ state: "acknowledged" });
      const at = sent.get(commandId);
      if (at === undefined) return;
      sent.delete(commandId);
      ackSeconds.observe((performance.now() - at) / 1_000);
    },
  };
}

/** What GET /metrics answers: the Prometheus text exposition format. */
export const METRICS_CONTENT_TYPE = registry.contentType;

export function metricsText(): Promise<string> {
  return registry.metrics();
}
