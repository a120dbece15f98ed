import { type NatsConnection, PermissionViolationError } from "@nats-io/transport-node";
import type { OutboxEvent, SendResult } from "../store/outbox.ts";
import { eventDocument, type SiemSink, withTimeout } from "./sink.ts";

/**
 * Publishes each event on `<subject>.<kind>`; the batch counts as sent once a flush (a round trip
 * to the server) confirms the server has it. The server refuses a subject the user may not
 * publish on without failing the publish: it reports an error before the flush's answer, which
 * fails the batch here, so refused events stay queued instead of being marked sent.
 */
export function natsSink(
  nc: NatsConnection,
  subject: string,
  opts: { timeoutMs: number },
): SiemSink {
  let refusals = 0;
  let refusal: Error | undefined;
  void (async () => {
    for await (const s of nc.status()) {
      if (
        s.type === "error" &&
        s.error instanceof PermissionViolationError &&
        s.error.operation === "publish" &&
        s.error.subject.startsWith(`${subject}.`)
      ) {
        refusals++;
        refusal = s.error;
      }
    }
  })();
  return {
    name: "nats",
    async send(events: OutboxEvent[]): Promise<SendResult> {
      const before = refusals;
      try {
        for (const e of events) nc.publish(`${subject}.${e.kind}`, eventDocument(e));
        await withTimeout(nc.flush(), opts.timeoutMs, "NATS flush");
        // The status loop runs on its own turn: let it see an error that came before the answer.
        await new Promise((resolve) => setImmediate(resolve));
        if (refusals > before) return { sent: 0, error: refusal };
        return { sent: events.length };
      } catch (err) {
        return { sent: 0, error: err as Error };
      }
    },
    async close() {},
  };
}
