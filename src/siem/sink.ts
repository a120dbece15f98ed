import type { OutboxEvent, SendResult } from "../store/outbox.ts";

/** Where forwarded events go. `send` delivers in order and says how many got through. */
export interface SiemSink {
  /** The sink's row in siem_sinks: its own queue, cursor and counters. */
  readonly name: string;
  send(events: OutboxEvent[]): Promise<SendResult>;
  close(): Promise<void>;
}

/** The JSON document a sink carries for one event. */
export const eventDocument = (e: OutboxEvent) => JSON.stringify(e.event);

/** Rejects after `ms` unless `promise` settles first; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
