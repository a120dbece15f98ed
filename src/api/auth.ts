// Operator authentication on the REST API: bearer tokens with a role. MM_ADMIN_TOKEN is the first
// admin (not stored); admins create every other token through /api/tokens. Each token is shown once
// and stored only as its SHA-256 digest.
//
//   viewer     reads everything operators read (agents, commands, alerts, incidents, audit, catalog)
//   responder  a viewer who also issues agent commands, submits alerts and answers approvals
//   admin      everything: the catalog, agents' groups and labels, keys, enrollment and operator tokens
//   ingest     submits alerts (POST /api/alert) and nothing else: for Wazuh's integration
//
// The console signs in with a token (src/api/session.ts) and then sends a session cookie instead:
// the same roles apply, and a cookie-authenticated request that changes something must also carry
// the session's CSRF token in X-CSRF-Token (a cross-site page can make the browser send the
// cookie, but cannot read the token). Bearer callers never need it.
import { createHash, timingSafeEqual } from "node:crypto";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { KeyedRateLimiter, type RateLimit } from "../domain/rate-limit.ts";
import { bearerToken } from "../secrets.ts";
import type { Db } from "../store/db.ts";
import { sessionPrincipal } from "../store/operator-sessions.ts";
import { authenticateOperator } from "../store/operator-tokens.ts";
import type { OperatorRole } from "../store/schema.ts";

export const OPERATOR_ROLES = [
  "viewer",
  "responder",
  "admin",
  "ingest",
] as const satisfies OperatorRole[];

export interface Principal {
  /** How the audit log names this operator: `operator:<token name>`. */
  actor: string;
  role: OperatorRole;
  /** Set when the request was authenticated by a console session cookie rather than a token. */
  session?: { id: string; expiresAt: Date };
}

export const SESSION_COOKIE = "mm_session";
export const CSRF_HEADER = "X-CSRF-Token";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The CSRF token of a session: derived from its secret id, so it needs no storage and the console
 * can ask for it again after a reload (GET /api/session), yet no one without the cookie can know it.
 */
export function csrfTokenOf(sessionId: string): string {
  return createHash("sha256").update("mm-console-csrf\0").update(sessionId).digest("base64url");
}

/** Constant-time: the comparison takes as long whatever prefix of the token was right. */
function csrfMatches(sent: string | undefined, sessionId: string): boolean {
  if (!sent) return false;
  const digest = (v: string) => createHash("sha256").update(v).digest();
  return timingSafeEqual(digest(sent), digest(csrfTokenOf(sessionId)));
}

export type AuthEnv = { Variables: { principal: Principal } };

/** What a request needs; `ingest` is met by ingest, responder and admin tokens. */
type Requirement = "public" | OperatorRole;

/**
 * Who may call what, in one table (most specific first). A route not listed needs an admin for
 * anything but reading, so a new route is closed until someone opens it here.
 */
const ACCESS: { method: string; path: RegExp; needs: Requirement }[] = [
  { method: "GET", path: /^\/api\/version$/, needs: "public" },
  // Console sign-in takes the token in its body (src/api/session.ts); signing out needs a session.
  { method: "POST", path: /^\/api\/session$/, needs: "public" },
  { method: "DELETE", path: /^\/api\/session$/, needs: "viewer" },
  // Liveness for anyone; the dependencies' details only for a viewer's token (health.ts).
  { method: "GET", path: /^\/health$/, needs: "public" },
  // Counts of alerts and commands: as much an operator's business as the alerts themselves.
  { method: "GET", path: /^\/metrics$/, needs: "viewer" },
  { method: "POST", path: /^\/api\/alert$/, needs: "ingest" },
  { method: "POST", path: /^\/api\/commands$/, needs: "responder" },
  // A rehearsal has no effect, but it runs the catalog's queries and checks on the alert given.
  { method: "POST", path: /^\/api\/alert\/dry-run$/, needs: "responder" },
  // Answering a held mitigation is a responder's call, like issuing the command itself.
  { method: "POST", path: /^\/api\/approvals\/[^/]+$/, needs: "responder" },
  // Secrets and who holds them are admins' business even to read.
  {
    method: "GET",
    path: /^\/api\/(tokens|enrollment-tokens)(\/|$)|^\/api\/agents\/[^/]+\/keys$/,
    needs: "admin",
  },
  { method: "GET", path: /^\/api\//, needs: "viewer" },
  { method: "*", path: /^\/api\//, needs: "admin" },
];

export function requirementOf(method: string, path: string): Requirement {
  const m = method === "HEAD" ? "GET" : method;
  return (
    ACCESS.find((rule) => (rule.method === "*" || rule.method === m) && rule.path.test(path))
      ?.needs ?? "admin"
  );
}

function satisfies(role: OperatorRole, needs: Requirement): boolean {
  switch (needs) {
    case "public":
      return true;
    case "ingest":
      return role !== "viewer";
    case "viewer":
      return role !== "ingest";
    case "responder":
      return role === "responder" || role === "admin";
    case "admin":
      return role === "admin";
  }
}

/**
 * Authenticates every /api request (but the public ones) and checks its role; 401 and 403
 * otherwise. A public request with a valid token is authenticated too (what it may see can depend
 * on it). Requests are rate limited per token, and per client address while they carry no valid
 * token (so guessing tokens is as limited as anything else): 429 with Retry-After.
 */
export function operatorAuth(deps: {
  db: Db;
  adminToken?: string;
  rateLimit: RateLimit;
}): MiddlewareHandler<AuthEnv> {
  const adminDigest = adminTokenDigest(deps.adminToken);
  const adminHash = adminDigest?.toString("hex") ?? null;
  const limiter = new KeyedRateLimiter(deps.rateLimit);
  return async (c, next) => {
    const needs = requirementOf(c.req.method, c.req.path);
    const token = bearerToken(c.req.header("authorization"));
    // A bearer token wins over a cookie: API clients are unaffected by a console in the same browser.
    const sessionId = token ? undefined : getCookie(c, SESSION_COOKIE);
    const address = `address:${clientAddress(c)}`;
    const anonymous = () => {
      const wait = limiter.take(address, performance.now());
      if (wait !== null) return tooMany(c, wait);
      if (needs === "public") return next();
      if (sessionId)
        return unauthorized(c, "the session is unknown or expired, or its token was revoked");
      return token
        ? unauthorized(c, "the token is unknown, revoked or expired")
        : unauthorized(c, "authentication required: send Authorization: Bearer <token>");
    };
    if (!token && !sessionId) return anonymous();
    // An address that spent its requests on bad tokens costs no more token look-ups.
    const wait = limiter.waitMs(address, performance.now());
    if (wait !== null) return tooMany(c, wait);
    const principal = token
      ? await authenticate(deps.db, adminDigest, token)
      : await authenticateSession(deps.db, adminHash, sessionId ?? "");
    if (!principal) return anonymous();
    const tokenWait = limiter.take(`token:${principal.actor}`, performance.now());
    if (tokenWait !== null) return tooMany(c, tokenWait);
    if (needs !== "public" && !satisfies(principal.role, needs)) {
      return c.json(
        {
          error: `forbidden: ${c.req.method} ${c.req.path} needs the ${needs} role; this token's role is ${principal.role}`,
        },
        403,
      );
    }
    if (
      principal.session &&
      needs !== "public" &&
      !SAFE_METHODS.has(c.req.method) &&
      !csrfMatches(c.req.header(CSRF_HEADER), principal.session.id)
    ) {
      return c.json(
        {
          error: `forbidden: a request authenticated by the session cookie must send the ${CSRF_HEADER} header given at sign-in`,
        },
        403,
      );
    }
    c.set("principal", principal);
    return next();
  };
}

async function authenticateSession(
  db: Db,
  adminHash: string | null,
  id: string,
): Promise<Principal | null> {
  // Ids are 43 base64url characters: anything else is no session, without a query.
  if (!/^[A-Za-z0-9_-]{20,100}$/.test(id)) return null;
  const row = await sessionPrincipal(db, id, adminHash);
  return row && { actor: row.actor, role: row.role, session: { id, expiresAt: row.expiresAt } };
}

export function adminTokenDigest(adminToken: string | undefined): Buffer | null {
  return adminToken ? createHash("sha256").update(adminToken).digest() : null;
}

export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    // Requests handed to the app without a socket (in-process tests) share one bucket.
    return "local";
  }
}

function tooMany(c: Context, waitMs: number) {
  c.header("Retry-After", String(Math.ceil(waitMs / 1_000)));
  return c.json(
    { error: "too many requests: slow down and retry after the Retry-After seconds" },
    429,
  );
}

function unauthorized(c: Context, error: string) {
  c.header("WWW-Authenticate", 'Bearer realm="mitigation-manager"');
  return c.json({ error }, 401);
}

/** The operator a bearer token (or MM_ADMIN_TOKEN) names, or null. */
export async function authenticate(
  db: Db,
  adminDigest: Buffer | null,
  token: string,
): Promise<Principal | null> {
  if (adminDigest && timingSafeEqual(adminDigest, createHash("sha256").update(token).digest())) {
    return { actor: "operator:MM_ADMIN_TOKEN", role: "admin" };
  }
  const row = await authenticateOperator(db, token);
  if (!row) return null;
  return { actor: `operator:${row.name}`, role: row.role };
}
