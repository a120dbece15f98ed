import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { fixture } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";

let ctx: TestContext;
let service: Service;
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  ctx = await createTestContext("catalog");
  service = await ctx.start({ agents: recordingAgents().gateway, roles: ["api"] });
});
afterAll(() => ctx?.cleanup());

describe("seed routes /api/condition and /api/workflow", () => {
  it("stores the seed's condition and returns it exactly", async () => {
    const condition = fixture("seed-condition.json");
    const created = await rest.post("/api/condition", condition);
    expect(created.status).toBe(201);
    expect(created.body).toEqual(condition);
    expect((await rest.get("/api/condition?id=999")).body).toEqual(condition);
    expect((await rest.post("/api/condition", condition)).status).toBe(409);
  });

  it("stores the seed's workflow and lists it with the defaults", async () => {
    const workflow = fixture("seed-workflow.json");
    expect((await rest.post("/api/workflow", workflow)).status).toBe(201);
    expect((await rest.get("/api/workflow?id=999")).body).toEqual(workflow);
    const list = await rest.get("/api/workflow");
    expect(list.status).toBe(200);
    expect(list.body.map((m: { name: string }) => m.name).sort()).toEqual(
      ["close_conn", "delete_file", "delete_file", "filter_packets", "handle_ransomware"].sort(),
    );
  });

  it("keeps an integer identifier an integer and finds it by ?id=", async () => {
    const doc = { identifier: 42, name: "int id", params: {}, args: {}, check: "(true)" };
    expect((await rest.post("/api/condition", doc)).status).toBe(201);
    const read = await rest.get("/api/condition?id=42");
    expect(read.body.identifier).toBe(42);
    // "42" is the same document as 42.
    expect((await rest.post("/api/condition", { ...doc, identifier: "42" })).status).toBe(409);
  });

  it("updates and deletes, with 404 for unknown ids", async () => {
    const doc = { identifier: "upd", name: "before", check: "(true)" };
    expect((await rest.post("/api/condition", doc)).status).toBe(201);
    const updated = await rest.put("/api/condition?id=upd", { ...doc, name: "after" });
    expect(updated.status).toBe(200);
    expect((await rest.get("/api/condition?id=upd")).body.name).toBe("after");
    expect((await rest.put("/api/condition?id=nope", { ...doc, identifier: "nope" })).status).toBe(
      404,
    );
    expect(
      (await rest.put("/api/condition?id=upd", { ...doc, identifier: "other" })).body.errors[0]
        .field,
    ).toBe("identifier");
    expect((await rest.delete("/api/condition?id=upd")).status).toBe(204);
    expect((await rest.get("/api/condition?id=upd")).status).toBe(404);
    expect((await rest.delete("/api/condition?id=upd")).status).toBe(404);
    expect((await rest.get("/api/workflow?id=nope")).status).toBe(404);
  });

  it("refuses to delete a condition still used by a flow, naming the flow", async () => {
    const res = await rest.delete("/api/condition?id=python_script");
    expect(res.status).toBe(409);
    expect(res.body.error).toMatch(/attack flow ncat_to_ransomware/);
  });
});

describe("validation names the field and never answers 500", () => {
  const cases: [string, string, unknown, string][] = [
    ["condition", "/api/condition", { name: "x", check: "(true)" }, "identifier"],
    ["condition", "/api/condition", { identifier: "c", name: "x", check: "args.x ==" }, "check"],
    [
      "condition",
      "/api/condition",
      { identifier: "c", name: "x", check: "(true)", query: "MATCH (n) DETACH DELETE n" },
      "query",
    ],
    [
      "condition",
      "/api/condition",
      { identifier: "c", name: "x", check: "(true)", args: { a: "syscheck.path" } },
      "args.a",
    ],
    [
      "condition",
      "/api/condition",
      { identifier: { no: 1 }, name: "x", check: "(true)" },
      "identifier",
    ],
    [
      "mitigation",
      "/api/workflow",
      { identifier: "m", name: "m", url: "http://x/y", effective_attacks: ["T1"], cost: 1 },
      "effective_attacks[0]",
    ],
    [
      "mitigation",
      "/api/workflow",
      { identifier: "m", name: "m", url: "http://x/y", effective_attacks: ["T1041"], cost: -1 },
      "cost",
    ],
    [
      "mitigation",
      "/api/workflow",
      { identifier: "m", name: "m", effective_attacks: ["T1041"], cost: 1 },
      "url",
    ],
    [
      "mitigation",
      "/api/workflow",
      { identifier: "m", name: "m", url: "ftp://x", effective_attacks: ["T1041"], cost: 1 },
      "url",
    ],
    [
      "mitigation",
      "/api/workflow",
      {
        identifier: "m",
        name: "m",
        steps: [{ agent: "format-disk" }],
        effective_attacks: ["T1041"],
        cost: 1,
      },
      "steps[0].agent",
    ],
    [
      "mitigation",
      "/api/workflow",
      {
        identifier: "m",
        name: "m",
        url: "http://x/y",
        effective_attacks: ["T1041"],
        cost: 1,
        conditions: ["missing"],
      },
      "conditions[0]",
    ],
    [
      "attack flow",
      "/api/attack-flow",
      {
        identifier: "f",
        name: "f",
        nodes: [{ id: "a", techniques: ["T1041"], next: ["b"] }],
        start: ["a"],
      },
      "nodes[0].next[0]",
    ],
    [
      "attack flow",
      "/api/attack-flow",
      {
        identifier: "f",
        name: "f",
        nodes: [
          { id: "a", techniques: ["T1041"], next: ["b"] },
          { id: "b", techniques: ["T1041"], next: ["a"] },
        ],
        start: ["a"],
      },
      "nodes",
    ],
    [
      "attack flow",
      "/api/attack-flow",
      {
        identifier: "f",
        name: "f",
        nodes: [{ id: "a", techniques: ["T1041"], conditions: ["nope"] }],
        start: ["a"],
      },
      "nodes[0].conditions[0]",
    ],
    [
      "attack flow",
      "/api/attack-flow",
      { identifier: "f", name: "f", nodes: [], start: ["a"] },
      "nodes",
    ],
  ];
  it.each(cases.map(([kind, path, body, field]) => ({ kind, path, body, field })))(
    "$kind: 400 naming $field",
    async ({ path, body, field }) => {
      const res = await rest.post(path, body);
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
      expect(res.body.error).toContain(field);
    },
  );

  it.each(["/api/condition", "/api/workflow", "/api/attack-flow", "/api/alert"])(
    "%s: malformed JSON and empty bodies get 400",
    async (path) => {
      for (const body of ["{not json", "", "[]", "null", "42"]) {
        const res = await rest.post(path, body);
        expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
        expect(res.body.errors.length).toBeGreaterThan(0);
      }
    },
  );

  it("names the field of a malformed alert", async () => {
    const alert = fixture("wazuh/100002-ncat-connection.json") as {
      rule: { mitre: { id: string[] } };
      agent?: unknown;
    };
    alert.rule.mitre.id = ["T1041", "not-a-technique"];
    const res = await rest.post("/api/alert", alert);
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain("rule.mitre.id[1]");
    delete alert.agent;
    expect((await rest.post("/api/alert", alert)).body.error).toMatch(/agent/);
  });

  it("rejects bad alert filters with the parameter named", async () => {
    for (const [query, field] of [
      ["limit=-1", "limit"],
      ["limit=abc", "limit"],
      ["since=yesterday", "since"],
      ["technique=DROP", "technique"],
    ]) {
      const res = await rest.get(`/api/alerts?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.errors[0].field).toBe(field);
    }
  });

  it("answers unknown routes with a JSON 404", async () => {
    const res = await rest.get("/api/nothing-here");
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/no route/);
  });
});

describe("documentation", () => {
  it("serves an OpenAPI document covering every route, and a docs page", async () => {
    const doc = (await rest.get("/openapi.json")).body;
    expect(doc.openapi).toBe("3.1.0");
    for (const path of [
      "/api/version",
      "/health",
      "/api/alert",
      "/api/alerts",
      "/api/condition",
      "/api/workflow",
      "/api/attack-flow",
      "/api/incidents",
      "/api/decisions",
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.components.schemas.Mitigation.properties).toHaveProperty("effective_attacks");
    const page = await fetch(`${service.apiUrl}/docs`);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(await page.text()).toContain("/openapi.json");
  });
});
