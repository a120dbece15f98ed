// GET /metrics: the Prometheus text of this process (src/metrics.ts), for a viewer's operator
// token. The same route is mounted on the REST API, the gateway and the optional metrics port
// (MM_METRICS_PORT), always behind operatorAuth: counts of alerts and commands tell an attacker
// how the response works.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../config.ts";
import { listen } from "../listen.ts";
import type { Logger } from "../log.ts";
import { METRICS_CONTENT_TYPE, metricsText } from "../metrics.ts";
import type { Db } from "../store/db.ts";
import { type AuthEnv, operatorAuth } from "./auth.ts";

export function metricsApi() {
  return new OpenAPIHono<AuthEnv>().openapi(
    createRoute({
      method: "get",
      path: "/metrics",
      tags: ["service"],
      summary: "Prometheus metrics of this process (a viewer's token)",
      description:
        "The Prometheus text exposition format: alerts by transport, decisions by kind, mitigation and command latencies, commands by state, gateway sessions and frames, and the process's own (mm_process_…, mm_nodejs_…).",
      security: [{ bearer: [] }],
      responses: {
        200: {
          description: "Prometheus text format 0.0.4",
          content: { "text/plain": { schema: z.string() } },
        },
        401: { description: "no token, or an unknown one" },
        403: { description: "an ingest token" },
      },
    }),
    async (c) => c.body(await metricsText(), 200, { "content-type": METRICS_CONTENT_TYPE }),
  );
}

/** The route behind operator auth, for listeners that are not the REST API. */
export function metricsApp(deps: { db: Db; config: Config }) {
  const app = new OpenAPIHono<AuthEnv>();
  app.use(
    "/metrics",
    operatorAuth({
      db: deps.db,
      adminToken: deps.config.adminToken,
      rateLimit: deps.config.api.rateLimit,
    }),
  );
  return app.route("/", metricsApi());
}

/** MM_METRICS_PORT: /metrics alone, for processes (worker, ingest) that serve nothing else. */
export async function listenMetrics(deps: { db: Db; config: Config; log: Logger; port: number }) {
  const app = metricsApp(deps);
  app.notFound((c) => c.json({ error: "only GET /metrics is served here" }, 404));
  return listen({
    fetch: app.fetch,
    host: deps.config.host,
    port: deps.port,
    headersTimeoutMs: deps.config.api.headersTimeoutMs,
    log: deps.log,
    name: "metrics",
  });
}
