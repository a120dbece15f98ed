// Drains the SIEM outbox (src/store/outbox.ts): one loop per sink, so a sink that is down holds
// back only its own events, and never the mitigation that wrote them (they wait in PostgreSQL).
import type { Logger } from "../log.ts";
import type { Db } from "../store/db.ts";
import { forwardBatch, registerSinks, trimQueue } from "../store/outbox.ts";
import type { SiemSink } from "./sink.ts";

export interface ForwarderOptions {
  /** Unsent events kept per sink (MM_SIEM_QUEUE_MAX). */
  queueMax: number;
  /** How often an idle sink looks for new events. */
  pollMs?: number;
  batchSize?: number;
  /** Retry delays after a failure double from the first up to the last. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export async function startSiemForwarder(
  deps: { db: Db; log: Logger; sinks: SiemSink[] },
  opts: ForwarderOptions,
): Promise<{ stop(): Promise<void> }> {
  const { db, log } = deps;
  const pollMs = opts.pollMs ?? 500;
  const batchSize = opts.batchSize ?? 100;
  const minBackoffMs = opts.minBackoffMs ?? 500;
  const maxBackoffMs = opts.maxBackoffMs ?? 30_000;
  await registerSinks(
    db,
    deps.sinks.map((s) => s.name),
  );

  let stopped = false;
  const wakers = new Set<() => void>();
  /** Sleeps, or returns early when the forwarder stops. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakers.add(wake);
    });

  async function run(sink: SiemSink): Promise<void> {
    let backoff = 0;
    let retryAt = 0;
    while (!stopped) {
      try {
        // Trimmed on every turn, also while the sink is failing: that is when the queue grows.
        const trimmed = await trimQueue(db, sink.name, opts.queueMax);
        if (trimmed?.dropped)
          log.warn("SIEM queue over its bound: oldest unsent events dropped", {
            sink: sink.name,
            dropped: trimmed.dropped,
            dropped_total: trimmed.droppedTotal,
            queue_max: opts.queueMax,
          });
        if (Date.now() >= retryAt) {
          const result = await forwardBatch(db, sink.name, batchSize, (events) =>
            sink.send(events),
          );
          if (result?.error) {
            backoff = Math.min(maxBackoffMs, backoff ? backoff * 2 : minBackoffMs);
            retryAt = Date.now() + backoff;
            log.warn("SIEM sink failed; retrying", {
              sink: sink.name,
              error: result.error.message,
              sent: result.sent,
              retry_in_ms: backoff,
            });
          } else {
            if (backoff) log.info("SIEM sink recovered", { sink: sink.name });
            backoff = 0;
            // A full batch means more are waiting: no pause.
            if (result && result.batch === batchSize) continue;
          }
        }
      } catch (err) {
        // PostgreSQL unreachable: the events are safe there, try again later.
        log.warn("SIEM forwarder step failed", { sink: sink.name, error: String(err) });
      }
      await pause(Math.max(0, Math.min(pollMs, retryAt - Date.now())) || pollMs);
    }
  }

  const loops = deps.sinks.map(run);
  return {
    async stop() {
      stopped = true;
      for (const wake of [...wakers]) wake();
      await Promise.all(loops);
      await Promise.all(deps.sinks.map((s) => s.close()));
    },
  };
}
