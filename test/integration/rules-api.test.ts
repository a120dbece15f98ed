// POST /api/rule and friends over the real Fibratus catalogue: every rule stored and findable by
// technique and tactic; mutated copies refused naming the field; versions, diffs and rule sets.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import {
  BASE_RULE,
  corpusFile,
  corpusMacros,
  corpusRules,
  mutants,
} from "../support/fibratus-rules.ts";
import { type Json, restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";

let ctx: TestContext;
let service: Service;
const rest = restClient(() => service.apiUrl);
const yaml = { "content-type": "application/yaml" };
const postRules = (text: string) => rest.call("POST", "/api/rule", text, yaml);
const base = corpusFile(BASE_RULE);
const baseId = parse(base).id as string;

beforeAll(async () => {
  ctx = await createTestContext("rules");
  service = await ctx.start({ agents: recordingAgents().gateway, roles: ["api"] });
});
afterAll(() => ctx?.cleanup());

describe("the catalogue", () => {
  const rules = corpusRules();

  it("refuses rules whose macros no macros file defines, naming them", async () => {
    const res = await postRules(base);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].field).toBe("condition");
    expect(res.body.errors[0].message).toMatch(/load_unsigned_executable.*no macros file/);
  });

  it("stores the macros file as version 1, and the same file again as that version", async () => {
    const first = await rest.call("POST", "/api/rule-macros", corpusMacros(), yaml);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ version: 1, status: "created" });
    const again = await rest.call("POST", "/api/rule-macros", corpusMacros(), yaml);
    expect(again.body).toMatchObject({ version: 1, status: "unchanged" });
    expect((await rest.get("/api/rule-macros")).body.names).toContain("spawn_process");
  });

  it("accepts every rule in one multi-document stream, and each again unchanged", async () => {
    const stream = rules.map(([, text]) => text).join("\n---\n");
    const res = await postRules(stream);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(201);
    expect(res.body.rules).toHaveLength(rules.length);
    expect(res.body.rules.every((r: Json) => r.status === "created")).toBe(true);
    const again = await postRules(base);
    expect(again.status).toBe(201);
    expect(again.body.rules[0]).toMatchObject({ id: baseId, status: "unchanged" });
    const stored = await rest.get(`/api/rule?id=${baseId}`);
    expect(stored.body.content).toBe(base.endsWith("\n") ? base : `${base}\n`);
    expect(stored.body.sha256).toBe(again.body.rules[0].sha256);
  });

  it("finds every rule by each technique, sub-technique parent and tactic of its labels", async () => {
    const byQuery = new Map<string, Set<string>>();
    const found = async (query: string) => {
      let ids = byQuery.get(query);
      if (!ids) {
        const res = await rest.get(`/api/rule?${query}&limit=500`);
        expect(res.status).toBe(200);
        ids = new Set(res.body.items.map((r: Json) => r.id));
        byQuery.set(query, ids);
      }
      return ids;
    };
    for (const [file, text] of rules) {
      const rule = parse(text);
      const labels: Record<string, string> = rule.labels ?? {};
      const techniques = [labels["technique.id"], labels["subtechnique.id"]].filter(Boolean);
      for (const t of techniques as string[]) {
        expect((await found(`technique=${t}`)).has(rule.id), `${file} ${t}`).toBe(true);
        expect((await found(`technique=${t.slice(0, 5)}`)).has(rule.id), file).toBe(true);
      }
      if (labels["tactic.id"])
        expect((await found(`tactic=${labels["tactic.id"]}`)).has(rule.id), file).toBe(true);
    }
    const lsass = await found("technique=T1003");
    expect(lsass.has(baseId)).toBe(true);
    expect(lsass.size).toBeLessThan(rules.length);
    expect((await found("tactic=TA0006")).has(baseId)).toBe(true);
    const text = await rest.get("/api/rule?q=unsigned%20executable");
    expect(text.body.items.map((r: Json) => r.id)).toContain(baseId);
  });
});

describe("refusals", () => {
  it.each(mutants())("%s: 400 naming the field", async (_what, text, field, message) => {
    const res = await postRules(text);
    expect(res.status).toBe(400);
    const error = res.body.errors.find((e: Json) => e.field === field);
    expect(error?.message, JSON.stringify(res.body)).toMatch(message);
  });

  it("invalid YAML: 400 with its line", async () => {
    const res = await postRules(`${base}\n  bad: [unclosed\n`);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toMatch(/^invalid YAML \(line \d+\)/);
  });

  it("an unknown macro: 400 naming it", async () => {
    const res = await postRules(base.replace("load_unsigned_executable", "no_such_macro"));
    expect(res.status).toBe(400);
    expect(res.body.errors[0]).toMatchObject({ field: "condition" });
    expect(res.body.errors[0].message).toMatch(/undefined macro or list no_such_macro/);
  });

  it("the same version with changed content: 409", async () => {
    const res = await postRules(base.replace("severity: high", "severity: critical"));
    expect(res.status).toBe(409);
    expect(res.body.error).toMatch(/version 1\.0\.5 is stored with other content: bump version/);
  });

  it("a name another rule holds: 409; the same id twice in one stream: 400", async () => {
    const other = base
      .replace(baseId, "00000000-0000-4000-8000-000000000001")
      .replace(/^name: .*$/m, `name: ${parse(corpusRules()[0]?.[1] ?? "").name}`);
    expect((await postRules(other)).status).toBe(409);
    const twice = await postRules(`${base}\n---\n${base}`);
    expect(twice.status).toBe(400);
    expect(twice.body.errors[0].field).toBe("[1].id");
  });

  it("a body not sent as YAML: 415", async () => {
    expect((await rest.post("/api/rule", { name: "x" })).status).toBe(415);
  });

  it("hostile YAML (an alias bomb) is refused, not expanded", async () => {
    const bomb = `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`;
    const res = await postRules(bomb);
    expect(res.status).toBe(400);
  });
});

describe("versions", () => {
  const bumped = base
    .replace("version: 1.0.5", "version: 1.1.0")
    .replace("severity: high", "severity: critical");

  it("stores a bumped version beside the first, lists both and diffs them", async () => {
    expect((await postRules(bumped)).status).toBe(201);
    const versions = await rest.get(`/api/rule/versions?id=${baseId}`);
    expect(versions.body.map((v: Json) => v.version)).toEqual(["1.1.0", "1.0.5"]);
    expect((await rest.get(`/api/rule?id=${baseId}`)).body.version).toBe("1.1.0");
    expect((await rest.get(`/api/rule?id=${baseId}&version=1.0.5`)).body.document.severity).toBe(
      "high",
    );
    const diff = await rest.get(`/api/rule/diff?id=${baseId}&from=1.0.5&to=1.1.0`);
    expect(diff.body.diff).toEqual(
      expect.arrayContaining(["-version: 1.0.5", "+version: 1.1.0", "-severity: high"]),
    );
    expect((await rest.get(`/api/rule/diff?id=${baseId}&from=1.0.5&to=9.9.9`)).status).toBe(404);
  });

  it("refuses a version older than the newest: 409", async () => {
    const older = base.replace("version: 1.0.5", "version: 1.0.4");
    const res = await postRules(older);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatch(/older than the stored 1\.1\.0/);
  });
});

describe("rule sets", () => {
  it("stores versioned selections, refuses missing rule versions, and assigns to groups", async () => {
    const rules = [{ id: baseId, version: "1.0.5" }];
    const first = await rest.post("/api/rule-set", { name: "windows", rules, macros_version: 1 });
    expect(first.status).toBe(201);
    expect(first.body.version).toBe(1);
    const second = await rest.post("/api/rule-set", {
      name: "windows",
      rules: [{ id: baseId, version: "1.1.0" }],
      macros_version: 1,
    });
    expect(second.body.version).toBe(2);
    const missing = await rest.post("/api/rule-set", {
      name: "windows",
      rules: [{ id: baseId, version: "7.0.0" }],
    });
    expect(missing.status).toBe(400);
    expect(missing.body.errors[0].message).toMatch(/version 7\.0\.0 not found/);
    expect((await rest.get("/api/rule-set?name=windows&version=1")).body.rules).toEqual(rules);
    const assign = await rest.put("/api/rule-set/assignment", {
      group: "servers",
      name: "windows",
      version: 2,
    });
    expect(assign.status).toBe(200);
    expect((await rest.get("/api/rule-set/assignment")).body).toEqual([
      expect.objectContaining({ group: "servers", rule_set: "windows", version: 2 }),
    ]);
    const unknown = await rest.put("/api/rule-set/assignment", {
      group: "servers",
      name: "windows",
      version: 9,
    });
    expect(unknown.status).toBe(404);
  });
});
