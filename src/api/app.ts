import { createRequire } from "node:module";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Client } from "@temporalio/client";
import { Hono } from "hono";
import type { Config } from "../config.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import type { Logger } from "../log.ts";
import { catalogStore } from "../store/catalog.ts";
import type { Db } from "../store/db.ts";
import { agentsApi, agentsOpenApiPaths } from "./agents.ts";
import { operatorAuth, tokensApi } from "./auth.ts";
import { catalogApi } from "./catalog.ts";
import type { HealthCheck } from "./health.ts";
import { docsPage, openApiDocument } from "./openapi.ts";
import { viewsApi } from "./views.ts";

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

export interface ApiDeps {
  db: Db;
  temporal: Client;
  intake: AlertIntake;
  health: HealthCheck;
  log: Logger;
  /** Agent sessions are ended through NATS when their keys are revoked. */
  nats: NatsConnection;
  config: Config;
}

export function versionInfo() {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return { version: `v${version}`, major, minor };
}

export function createApi(deps: ApiDeps) {
  const app = new Hono();

  app.get("/api/version", (c) => c.json(versionInfo()));
  app.get("/health", async (c) => {
    const report = await deps.health();
    return c.json(report, report.status === "up" ? 200 : 503);
  });
  app.get("/openapi.json", (c) => c.json(withOperatorApi(openApiDocument(versionInfo().version))));
  app.get("/docs", (c) => c.html(docsPage()));

  // Every /api route below needs an operator token (but GET /api/version); see auth.ts for who may do what.
  app.use("/api/*", operatorAuth({ db: deps.db, adminToken: deps.config.adminToken }));
  app.route("/api", tokensApi(deps.db));
  app.route(
    "/api",
    agentsApi({ db: deps.db, temporal: deps.temporal, nc: deps.nats, config: deps.config }),
  );
  app.route("/api", catalogApi(catalogStore(deps.db)));
  app.route("/api", viewsApi(deps));

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    deps.log.error("request failed", {
      method: c.req.method,
      path: c.req.path,
      error: err.message,
      stack: err.stack,
    });
    return c.json({ error: "internal error; the request was not applied" }, 500);
  });
  return app;
}

/** The document of the core routes plus the agent fleet's and the bearer-token security scheme. */
function withOperatorApi(doc: ReturnType<typeof openApiDocument>) {
  return {
    ...doc,
    paths: { ...doc.paths, ...agentsOpenApiPaths },
    components: {
      ...doc.components,
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description:
            "an operator token (viewer, responder, admin) or, for POST /api/alert, an ingest token",
        },
      },
    },
    security: [{ bearer: [] }],
  };
}
