import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/log.ts";
import { inSpan, installTracing } from "../../src/tracing.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { eventually } from "../support/wait.ts";
import { type Frame, succeed } from "./support/agent.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

// One alert traced end to end through the real service: every span in memory, as exported.
const exporter = new InMemorySpanExporter();
let g: GatewayTestContext;
beforeAll(async () => {
  // Before the service starts: its client, worker and gateway pick the provider up.
  installTracing(new SimpleSpanProcessor(exporter));
  // A short idle time ends the incident workflow, so its own span ends (and is exported) too.
  g = await gatewayTestContext("gw_tracing", { loadDefaults: true, incidentIdleMs: 2_000 });
});
afterAll(async () => {
  await g?.cleanup();
});

const spans = () => exporter.getFinishedSpans();
const parentOf = (s: ReadableSpan) => s.parentSpanId;

/** The span's ancestors among the exported ones, nearest first; stops at one not exported. */
function ancestry(span: ReadableSpan): ReadableSpan[] {
  const byId = new Map(spans().map((s) => [s.spanContext().spanId, s]));
  const chain: ReadableSpan[] = [span];
  for (let p = parentOf(span); p; ) {
    const parent = byId.get(p);
    if (!parent) throw new Error(`span ${p} (parent of ${chain.at(-1)?.name}) was not exported`);
    chain.push(parent);
    p = parentOf(parent);
  }
  return chain;
}

describe("tracing", () => {
  it("follows one alert from its intake through the workflows and the activity to the agent's completion, in one trace", async () => {
    const host = g.ctx.host("traced");
    const agent = await g.agent(host, { autoAnswer: succeed });
    const alert = wazuhAlert("100002-ncat-connection", host);
    expect((await g.rest.post("/api/alert", alert)).status).toBe(202);

    await eventually("both commands completed", () =>
      spans().filter((s) => s.name === "gateway.completion").length === 2 ? true : undefined,
    );
    // The incident (its mitigation runs inside it) ends after its idle time; then every span of
    // the trace is exported.
    await eventually(
      "the incident workflow's span",
      () => spans().some((s) => s.name === "RunWorkflow:incidentWorkflow"),
      20_000,
    );

    const intake = spans().find(
      (s) => s.name === "alert.intake" && s.attributes["mm.incident.id"] === `incident/${host}`,
    );
    expect(intake).toBeDefined();
    expect(intake?.parentSpanId).toBeUndefined();
    expect(intake?.attributes["mm.alert.source"]).toBe("rest");
    const traceId = intake?.spanContext().traceId;

    const frames = agent.commands() as Frame[];
    expect(frames.map((f) => f.command)).toEqual(["kill-process", "block-ip"]);
    for (const frame of frames) {
      const completion = spans().find(
        (s) => s.name === "gateway.completion" && s.attributes["mm.command.id"] === frame.id,
      ) as ReadableSpan;
      const chain = ancestry(completion);
      // Every link of the chain, nearest first, back to the intake, all in the alert's trace.
      expect(chain.every((s) => s.spanContext().traceId === traceId)).toBe(true);
      expect(chain.at(-1)).toBe(intake);
      const names = chain.map((s) => s.name);
      const order = [
        "gateway.completion",
        "gateway.send",
        "RunActivity:runAgentCommand",
        "StartActivity:runAgentCommand",
        "RunWorkflow:incidentWorkflow",
        "SignalWithStartWorkflow:incidentWorkflow",
        "alert.intake",
      ];
      expect(names.filter((n) => order.includes(n))).toEqual(order);
      // The frame carried the send span's context: an agent can continue the trace.
      const send = chain[1] as ReadableSpan;
      expect(frame.traceparent).toBe(`00-${traceId}-${send.spanContext().spanId}-01`);
      expect(send.attributes).toMatchObject({
        "mm.command.id": frame.id,
        "mm.command": frame.command,
      });
    }
    // The ack is traced as well, beside the completion.
    expect(
      spans().filter((s) => s.name === "gateway.ack" && s.spanContext().traceId === traceId),
    ).toHaveLength(2);
  });
});

describe("log lines", () => {
  it("carry the active span's trace id, and none outside a span", async () => {
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    let traceId = "";
    try {
      const log = createLogger("info");
      await inSpan("test.span", {}, async (span) => {
        traceId = span.spanContext().traceId;
        log.info("inside");
      });
      log.info("outside");
    } finally {
      process.stderr.write = write;
    }
    const [inside, outside] = lines.map((l) => JSON.parse(l));
    expect(inside).toMatchObject({ message: "inside", trace_id: traceId });
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(outside.message).toBe("outside");
    expect(outside).not.toHaveProperty("trace_id");
  });
});
