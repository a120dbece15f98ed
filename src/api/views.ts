import type { Client } from "@temporalio/client";
import { Hono } from "hono";
import { type FieldError, TECHNIQUE_ID } from "../domain/model.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import { listAlerts } from "../store/alerts.ts";
import type { Db } from "../store/db.ts";
import { listDecisions } from "../store/decisions.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import { stateQuery } from "../workflows/incident.ts";
import { dateParam, invalid, isFieldError, notFound, pageParams, readJson } from "./http.ts";

/** POST /alert and the read views operators use: alerts, incidents, decisions. */
export function viewsApi(deps: { db: Db; temporal: Client; intake: AlertIntake }) {
  const app = new Hono();

  app.post("/alert", async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const result = await deps.intake(body.body, "rest");
    if (!result.ok) return invalid(c, result.errors);
    return c.json(
      { id: result.alertId, incident: result.incidentId, duplicate: result.duplicate },
      202,
    );
  });

  app.get("/alerts", async (c) => {
    const { limit, offset, errors: pageErrors } = pageParams(c, 50);
    const since = dateParam(c, "since");
    const until = dateParam(c, "until");
    const technique = c.req.query("technique");
    const errors = [...pageErrors, ...[since, until].filter(isFieldError)];
    if (technique && !TECHNIQUE_ID.test(technique))
      errors.push({ field: "technique", message: "must look like T1234 or T1234.001" });
    if (errors.length) return invalid(c, errors);
    const page = await listAlerts(deps.db, {
      host: c.req.query("host"),
      rule: c.req.query("rule"),
      technique,
      since: since as Date | undefined,
      until: until as Date | undefined,
      limit,
      offset,
    });
    return c.json({ ...page, limit, offset });
  });

  app.get("/decisions", async (c) => {
    const { limit, offset, errors: pageErrors } = pageParams(c, 100);
    const errors = [...pageErrors];
    if (errors.length) return invalid(c, errors);
    const items = await listDecisions(deps.db, {
      incidentId: c.req.query("incident"),
      alertId: c.req.query("alert"),
      limit,
      offset,
    });
    return c.json({ items, limit, offset });
  });

  app.get("/incidents", async (c) => {
    const { limit, errors: pageErrors } = pageParams(c, 50);
    const status = c.req.query("status");
    const errors: FieldError[] = [...pageErrors];
    if (status && status !== "open" && status !== "closed")
      errors.push({ field: "status", message: "must be open or closed" });
    if (errors.length) return invalid(c, errors);
    const clauses = ["WorkflowType = 'incidentWorkflow'"];
    const host = c.req.query("host");
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
        startTime: wf.startTime,
        closeTime: wf.closeTime ?? null,
      });
      if (items.length >= limit) break;
    }
    return c.json({ items });
  });

  // The live state of a host's latest incident, read through the workflow's query.
  app.get("/incidents/:host", async (c) => {
    const handle = deps.temporal.workflow.getHandle(incidentWorkflowId(c.req.param("host")));
    try {
      return c.json(await handle.query(stateQuery));
    } catch (err) {
      if ((err as Error).name === "WorkflowNotFoundError")
        return notFound(c, `incident for host ${c.req.param("host")}`);
      throw err;
    }
  });

  return app;
}

/** A string literal for a Temporal visibility query: the value can never end the literal. */
function visibilityString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
