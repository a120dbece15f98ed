import type { NatsConnection } from "@nats-io/transport-node";
import type { OutboxEvent, SendResult } from "../store/outbox.ts";
import { eventDocument, type SiemSink, withTimeout } from "./sink.ts";

/**
 * Publishes each event on `<subject>.<kind>`; the batch counts as sent once a flush (a round trip
 * to the server) confirms the server has it. The connection is the worker role's own.
 */
export function natsSink(
  nc: NatsConnection,
  subject: string,
  opts: { timeoutMs: number },
): SiemSink {
  return {
    name: "nats",
    async send(events: OutboxEvent[]): Promise<SendResult> {
      try {
        for (const e of events) nc.publish(`${subject}.${e.kind}`, eventDocument(e));
        await withTimeout(nc.flush(), opts.timeoutMs, "NATS flush");
        return { sent: events.length };
      } catch (err) {
        return { sent: 0, error: err as Error };
      }
    },
    async close() {},
  };
}
