import { readFileSync } from "node:fs";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { TLSConfig } from "@temporalio/client";
import neo4j, { type Driver } from "neo4j-driver";
import { type Config, ConfigError, type NatsUser } from "./config.ts";

/** The environment variable holding each NATS user's password (.env.example documents them). */
const NATS_PASSWORD_VARIABLE: Record<NatsUser, string> = {
  api: "MM_NATS_API_PASSWORD",
  worker: "MM_NATS_WORKER_PASSWORD",
  ingest: "MM_NATS_INGEST_PASSWORD",
  gateway: "MM_NATS_GATEWAY_PASSWORD",
};

/**
 * Connects as the role's own NATS user. Each user has an inbox prefix of its own, so the server can
 * let a role read the replies to its requests and nobody else's.
 */
export async function connectNatsAs(
  nats: Config["nats"],
  user: NatsUser,
  options: { reconnect?: boolean } = {},
): Promise<NatsConnection> {
  const pass = nats.passwords[user];
  if (!pass)
    throw new ConfigError(`${NATS_PASSWORD_VARIABLE[user]} is not set: the ${user} role needs it`);
  return connect({
    servers: nats.url,
    name: `mitigation-manager-${user}`,
    user,
    pass,
    inboxPrefix: natsInboxPrefix(user),
    maxReconnectAttempts: options.reconnect === false ? 0 : -1,
  });
}

/** Replies to a user's requests (and JetStream deliveries to its pull consumers) arrive under it. */
export const natsInboxPrefix = (user: string) => `_INBOX_${user}`;

export function openNeo4j(config: Config["neo4j"]): Driver {
  if (!config.password) throw new ConfigError("NEO4J_PASSWORD is not set");
  return neo4j.driver(config.uri, neo4j.auth.basic(config.user, config.password), {
    connectionAcquisitionTimeout: 10_000,
    // The driver's own retries of a read last no longer than the query's time limit; past it the
    // engine's activity fails as retryable and Temporal retries it, visibly and without a cap.
    maxTransactionRetryTime: config.queryTimeoutMs,
  });
}

/** Address and, when configured, TLS of the Temporal frontend (client and worker alike). */
export function temporalConnection(temporal: Config["temporal"]): {
  address: string;
  tls?: TLSConfig;
} {
  const tls = temporal.tls;
  if (!tls) return { address: temporal.address };
  return {
    address: temporal.address,
    tls: {
      serverRootCACertificate: tls.caFile ? readPem(tls.caFile, "TEMPORAL_TLS_CA") : undefined,
      clientCertPair:
        tls.certFile && tls.keyFile
          ? {
              crt: readPem(tls.certFile, "TEMPORAL_TLS_CERT"),
              key: readPem(tls.keyFile, "TEMPORAL_TLS_KEY"),
            }
          : undefined,
    },
  };
}

function readPem(file: string, variable: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${file} (${(err as Error).message})`);
  }
}
