import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { listAudit } from "../store/audit.ts";
import type { Db } from "../store/db.ts";
import { dateTimeQuery, errorResponse, json, optionalQuery, page, pageQuery, Row } from "./http.ts";

const read = createRoute({
  method: "get",
  path: "/audit",
  tags: ["audit"],
  summary: "The append-only audit log, oldest first (viewer)",
  request: {
    query: z.object({
      agent: optionalQuery(z.string(), "agent id"),
      command: optionalQuery(z.string(), "command id"),
      action: optionalQuery(z.string(), 'an action, or a family such as "command."'),
      actor: optionalQuery(z.string(), "e.g. operator:alice"),
      since: dateTimeQuery("ISO 8601"),
      until: dateTimeQuery("ISO 8601"),
      ...pageQuery(100),
    }),
  },
  responses: {
    200: { description: "a page of entries with the total", content: json(page(Row)) },
    400: errorResponse("bad filter"),
  },
});

export function auditApi(db: Db) {
  return new OpenAPIHono().openapi(read, async (c) => {
    const { agent, command, ...filter } = c.req.valid("query");
    const found = await listAudit(db, { ...filter, agentId: agent, commandId: command });
    return c.json({ ...found, limit: filter.limit, offset: filter.offset }, 200);
  });
}
