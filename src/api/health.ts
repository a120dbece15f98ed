import type { NatsConnection } from "@nats-io/transport-node";
import type { Client } from "@temporalio/client";
import type { Driver } from "neo4j-driver";
import { type Db, pingDb } from "../store/db.ts";

export type DependencyState = { status: "up" } | { status: "down"; reason: string };
export interface HealthReport {
  status: "up" | "down";
  dependencies: {
    temporal: DependencyState;
    postgres: DependencyState;
    nats: DependencyState;
    neo4j: DependencyState;
  };
}
export type HealthCheck = () => Promise<HealthReport>;

const CHECK_TIMEOUT_MS = 3_000;

async function probe(check: () => Promise<unknown>): Promise<DependencyState> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([check(), timeout]);
    return { status: "up" };
  } catch (err) {
    return { status: "down", reason: (err as Error).message || String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** Each dependency up or down with a reason; the service is up only when all four are. */
export function healthCheck(deps: {
  db: Db;
  temporal: Client;
  nats: NatsConnection;
  neo4j: Driver;
}): HealthCheck {
  return async () => {
    const [temporal, postgres, nats, neo4j] = await Promise.all([
      probe(() => deps.temporal.workflowService.getSystemInfo({})),
      probe(() => pingDb(deps.db)),
      probe(async () => {
        if (deps.nats.isClosed()) throw new Error("connection closed");
        await deps.nats.flush();
      }),
      probe(() => deps.neo4j.getServerInfo()),
    ]);
    const dependencies = { temporal, postgres, nats, neo4j };
    const status = Object.values(dependencies).every((d) => d.status === "up") ? "up" : "down";
    return { status, dependencies };
  };
}
