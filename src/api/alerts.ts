// POST /alert takes any alert shape the intake knows (Wazuh, or an agent alert with its host);
// GET /alerts reads the stored ones.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { AgentAlertInput, WazuhAlertInput } from "../domain/alert.ts";
import { TECHNIQUE_ID } from "../domain/model.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import { listAlerts } from "../store/alerts.ts";
import type { Db } from "../store/db.ts";
import {
  dateTimeQuery,
  errorResponse,
  invalid,
  json,
  optionalQuery,
  page,
  pageQuery,
  Row,
} from "./http.ts";

const AlertAccepted = z
  .object({ id: z.string(), incident: z.string(), duplicate: z.boolean() })
  .openapi("AlertAccepted");

const submit = createRoute({
  method: "post",
  path: "/alert",
  tags: ["alerts"],
  summary: "Submit an alert (Wazuh alert, or the agent alert shape with a top-level host)",
  request: {
    // Not validated here: the intake normalises every transport's alerts (REST, NATS, agents)
    // with these schemas and names the offending fields itself.
    body: {
      required: true,
      content: {
        "application/json": {
          schema: {
            oneOf: [
              { $ref: "#/components/schemas/WazuhAlert" },
              { $ref: "#/components/schemas/AgentAlert" },
            ],
          },
        },
      },
    },
  },
  responses: {
    202: { description: "stored and handed to the host's incident", content: json(AlertAccepted) },
    400: errorResponse("malformed alert; the field is named"),
  },
});

const list = createRoute({
  method: "get",
  path: "/alerts",
  tags: ["alerts"],
  summary: "Stored alerts, newest first",
  request: {
    query: z.object({
      host: optionalQuery(z.string(), "host name"),
      technique: optionalQuery(
        z.string().regex(TECHNIQUE_ID, "must look like T1234 or T1234.001"),
        "MITRE technique id",
      ),
      rule: optionalQuery(z.string(), "rule id"),
      since: dateTimeQuery("ISO 8601, inclusive"),
      until: dateTimeQuery("ISO 8601, exclusive"),
      ...pageQuery(50),
    }),
  },
  responses: {
    200: { description: "a page of alerts with the total", content: json(page(Row)) },
    400: errorResponse("bad filter"),
  },
});

export function alertsApi(deps: { db: Db; intake: AlertIntake }) {
  const app = new OpenAPIHono();
  // Clones: zod gives a schema the .openapi method only when it is made after @hono/zod-openapi
  // is loaded, and the domain's schemas may have been made before (whatever imported them first).
  app.openAPIRegistry.register("WazuhAlert", WazuhAlertInput.clone());
  app.openAPIRegistry.register("AgentAlert", AgentAlertInput.clone());

  app.openapi(submit, async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const result = await deps.intake(body.value, "rest");
    if (!result.ok) return invalid(c, result.errors);
    return c.json(
      { id: result.alertId, incident: result.incidentId, duplicate: result.duplicate },
      202,
    );
  });

  app.openapi(list, async (c) => {
    const filter = c.req.valid("query");
    const found = await listAlerts(deps.db, filter);
    return c.json({ ...found, limit: filter.limit, offset: filter.offset }, 200);
  });

  return app;
}

/** The body as JSON whatever its content type (Wazuh integrations do not all send one). */
async function readJson(
  c: Context,
): Promise<{ ok: true; value: unknown } | { ok: false; response: ReturnType<typeof invalid> }> {
  const text = await c.req.text();
  if (text.trim() === "")
    return {
      ok: false,
      response: invalid(c, [{ field: "(body)", message: "a JSON body is required" }]),
    };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return {
      ok: false,
      response: invalid(c, [
        { field: "(body)", message: `not valid JSON: ${(err as Error).message}` },
      ]),
    };
  }
}
