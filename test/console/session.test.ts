// Console sign-in over HTTP, as a hostile page or a careless operator would use it: the cookie's
// attributes, CSRF on cookie-authenticated changes, roles, revocation, expiry, sign-out, the
// sign-in rate limit, and the console's own headers (CSP, no framing, no-store, SPA fallback).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { type Json, restClient } from "../support/http.ts";
import { eventually } from "../support/wait.ts";

let ctx: TestContext;
let service: Service;
let shortLived: Service;
const admin = restClient(() => service.apiUrl);
const tokens: Record<string, { id: string; token: string }> = {};

beforeAll(async () => {
  ctx = await createTestContext("console_session");
  service = await ctx.start({ roles: ["api"] });
  // Same database: sessions of a second API process that lasts a second and allows 3 sign-ins.
  shortLived = await ctx.start({
    roles: ["api"],
    config: { console: { ...ctx.config.console, sessionTtlSeconds: 1, signInsPerMinute: 3 } },
  });
  for (const role of ["viewer", "responder", "admin", "ingest"]) {
    const res = await admin.post("/api/tokens", { name: `console-${role}`, role });
    expect(res.status).toBe(201);
    tokens[role] = { id: res.body.id, token: res.body.token };
  }
});
afterAll(async () => {
  await ctx?.cleanup();
});

interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
  body: Record<string, unknown>;
}

async function signIn(token: string, base = service.apiUrl): Promise<Signed> {
  const res = await fetch(`${base}/api/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
  });
  const body: Json = await res.json();
  expect(res.status, JSON.stringify(body)).toBe(200);
  const setCookie = res.headers.get("set-cookie") ?? "";
  return { cookie: setCookie.split(";")[0] as string, csrf: body.csrf_token, setCookie, body };
}

/** A request carrying only the cookie (and the headers given): what a browser sends. */
async function withCookie(
  s: Signed,
  method: string,
  path: string,
  opts: { body?: unknown; csrf?: string; base?: string } = {},
) {
  const headers: Record<string, string> = { cookie: s.cookie };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (opts.csrf !== undefined) headers["x-csrf-token"] = opts.csrf;
  const res = await fetch(`${opts.base ?? service.apiUrl}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const body: Json = await res.json().catch(() => null);
  return { status: res.status, body };
}

describe("console sign-in", () => {
  it("gives a viewer an httpOnly, SameSite=Strict session cookie, and says who it is", async () => {
    const s = await signIn(tokens.viewer?.token as string);
    expect(s.setCookie).toMatch(/^mm_session=[A-Za-z0-9_-]{43};/);
    expect(s.setCookie).toContain("HttpOnly");
    expect(s.setCookie).toContain("SameSite=Strict");
    expect(s.setCookie).toContain("Path=/");
    expect(s.setCookie).not.toContain("Secure"); // the test API serves plain http
    expect(s.body).toMatchObject({
      actor: "operator:console-viewer",
      role: "viewer",
      via: "session",
    });
    const me = await withCookie(s, "GET", "/api/session");
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ role: "viewer", csrf_token: s.csrf });
    expect((await withCookie(s, "GET", "/api/agents")).status).toBe(200);
  });

  it("refuses ingest tokens and unknown tokens", async () => {
    const ingest = await admin.post("/api/session", { token: tokens.ingest?.token });
    expect(ingest.status).toBe(403);
    const unknown = await admin.post("/api/session", { token: "mmo_not-a-token" });
    expect(unknown.status).toBe(401);
    const empty = await admin.post("/api/session", { token: "" });
    expect(empty.status).toBe(400);
    expect(empty.body.errors[0].field).toBe("token");
  });

  it("refuses a cross-site POST that carries the cookie but not the CSRF token", async () => {
    const s = await signIn(tokens.admin?.token as string);
    const body = { name: "made-by-csrf", role: "admin" };
    const forged = await withCookie(s, "POST", "/api/tokens", { body });
    expect(forged.status).toBe(403);
    expect(forged.body.error).toMatch(/X-CSRF-Token/);
    const wrong = await withCookie(s, "POST", "/api/tokens", { body, csrf: `${s.csrf}x` });
    expect(wrong.status).toBe(403);
    const listed = await admin.get("/api/tokens");
    expect(listed.body.items.map((t: { name: string }) => t.name)).not.toContain("made-by-csrf");
    // With the token from sign-in, the same request is the admin's own.
    const real = await withCookie(s, "POST", "/api/tokens", {
      body: { name: "made-in-console", role: "viewer" },
      csrf: s.csrf,
    });
    expect(real.status).toBe(201);
  });

  it("applies the token's role: a viewer's cookie on a responder route is 403", async () => {
    const s = await signIn(tokens.viewer?.token as string);
    const res = await withCookie(s, "POST", "/api/commands", {
      body: { agent_id: "agt_x", command: "isolate-host" },
      csrf: s.csrf,
    });
    expect(res.status).toBe(403);
    expect(res.body.error).toMatch(/needs the responder role/);
  });

  it("ends a revoked token's sessions", async () => {
    const created = await admin.post("/api/tokens", { name: "soon-revoked", role: "responder" });
    const s = await signIn(created.body.token);
    expect((await withCookie(s, "GET", "/api/session")).status).toBe(200);
    expect((await admin.delete(`/api/tokens/${created.body.id}`)).status).toBe(200);
    const after = await withCookie(s, "GET", "/api/session");
    expect(after.status).toBe(401);
    expect(after.body.error).toMatch(/session/);
  });

  it("signs out: the session no longer authenticates", async () => {
    const s = await signIn(tokens.responder?.token as string);
    const out = await withCookie(s, "DELETE", "/api/session", { csrf: s.csrf });
    expect(out).toEqual({ status: 200, body: { signed_out: true } });
    expect((await withCookie(s, "GET", "/api/agents")).status).toBe(401);
  });

  it("ends an expired session, and limits sign-ins per address", async () => {
    const base = shortLived.apiUrl;
    const s = await signIn(tokens.viewer?.token as string, base);
    await eventually(
      "the one-second session to expire",
      async () => (await withCookie(s, "GET", "/api/session", { base })).status === 401,
      10_000,
    );
    // Valid or not, every attempt counts: the 3 per minute of this process are spent by the 4th.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/api/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: `mmo_guess_${i}` }),
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([401, 401, 429]);
  });
});

describe("/console", () => {
  it("serves the app under a strict CSP that forbids framing and inline script", async () => {
    const res = await fetch(`${service.apiUrl}/console/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const html = await res.text();
    expect(html).toMatch(
      /<script type="module" crossorigin src="\/console\/assets\/index-[^"]+\.js">/,
    );
    // No inline script at all: every <script> has a src.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
    const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1] as string;
    const asset = await fetch(`${service.apiUrl}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toMatch(/javascript/);
    expect(asset.headers.get("cache-control")).toContain("immutable");
  });

  it("answers a deep link with the app, and serves nothing outside its folder", async () => {
    const deep = await fetch(`${service.apiUrl}/console/incidents/web-1`);
    expect(deep.status).toBe(200);
    expect(await deep.text()).toContain('<div id="root">');
    for (const path of [
      "/console/..%2F..%2Fpackage.json",
      "/console/assets/..%2F..%2F..%2Fpackage.json",
      "/console/nothing.js",
    ]) {
      const res = await fetch(`${service.apiUrl}${path}`);
      expect(res.status, path).toBe(404);
    }
    const root = await fetch(`${service.apiUrl}/`, { redirect: "manual" });
    expect(root.headers.get("location")).toBe("/console/");
  });
});
