// The chaos run's own stack and service: every server and role on ports apart from the local
// stack's (default + an offset), with a data directory of its own, because the run SIGKILLs them.
// Nothing here may reach the stack `npm start` and `npm test` share: the ports are checked and the
// variables that place a stack are never taken from the caller's environment or from .env.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";

export const ROOT = path.resolve(import.meta.dirname, "../..");

/** The local stack's ports (scripts/env.sh, src/config.ts): the chaos run never uses one of them. */
const DEFAULT_PORTS = {
  postgres: 5433,
  nats: 4222,
  natsMonitor: 8222,
  temporal: 7233,
  temporalUi: 8233,
  neo4j: 7687,
  api: 8333,
  gateway: 8334,
  /** The pausable proxy between the gateway and NATS (no counterpart in the local stack). */
  natsProxy: 4223,
};
export type Ports = typeof DEFAULT_PORTS;

/** Variables that say where a stack is: taken from neither the caller nor .env, or they could point at the shared one. */
const PLACEMENT = [
  "MM_DATA_DIR",
  "MM_PG_HOST",
  "MM_PG_PORT",
  "MM_PG_USER",
  "MM_PG_DATABASE",
  "MM_PG_EXTERNAL",
  "DATABASE_URL",
  "NATS_URL",
  "MM_NATS_MONITOR_PORT",
  "TEMPORAL_ADDRESS",
  "TEMPORAL_NAMESPACE",
  "TEMPORAL_UI_PORT",
  "NEO4J_URI",
  "MM_API_PORT",
  "MM_GATEWAY_PORT",
  "MM_METRICS_PORT",
  "MM_TEMPORAL_METRICS_ADDRESS",
  "MM_TASK_QUEUE",
  "MM_HOST",
];

export interface ChaosEnvironment {
  dataDir: string;
  ports: Ports;
  /** For scripts/stack.sh: this stack's placement, the secrets come from .env as always. */
  stackEnv: NodeJS.ProcessEnv;
  /** For `bin/mm <role>`; the gateway's NATS_URL is the proxy's (roleEnv). */
  serviceEnv: NodeJS.ProcessEnv;
  urls: { api: string; gateway: string; nats: string; neo4j: string; temporal: string };
}

export function chaosEnvironment(o: { dataDir: string; portOffset: number }): ChaosEnvironment {
  if (!Number.isInteger(o.portOffset) || o.portOffset <= 0 || o.portOffset > 50_000)
    throw new Error(`port offset must be an integer in 1..50000, got ${o.portOffset}`);
  const ports = Object.fromEntries(
    Object.entries(DEFAULT_PORTS).map(([name, port]) => [name, port + o.portOffset]),
  ) as Ports;
  const clash = Object.values(ports).filter((p) => Object.values(DEFAULT_PORTS).includes(p));
  if (clash.length)
    throw new Error(`port offset ${o.portOffset} lands on local-stack ports ${clash}`);
  const fromFile = dotEnv();
  const placed = PLACEMENT.filter((name) => fromFile[name] !== undefined);
  // scripts/env.sh sources .env over the environment: a placement there would win over ours.
  if (placed.length)
    throw new Error(
      `.env sets ${placed.join(", ")}: the chaos run cannot keep its servers apart from that stack`,
    );
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !PLACEMENT.includes(name)),
  );
  const nats = `nats://127.0.0.1:${ports.nats}`;
  const stackEnv = {
    ...base,
    MM_DATA_DIR: o.dataDir,
    MM_PG_PORT: String(ports.postgres),
    NATS_URL: nats,
    MM_NATS_MONITOR_PORT: String(ports.natsMonitor),
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    TEMPORAL_UI_PORT: String(ports.temporalUi),
    NEO4J_URI: `bolt://127.0.0.1:${ports.neo4j}`,
  };
  const serviceEnv = {
    ...stackEnv,
    MM_API_PORT: String(ports.api),
    MM_GATEWAY_PORT: String(ports.gateway),
    // The run loads its own catalog through the REST API (catalog.ts).
    MM_LOAD_DEFAULTS: "false",
    MM_LOG_LEVEL: "info",
    // Commands the agents never acknowledge (a killed agent) expire within the run.
    MM_COMMAND_TTL_SECONDS: "120",
  };
  return {
    dataDir: o.dataDir,
    ports,
    stackEnv,
    serviceEnv,
    urls: {
      api: `http://127.0.0.1:${ports.api}`,
      gateway: `http://127.0.0.1:${ports.gateway}`,
      nats,
      neo4j: stackEnv.NEO4J_URI,
      temporal: stackEnv.TEMPORAL_ADDRESS,
    },
  };
}

/** The installation's secrets (scripts/env.sh writes them into .env on the first `stack.sh up`). */
export function secrets() {
  const file = dotEnv();
  const get = (name: string) => {
    const value = process.env[name] || file[name];
    if (!value) throw new Error(`${name} is not set (scripts/env.sh writes it into .env)`);
    return value;
  };
  return {
    adminToken: get("MM_ADMIN_TOKEN"),
    pgPassword: get("MM_PG_PASSWORD"),
    neo4jPassword: get("NEO4J_PASSWORD"),
    publisherPassword: get("MM_NATS_PUBLISHER_PASSWORD"),
  };
}

function dotEnv(): Record<string, string | undefined> {
  const file = path.join(ROOT, ".env");
  return existsSync(file) ? parseEnv(readFileSync(file, "utf8")) : {};
}
