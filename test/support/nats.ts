import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadConfig } from "../../src/config.ts";
import { natsInboxPrefix } from "../../src/connections.ts";

/**
 * Connects as the NATS user Wazuh's integration uses: it may publish alerts and nothing else.
 * Its password is one of the secrets scripts/env.sh keeps in .env.
 */
export function connectPublisher(): Promise<NatsConnection> {
  const pass = process.env.MM_NATS_PUBLISHER_PASSWORD;
  if (!pass)
    throw new Error("MM_NATS_PUBLISHER_PASSWORD is not set (scripts/env.sh writes it into .env)");
  return connect({
    servers: loadConfig().nats.url,
    user: "publisher",
    pass,
    inboxPrefix: natsInboxPrefix("publisher"),
    maxReconnectAttempts: 0,
  });
}

/** Publishes to JetStream and waits for the stream's acknowledgement. */
export const publishAlert = (nc: NatsConnection, subject: string, payload: unknown) =>
  jetstream(nc).publish(subject, typeof payload === "string" ? payload : JSON.stringify(payload));
