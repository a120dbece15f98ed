import { OpenAPIHono } from "@hono/zod-openapi";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Client } from "@temporalio/client";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { gatePreview } from "../activities/approvals.ts";
import type { engineDryRun } from "../activities/engine.ts";
import type { Config } from "../config.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import type { Logger } from "../log.ts";
import { catalogStore } from "../store/catalog.ts";
import type { Db } from "../store/db.ts";
import { rulesStore } from "../store/rules.ts";
import { agentsApi } from "./agents.ts";
import { alertsApi } from "./alerts.ts";
import { approvalsApi } from "./approvals.ts";
import { auditApi } from "./audit.ts";
import { type AuthEnv, operatorAuth } from "./auth.ts";
import { catalogApi } from "./catalog.ts";
import { commandsApi } from "./commands.ts";
import { consoleApi } from "./console.ts";
import { docsApi } from "./docs.ts";
import { dryRunApi } from "./dry-run.ts";
import { type HealthCheck, healthApi } from "./health.ts";
import { invalid, storableText, validationHook } from "./http.ts";
import { incidentsApi } from "./incidents.ts";
import { keysApi } from "./keys.ts";
import { metricsApi } from "./metrics.ts";
import { modesApi } from "./modes.ts";
import { rulesApi } from "./rules.ts";
import { rulesRolloutApi } from "./rules-rollout.ts";
import { sessionApi } from "./session.ts";
import { tokensApi } from "./tokens.ts";

export interface ApiDeps {
  db: Db;
  temporal: Client;
  intake: AlertIntake;
  /** The engine's rehearsal of an alert (POST /api/alert/dry-run). */
  dryRun: ReturnType<typeof engineDryRun>;
  gatePreview: ReturnType<typeof gatePreview>;
  health: HealthCheck;
  log: Logger;
  /** Agent sessions are ended through NATS when their keys are revoked. */
  nats: NatsConnection;
  config: Config;
}

export function createApi(deps: ApiDeps) {
  const { db, temporal, config } = deps;
  const onlineWindowMs = config.gateway.heartbeatMs * config.gateway.missedHeartbeats;
  const app = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description:
      "an operator token (viewer, responder, admin) or, for POST /api/alert, an ingest token",
  });

  // Nothing reads a body past the limit: 413 before it is buffered.
  app.use(
    "*",
    bodyLimit({
      maxSize: config.api.maxBodyBytes,
      onError: (c) =>
        c.json(
          { error: `request body over ${config.api.maxBodyBytes} bytes (MM_API_MAX_BODY_BYTES)` },
          413,
        ),
    }),
  );
  // Every /api route needs an operator token (but GET /api/version); see auth.ts for who may do what.
  const auth = operatorAuth({ db, adminToken: config.adminToken, rateLimit: config.api.rateLimit });
  app.use("/api/*", auth);
  app.use("/api/*", storableText);
  app.use("/health", auth);
  app.use("/metrics", auth);
  app.route("/", healthApi(deps.health));
  app.route("/", metricsApi());
  app.route("/api", catalogApi(catalogStore(db)));
  app.route("/api", alertsApi(deps));
  app.route("/api", dryRunApi(deps));
  app.route("/api", incidentsApi({ ...deps, taskQueue: config.temporal.taskQueue }));
  app.route("/api", agentsApi({ db, temporal, onlineWindowMs }));
  app.route("/api", keysApi({ db, nc: deps.nats, onlineWindowMs }));
  app.route("/api", commandsApi(deps));
  app.route("/api", auditApi(db));
  app.route("/api", approvalsApi({ db, temporal }));
  app.route("/api", modesApi({ db, configured: config.approvals.mode }));
  app.route("/api", tokensApi(db));
  app.route("/api", rulesApi(rulesStore(db), config.rules.archive));
  app.route("/api", rulesRolloutApi({ db, temporal, taskQueue: config.temporal.taskQueue }));
  app.route(
    "/api",
    sessionApi({
      db,
      adminToken: config.adminToken,
      ttlSeconds: config.console.sessionTtlSeconds,
      signInsPerMinute: config.console.signInsPerMinute,
      secure: config.api.tls !== undefined,
      temporalUiUrl: config.console.temporalUiUrl,
      namespace: config.temporal.namespace,
    }),
  );
  app.route("/", docsApi(app));
  app.route("/", consoleApi(config.console.dir));

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    // The validators' own refusals: a body that is not JSON (400), or not sent as JSON (415).
    if (err instanceof HTTPException) {
      return err.status === 400
        ? invalid(c, [{ field: "(body)", message: `not valid JSON: ${err.message}` }])
        : c.json({ error: `${err.message}: send Content-Type: application/json` }, err.status);
    }
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
