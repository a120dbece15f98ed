// What the engine did: incidents (from Temporal visibility and the workflow's query) and the
// decisions it recorded, each with its reason.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Client } from "@temporalio/client";
import type { Db } from "../store/db.ts";
import { listDecisions as readDecisions } from "../store/decisions.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import { stateQuery } from "../workflows/incident.ts";
import { errorResponse, json, optionalQuery, page, pageQuery, Row } from "./http.ts";
import { queryWorkflow } from "./workflow-query.ts";

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
    const answer = await queryWorkflow(
      deps.temporal,
      incidentWorkflowId(host),
      stateQuery,
      `the incident of host ${host}`,
    );
    return answer.ok ? c.json(answer.state, 200) : c.json(answer.body, answer.status);
  });

  return app;
}

/** A string literal for a Temporal visibility query: the value can never end the literal. */
function visibilityString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
