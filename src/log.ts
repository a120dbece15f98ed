import { trace } from "@opentelemetry/api";

const LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LEVELS)[number];

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** One JSON object per line on stderr, the shape log collectors expect. */
export function createLogger(level: LogLevel, component = "mm"): Logger {
  const min = LEVELS.indexOf(level);
  const write = (l: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS.indexOf(l) < min) return;
    // The trace a line belongs to (src/tracing.ts): without tracing no span records, so no field.
    const span = trace.getActiveSpan();
    const traceId = span?.isRecording() ? span.spanContext().traceId : undefined;
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: l, component, message, ...(traceId && { trace_id: traceId }), ...fields })}\n`,
    );
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}
