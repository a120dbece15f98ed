import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";

let g: GatewayTestContext;
const tokens: Record<"viewer" | "responder" | "admin" | "ingest", string> = {
  viewer: "",
  responder: "",
  admin: "",
  ingest: "",
};
let agentId: string;

beforeAll(async () => {
  g = await gatewayTestContext("gw_operator_auth");
  for (const role of Object.keys(tokens) as (keyof typeof tokens)[]) {
    const res = await g.rest.post("/api/tokens", { name: `${role}-bot`, role });
    expect(res.status).toBe(201);
    tokens[role] = res.body.token;
  }
  agentId = (await g.enroll("auth-matrix-host")).agentId;
});
afterAll(async () => {
  await g?.cleanup();
});

type Role = keyof typeof tokens;
const as = (token: string | null) => restClient(() => g.service.apiUrl, token);

/** Every route group, with the roles that may call it. */
const routes: {
  group: string;
  method: string;
  path: () => string;
  body?: unknown;
  allowed: Role[];
}[] = [
  {
    group: "catalog read",
    method: "GET",
    path: () => "/api/condition",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "catalog write",
    method: "POST",
    path: () => "/api/condition",
    body: {},
    allowed: ["admin"],
  },
  {
    group: "catalog write",
    method: "PUT",
    path: () => "/api/workflow?id=x",
    body: {},
    allowed: ["admin"],
  },
  {
    group: "catalog write",
    method: "DELETE",
    path: () => "/api/attack-flow?id=x",
    allowed: ["admin"],
  },
  {
    group: "alert intake",
    method: "POST",
    path: () => "/api/alert",
    body: {},
    allowed: ["ingest", "responder", "admin"],
  },
  {
    group: "alerts",
    method: "GET",
    path: () => "/api/alerts",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "incidents",
    method: "GET",
    path: () => "/api/incidents",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "decisions",
    method: "GET",
    path: () => "/api/decisions",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "agents",
    method: "GET",
    path: () => "/api/agents",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "agents",
    method: "GET",
    path: () => `/api/agents/${agentId}`,
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "agents",
    method: "GET",
    path: () => "/api/agent-groups",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "agents",
    method: "GET",
    path: () => `/api/agents/${agentId}/isolation`,
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "agent changes",
    method: "PATCH",
    path: () => `/api/agents/${agentId}`,
    body: {},
    allowed: ["admin"],
  },
  {
    group: "agent keys",
    method: "GET",
    path: () => `/api/agents/${agentId}/keys`,
    allowed: ["admin"],
  },
  {
    group: "agent keys",
    method: "POST",
    path: () => "/api/agents/agt_none/keys",
    body: {},
    allowed: ["admin"],
  },
  {
    group: "agent keys",
    method: "DELETE",
    path: () => "/api/agents/agt_none/keys",
    allowed: ["admin"],
  },
  {
    group: "enrollment tokens",
    method: "GET",
    path: () => "/api/enrollment-tokens",
    allowed: ["admin"],
  },
  {
    group: "enrollment tokens",
    method: "POST",
    path: () => "/api/enrollment-tokens",
    body: { max_uses: 0 },
    allowed: ["admin"],
  },
  {
    group: "enrollment tokens",
    method: "DELETE",
    path: () => "/api/enrollment-tokens/enr_none",
    allowed: ["admin"],
  },
  {
    group: "commands",
    method: "GET",
    path: () => "/api/commands",
    allowed: ["viewer", "responder", "admin"],
  },
  {
    group: "commands",
    method: "POST",
    path: () => "/api/commands",
    body: {},
    allowed: ["responder", "admin"],
  },
  {
    group: "alert dry-run",
    method: "POST",
    path: () => "/api/alert/dry-run",
    body: {},
    allowed: ["responder", "admin"],
  },
  {
    group: "audit",
    method: "GET",
    path: () => "/api/audit",
    allowed: ["viewer", "responder", "admin"],
  },
  { group: "operator tokens", method: "GET", path: () => "/api/tokens", allowed: ["admin"] },
  {
    group: "operator tokens",
    method: "POST",
    path: () => "/api/tokens",
    body: {},
    allowed: ["admin"],
  },
  {
    group: "operator tokens",
    method: "DELETE",
    path: () => "/api/tokens/tok_none",
    allowed: ["admin"],
  },
];

describe("operator authentication", () => {
  it("answers 401 without a token, or with an unknown one, on every route group", async () => {
    for (const route of routes) {
      for (const client of [as(null), as("mmo_not-a-token")]) {
        const res = await client.call(route.method, route.path(), route.body);
        expect(res.status, `${route.method} ${route.path()}`).toBe(401);
        expect(res.body.error).toMatch(/authentication required|unknown, revoked or expired/);
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      }
    }
  });

  it("answers 403 to a role below the route's, and lets the others through", async () => {
    for (const route of routes) {
      for (const role of Object.keys(tokens) as Role[]) {
        const res = await as(tokens[role]).call(route.method, route.path(), route.body);
        const where = `${role}: ${route.method} ${route.path()} → ${res.status} ${JSON.stringify(res.body)}`;
        if (route.allowed.includes(role)) expect([401, 403], where).not.toContain(res.status);
        else {
          expect(res.status, where).toBe(403);
          expect(res.body.error, where).toMatch(new RegExp(`this token's role is ${role}`));
        }
      }
    }
  });

  it("keeps the version, health and API documents public", async () => {
    const anonymous = as(null);
    expect((await anonymous.get("/api/version")).status).toBe(200);
    expect((await anonymous.get("/health")).status).not.toBe(401);
    const doc = await anonymous.get("/openapi.json");
    expect(doc.status).toBe(200);
    expect(doc.body.components.securitySchemes.bearer).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    for (const path of [
      "/api/agents",
      "/api/commands",
      "/api/audit",
      "/api/enrollment-tokens",
      "/api/tokens",
      "/api/agents/{id}/keys",
    ]) {
      expect(Object.keys(doc.body.paths)).toContain(path);
    }
    expect((await fetch(`${g.service.apiUrl}/docs`)).status).toBe(200);
  });

  it("accepts an alert with an ingest token, and the ingest token for nothing else", async () => {
    const ingest = as(tokens.ingest);
    const res = await ingest.post(
      "/api/alert",
      wazuhAlert("100002-ncat-connection", g.ctx.host("ingested")),
    );
    expect(res.status).toBe(202);
    expect((await ingest.get("/api/alerts")).status).toBe(403);
  });

  it("refuses revoked and expired tokens", async () => {
    const short = await g.rest.post("/api/tokens", {
      name: "short-lived",
      role: "viewer",
      expires_in_seconds: 1,
    });
    expect((await as(short.body.token).get("/api/agents")).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await as(short.body.token).get("/api/agents")).status).toBe(401);

    const revoked = await g.rest.post("/api/tokens", { name: "leaked", role: "admin" });
    expect((await as(revoked.body.token).get("/api/tokens")).status).toBe(200);
    expect((await g.rest.delete(`/api/tokens/${revoked.body.id}`)).status).toBe(200);
    expect((await as(revoked.body.token).get("/api/tokens")).status).toBe(401);

    // Tokens are listed by prefix; the secrets are nowhere to be read again.
    const listed = await g.rest.get("/api/tokens");
    expect(JSON.stringify(listed.body)).not.toContain(revoked.body.token);
    const audit = (await g.rest.get("/api/audit?action=operator_token.")).body.items.map(
      (e: { action: string }) => e.action,
    );
    expect(audit).toContain("operator_token.revoked");
  });

  it("names the operator in the audit log", async () => {
    const created = await as(tokens.admin).post("/api/enrollment-tokens", { group: "audited" });
    expect(created.status).toBe(201);
    const entries = (await g.rest.get("/api/audit?action=enrollment_token.created")).body.items;
    expect(entries.at(-1)).toMatchObject({
      actor: "operator:admin-bot",
      details: { group: "audited" },
    });
  });
});
