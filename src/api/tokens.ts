// /api/tokens: operator tokens (admin only). The token itself is in the 201 answer and nowhere else.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { sql } from "kysely";
import type { Db } from "../db/index.ts";
import { appendAudit } from "../gateway/audit.ts";
import { newId, newSecret } from "../gateway/secrets.ts";
import { type AuthEnv, OPERATOR_ROLES } from "./auth.ts";
import { errorResponse, json, jsonBody, notFound, Row } from "./http.ts";

const TokenRequest = z
  .object({
    name: z.string().trim().min(1).max(100),
    role: z.enum(OPERATOR_ROLES),
    expires_in_seconds: z.int().positive().optional(),
  })
  .openapi("OperatorTokenRequest");

const tokenColumns = [
  "id",
  "name",
  "role",
  "prefix",
  "created_at",
  "created_by",
  "expires_at",
  "revoked_at",
  "last_used_at",
] as const;

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
        items: await db
          .selectFrom("operator_tokens")
          .select(tokenColumns)
          .orderBy("created_at")
          .execute(),
      },
      200,
    ),
  );

  app.openapi(create, async (c) => {
    const input = c.req.valid("json");
    const secret = newSecret("operator_token");
    const actor = c.get("principal").actor;
    const row = await db
      .insertInto("operator_tokens")
      .values({
        id: newId("tok"),
        name: input.name,
        role: input.role,
        token_hash: secret.hash,
        prefix: secret.prefix,
        created_by: actor,
        expires_at:
          input.expires_in_seconds === undefined
            ? null
            : sql<Date>`now() + ${input.expires_in_seconds} * interval '1 second'`,
      })
      .returning(tokenColumns)
      .executeTakeFirstOrThrow();
    await appendAudit(db, {
      actor,
      action: "operator_token.created",
      details: { token_id: row.id, name: row.name, role: row.role },
    });
    return c.json({ ...row, token: secret.value }, 201);
  });

  app.openapi(revoke, async (c) => {
    const { id } = c.req.valid("param");
    const actor = c.get("principal").actor;
    const row = await db
      .updateTable("operator_tokens")
      .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
      .where("id", "=", id)
      .returning(tokenColumns)
      .executeTakeFirst();
    if (!row) return notFound(c, `token ${id}`);
    await appendAudit(db, {
      actor,
      action: "operator_token.revoked",
      details: { token_id: row.id, name: row.name },
    });
    return c.json(row, 200);
  });

  return app;
}
