import { createRequire } from "node:module";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Client } from "@temporalio/client";
import type { Driver } from "neo4j-driver";
import { type Db, pingDb } from "../store/db.ts";
import type { AuthEnv, Principal } from "./auth.ts";
import { json } from "./http.ts";

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

const Dependency = z.union([
  z.object({ status: z.literal("up") }),
  z.object({ status: z.literal("down"), reason: z.string() }),
]);
const Health = z
  .object({
    status: z.enum(["up", "down"]),
    dependencies: z.object({
      temporal: Dependency,
      postgres: Dependency,
      nats: Dependency,
      neo4j: Dependency,
    }),
  })
  .openapi("Health");

const Liveness = z.object({ status: z.literal("up") }).openapi("Liveness");

const Version = z
  .object({ version: z.string().openapi({ example: "v0.1.0" }), major: z.int(), minor: z.int() })
  .openapi("Version");

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

export function versionInfo() {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return { version: `v${version}`, major, minor };
}

/** GET /health and GET /api/version: public, for probes and clients checking compatibility. */
export function healthApi(health: HealthCheck) {
  return new OpenAPIHono<AuthEnv>()
    .openapi(
      createRoute({
        method: "get",
        path: "/health",
        tags: ["service"],
        summary:
          "Liveness for anyone; with a viewer's token, Temporal, PostgreSQL, NATS and Neo4j each up or down with a reason",
        description:
          "Without a token (or with an ingest token) the answer is only that the service answers: no dependency is probed and nothing about them is told.",
        security: [{}, { bearer: [] }],
        responses: {
          200: {
            description: "the service answers (and, with details, every dependency is up)",
            content: json(z.union([Health, Liveness])),
          },
          503: { description: "a dependency is down (details only)", content: json(Health) },
        },
      }),
      async (c) => {
        const principal = c.get("principal") as Principal | undefined;
        if (!principal || principal.role === "ingest")
          return c.json({ status: "up" as const }, 200);
        const report = await health();
        return report.status === "up" ? c.json(report, 200) : c.json(report, 503);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/api/version",
        tags: ["service"],
        summary: "Service version",
        security: [],
        responses: { 200: { description: "version", content: json(Version) } },
      }),
      (c) => c.json(versionInfo(), 200),
    );
}
