// Operating modes (src/domain/approval.ts): act, approve or observe, globally and per agent group.
// MM_MODE is the global mode until an operator sets one here; a group's own mode wins over it.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Mode } from "../domain/approval.ts";
import { MODES } from "../domain/approval.ts";
import { clearGroupMode, listModes, setMode } from "../store/approvals.ts";
import type { Db } from "../store/db.ts";
import { Name } from "./agents.ts";
import type { AuthEnv } from "./auth.ts";
import { errorResponse, json, jsonBody, notFound, Row } from "./http.ts";

const ModeBody = z
  .object({ mode: z.enum(MODES, { error: `must be one of ${MODES.join(", ")}` }) })
  .openapi("ModeChange");

const read = createRoute({
  method: "get",
  path: "/modes",
  tags: ["approvals"],
  summary:
    "The global mode (and whether configuration or an operator set it) and each group's (viewer)",
  responses: { 200: { description: "modes", content: json(Row) } },
});

const putGlobal = createRoute({
  method: "put",
  path: "/modes/global",
  tags: ["approvals"],
  summary: "Set the global mode (admin)",
  request: jsonBody(ModeBody),
  responses: {
    200: { description: "the modes now", content: json(Row) },
    400: errorResponse("invalid mode"),
  },
});

const groupParam = z.object({ group: Name });

const putGroup = createRoute({
  method: "put",
  path: "/modes/groups/{group}",
  tags: ["approvals"],
  summary: "Set an agent group's mode, which wins over the global one for its agents (admin)",
  request: { params: groupParam, ...jsonBody(ModeBody) },
  responses: {
    200: { description: "the modes now", content: json(Row) },
    400: errorResponse("invalid group or mode"),
  },
});

const deleteGroup = createRoute({
  method: "delete",
  path: "/modes/groups/{group}",
  tags: ["approvals"],
  summary: "The group follows the global mode again (admin)",
  request: { params: groupParam },
  responses: {
    204: { description: "cleared" },
    400: errorResponse("invalid group"),
    404: errorResponse("the group had no mode of its own"),
  },
});

export function modesApi(deps: { db: Db; configured: Mode }) {
  const app = new OpenAPIHono<AuthEnv>();
  const current = async () => {
    const { global, groups } = await listModes(deps.db);
    return {
      global: global
        ? {
            mode: global.mode,
            source: "operator",
            updated_by: global.updated_by,
            updated_at: global.updated_at,
          }
        : { mode: deps.configured, source: "config", updated_by: null, updated_at: null },
      groups,
    };
  };
  app.openapi(read, async (c) => c.json(await current(), 200));
  app.openapi(putGlobal, async (c) => {
    await setMode(deps.db, null, c.req.valid("json").mode, c.get("principal").actor);
    return c.json(await current(), 200);
  });
  app.openapi(putGroup, async (c) => {
    const { group } = c.req.valid("param");
    await setMode(deps.db, group, c.req.valid("json").mode, c.get("principal").actor);
    return c.json(await current(), 200);
  });
  app.openapi(deleteGroup, async (c) => {
    const { group } = c.req.valid("param");
    if (!(await clearGroupMode(deps.db, group, c.get("principal").actor)))
      return notFound(c, `a mode of group ${group}`);
    return c.body(null, 204);
  });
  return app;
}
