// Mitigations held for a person (approval gates, src/domain/approval.ts): the queue, and a
// person's answer. The mitigation workflow decides; an answer here is its `approval` signal,
// naming the approval and the operator, so the REST API, the console and the Temporal UI answer
// the same way and the decision and audit entry are written once, by the workflow's activity.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { type Client, WorkflowNotFoundError } from "@temporalio/client";
import { getApproval, listApprovals } from "../store/approvals.ts";
import type { Db } from "../store/db.ts";
import { approvalSignal } from "../workflows/mitigation.ts";
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

const STATUSES = ["pending", "approved", "denied", "expired"] as const;
const Approval = Row.openapi("Approval");

const list = createRoute({
  method: "get",
  path: "/approvals",
  tags: ["approvals"],
  summary: "Held mitigations, newest first: the pending queue or those decided (viewer)",
  request: {
    query: z.object({
      status: optionalQuery(
        z.enum(STATUSES, { error: `must be one of ${STATUSES.join(", ")}` }),
        STATUSES.join(", "),
      ),
      ...pageQuery(100),
    }),
  },
  responses: {
    200: { description: "a page of approvals", content: json(page(Approval)) },
    400: errorResponse("bad filter"),
  },
});

const one = createRoute({
  method: "get",
  path: "/approvals/{id}",
  tags: ["approvals"],
  summary: "One approval (viewer)",
  request: { params: z.object({ id: z.string() }) },
  responses: {
    200: { description: "the approval", content: json(Approval) },
    404: errorResponse("unknown approval"),
  },
});

const Answer = z
  .object({
    decision: z.enum(["approve", "deny"], { error: "must be approve or deny" }),
    comment: z
      .string({ error: "must be a string" })
      .trim()
      .min(1, "must say why (1 to 1000 characters)")
      .max(1_000, "must say why (1 to 1000 characters)"),
  })
  .openapi("ApprovalAnswer");

const answer = createRoute({
  method: "post",
  path: "/approvals/{id}",
  tags: ["approvals"],
  summary:
    "Approve or deny a held mitigation with a comment (responder); the mitigation workflow records the decision",
  request: { params: z.object({ id: z.string() }), ...jsonBody(Answer) },
  responses: {
    202: {
      description: "sent to the mitigation run, which records it",
      content: json(z.object({ id: z.string(), decision: z.string() })),
    },
    400: errorResponse("invalid answer; the field is named"),
    404: errorResponse("unknown approval"),
    409: errorResponse("no longer pending"),
  },
});

export function approvalsApi(deps: { db: Db; temporal: Client }) {
  const app = new OpenAPIHono<AuthEnv>();
  app.openapi(list, async (c) => {
    const { status, limit, offset } = c.req.valid("query");
    return c.json(
      { ...(await listApprovals(deps.db, { status, limit, offset })), limit, offset },
      200,
    );
  });
  app.openapi(one, async (c) => {
    const { id } = c.req.valid("param");
    const approval = await getApproval(deps.db, id);
    return approval ? c.json(approval, 200) : notFound(c, `approval ${id}`);
  });
  app.openapi(answer, async (c) => {
    const { id } = c.req.valid("param");
    const { decision, comment } = c.req.valid("json");
    const approval = await getApproval(deps.db, id);
    if (!approval) return notFound(c, `approval ${id}`);
    if (approval.status !== "pending")
      return conflict(c, `approval ${id} is already ${approval.status}`);
    try {
      await deps.temporal.workflow.getHandle(approval.workflow_id).signal(approvalSignal, {
        decision,
        comment,
        by: c.get("principal").actor,
        approval_id: id,
      });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        return conflict(c, `approval ${id}: its mitigation run has ended`);
      throw err;
    }
    return c.json({ id, decision }, 202);
  });
  return app;
}
