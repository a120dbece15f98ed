// OpenTelemetry tracing: the one place the SDK is set up. Off unless the standard OTEL_* variables
// ask for an OTLP exporter; off, every span below is the API's no-op and costs next to nothing.
// A trace follows an alert from its intake (REST, NATS or an agent) through the incident and
// mitigation workflows and the runAgentCommand activity (Temporal's interceptors carry the
// context in headers), to the gateway, which stores nothing of it but reads the activity's
// context from the command row and hands the agent a `traceparent` in the command frame.
import { fileURLToPath } from "node:url";
import {
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { Resource } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  NoopSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-node";
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
} from "@temporalio/interceptors-opentelemetry";

const TRACER = "mitigation-manager";
const propagator = new W3CTraceContextPropagator();

/** The workflow interceptors, bundled into the workflow code (src/worker.ts). */
export const workflowInterceptorModule = fileURLToPath(
  new URL(`./workflow-tracing.${import.meta.url.endsWith(".js") ? "js" : "ts"}`, import.meta.url),
);

let installed: {
  processor: SpanProcessor;
  resource: Resource;
  provider: NodeTracerProvider;
} | null = null;

/**
 * Whether the environment asks for traces: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint with
 * the exporter left unset. OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none win.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === "true") return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporter) return exporter.split(",").includes("otlp");
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Installs the SDK once per process: with `processor` (tests give an in-memory one), or the OTLP
 * exporter the OTEL_* variables configure, or nothing when they do not ask for traces.
 */
export function installTracing(processor?: SpanProcessor): boolean {
  if (installed) return true;
  if (!processor && !tracingRequested()) return false;
  const resource = new Resource({
    "service.name": process.env.OTEL_SERVICE_NAME || "mitigation-manager",
  });
  const spanProcessor = processor ?? new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register({ propagator });
  installed = { processor: spanProcessor, resource, provider };
  return true;
}

/** Sends what is buffered; at shutdown. */
export async function flushTracing(): Promise<void> {
  await installed?.provider.forceFlush();
}

export const tracingEnabled = () => installed !== null;

/** Client interceptors: a workflow start or signal carries the caller's context. */
export function clientInterceptors() {
  return installed ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } : undefined;
}

/**
 * The worker's part. The workflow interceptors are in the bundle whether tracing is on or not (a
 * bundle is built once); their spans go to the sink, which discards them when tracing is off.
 */
export function workerTracing() {
  return {
    sinks: {
      exporter: makeWorkflowExporter(
        installed?.processor ?? new NoopSpanProcessor(),
        installed?.resource ?? Resource.empty(),
      ),
    },
    activityInterceptors: installed
      ? [
          (ctx: ConstructorParameters<typeof OpenTelemetryActivityInboundInterceptor>[0]) => ({
            inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
            outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
          }),
        ]
      : [],
  };
}

/** Runs `fn` in a new span, a child of `parent` (default: the active context); records failures. */
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean | undefined>,
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return trace.getTracer(TRACER).startActiveSpan(name, { attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The W3C traceparent of the active span (or of `ctx`); undefined without a sampled span. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  if (!trace.getSpan(ctx)?.isRecording()) return undefined;
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

/** The context a stored or received traceparent continues (the root context when absent). */
export function contextOf(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** The active span's trace id, for log lines. */
export function activeTraceId(): string | undefined {
  const span = trace.getActiveSpan();
  return span?.isRecording() ? span.spanContext().traceId : undefined;
}

/**
 * Starts a span continuing a stored or received trace; with no traceparent (tracing was off where
 * the trace began) nothing is traced. The caller ends it; `traceparent` is the span's own.
 */
export function startSpanFrom(
  name: string,
  traceparent: string | null | undefined,
  attributes: Record<string, string | number | boolean>,
): { span: Span; traceparent: string | undefined } | null {
  if (!traceparent || !installed) return null;
  const span = trace.getTracer(TRACER).startSpan(name, { attributes }, contextOf(traceparent));
  return { span, traceparent: traceparentOf(trace.setSpan(ROOT_CONTEXT, span)) };
}
