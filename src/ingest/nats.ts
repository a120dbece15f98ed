import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { FieldError } from "../domain/alert.ts";
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { rejectAlerts } from "../store/alerts.ts";
import type { Db } from "../store/db.ts";
import type { AlertIntake } from "./intake.ts";

export interface NatsIngestOptions {
  subject: string;
  stream: string;
  consumer: string;
  /** Most alerts stored in one statement (and acknowledged together). */
  batchSize?: number;
}

const NANOS_PER_MS = 1_000_000;
const ACK_WAIT_MS = 30_000;
const RETRY_DELAY_MS = 2_000;
const BATCH_SIZE = 256;
const MAX_BATCHES_IN_FLIGHT = 2;

/** Creates the stream capturing the alert subject, or widens an existing stream to capture it. */
export async function ensureAlertStream(
  nc: NatsConnection,
  opts: NatsIngestOptions,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const existing = await jsm.streams.info(opts.stream).catch(() => null);
  if (!existing) {
    await jsm.streams.add({
      name: opts.stream,
      subjects: [opts.subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
    });
  } else if (!existing.config.subjects?.includes(opts.subject)) {
    await jsm.streams.update(opts.stream, {
      subjects: [...(existing.config.subjects ?? []), opts.subject],
    });
  }
  await jsm.consumers.add(opts.stream, {
    durable_name: opts.consumer,
    filter_subject: opts.subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ACK_WAIT_MS * NANOS_PER_MS,
    max_ack_pending: 10_000,
  });
}

/**
 * The durable JetStream consumer on the alert subject (where Wazuh's integration publishes). It
 * takes whatever has arrived, up to a batch, and hands it to the intake at once: one INSERT for
 * the batch, one signal per host. Messages are acknowledged only after their alerts are stored and
 * handed to Temporal; if anything of the batch fails, the whole batch is redelivered (what was
 * stored is then recognised, not stored twice). Unreadable alerts are kept in rejected_alerts and
 * acknowledged. Two batches at a time, handed to Temporal in their order, so alerts of one host
 * reach its incident in order; while they run the next one gathers, so batches grow with the load
 * and a lone alert waits for nobody.
 */
export async function startNatsIngest(
  deps: { nc: NatsConnection; db: Db; intake: AlertIntake; log: Logger },
  opts: NatsIngestOptions,
) {
  await ensureAlertStream(deps.nc, opts);
  const consumer = await jetstream(deps.nc).consumers.get(opts.stream, opts.consumer);
  const batchSize = opts.batchSize ?? BATCH_SIZE;
  // The client pulls up to this many ahead; with the queue below and the batches in flight, at
  // most about five batches are in memory whatever the backlog in the stream.
  const messages: ConsumerMessages = await consumer.consume({ max_messages: batchSize });
  const queue: JsMsg[] = [];
  let reading = true;
  let wakeWorker: (() => void) | null = null;
  let wakeReader: (() => void) | null = null;
  const wake = (which: "worker" | "reader") => {
    const w = which === "worker" ? wakeWorker : wakeReader;
    if (which === "worker") wakeWorker = null;
    else wakeReader = null;
    w?.();
  };

  const handleBatch = async (batch: JsMsg[], after: Promise<unknown>): Promise<void> => {
    const unreadable: { payload: string; errors: FieldError[] }[] = [];
    const readable: { m: JsMsg; body: unknown }[] = [];
    for (const m of batch) {
      try {
        readable.push({ m, body: m.json() });
      } catch {
        metrics.unreadableAlert("nats");
        unreadable.push({
          payload: m.string(),
          errors: [{ field: "(root)", message: "not valid JSON" }],
        });
      }
    }
    try {
      const results = await deps.intake.batch(
        readable.map(({ body }) => ({ input: body })),
        "nats",
        { after },
      );
      results.forEach((r, i) => {
        if (!r.ok) unreadable.push({ payload: readable[i]?.m.string() ?? "", errors: r.errors });
      });
      // Rejections and acknowledgements in batch order too (the previous batch never rejects).
      await after;
      await rejectAlerts(deps.db, "nats", unreadable);
      for (const m of batch) m.ack();
    } catch (err) {
      deps.log.warn("alerts from NATS not taken yet, redelivering", {
        error: (err as Error).message,
        count: batch.length,
        firstSeq: batch[0]?.seq,
      });
      for (const m of batch) m.nak(RETRY_DELAY_MS);
    }
  };

  // Two batches in flight: one is stored while the one before it is handed to Temporal (or
  // stored too), on the database's second connection and core. Hand-offs stay in batch order.
  const inFlight = new Set<Promise<void>>();
  const worker = (async () => {
    let previous: Promise<void> = Promise.resolve();
    for (;;) {
      while (queue.length === 0 && reading) await new Promise<void>((r) => (wakeWorker = r));
      if (queue.length === 0) break;
      const batch = queue.splice(0, batchSize);
      wake("reader");
      const handled: Promise<void> = handleBatch(batch, previous).finally(() =>
        inFlight.delete(handled),
      );
      inFlight.add(handled);
      previous = handled;
      if (inFlight.size >= MAX_BATCHES_IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  })();

  const reader = (async () => {
    try {
      for await (const m of messages) {
        queue.push(m);
        wake("worker");
        // Bounded: the reader stops pulling while two batches wait.
        while (queue.length >= 2 * batchSize) await new Promise<void>((r) => (wakeReader = r));
      }
    } finally {
      reading = false;
      wake("worker");
    }
  })();

  return {
    async stop(): Promise<void> {
      await messages.close();
      wake("reader");
      await reader;
      await worker;
    },
  };
}
