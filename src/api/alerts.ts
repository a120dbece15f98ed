// POST /alert takes any alert shape the intake knows (Wazuh, or an agent alert with its host);
// GET /alerts reads the stored ones.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { AgentAlertInput, type FieldError, WazuhAlertInput } from "../domain/alert.ts";
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
  readJson,
} from "./http.ts";

const AlertAccepted = z
  .object({ id: z.string(), incident: z.string(), duplicate: z.boolean() })
  .openapi("AlertAccepted");

/** Most alerts one request may carry (array or NDJSON): a request is answered item by item. */
export const MAX_ALERTS_PER_REQUEST = 1_000;

const BatchItem = z
  .object({
    index: z.int().min(0),
    id: z.string().optional(),
    incident: z.string().optional(),
    duplicate: z.boolean().optional(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi("AlertBatchItem");
const BatchAccepted = z
  .object({ stored: z.int(), refused: z.int(), results: z.array(BatchItem) })
  .openapi("AlertBatchAccepted");

const submit = createRoute({
  method: "post",
  path: "/alert",
  tags: ["alerts"],
  summary:
    "Submit an alert (Wazuh alert, or the agent alert shape with a top-level host), or a batch of them as a JSON array or NDJSON",
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
              {
                type: "array",
                minItems: 1,
                maxItems: MAX_ALERTS_PER_REQUEST,
                items: {
                  oneOf: [
                    { $ref: "#/components/schemas/WazuhAlert" },
                    { $ref: "#/components/schemas/AgentAlert" },
                  ],
                },
              },
            ],
          },
        },
        // One alert per line; blank lines are skipped, an unreadable line is refused on its own.
        "application/x-ndjson": { schema: { type: "string" } },
      },
    },
  },
  responses: {
    202: {
      description:
        "stored and handed to the host's incident; for a batch, which items were stored and which refused (with their fields)",
      content: {
        "application/json": { schema: z.union([AlertAccepted, BatchAccepted]) },
      },
    },
    400: errorResponse(
      "malformed alert, or a batch empty, too long or of which no item could be stored; the field is named",
    ),
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
    const body = await readBody(c);
    if (!body.ok) return body.response;
    if (body.batch) return submitBatch(c, body.batch);
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

  /** Per item: stored (id, incident, duplicate) or refused (errors, fields relative to the item). */
  async function submitBatch(c: Context, items: BatchEntry[]) {
    const readable = items.filter((i) => i.errors === undefined);
    const results = await deps.intake.batch(
      readable.map((i) => ({ input: i.value })),
      "rest",
    );
    const byIndex = new Map(readable.map((item, k) => [item.index, results[k]]));
    const answers = items.map((item) => {
      const r = byIndex.get(item.index);
      if (!r) return { index: item.index, errors: item.errors ?? [] };
      if (!r.ok) return { index: item.index, errors: r.errors };
      return { index: item.index, id: r.alertId, incident: r.incidentId, duplicate: r.duplicate };
    });
    const refused = answers.filter((a) => "errors" in a);
    if (refused.length === answers.length)
      return invalid(
        c,
        refused.flatMap((a) =>
          (a.errors ?? []).map((e) => ({
            field: `[${a.index}]${prefixed(e.field)}`,
            message: e.message,
          })),
        ),
      );
    return c.json(
      { stored: answers.length - refused.length, refused: refused.length, results: answers },
      202,
    );
  }

  return app;
}

/** `rule.id` → `.rule.id`, `[0]` stays, `(root)` disappears: the item's field under its index. */
const prefixed = (field: string) =>
  field === "(root)" ? "" : field.startsWith("[") ? field : `.${field}`;

interface BatchEntry {
  index: number;
  value?: unknown;
  errors?: FieldError[];
}

type Body =
  | { ok: true; value: unknown; batch?: undefined }
  | { ok: true; batch: BatchEntry[] }
  | { ok: false; response: ReturnType<typeof invalid> };

/**
 * One alert (a JSON object, whatever the content type: Wazuh integrations do not all send one), or
 * a batch: a JSON array, or NDJSON (application/x-ndjson) whose unreadable lines are refused alone.
 */
async function readBody(c: Context): Promise<Body> {
  const ndjson = /^application\/(x-)?ndjson\b/i.test(c.req.header("content-type") ?? "");
  if (!ndjson) {
    const body = await readJson(c);
    if (!body.ok || !Array.isArray(body.value)) return body;
    const batch = body.value.map((value, index) => ({ index, value }));
    return checkedCount(c, batch);
  }
  const batch: BatchEntry[] = [];
  const lines = (await c.req.text()).split("\n");
  for (const line of lines) {
    if (line.trim() === "") continue;
    const index = batch.length;
    // Counted before parsing: an oversized batch is refused without parsing all of it.
    if (index >= MAX_ALERTS_PER_REQUEST) break;
    try {
      batch.push({ index, value: JSON.parse(line) });
    } catch (err) {
      batch.push({
        index,
        errors: [{ field: "(root)", message: `not valid JSON: ${(err as Error).message}` }],
      });
    }
  }
  const nonBlank = lines.filter((l) => l.trim() !== "").length;
  return checkedCount(c, batch, nonBlank);
}

function checkedCount(c: Context, batch: BatchEntry[], count = batch.length): Body {
  if (count === 0)
    return { ok: false, response: invalid(c, [{ field: "(body)", message: "holds no alert" }]) };
  if (count > MAX_ALERTS_PER_REQUEST)
    return {
      ok: false,
      response: invalid(c, [
        {
          field: "(body)",
          message: `holds ${count} alerts, at most ${MAX_ALERTS_PER_REQUEST} per request`,
        },
      ]),
    };
  return { ok: true, batch };
}
