// Operators' REST for the agent fleet: agents (list, filter, detail, groups and labels, keys),
// enrollment tokens, commands (each one a Temporal workflow) and the audit log.
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
} from "@temporalio/client";
import { WorkflowIdReusePolicy } from "@temporalio/common";
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import { AGENT_COMMANDS, type AgentCommand } from "../domain/model.ts";
import { controlSubject, encode } from "../gateway/subjects.ts";
import { CommandDetails, describeIssues, Priority } from "../protocol/messages.ts";
import { createAgentKey, listAgentKeys, revokeAgentKeys } from "../store/agent-keys.ts";
import { acceptIdentity, getAgent, listAgents, listGroups, updateAgent } from "../store/agents.ts";
import { appendAudit, listAudit } from "../store/audit.ts";
import { getCommand, listCommands } from "../store/commands.ts";
import type { Db } from "../store/db.ts";
import {
  createEnrollmentToken,
  listEnrollmentTokens,
  revokeEnrollmentToken,
} from "../store/enrollment-tokens.ts";
import { agentCommandWorkflow } from "../workflows/agent-command.ts";
import { isolationWorkflowId, operatorCommandIds } from "../workflows/ids.ts";
import {
  isolateSignal,
  isolationStateQuery,
  isolationWorkflow,
  releaseSignal,
} from "../workflows/isolation.ts";
import { AGENT_ID } from "../workflows/search-attributes.ts";
import type { AuthEnv } from "./auth.ts";
import { dateParam, invalid, isFieldError, notFound, pageParams, readJson } from "./http.ts";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export interface AgentsApiDeps {
  db: Db;
  temporal: Client;
  nc: NatsConnection;
  config: Config;
}

const AgentChange = z
  .object({
    groups: z
      .array(z.string().regex(NAME, "letters, digits, _ . : - (at most 64)"))
      .max(100)
      .optional(),
    labels: z
      .record(z.string().regex(NAME, "letters, digits, _ . : - (at most 64)"), z.string().max(256))
      .refine((l) => Object.keys(l).length <= 100, "at most 100 labels")
      .optional(),
  })
  .strict();

const EnrollmentTokenRequest = z
  .object({
    group: z.string().regex(NAME, "letters, digits, _ . : - (at most 64)").nullable().default(null),
    description: z.string().max(500).nullable().default(null),
    max_uses: z.number().int().positive().max(100_000).default(1),
    expires_in_seconds: z
      .number()
      .int()
      .positive()
      .max(365 * 86_400)
      .default(86_400),
  })
  .strict();

const CommandRequest = z
  .object({
    agent_id: z.string().min(1),
    command: z.enum(AGENT_COMMANDS),
    details: z.record(z.string(), z.unknown()).default({}),
    priority: Priority.optional(),
    /** Idempotency: the same id posted again reports the existing command instead of a new one. */
    id: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/, "letters, digits, _ . : / - (at most 200)")
      .optional(),
    expires_in_seconds: z
      .number()
      .int()
      .positive()
      .max(7 * 86_400)
      .optional(),
    release_after_seconds: z
      .number()
      .int()
      .positive()
      .max(365 * 86_400)
      .optional(),
  })
  .strict()
  .refine((r) => r.release_after_seconds === undefined || r.command === "isolate-host", {
    message: "only isolate-host takes release_after_seconds",
    path: ["release_after_seconds"],
  });

const COMMAND_STATUSES = [
  "pending",
  "delivered",
  "acknowledged",
  "completed",
  "failed",
  "expired",
] as const;

export function agentsApi(deps: AgentsApiDeps) {
  const { db, temporal, config } = deps;
  const app = new Hono<AuthEnv>();
  const onlineWindowMs = config.gateway.heartbeatMs * config.gateway.missedHeartbeats;
  const actorOf = (c: Context<AuthEnv>) => c.get("principal").actor;
  const badBody = (c: Context, error: z.ZodError) =>
    c.json({ error: `invalid request: ${describeIssues(error)}` }, 400);

  // --- agents ------------------------------------------------------------------------------------

  app.get("/agents", async (c) => {
    const { limit, offset, errors: pageErrors } = pageParams(c, 100);
    const errors = [...pageErrors];
    const status = c.req.query("status");
    if (status && !["online", "offline", "revoked"].includes(status))
      errors.push({ field: "status", message: "must be online, offline or revoked" });
    const isolated = c.req.query("isolated");
    if (isolated && isolated !== "true" && isolated !== "false")
      errors.push({ field: "isolated", message: "must be true or false" });
    const labels: Record<string, string> = {};
    for (const label of c.req.queries("label") ?? []) {
      const [key, ...value] = label.split("=");
      if (!key || !value.length)
        errors.push({ field: "label", message: "must look like key=value" });
      else labels[key] = value.join("=");
    }
    if (errors.length) return invalid(c, errors);
    const page = await listAgents(
      db,
      {
        group: c.req.query("group"),
        labels,
        status: status as "online" | "offline" | "revoked" | undefined,
        hostname: c.req.query("hostname"),
        capability: c.req.query("capability"),
        isolated: isolated === undefined ? undefined : isolated === "true",
        limit,
        offset,
      },
      onlineWindowMs,
    );
    return c.json({ ...page, limit, offset });
  });

  app.get("/agents/:id", async (c) => {
    const agent = await getAgent(db, c.req.param("id"), onlineWindowMs);
    return agent ? c.json(agent) : notFound(c, `agent ${c.req.param("id")}`);
  });

  app.patch("/agents/:id", async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const change = AgentChange.safeParse(body.body);
    if (!change.success) return badBody(c, change.error);
    const updated = await updateAgent(db, c.req.param("id"), change.data, actorOf(c));
    if (!updated) return notFound(c, `agent ${c.req.param("id")}`);
    return c.json(await getAgent(db, c.req.param("id"), onlineWindowMs));
  });

  // The identity the agent's latest hello claimed becomes the one host resolution trusts.
  app.post("/agents/:id/identity/accept", async (c) => {
    const result = await acceptIdentity(db, c.req.param("id"), actorOf(c));
    if (!result) return notFound(c, `agent ${c.req.param("id")}`);
    if (!result.accepted)
      return c.json({ error: `agent ${c.req.param("id")} claims no other identity` }, 409);
    return c.json(await getAgent(db, c.req.param("id"), onlineWindowMs));
  });

  app.get("/agent-groups", async (c) => c.json({ items: await listGroups(db) }));

  app.get("/agents/:id/keys", async (c) => {
    if (!(await getAgent(db, c.req.param("id"), onlineWindowMs)))
      return notFound(c, `agent ${c.req.param("id")}`);
    return c.json({ items: await listAgentKeys(db, c.req.param("id")) });
  });

  // Rotation: a new key, shown once. With revoke_others the old keys stop working at once (and
  // their sessions end); without, both work until the old one is revoked (two-step rotation).
  app.post("/agents/:id/keys", async (c) => {
    const text = await c.req.text();
    let revokeOthers = false;
    if (text.trim()) {
      const parsed = z
        .object({ revoke_others: z.boolean().default(false) })
        .strict()
        .safeParse(safeJson(text));
      if (!parsed.success) return badBody(c, parsed.error);
      revokeOthers = parsed.data.revoke_others;
    }
    const key = await createAgentKey(db, c.req.param("id"), { revokeOthers, actor: actorOf(c) });
    if (!key) return notFound(c, `agent ${c.req.param("id")}`);
    if (key.revokedKeyIds.length) endSessions(c.req.param("id"), key.revokedKeyIds);
    return c.json(
      { key_id: key.keyId, api_key: key.apiKey, revoked_key_ids: key.revokedKeyIds },
      201,
    );
  });

  app.delete("/agents/:id/keys/:keyId", async (c) => {
    const agentId = c.req.param("id");
    const keys = await listAgentKeys(db, agentId);
    if (!keys.some((k) => k.id === c.req.param("keyId")))
      return notFound(c, `key ${c.req.param("keyId")} of agent ${agentId}`);
    const revoked = await revokeAgentKeys(db, agentId, c.req.param("keyId"), actorOf(c));
    if (revoked.length) endSessions(agentId, revoked);
    return c.json({ revoked_key_ids: revoked });
  });

  // Revokes the agent: every key, and its live session ends at once.
  app.delete("/agents/:id/keys", async (c) => {
    const agentId = c.req.param("id");
    if (!(await getAgent(db, agentId, onlineWindowMs))) return notFound(c, `agent ${agentId}`);
    const revoked = await revokeAgentKeys(db, agentId, null, actorOf(c));
    endSessions(agentId);
    return c.json({ revoked_key_ids: revoked });
  });

  /** Whichever gateway holds the agent's session ends it (a heartbeat would notice too, later). */
  const endSessions = (agentId: string, keyIds?: string[]) =>
    deps.nc.publish(
      controlSubject(agentId),
      encode({ action: "revoked", ...(keyIds && { key_ids: keyIds }) }),
    );

  app.get("/agents/:id/isolation", async (c) => {
    const handle = temporal.workflow.getHandle(isolationWorkflowId(c.req.param("id")));
    try {
      return c.json(await handle.query(isolationStateQuery));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        return notFound(c, `isolation of agent ${c.req.param("id")}`);
      throw err;
    }
  });

  // --- enrollment tokens ------------------------------------------------------------------------

  app.get("/enrollment-tokens", async (c) => c.json({ items: await listEnrollmentTokens(db) }));

  app.post("/enrollment-tokens", async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const input = EnrollmentTokenRequest.safeParse(body.body);
    if (!input.success) return badBody(c, input.error);
    const token = await createEnrollmentToken(db, {
      group: input.data.group,
      description: input.data.description,
      maxUses: input.data.max_uses,
      expiresInMs: input.data.expires_in_seconds * 1_000,
      createdBy: actorOf(c),
    });
    return c.json(token, 201);
  });

  app.delete("/enrollment-tokens/:id", async (c) => {
    if (!(await revokeEnrollmentToken(db, c.req.param("id"), actorOf(c))))
      return notFound(c, `enrollment token ${c.req.param("id")}`);
    return c.body(null, 204);
  });

  // --- commands ---------------------------------------------------------------------------------

  app.post("/commands", async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const parsed = CommandRequest.safeParse(body.body);
    if (!parsed.success) return badBody(c, parsed.error);
    const request = parsed.data;
    // The agent validates too; checking here turns a doomed command into a 400.
    const details = CommandDetails[request.command].safeParse(request.details);
    if (!details.success)
      return c.json(
        { error: `invalid details for ${request.command}: ${describeIssues(details.error)}` },
        400,
      );
    const agent = await getAgent(db, request.agent_id, onlineWindowMs);
    if (!agent) return notFound(c, `agent ${request.agent_id}`);
    if (agent.status === "revoked")
      return c.json({ error: `agent ${agent.id} is revoked: it can no longer connect` }, 409);
    const actor = actorOf(c);
    const ttlMs = (request.expires_in_seconds ?? config.commands.ttlMs / 1_000) * 1_000;

    if (request.command === "isolate-host")
      return isolate(c, agent.id, request.details, ttlMs, request.release_after_seconds, actor);
    if (request.command === "release-host" && (await isolationRunning(agent.id))) {
      await temporal.workflow
        .getHandle(isolationWorkflowId(agent.id))
        .signal(releaseSignal, { requestedBy: actor });
      await appendAudit(db, { actor, action: "release.requested", agentId: agent.id, details: {} });
      return c.json(
        {
          command: "release-host",
          agent_id: agent.id,
          workflow_id: isolationWorkflowId(agent.id),
          state: "releasing",
        },
        202,
      );
    }

    if (request.id) {
      const existing = await getCommand(db, request.id);
      if (existing && existing.agent_id !== agent.id)
        return c.json(
          { error: `command id ${request.id} was used for agent ${existing.agent_id}` },
          409,
        );
    }
    const { workflowId, commandId } = operatorCommandIds(
      agent.id,
      request.id,
      randomBytes(8).toString("hex"),
    );
    try {
      await temporal.workflow.start(agentCommandWorkflow, {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        typedSearchAttributes: [{ key: AGENT_ID, value: agent.id }],
        args: [
          {
            agentId: agent.id,
            command: request.command as AgentCommand,
            details: request.details,
            priority: request.priority ?? "high",
            commandId,
            requestedBy: actor,
            ttlMs,
          },
        ],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      return c.json(
        { ...(await commandView(commandId)), workflow_id: workflowId, duplicate: true },
        200,
      );
    }
    return c.json(
      {
        id: commandId,
        workflow_id: workflowId,
        agent_id: agent.id,
        command: request.command,
        status: "pending",
      },
      202,
    );
  });

  const commandView = async (id: string) => (await getCommand(db, id)) ?? { id, status: "pending" };

  const isolationRunning = async (agentId: string) => {
    try {
      const description = await temporal.workflow
        .getHandle(isolationWorkflowId(agentId))
        .describe();
      return description.status.name === "RUNNING";
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  };

  /** One isolation workflow per agent; asking again while it runs is a no-op that says so. */
  const isolate = async (
    c: Context<AuthEnv>,
    agentId: string,
    details: Record<string, unknown>,
    ttlMs: number,
    releaseAfterSeconds: number | undefined,
    actor: string,
  ) => {
    const workflowId = isolationWorkflowId(agentId);
    if (await isolationRunning(agentId)) {
      const state = await temporal.workflow.getHandle(workflowId).query(isolationStateQuery);
      return c.json(
        { command: "isolate-host", agent_id: agentId, workflow_id: workflowId, no_op: true, state },
        200,
      );
    }
    await temporal.workflow.signalWithStart(isolationWorkflow, {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [{ agentId }],
      signal: isolateSignal,
      signalArgs: [
        {
          details,
          requestedBy: actor,
          ttlMs,
          ...(releaseAfterSeconds !== undefined && { releaseAfterMs: releaseAfterSeconds * 1_000 }),
        },
      ],
      typedSearchAttributes: [{ key: AGENT_ID, value: agentId }],
    });
    await appendAudit(db, {
      actor,
      action: "isolation.requested",
      agentId,
      details: { details, release_after_seconds: releaseAfterSeconds ?? null },
    });
    return c.json(
      { command: "isolate-host", agent_id: agentId, workflow_id: workflowId, no_op: false },
      202,
    );
  };

  // The seed's style: ?id= reads one (command ids contain slashes), otherwise a filtered list.
  app.get("/commands", async (c) => {
    const id = c.req.query("id");
    if (id !== undefined) {
      const command = await getCommand(db, id);
      return command ? c.json(command) : notFound(c, `command ${id}`);
    }
    const { limit, offset, errors: pageErrors } = pageParams(c, 100);
    const errors = [...pageErrors];
    const status = c.req.query("status");
    if (status && !(COMMAND_STATUSES as readonly string[]).includes(status)) {
      errors.push({ field: "status", message: `must be one of ${COMMAND_STATUSES.join(", ")}` });
    }
    const origin = c.req.query("origin");
    if (origin && origin !== "engine" && origin !== "operator")
      errors.push({ field: "origin", message: "must be engine or operator" });
    if (errors.length) return invalid(c, errors);
    const page = await listCommands(db, {
      agentId: c.req.query("agent"),
      status: status as (typeof COMMAND_STATUSES)[number] | undefined,
      command: c.req.query("command"),
      origin: origin as "engine" | "operator" | undefined,
      limit,
      offset,
    });
    return c.json({ ...page, limit, offset });
  });

  // --- audit log --------------------------------------------------------------------------------

  app.get("/audit", async (c) => {
    const { limit, offset, errors: pageErrors } = pageParams(c, 100);
    const since = dateParam(c, "since");
    const until = dateParam(c, "until");
    const errors = [...pageErrors, ...[since, until].filter(isFieldError)];
    if (errors.length) return invalid(c, errors);
    return c.json({
      ...(await listAudit(db, {
        agentId: c.req.query("agent"),
        commandId: c.req.query("command"),
        action: c.req.query("action"),
        actor: c.req.query("actor"),
        since: since as Date | undefined,
        until: until as Date | undefined,
        limit,
        offset,
      })),
      limit,
      offset,
    });
  });

  return app;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// --- OpenAPI ---------------------------------------------------------------------------------------

const json = (schema: object) => ({ "application/json": { schema } });
const error = (description: string) => ({
  description,
  content: json({ $ref: "#/components/schemas/Error" }),
});
const q = (name: string, description: string, schema: object = { type: "string" }) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});
const p = (name: string) => ({ name, in: "path", required: true, schema: { type: "string" } });
const paging = [
  q("limit", "page size (at most 500)", { type: "integer" }),
  q("offset", "rows to skip", { type: "integer" }),
];
const ok = (description: string) => ({ 200: { description } });

/** The paths of this module, merged into /openapi.json by the app. */
export const agentsOpenApiPaths = {
  "/api/agents": {
    get: {
      summary: "Enrolled agents, filtered (viewer)",
      parameters: [
        q("group", "member of this group"),
        q("label", "key=value; repeat for several (all must match)"),
        q("status", "online, offline or revoked"),
        q("hostname", "host name (case-insensitive)"),
        q("capability", "supports this command"),
        q("isolated", "true or false, as the agent reports it"),
        ...paging,
      ],
      responses: { ...ok("a page of agents"), 400: error("bad filter") },
    },
  },
  "/api/agents/{id}": {
    get: {
      summary:
        "One agent: identity, OS, IPs, versions, external ids, capabilities, groups, labels, isolation, config, status",
      parameters: [p("id")],
      responses: { ...ok("the agent"), 404: error("unknown agent") },
    },
    patch: {
      summary: "Set an agent's groups and/or labels (admin); agents never set these",
      parameters: [p("id")],
      requestBody: {
        required: true,
        content: json({
          type: "object",
          properties: {
            groups: { type: "array", items: { type: "string" } },
            labels: { type: "object", additionalProperties: { type: "string" } },
          },
        }),
      },
      responses: {
        ...ok("the updated agent"),
        400: error("invalid groups or labels"),
        404: error("unknown agent"),
      },
    },
  },
  "/api/agents/{id}/identity/accept": {
    post: {
      summary:
        "Trust the hostname, Wazuh id and IPs the agent's latest hello claimed (identity_mismatch) for host resolution (admin)",
      parameters: [p("id")],
      responses: {
        ...ok("the agent with its new identity"),
        404: error("unknown agent"),
        409: error("the agent claims no other identity"),
      },
    },
  },
  "/api/agent-groups": {
    get: { summary: "Every group with its number of agents (viewer)", responses: ok("groups") },
  },
  "/api/agents/{id}/keys": {
    get: {
      summary: "The agent's API keys, by prefix (admin)",
      parameters: [p("id")],
      responses: { ...ok("keys"), 404: error("unknown agent") },
    },
    post: {
      summary:
        "Rotate: a new API key, shown once (admin); revoke_others revokes the old ones at once and ends their sessions",
      parameters: [p("id")],
      requestBody: {
        required: false,
        content: json({
          type: "object",
          properties: { revoke_others: { type: "boolean", default: false } },
        }),
      },
      responses: {
        201: { description: "{key_id, api_key, revoked_key_ids}" },
        404: error("unknown agent"),
      },
    },
    delete: {
      summary: "Revoke every key of the agent; its live session ends at once (admin)",
      parameters: [p("id")],
      responses: { ...ok("{revoked_key_ids}"), 404: error("unknown agent") },
    },
  },
  "/api/agents/{id}/keys/{keyId}": {
    delete: {
      summary: "Revoke one key; sessions using it end at once (admin)",
      parameters: [p("id"), p("keyId")],
      responses: { ...ok("{revoked_key_ids}"), 404: error("unknown key") },
    },
  },
  "/api/agents/{id}/isolation": {
    get: {
      summary: "The state of the agent's isolation workflow (isolation/<agent>) (viewer)",
      parameters: [p("id")],
      responses: { ...ok("isolation state"), 404: error("never isolated through the API") },
    },
  },
  "/api/enrollment-tokens": {
    get: { summary: "Enrollment tokens, by prefix (admin)", responses: ok("tokens") },
    post: {
      summary: "Create an enrollment token, shown once (admin)",
      requestBody: {
        required: true,
        content: json({
          type: "object",
          properties: {
            group: {
              type: ["string", "null"],
              description: "agents enrolled with it join this group",
            },
            description: { type: ["string", "null"] },
            max_uses: { type: "integer", default: 1 },
            expires_in_seconds: { type: "integer", default: 86_400 },
          },
        }),
      },
      responses: {
        201: { description: "the token with its secret `token`" },
        400: error("invalid request"),
      },
    },
  },
  "/api/enrollment-tokens/{id}": {
    delete: {
      summary: "Revoke an enrollment token (admin)",
      parameters: [p("id")],
      responses: { 204: { description: "revoked" }, 404: error("unknown token") },
    },
  },
  "/api/commands": {
    get: {
      summary: "One command (?id=) or a filtered list, newest first (viewer)",
      parameters: [
        q("id", "command id"),
        q("agent", "agent id"),
        q("status", "pending, delivered, acknowledged, completed, failed or expired"),
        q("command", "e.g. kill-process"),
        q("origin", "engine or operator"),
        ...paging,
      ],
      responses: { ...ok("the command, or a page of them"), 404: error("unknown id") },
    },
    post: {
      summary:
        "Issue a command to an agent as a Temporal workflow (responder): isolate-host and release-host go through the agent's isolation workflow",
      requestBody: {
        required: true,
        content: json({
          type: "object",
          required: ["agent_id", "command"],
          properties: {
            agent_id: { type: "string" },
            command: { type: "string", enum: [...AGENT_COMMANDS] },
            details: {
              type: "object",
              description: "the command's details (docs/protocol/details/<command>.schema.json)",
            },
            priority: { type: "string", enum: ["critical", "high", "normal", "low"] },
            id: {
              type: "string",
              description: "idempotency: posting the same id again reports the existing command",
            },
            expires_in_seconds: {
              type: "integer",
              description: "delivery deadline (default MM_COMMAND_TTL_SECONDS)",
            },
            release_after_seconds: {
              type: "integer",
              description: "isolate-host: release automatically after this long",
            },
          },
        }),
      },
      responses: {
        200: { description: "already exists (same id) or already isolated (no_op)" },
        202: { description: "accepted: {id, workflow_id, …}" },
        400: error("invalid command or details"),
        404: error("unknown agent"),
        409: error("the agent is revoked, or the id belongs to another agent"),
      },
    },
  },
  "/api/audit": {
    get: {
      summary: "The append-only audit log, oldest first (viewer)",
      parameters: [
        q("agent", "agent id"),
        q("command", "command id"),
        q("action", 'an action, or a family such as "command."'),
        q("actor", "e.g. operator:alice"),
        q("since", "ISO 8601"),
        q("until", "ISO 8601"),
        ...paging,
      ],
      responses: ok("a page of entries with the total"),
    },
  },
  "/api/tokens": {
    get: { summary: "Operator tokens, by prefix (admin)", responses: ok("tokens") },
    post: {
      summary: "Create an operator token, shown once (admin)",
      requestBody: {
        required: true,
        content: json({
          type: "object",
          required: ["name", "role"],
          properties: {
            name: { type: "string" },
            role: { type: "string", enum: ["viewer", "responder", "admin", "ingest"] },
            expires_in_seconds: { type: "integer" },
          },
        }),
      },
      responses: {
        201: { description: "the token with its secret `token`" },
        400: error("invalid request"),
      },
    },
  },
  "/api/tokens/{id}": {
    delete: {
      summary: "Revoke an operator token (admin)",
      parameters: [p("id")],
      responses: { ...ok("the revoked token"), 404: error("unknown token") },
    },
  },
};
