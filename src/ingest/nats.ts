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
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { rejectAlert } from "../store/alerts.ts";
import type { Db } from "../store/db.ts";
import type { AlertIntake } from "./intake.ts";

export interface NatsIngestOptions {
  subject: string;
  stream: string;
  consumer: string;
  /** Alerts processed at once; alerts of one host are still handled in order. */
  concurrency?: number;
}

const NANOS_PER_MS = 1_000_000;
const ACK_WAIT_MS = 30_000;
const RETRY_DELAY_MS = 2_000;

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
 * The durable JetStream consumer on the alert subject (where Wazuh's integration publishes). A
 * message is acknowledged only after its alert is stored and handed to Temporal; on any failure it
 * is redelivered. Unreadable alerts are kept in rejected_alerts and acknowledged.
 */
export async function startNatsIngest(
  deps: { nc: NatsConnection; db: Db; intake: AlertIntake; log: Logger },
  opts: NatsIngestOptions,
) {
  await ensureAlertStream(deps.nc, opts);
  const consumer = await jetstream(deps.nc).consumers.get(opts.stream, opts.consumer);
  const concurrency = opts.concurrency ?? 64;
  const messages: ConsumerMessages = await consumer.consume({ max_messages: concurrency * 2 });
  const perHost = new Map<string, Promise<void>>();
  let inFlight = 0;
  let wake: (() => void) | null = null;

  const handle = async (m: JsMsg, body: unknown): Promise<void> => {
    try {
      const result = await deps.intake(body, "nats");
      if (!result.ok) await rejectAlert(deps.db, "nats", m.string(), result.errors);
      m.ack();
    } catch (err) {
      deps.log.warn("alert from NATS not taken yet, redelivering", {
        error: (err as Error).message,
        seq: m.seq,
      });
      m.nak(RETRY_DELAY_MS);
    }
  };

  const loop = (async () => {
    for await (const m of messages) {
      let body: unknown;
      try {
        body = m.json();
      } catch {
        metrics.unreadableAlert("nats");
        await rejectAlert(deps.db, "nats", m.string(), [
          { field: "(root)", message: "not valid JSON" },
        ]).then(
          () => m.ack(),
          () => m.nak(RETRY_DELAY_MS),
        );
        continue;
      }
      while (inFlight >= concurrency) await new Promise<void>((r) => (wake = r));
      inFlight++;
      const key = hostKey(body);
      const previous = perHost.get(key) ?? Promise.resolve();
      const next = previous.then(() => handle(m, body));
      perHost.set(key, next);
      void next.finally(() => {
        inFlight--;
        if (perHost.get(key) === next) perHost.delete(key);
        wake?.();
        wake = null;
      });
    }
  })();

  return {
    async stop(): Promise<void> {
      await messages.close();
      await loop;
      await Promise.allSettled([...perHost.values()]);
    },
  };
}

/** Orders alerts of one host; the key only needs to be stable, not validated. */
function hostKey(body: unknown): string {
  const b = body as { agent?: { name?: unknown }; host?: { name?: unknown } } | null;
  return String(b?.agent?.name ?? b?.host?.name ?? "");
}
