// Rollouts of rule set versions to agent groups (Temporal workflows `rollout/<set>/<version>`),
// operators' pause, resume and cancel, and drift: agents that do not run what their group is
// assigned. A rollback is the rollout of the previous version.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
} from "@temporalio/client";
import { ROLLOUT_DEFAULTS } from "../domain/rules.ts";
import type { Db } from "../store/db.ts";
import { rolloutStore, ruleSetFiles } from "../store/rules-rollout.ts";
import { rolloutWorkflowId } from "../workflows/ids.ts";
import {
  cancelSignal,
  pauseSignal,
  resumeSignal,
  rolloutStateQuery,
  rolloutWorkflow,
} from "../workflows/rollout.ts";
import type { AuthEnv } from "./auth.ts";
import {
  conflict,
  errorResponse,
  json,
  jsonBody,
  notFound,
  Row,
  VersionNumber,
  versionQuery,
} from "./http.ts";
import { queryWorkflow } from "./workflow-query.ts";

const RolloutRequest = z
  .object({
    name: z.string().min(1).max(200),
    version: VersionNumber,
    groups: z.array(z.string().min(1).max(200)).max(1_000).optional(),
    canary_share: z.number().gt(0).max(1).default(ROLLOUT_DEFAULTS.canaryShare),
    wave_size: z.int().min(1).max(10_000).default(ROLLOUT_DEFAULTS.waveSize),
    agent_timeout_seconds: z.int().min(1).max(3_600).default(ROLLOUT_DEFAULTS.agentTimeoutSeconds),
    retries: z.int().min(0).max(10).default(ROLLOUT_DEFAULTS.retries),
  })
  .openapi("RolloutRequest");

const which = z.object({
  name: z.string({ error: "the query parameter name is required" }).min(1),
  version: versionQuery,
});

const SIGNALS = { pause: pauseSignal, resume: resumeSignal, cancel: cancelSignal } as const;

export function rulesRolloutApi(deps: { db: Db; temporal: Client; taskQueue: string }) {
  const app = new OpenAPIHono<AuthEnv>();
  const store = rolloutStore(deps.db);

  app.openapi(
    createRoute({
      method: "post",
      path: "/rule-set/rollout",
      tags: ["rules"],
      summary: "Roll a rule set version out to agent groups, in waves after a canary",
      request: jsonBody(RolloutRequest),
      responses: {
        202: { description: "started", content: json(z.object({ workflow_id: z.string() })) },
        404: errorResponse("no such rule set version, or it holds no rule"),
        409: errorResponse("this version's rollout is running"),
      },
    }),
    async (c) => {
      const r = c.req.valid("json");
      const workflowId = rolloutWorkflowId(r.name, r.version);
      // Refused here rather than by the workflow's first activity: no workflow for nothing to send.
      if (!(await ruleSetFiles(deps.db, r.name, r.version)).length)
        return notFound(c, `rule set ${r.name} version ${r.version} (with at least one rule)`);
      try {
        await deps.temporal.workflow.start(rolloutWorkflow, {
          workflowId,
          taskQueue: deps.taskQueue,
          args: [
            {
              ruleSet: r.name,
              version: r.version,
              ...(r.groups && { groups: r.groups }),
              canaryShare: r.canary_share,
              waveSize: r.wave_size,
              agentTimeoutMs: r.agent_timeout_seconds * 1_000,
              retries: r.retries,
              requestedBy: c.get("principal").actor,
            },
          ],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          return conflict(c, `the rollout ${workflowId} is running`);
        throw err;
      }
      return c.json({ workflow_id: workflowId }, 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule-set/rollout",
      tags: ["rules"],
      summary: "A rollout's state: waves done and each agent's status",
      request: { query: which },
      responses: {
        200: { description: "the rollout's state", content: json(Row) },
        404: errorResponse("no such rollout"),
        503: errorResponse("no worker answered the query in time"),
      },
    }),
    async (c) => {
      const { name, version } = c.req.valid("query");
      const workflowId = rolloutWorkflowId(name, version);
      const answer = await queryWorkflow(
        deps.temporal,
        workflowId,
        rolloutStateQuery,
        `rollout ${workflowId}`,
      );
      return answer.ok
        ? c.json({ workflow_id: workflowId, ...answer.state }, 200)
        : c.json(answer.body, answer.status);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/rule-set/rollout/{action}",
      tags: ["rules"],
      summary: "Pause, resume or cancel a rollout (between waves)",
      request: {
        params: z.object({ action: z.enum(["pause", "resume", "cancel"]) }),
        query: which,
      },
      responses: {
        202: { description: "signalled", content: json(z.object({ workflow_id: z.string() })) },
        404: errorResponse("no such rollout running"),
      },
    }),
    async (c) => {
      const { action } = c.req.valid("param");
      const { name, version } = c.req.valid("query");
      const workflowId = rolloutWorkflowId(name, version);
      try {
        await deps.temporal.workflow.getHandle(workflowId).signal(SIGNALS[action]);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          return notFound(c, `running rollout ${workflowId}`);
        throw err;
      }
      return c.json({ workflow_id: workflowId }, 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule-drift",
      tags: ["rules"],
      summary: "Agents of assigned groups and whether they run every rule of their assignment",
      responses: {
        200: { description: "one row per agent and group", content: json(z.array(Row)) },
      },
    }),
    async (c) => c.json(await store.drift(), 200),
  );

  return app;
}
