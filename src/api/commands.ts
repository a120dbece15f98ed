// Commands to agents, each one a Temporal workflow; isolate-host and release-host go through the
// agent's one isolation workflow instead.
import { randomBytes } from "node:crypto";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
} from "@temporalio/client";
import { WorkflowIdReusePolicy } from "@temporalio/common";
import type { Context } from "hono";
import type { Config } from "../config.ts";
import { AGENT_COMMANDS, type AgentCommand } from "../domain/model.ts";
import { CommandDetails, Priority } from "../protocol/messages.ts";
import { getAgent } from "../store/agents.ts";
import { appendAudit } from "../store/audit.ts";
import { getCommand, listCommands } from "../store/commands.ts";
import type { Db } from "../store/db.ts";
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

const COMMAND_STATUSES = [
  "pending",
  "delivered",
  "acknowledged",
  "completed",
  "failed",
  "expired",
] as const;

const commandFields = {
  agent_id: z.string().min(1),
  priority: Priority.optional(),
  id: z
    .string()
    // One segment: the command's id is `command/<agent>/<id>`, never one of the engine's paths.
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/,
      'letters, digits, _ . : - (at most 200); no "/", which the engine\'s command ids use',
    )
    .optional()
    .openapi({
      description:
        "idempotency: posting the same id again reports the existing command (its id is command/<agent_id>/<id>)",
    }),
  expires_in_seconds: z
    .int()
    .positive()
    .max(7 * 86_400)
    .optional()
    .openapi({ description: "delivery deadline (default MM_COMMAND_TTL_SECONDS)" }),
  release_after_seconds: z
    .int()
    .positive()
    .max(365 * 86_400)
    .optional()
    .openapi({ description: "isolate-host: release automatically after this long" }),
};

// One variant per command, so a command's details are checked (and documented) by the same
// schema the agent applies: a doomed command is a 400 here rather than a failure on the host.
const variants = AGENT_COMMANDS.map((command) =>
  z
    .object({
      command: z.literal(command),
      details: CommandDetails[command].loose().default({}),
      ...commandFields,
    })
    .strict(),
) as unknown as [z.ZodObject, ...z.ZodObject[]];
const CommandRequest = z
  .discriminatedUnion("command", variants, {
    error: `must be one of ${AGENT_COMMANDS.join(", ")}`,
  })
  .refine(
    (r: { command?: unknown; release_after_seconds?: unknown }) =>
      r.release_after_seconds === undefined || r.command === "isolate-host",
    { message: "only isolate-host takes release_after_seconds", path: ["release_after_seconds"] },
  )
  .openapi("CommandRequest");
type CommandRequest = z.output<z.ZodObject<typeof commandFields>> & { command: AgentCommand };

const Command = Row.openapi("Command");
const Accepted = z.looseObject({ workflow_id: z.string() });

const issue = createRoute({
  method: "post",
  path: "/commands",
  tags: ["commands"],
  summary:
    "Issue a command to an agent as a Temporal workflow (responder): isolate-host and release-host go through the agent's isolation workflow",
  request: jsonBody(CommandRequest),
  responses: {
    200: {
      description: "already exists (same id) or already isolated (no_op)",
      content: json(Accepted),
    },
    202: { description: "accepted: {id, workflow_id, …}", content: json(Accepted) },
    400: errorResponse("invalid command or details"),
    404: errorResponse("unknown agent"),
    409: errorResponse("the agent is revoked"),
  },
});

const read = createRoute({
  method: "get",
  path: "/commands",
  tags: ["commands"],
  summary: "One command (?id=) or a filtered list, newest first (viewer)",
  request: {
    query: z.object({
      id: optionalQuery(z.string(), "command id (ids contain slashes, so not a path segment)"),
      agent: optionalQuery(z.string(), "agent id"),
      status: optionalQuery(
        z.enum(COMMAND_STATUSES, { error: `must be one of ${COMMAND_STATUSES.join(", ")}` }),
        COMMAND_STATUSES.join(", "),
      ),
      command: optionalQuery(z.string(), "e.g. kill-process"),
      origin: optionalQuery(
        z.enum(["engine", "operator"], { error: "must be engine or operator" }),
        "engine or operator",
      ),
      ...pageQuery(100),
    }),
  },
  responses: {
    200: {
      description: "the command, or a page of them",
      content: json(z.union([Command, page(Command)])),
    },
    400: errorResponse("bad filter"),
    404: errorResponse("unknown id"),
  },
});

export function commandsApi(deps: { db: Db; temporal: Client; config: Config }) {
  const { db, temporal, config } = deps;
  const app = new OpenAPIHono<AuthEnv>();
  const onlineWindowMs = config.gateway.heartbeatMs * config.gateway.missedHeartbeats;

  app.openapi(issue, async (c) => {
    const request = c.req.valid("json") as CommandRequest;
    // The details as sent, not as parsed: filling defaults is for the isolation workflow (the
    // configured portal) and the agent, which an empty portal_ips here would pre-empt.
    const { details = {} } = (await c.req.json()) as { details?: Record<string, unknown> };
    const agent = await getAgent(db, request.agent_id, onlineWindowMs);
    if (!agent) return notFound(c, `agent ${request.agent_id}`);
    if (agent.status === "revoked")
      return conflict(c, `agent ${agent.id} is revoked: it can no longer connect`);
    const actor = c.get("principal").actor;
    const ttlMs = (request.expires_in_seconds ?? config.commands.ttlMs / 1_000) * 1_000;

    if (request.command === "isolate-host")
      return isolate(c, agent.id, details, ttlMs, request.release_after_seconds, actor);
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
            command: request.command,
            details,
            priority: request.priority ?? "high",
            commandId,
            requestedBy: actor,
            ttlMs,
          },
        ],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const existing = (await getCommand(db, commandId)) ?? { id: commandId, status: "pending" };
      return c.json({ ...existing, workflow_id: workflowId, duplicate: true }, 200);
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

  app.openapi(read, async (c) => {
    const { id, agent, limit, offset, ...filter } = c.req.valid("query");
    if (id !== undefined) {
      const command = await getCommand(db, id);
      return command ? c.json(command, 200) : notFound(c, `command ${id}`);
    }
    const found = await listCommands(db, { ...filter, agentId: agent, limit, offset });
    return c.json({ ...found, limit, offset }, 200);
  });

  return app;
}
