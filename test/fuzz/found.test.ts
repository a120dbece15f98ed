// The 5xx the API fuzzer found, each kept as a fixed case: bad input is a 400 naming the field, an
// unavailable worker a 503, never a 500.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { type Json, restClient, TEST_ADMIN_TOKEN } from "../support/http.ts";
import { eventually } from "../support/wait.ts";

let ctx: TestContext;
let service: Service;
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  ctx = await createTestContext("fuzz_found");
  // No worker: what the API answers while none polls the task queue is one of the cases.
  service = await ctx.start({ roles: ["api"] });
});
afterAll(() => ctx?.cleanup());

const mitigation = {
  identifier: "m",
  name: "m",
  effective_attacks: ["T1000"],
  cost: 0,
  url: "http://soar.test/hook",
};

describe("text PostgreSQL cannot hold", () => {
  it("a NUL in a query parameter is a 400 naming it", async () => {
    for (const [method, path, field] of [
      ["DELETE", "/api/condition?id=a%00b", "id"],
      ["GET", "/api/alerts?host=h%00", "host"],
      ["GET", "/api/audit?actor=%00", "actor"],
    ] as const) {
      const res = await rest.call(method, path);
      expect(res.status, path).toBe(400);
      expect(res.body.errors[0].field).toBe(field);
      expect(res.body.errors[0].message).toMatch(/NUL/);
    }
  });

  it("a NUL in the path is a 400", async () => {
    const res = await rest.get("/api/incidents/a%00b");
    expect(res.status).toBe(400);
    expect(res.body.errors[0].field).toBe("(path)");
  });

  it("a NUL or a lone surrogate in a JSON body is a 400 naming the field", async () => {
    const nul = await rest.post("/api/workflow", {
      ...mitigation,
      params: { x: ["ok", "a\u0000"] },
    });
    expect(nul.status).toBe(400);
    expect(nul.body.errors[0].field).toBe("params.x[1]");
    const surrogate = await rest.post("/api/workflow", { ...mitigation, name: "a\ud800" });
    expect(surrogate.status).toBe(400);
    expect(surrogate.body.errors[0]).toEqual({
      field: "name",
      message: "must be well-formed Unicode (no lone surrogate)",
    });
    // An alert is read as JSON even without Content-Type.
    const untyped = await fetch(`${service.apiUrl}/api/alert`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      body: JSON.stringify({ ...wazuhAlert("100002-ncat-connection", ctx.host()), id: "a\u0000" }),
    });
    expect(untyped.status).toBe(400);
    expect(((await untyped.json()) as Json).errors[0].field).toBe("id");
    // A pair is fine.
    const pair = await rest.post("/api/workflow", { ...mitigation, name: "a\ud83d\ude00" });
    expect(pair.status).toBe(201);
  });
});

describe("schema edges", () => {
  it("an empty url is a 400 naming url (its credentials check threw)", async () => {
    const res = await rest.post("/api/workflow", { ...mitigation, identifier: "e", url: "" });
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain("url");
  });

  it("a token lifetime past any date is a 400 naming expires_in_seconds", async () => {
    const res = await rest.post("/api/tokens", {
      name: "long",
      role: "viewer",
      expires_in_seconds: 325016812753432,
    });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].field).toBe("expires_in_seconds");
    const ok = await rest.post("/api/tokens", {
      name: "year",
      role: "viewer",
      expires_in_seconds: 365 * 24 * 3600,
    });
    expect(ok.status).toBe(201);
  });
});

describe("incidents without a worker", () => {
  it("the state query is a 503 in bounded time; the list holds this task queue's incidents", async () => {
    const host = ctx.host("noworker");
    const alert = await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", host));
    expect(alert.status).toBe(202);
    const started = Date.now();
    const state = await rest.get(`/api/incidents/${host}`);
    expect(state.status).toBe(503);
    expect(state.body.error).toMatch(/no worker/);
    expect(Date.now() - started).toBeLessThan(8_000);
    // Visibility is eventually consistent: wait for the incident, then expect no other queue's.
    const hosts = await eventually("the incident in the list", async () => {
      const items = (await rest.get("/api/incidents")).body.items as { host: string }[];
      return items.length > 0 && items.map((i) => i.host);
    });
    expect(hosts).toEqual([host]);
  });
});

describe("numbers PostgreSQL cannot hold", () => {
  it("a rule set version past the integer range is a 400 naming it", async () => {
    for (const [method, path, body] of [
      ["PUT", "/api/rule-set/assignment", { group: "\u0085", name: "00", version: 25_919_351_903 }],
      ["POST", "/api/rule-set/rollout", { name: "00", version: 2 ** 31 }],
      ["POST", "/api/rule-set", { name: "s", rules: [], macros_version: 2 ** 40 }],
    ] as const) {
      const res = await rest.call(method, path, body);
      expect(res.status, path).toBe(400);
      expect(res.body.errors.map((e: Json) => e.field)).toContain(
        "version" in body ? "version" : "macros_version",
      );
    }
  });
});
