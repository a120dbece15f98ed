// What the engine did: incidents (from Temporal visibility and the workflow's query) and the
// decisions it recorded, each with its reason.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Client } from "@temporalio/client";
import type { Db } from "../store/db.ts";
import { listDecisions as readDecisions } from "../store/decisions.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import { stateQuery } from "../workflows/incident.ts";
import { errorResponse, json, notFound, optionalQuery, page, pageQuery, Row } from "./http.ts";

const Incident = z
  .object({
    id: z.string(),
    runId: z.string(),
    host: z.unknown(),
    status: z.unknown(),
    severity: z.unknown(),
    techniques: z.array(z.unknown()),
    startTime: z.string(),
    closeTime: z.string().nullable(),
  })
  .openapi("Incident");

const listIncidents = createRoute({
  method: "get",
  path: "/incidents",
  tags: ["incidents"],
  summary: "Incidents from Temporal visibility",
  request: {
    query: z.object({
      host: optionalQuery(z.string(), "host name"),
      status: optionalQuery(
        z.enum(["open", "closed"], { error: "must be open or closed" }),
        "open or closed",
      ),
      limit: pageQuery(50).limit,
    }),
  },
  responses: {
    200: { description: "incidents", content: json(z.object({ items: z.array(Incident) })) },
    400: errorResponse("bad filter"),
  },
});

const incidentState = createRoute({
  method: "get",
  path: "/incidents/{host}",
  tags: ["incidents"],
  summary:
    "The state of a host's latest incident (flow instances, mitigations), through the workflow query",
  request: { params: z.object({ host: z.string() }) },
  responses: {
    200: { description: "incident state", content: json(Row) },
    404: errorResponse("no incident for that host"),
    503: errorResponse("no worker answered the query in time"),
  },
});

/** How long GET /api/incidents/{host} waits for a worker to answer the workflow query. */
const QUERY_TIMEOUT_MS = 5_000;
const GRPC_FAILED_PRECONDITION = 9;

const listDecisions = createRoute({
  method: "get",
  path: "/decisions",
  tags: ["incidents"],
  summary:
    "Every node match, condition verdict, mitigation choice, skip and result with its reason",
  request: {
    query: z.object({
      incident: optionalQuery(z.string(), "incident id, e.g. incident/web-1"),
      alert: optionalQuery(z.string(), "alert id"),
      ...pageQuery(100),
    }),
  },
  responses: {
    200: {
      description: "decisions in the order they were taken",
      content: json(page(Row).omit({ total: true })),
    },
    400: errorResponse("bad paging"),
  },
});

export function incidentsApi(deps: { db: Db; temporal: Client; taskQueue: string }) {
  const app = new OpenAPIHono();

  app.openapi(listDecisions, async (c) => {
    const { incident, alert, limit, offset } = c.req.valid("query");
    const items = await readDecisions(deps.db, {
      incidentId: incident,
      alertId: alert,
      limit,
      offset,
    });
    return c.json({ items, limit, offset }, 200);
  });

  app.openapi(listIncidents, async (c) => {
    const { host, status, limit } = c.req.valid("query");
    // This deployment's incidents: its workers share one task queue, and another deployment (or
    // test) in the same namespace has its own, whose incidents this one can neither run nor query.
    const clauses = [
      "WorkflowType = 'incidentWorkflow'",
      `TaskQueue = ${visibilityString(deps.taskQueue)}`,
    ];
    if (host) clauses.push(`Host = ${visibilityString(host)}`);
    if (status) clauses.push(`IncidentStatus = '${status}'`);
    const items = [];
    for await (const wf of deps.temporal.workflow.list({ query: clauses.join(" AND ") })) {
      const attrs = wf.searchAttributes as Record<string, unknown[] | undefined>;
      items.push({
        id: wf.workflowId,
        runId: wf.runId,
        host: attrs.Host?.[0] ?? null,
        status: attrs.IncidentStatus?.[0] ?? null,
        severity: attrs.Severity?.[0] ?? null,
        techniques: attrs.Techniques ?? [],
        startTime: wf.startTime.toISOString(),
        closeTime: wf.closeTime?.toISOString() ?? null,
      });
      if (items.length >= limit) break;
    }
    return c.json({ items }, 200);
  });

  app.openapi(incidentState, async (c) => {
    const { host } = c.req.valid("param");
    const handle = deps.temporal.workflow.getHandle(incidentWorkflowId(host));
    // A query waits for a worker to answer; while none polls the task queue it would hold the
    // request until the server gives up (found by API fuzzing an api-only process): bounded.
    const deadline = Date.now() + QUERY_TIMEOUT_MS;
    try {
      return c.json(
        await deps.temporal.withDeadline(deadline, () => handle.query(stateQuery)),
        200,
      );
    } catch (err) {
      if ((err as Error).name === "WorkflowNotFoundError")
        return notFound(c, `incident for host ${host}`);
      // No worker polls the incident's task queue (FAILED_PRECONDITION, at once), or none answered
      // in time: the service is unavailable, not the request wrong (was a 500, API fuzzing).
      if ((err as { cause?: { code?: number } }).cause?.code === GRPC_FAILED_PRECONDITION)
        return c.json({ error: "no worker is polling the incident's task queue" }, 503);
      if (Date.now() >= deadline)
        return c.json(
          { error: `no worker answered the incident query within ${QUERY_TIMEOUT_MS} ms` },
          503,
        );
      throw err;
    }
  });

  return app;
}

/** A string literal for a Temporal visibility query: the value can never end the literal. */
function visibilityString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
