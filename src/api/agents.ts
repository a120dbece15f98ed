// Operators' view of the agent fleet: agents (list, filter, detail), their groups and labels, and
// the state of each agent's isolation workflow.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Client } from "@temporalio/client";
import { acceptIdentity, getAgent, listAgents, listGroups, updateAgent } from "../store/agents.ts";
import type { Db } from "../store/db.ts";
import { isolationWorkflowId } from "../workflows/ids.ts";
import { isolationStateQuery } from "../workflows/isolation.ts";
import type { AuthEnv } from "./auth.ts";
import {
  conflict,
  errorResponse,
  json,
  jsonBody,
  notFound,
  optionalQuery,
  page,
  pageQuery,
  Row,
} from "./http.ts";
import { queryWorkflow } from "./workflow-query.ts";

/** Group names, label keys and similar operator-chosen names. */
export const Name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, "letters, digits, _ . : - (at most 64)");

export const agentIdParam = z.object({ id: z.string().openapi({ description: "agent id" }) });

const AgentChange = z
  .object({
    groups: z.array(Name).max(100).optional(),
    labels: z
      .record(Name, z.string().max(256))
      .refine((l) => Object.keys(l).length <= 100, "at most 100 labels")
      .optional(),
  })
  .strict()
  .openapi("AgentChange");

const labelFilter = z.union([z.string(), z.array(z.string())]).transform((raw, ctx) => {
  const labels: Record<string, string> = {};
  for (const label of Array.isArray(raw) ? raw : [raw]) {
    const [key, ...value] = label.split("=");
    if (key && value.length) labels[key] = value.join("=");
    else ctx.addIssue({ code: "custom", message: "must look like key=value" });
  }
  return labels;
});

const tags = ["agents"];
const Agent = Row.openapi("Agent");

const list = createRoute({
  method: "get",
  path: "/agents",
  tags,
  summary: "Enrolled agents, filtered (viewer)",
  request: {
    query: z.object({
      group: optionalQuery(z.string(), "member of this group"),
      label: optionalQuery(labelFilter, "key=value; repeat for several (all must match)"),
      status: optionalQuery(
        z.enum(["online", "offline", "revoked"], { error: "must be online, offline or revoked" }),
        "online, offline or revoked",
      ),
      hostname: optionalQuery(z.string(), "host name (case-insensitive)"),
      capability: optionalQuery(z.string(), "supports this command"),
      isolated: optionalQuery(
        z.enum(["true", "false"], { error: "must be true or false" }),
        "true or false, as the agent reports it",
      ),
      ...pageQuery(100),
    }),
  },
  responses: {
    200: { description: "a page of agents", content: json(page(Agent)) },
    400: errorResponse("bad filter"),
  },
});

const detail = createRoute({
  method: "get",
  path: "/agents/{id}",
  tags,
  summary:
    "One agent: identity, OS, IPs, versions, external ids, capabilities, groups, labels, isolation, config, status",
  request: { params: agentIdParam },
  responses: {
    200: { description: "the agent", content: json(Agent) },
    404: errorResponse("unknown agent"),
  },
});

const change = createRoute({
  method: "patch",
  path: "/agents/{id}",
  tags,
  summary: "Set an agent's groups and/or labels (admin); agents never set these",
  request: { params: agentIdParam, ...jsonBody(AgentChange) },
  responses: {
    200: { description: "the updated agent", content: json(Agent) },
    400: errorResponse("invalid groups or labels"),
    404: errorResponse("unknown agent"),
  },
});

const acceptIdentityRoute = createRoute({
  method: "post",
  path: "/agents/{id}/identity/accept",
  tags,
  summary:
    "Trust the hostname, Wazuh id and IPs the agent's latest hello claimed (identity_mismatch) for host resolution (admin)",
  request: { params: agentIdParam },
  responses: {
    200: { description: "the agent with its new identity", content: json(Agent) },
    404: errorResponse("unknown agent"),
    409: errorResponse("the agent claims no other identity"),
  },
});

const groups = createRoute({
  method: "get",
  path: "/agent-groups",
  tags,
  summary: "Every group with its number of agents (viewer)",
  responses: {
    200: {
      description: "groups",
      content: json(z.object({ items: z.array(z.object({ name: z.string(), agents: z.int() })) })),
    },
  },
});

const isolation = createRoute({
  method: "get",
  path: "/agents/{id}/isolation",
  tags,
  summary: "The state of the agent's isolation workflow (isolation/<agent>) (viewer)",
  request: { params: agentIdParam },
  responses: {
    200: { description: "isolation state", content: json(Row) },
    404: errorResponse("never isolated through the API"),
    503: errorResponse("no worker answered the query in time"),
  },
});

export function agentsApi(deps: { db: Db; temporal: Client; onlineWindowMs: number }) {
  const { db, onlineWindowMs } = deps;
  const app = new OpenAPIHono<AuthEnv>();

  app.openapi(list, async (c) => {
    const { label, isolated, ...filter } = c.req.valid("query");
    const found = await listAgents(
      db,
      {
        ...filter,
        labels: label ?? {},
        isolated: isolated === undefined ? undefined : isolated === "true",
      },
      onlineWindowMs,
    );
    return c.json({ ...found, limit: filter.limit, offset: filter.offset }, 200);
  });

  app.openapi(detail, async (c) => {
    const { id } = c.req.valid("param");
    const agent = await getAgent(db, id, onlineWindowMs);
    return agent ? c.json(agent, 200) : notFound(c, `agent ${id}`);
  });

  app.openapi(change, async (c) => {
    const { id } = c.req.valid("param");
    if (!(await updateAgent(db, id, c.req.valid("json"), c.get("principal").actor)))
      return notFound(c, `agent ${id}`);
    return c.json(await getAgent(db, id, onlineWindowMs), 200);
  });

  // The identity the agent's latest hello claimed becomes the one host resolution trusts.
  app.openapi(acceptIdentityRoute, async (c) => {
    const { id } = c.req.valid("param");
    const result = await acceptIdentity(db, id, c.get("principal").actor);
    if (!result) return notFound(c, `agent ${id}`);
    if (!result.accepted) return conflict(c, `agent ${id} claims no other identity`);
    return c.json(await getAgent(db, id, onlineWindowMs), 200);
  });

  app.openapi(groups, async (c) => c.json({ items: await listGroups(db) }, 200));

  app.openapi(isolation, async (c) => {
    const { id } = c.req.valid("param");
    const answer = await queryWorkflow(
      deps.temporal,
      isolationWorkflowId(id),
      isolationStateQuery,
      `the isolation of agent ${id}`,
    );
    return answer.ok ? c.json(answer.state, 200) : c.json(answer.body, answer.status);
  });

  return app;
}
