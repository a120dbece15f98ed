// /api/session: console sign-in. An operator token (not an ingest token) is exchanged for a random
// session id in an httpOnly, SameSite=Strict cookie (Secure under TLS), which auth.ts then accepts
// like the token itself, with the same role checks; the CSRF token in the answer must accompany
// every cookie-authenticated request that changes something. Sign-ins are rate limited per client
// address, apart from (and stricter than) the API's request limit: each one tests a token.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { deleteCookie, setCookie } from "hono/cookie";
import { KeyedRateLimiter } from "../domain/rate-limit.ts";
import { hashSecret } from "../secrets.ts";
import type { Db } from "../store/db.ts";
import { closeSession, openSession } from "../store/operator-sessions.ts";
import {
  type AuthEnv,
  adminTokenDigest,
  authenticate,
  CSRF_HEADER,
  clientAddress,
  csrfTokenOf,
  OPERATOR_ROLES,
  type Principal,
  SESSION_COOKIE,
} from "./auth.ts";
import { errorResponse, json, jsonBody } from "./http.ts";

/** How many live sessions one token keeps; signing in again closes the oldest beyond. */
const MAX_SESSIONS_PER_TOKEN = 20;

const SignIn = z
  .object({ token: z.string().min(1).max(512).openapi({ description: "an operator token" }) })
  .openapi("SignIn");

const Session = z
  .object({
    actor: z.string(),
    role: z.enum(OPERATOR_ROLES),
    via: z.enum(["session", "token"]),
    expires_at: z.string().nullable(),
    csrf_token: z
      .string()
      .nullable()
      .openapi({ description: `send as ${CSRF_HEADER} with every unsafe request of the session` }),
    temporal_ui_url: z.string(),
    namespace: z.string(),
  })
  .openapi("Session");

const tags = ["session"];

const signIn = createRoute({
  method: "post",
  path: "/session",
  tags,
  summary: "Console sign-in: an operator token for a session cookie (not ingest tokens)",
  security: [],
  request: jsonBody(SignIn),
  responses: {
    200: { description: "signed in; the cookie is set", content: json(Session) },
    400: errorResponse("invalid request"),
    401: errorResponse("unknown, revoked or expired token"),
    403: errorResponse("ingest tokens cannot sign in"),
    429: errorResponse("too many sign-in attempts from this address"),
  },
});

const whoAmI = createRoute({
  method: "get",
  path: "/session",
  tags,
  summary: "Who the session (or bearer token) is, its role and CSRF token",
  responses: { 200: { description: "the caller", content: json(Session) } },
});

const signOut = createRoute({
  method: "delete",
  path: "/session",
  tags,
  summary: "Sign out: ends the session and clears its cookie",
  responses: {
    200: { description: "signed out", content: json(z.object({ signed_out: z.boolean() })) },
  },
});

export function sessionApi(deps: {
  db: Db;
  adminToken?: string;
  ttlSeconds: number;
  signInsPerMinute: number;
  /** The API serves TLS: the cookie is Secure. */
  secure: boolean;
  temporalUiUrl: string;
  namespace: string;
}) {
  const app = new OpenAPIHono<AuthEnv>();
  const adminDigest = adminTokenDigest(deps.adminToken);
  const limiter = new KeyedRateLimiter({
    perSecond: deps.signInsPerMinute / 60,
    burst: deps.signInsPerMinute,
  });
  const describe = (p: Principal, expiresAt: Date | null) => ({
    actor: p.actor,
    role: p.role,
    via: p.session ? ("session" as const) : ("token" as const),
    expires_at: expiresAt?.toISOString() ?? null,
    csrf_token: p.session ? csrfTokenOf(p.session.id) : null,
    temporal_ui_url: deps.temporalUiUrl,
    namespace: deps.namespace,
  });

  app.openapi(signIn, async (c) => {
    const wait = limiter.take(clientAddress(c), performance.now());
    if (wait !== null) {
      c.header("Retry-After", String(Math.ceil(wait / 1_000)));
      return c.json(
        { error: "too many sign-in attempts: retry after the Retry-After seconds" },
        429,
      );
    }
    const { token } = c.req.valid("json");
    const principal = await authenticate(deps.db, adminDigest, token);
    if (!principal) return c.json({ error: "the token is unknown, revoked or expired" }, 401);
    if (principal.role === "ingest") {
      return c.json({ error: "ingest tokens submit alerts and cannot sign in" }, 403);
    }
    const session = await openSession(deps.db, {
      tokenHash: hashSecret(token),
      actor: principal.actor,
      role: principal.role,
      ttlSeconds: deps.ttlSeconds,
      maxPerToken: MAX_SESSIONS_PER_TOKEN,
    });
    setCookie(c, SESSION_COOKIE, session.id, {
      httpOnly: true,
      sameSite: "Strict",
      secure: deps.secure,
      path: "/",
      maxAge: deps.ttlSeconds,
    });
    const signedIn = { ...principal, session: { id: session.id, expiresAt: session.expiresAt } };
    return c.json(describe(signedIn, session.expiresAt), 200);
  });

  app.openapi(whoAmI, (c) => {
    const p = c.get("principal");
    return c.json(describe(p, p.session?.expiresAt ?? null), 200);
  });

  app.openapi(signOut, async (c) => {
    const p = c.get("principal");
    const closed = p.session ? await closeSession(deps.db, p.session.id, p.actor) : false;
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: deps.secure });
    return c.json({ signed_out: closed }, 200);
  });

  return app;
}
