// Admins' secrets of the fleet: agents' API keys (rotation, revocation) and enrollment tokens.
// Each secret is shown once, in the answer that creates it.

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { NatsConnection } from "@nats-io/transport-node";
import { controlSubject, encode } from "../gateway/subjects.ts";
import { createAgentKey, listAgentKeys, revokeAgentKeys } from "../store/agent-keys.ts";
import { getAgent } from "../store/agents.ts";
import type { Db } from "../store/db.ts";
import {
  createEnrollmentToken,
  listEnrollmentTokens,
  revokeEnrollmentToken,
} from "../store/enrollment-tokens.ts";
import { agentIdParam, Name } from "./agents.ts";
import type { AuthEnv } from "./auth.ts";
import { errorResponse, json, jsonBody, notFound, Row } from "./http.ts";

const Revoked = z.object({ revoked_key_ids: z.array(z.string()) });
const items = (description: string) => ({
  description,
  content: json(z.object({ items: z.array(Row) })),
});

const EnrollmentTokenRequest = z
  .object({
    group: Name.nullable()
      .default(null)
      .openapi({ description: "agents enrolled with it join this group" }),
    description: z.string().max(500).nullable().default(null),
    max_uses: z.int().positive().max(100_000).default(1),
    expires_in_seconds: z
      .int()
      .positive()
      .max(365 * 86_400)
      .default(86_400),
  })
  .strict()
  .openapi("EnrollmentTokenRequest");

const listKeys = createRoute({
  method: "get",
  path: "/agents/{id}/keys",
  tags: ["keys"],
  summary: "The agent's API keys, by prefix (admin)",
  request: { params: agentIdParam },
  responses: { 200: items("keys"), 404: errorResponse("unknown agent") },
});

const rotate = createRoute({
  method: "post",
  path: "/agents/{id}/keys",
  tags: ["keys"],
  summary:
    "Rotate: a new API key, shown once (admin); revoke_others revokes the old ones at once and ends their sessions",
  request: {
    params: agentIdParam,
    body: {
      required: false,
      content: json(z.object({ revoke_others: z.boolean().default(false) }).strict()),
    },
  },
  responses: {
    201: {
      description: "the new key",
      content: json(Revoked.extend({ key_id: z.string(), api_key: z.string() })),
    },
    400: errorResponse("invalid request"),
    404: errorResponse("unknown agent"),
  },
});

const revokeAll = createRoute({
  method: "delete",
  path: "/agents/{id}/keys",
  tags: ["keys"],
  summary: "Revoke every key of the agent; its live session ends at once (admin)",
  request: { params: agentIdParam },
  responses: {
    200: { description: "the revoked keys", content: json(Revoked) },
    404: errorResponse("unknown agent"),
  },
});

const revokeOne = createRoute({
  method: "delete",
  path: "/agents/{id}/keys/{keyId}",
  tags: ["keys"],
  summary: "Revoke one key; sessions using it end at once (admin)",
  request: { params: agentIdParam.extend({ keyId: z.string() }) },
  responses: {
    200: { description: "the revoked key", content: json(Revoked) },
    404: errorResponse("unknown key"),
  },
});

const listTokens = createRoute({
  method: "get",
  path: "/enrollment-tokens",
  tags: ["enrollment tokens"],
  summary: "Enrollment tokens, by prefix (admin)",
  responses: { 200: items("tokens") },
});

const createToken = createRoute({
  method: "post",
  path: "/enrollment-tokens",
  tags: ["enrollment tokens"],
  summary: "Create an enrollment token, shown once (admin)",
  request: jsonBody(EnrollmentTokenRequest),
  responses: {
    201: { description: "the token with its secret `token`", content: json(Row) },
    400: errorResponse("invalid request"),
  },
});

const revokeToken = createRoute({
  method: "delete",
  path: "/enrollment-tokens/{id}",
  tags: ["enrollment tokens"],
  summary: "Revoke an enrollment token (admin)",
  request: { params: z.object({ id: z.string() }) },
  responses: { 204: { description: "revoked" }, 404: errorResponse("unknown token") },
});

export function keysApi(deps: { db: Db; nc: NatsConnection; onlineWindowMs: number }) {
  const { db } = deps;
  const app = new OpenAPIHono<AuthEnv>();

  /** Whichever gateway holds the agent's session ends it (a heartbeat would notice too, later). */
  const endSessions = (agentId: string, keyIds?: string[]) =>
    deps.nc.publish(
      controlSubject(agentId),
      encode({ action: "revoked", ...(keyIds && { key_ids: keyIds }) }),
    );

  app.openapi(listKeys, async (c) => {
    const { id } = c.req.valid("param");
    if (!(await getAgent(db, id, deps.onlineWindowMs))) return notFound(c, `agent ${id}`);
    return c.json({ items: await listAgentKeys(db, id) }, 200);
  });

  // Without revoke_others both keys work until the old one is revoked (two-step rotation).
  app.openapi(rotate, async (c) => {
    const { id } = c.req.valid("param");
    const { revoke_others: revokeOthers = false } = c.req.valid("json");
    const key = await createAgentKey(db, id, { revokeOthers, actor: c.get("principal").actor });
    if (!key) return notFound(c, `agent ${id}`);
    if (key.revokedKeyIds.length) endSessions(id, key.revokedKeyIds);
    return c.json(
      { key_id: key.keyId, api_key: key.apiKey, revoked_key_ids: key.revokedKeyIds },
      201,
    );
  });

  app.openapi(revokeOne, async (c) => {
    const { id, keyId } = c.req.valid("param");
    const keys = await listAgentKeys(db, id);
    if (!keys.some((k) => k.id === keyId)) return notFound(c, `key ${keyId} of agent ${id}`);
    const revoked = await revokeAgentKeys(db, id, keyId, c.get("principal").actor);
    if (revoked.length) endSessions(id, revoked);
    return c.json({ revoked_key_ids: revoked }, 200);
  });

  // Revokes the agent: every key, and its live session ends at once.
  app.openapi(revokeAll, async (c) => {
    const { id } = c.req.valid("param");
    if (!(await getAgent(db, id, deps.onlineWindowMs))) return notFound(c, `agent ${id}`);
    const revoked = await revokeAgentKeys(db, id, null, c.get("principal").actor);
    endSessions(id);
    return c.json({ revoked_key_ids: revoked }, 200);
  });

  app.openapi(listTokens, async (c) => c.json({ items: await listEnrollmentTokens(db) }, 200));

  app.openapi(createToken, async (c) => {
    const input = c.req.valid("json");
    const token = await createEnrollmentToken(db, {
      group: input.group,
      description: input.description,
      maxUses: input.max_uses,
      expiresInMs: input.expires_in_seconds * 1_000,
      createdBy: c.get("principal").actor,
    });
    return c.json(token, 201);
  });

  app.openapi(revokeToken, async (c) => {
    const { id } = c.req.valid("param");
    if (!(await revokeEnrollmentToken(db, id, c.get("principal").actor)))
      return notFound(c, `enrollment token ${id}`);
    return c.body(null, 204);
  });

  return app;
}
