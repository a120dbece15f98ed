// /api/tokens: operator tokens (admin only). The token itself is in the 201 answer and nowhere else.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../store/db.ts";
import {
  createOperatorToken,
  listOperatorTokens,
  revokeOperatorToken,
} from "../store/operator-tokens.ts";
import { type AuthEnv, OPERATOR_ROLES } from "./auth.ts";
import { errorResponse, json, jsonBody, notFound, Row } from "./http.ts";

/** Ten years: long enough for any operator token, short enough to be a date. */
const MAX_TOKEN_LIFETIME_SECONDS = 10 * 365 * 24 * 3600;

const TokenRequest = z
  .object({
    name: z.string().trim().min(1).max(100),
    role: z.enum(OPERATOR_ROLES),
    // Bounded: a huge lifetime is no date at all, which the store refused with a 500 (API fuzzing).
    expires_in_seconds: z
      .int()
      .positive()
      .max(MAX_TOKEN_LIFETIME_SECONDS, "must be at most ten years (315360000 seconds)")
      .optional(),
  })
  .openapi("OperatorTokenRequest");

const OperatorToken = Row.openapi("OperatorToken");
const tags = ["operator tokens"];

const list = createRoute({
  method: "get",
  path: "/tokens",
  tags,
  summary: "Operator tokens, by prefix (admin)",
  responses: {
    200: { description: "tokens", content: json(z.object({ items: z.array(OperatorToken) })) },
  },
});

const create = createRoute({
  method: "post",
  path: "/tokens",
  tags,
  summary: "Create an operator token, shown once (admin)",
  request: jsonBody(TokenRequest),
  responses: {
    201: { description: "the token with its secret `token`", content: json(OperatorToken) },
    400: errorResponse("invalid request"),
  },
});

const revoke = createRoute({
  method: "delete",
  path: "/tokens/{id}",
  tags,
  summary: "Revoke an operator token (admin)",
  request: { params: z.object({ id: z.string() }) },
  responses: {
    200: { description: "the revoked token", content: json(OperatorToken) },
    404: errorResponse("unknown token"),
  },
});

export function tokensApi(db: Db) {
  const app = new OpenAPIHono<AuthEnv>();

  app.openapi(list, async (c) =>
    c.json(
      {
        items: await listOperatorTokens(db),
      },
      200,
    ),
  );

  app.openapi(create, async (c) => {
    const input = c.req.valid("json");
    const token = await createOperatorToken(db, {
      name: input.name,
      role: input.role,
      expiresInSeconds: input.expires_in_seconds,
      createdBy: c.get("principal").actor,
    });
    return c.json(token, 201);
  });

  app.openapi(revoke, async (c) => {
    const { id } = c.req.valid("param");
    const row = await revokeOperatorToken(db, id, c.get("principal").actor);
    if (!row) return notFound(c, `token ${id}`);
    return c.json(row, 200);
  });

  return app;
}
