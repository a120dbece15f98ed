import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.ts";
import { natsSink } from "./nats.ts";
import type { SiemSink } from "./sink.ts";
import { syslogSink } from "./syslog.ts";

/** A send that takes longer fails and is retried: a hung collector must not hold the queue's lock. */
const SEND_TIMEOUT_MS = 10_000;

/** The sinks MM_SIEM_SYSLOG_URL and MM_SIEM_NATS_SUBJECT configure. */
export async function siemSinks(
  siem: Config["siem"],
  connectNats: () => Promise<NatsConnection>,
): Promise<SiemSink[]> {
  const sinks: SiemSink[] = [];
  if (siem.syslogUrl) sinks.push(syslogSink(siem.syslogUrl, { timeoutMs: SEND_TIMEOUT_MS }));
  if (siem.natsSubject)
    sinks.push(natsSink(await connectNats(), siem.natsSubject, { timeoutMs: SEND_TIMEOUT_MS }));
  return sinks;
}
