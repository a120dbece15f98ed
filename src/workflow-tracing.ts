// Workflow interceptors bundled into the workflow code (src/worker.ts): OpenTelemetry's, but only
// for executions and signals that carry a trace context, which clients add only while tracing is
// on. Untraced, every call goes straight through: OpenTelemetry's interceptors would otherwise
// make a span for every signal and activity, and a burst of thousands of alert signals to one
// incident would cost seconds of one activation (past the SDK's deadline, which stops the worker).
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from "@temporalio/interceptors-opentelemetry/lib/workflow/index.js";
import type { WorkflowInterceptors } from "@temporalio/workflow";

const TRACE_HEADER = "_tracer-data";

export const interceptors = (): WorkflowInterceptors => {
  let traced = false;
  const inbound = new OpenTelemetryInboundInterceptor();
  const outbound = new OpenTelemetryOutboundInterceptor();
  const internals = new OpenTelemetryInternalsInterceptor();
  return {
    inbound: [
      {
        execute(input, next) {
          traced = input.headers[TRACE_HEADER] !== undefined;
          return traced ? inbound.execute(input, next) : next(input);
        },
        handleSignal(input, next) {
          return input.headers?.[TRACE_HEADER] !== undefined
            ? inbound.handleSignal(input, next)
            : next(input);
        },
      },
    ],
    outbound: [
      {
        scheduleActivity: (input, next) =>
          traced ? outbound.scheduleActivity(input, next) : next(input),
        scheduleLocalActivity: (input, next) =>
          traced ? outbound.scheduleLocalActivity(input, next) : next(input),
        startChildWorkflowExecution: (input, next) =>
          traced ? outbound.startChildWorkflowExecution(input, next) : next(input),
        continueAsNew: (input, next) =>
          traced ? outbound.continueAsNew(input, next) : next(input),
        signalWorkflow: (input, next) =>
          traced ? outbound.signalWorkflow(input, next) : next(input),
      },
    ],
    internals: [
      { dispose: (input, next) => (traced ? internals.dispose(input, next) : next(input)) },
    ],
  };
};
