import { describe, expect, it } from "vitest";
import {
  AGENT_COMMANDS,
  fieldPath,
  identifierKey,
  referencedConditions,
  validateAttackFlow,
  validateCondition,
  validateMitigation,
} from "../../src/domain/catalog.ts";
import { fixture } from "./fixtures.ts";

function errorsOf(
  result: { ok: true } | { ok: false; errors: { field: string; message: string }[] },
) {
  if (result.ok) throw new Error("expected errors");
  return result.errors;
}

describe("validateCondition", () => {
  it("accepts the seed's condition unchanged", () => {
    const seed = fixture("seed-condition.json");
    expect(validateCondition(seed)).toEqual({ ok: true, value: seed });
  });

  it("fills defaults and keeps an integer identifier as an integer", () => {
    expect(validateCondition({ identifier: 7, name: "n", check: "(true)" })).toEqual({
      ok: true,
      value: { identifier: 7, name: "n", params: {}, args: {}, check: "(true)" },
    });
    expect(
      validateCondition({ identifier: 7, name: "n", check: "(true)", query: null, extra: 1 }),
    ).toEqual({
      ok: true,
      value: { identifier: 7, name: "n", params: {}, args: {}, check: "(true)", query: null },
    });
  });

  it("refuses a webhook url carrying credentials, naming the field", () => {
    for (const url of [
      "http://admin:secret@soar.example/drop",
      "https://token@soar.example/drop",
    ]) {
      const base = { identifier: "m", name: "m", effective_attacks: ["T1041"], cost: 1 };
      expect(errorsOf(validateMitigation({ ...base, url })), url).toEqual([
        { field: "url", message: "must not carry credentials (user:password@)" },
      ]);
    }
  });

  it("names each malformed field", () => {
    expect(
      errorsOf(
        validateCondition({
          identifier: 1.5,
          name: " ",
          params: [],
          args: { b: "x.b", l: ["alert.a", 2] },
          query: 3,
        }),
      ),
    ).toEqual([
      { field: "identifier", message: "must be a non-empty string or an integer" },
      { field: "name", message: "must not be empty" },
      { field: "params", message: "must be an object" },
      { field: "args.b", message: expect.stringContaining('"alert."') },
      { field: "args.l[1]", message: expect.stringContaining('"alert."') },
      { field: "query", message: expect.stringContaining("expected string") },
      { field: "check", message: expect.stringContaining("expected string") },
    ]);
    expect(errorsOf(validateCondition({ identifier: "", name: "n", check: "x" }))[0]?.field).toBe(
      "identifier",
    );
  });

  it.each([
    "LOAD CSV FROM 'http://127.0.0.1:9/x' AS row RETURN row",
    "MATCH (n) lOaD /**/ cSv FROM $url AS row RETURN row",
    "CALL apoc.load.json('http://127.0.0.1:9/x')",
    "RETURN apoc.load.jsonArray('http://x') AS x",
  ])("refuses a query that reaches outside the graph, naming the field: %s", (query) => {
    const errors = errorsOf(
      validateCondition({ identifier: "c", name: "n", check: "true", query }),
    );
    expect(errors).toEqual([
      { field: "query", message: expect.stringContaining("is not allowed") },
    ]);
  });

  it("refuses a check that does not compile and a query that writes", () => {
    expect(
      errorsOf(
        validateCondition({
          identifier: "c",
          name: "n",
          check: "args.a +",
          query: "MATCH (n) DETACH DELETE n",
        }),
      ),
    ).toEqual([
      { field: "check", message: expect.stringContaining("Unexpected token") },
      {
        field: "query",
        message: expect.stringMatching(/^DETACH DELETE is not allowed: condition queries may only/),
      },
    ]);
    expect(errorsOf(validateCondition({ identifier: "c", name: "n", check: "1" }))).toEqual([
      { field: "check", message: "check must evaluate to a bool, but it is int" },
    ]);
  });

  it("accepts a blank query as no query", () => {
    expect(validateCondition({ identifier: "c", name: "n", check: "(true)", query: "  " }).ok).toBe(
      true,
    );
  });

  it.each([null, [], "condition", 1, undefined])("refuses %j as a document", (input) => {
    expect(errorsOf(validateCondition(input))).toEqual([
      { field: "(root)", message: expect.stringContaining("expected object") },
    ]);
  });
});

describe("validateMitigation", () => {
  it("accepts the seed's workflow unchanged", () => {
    const seed = fixture("seed-workflow.json");
    expect(validateMitigation(seed)).toEqual({ ok: true, value: seed });
  });

  it("accepts agent steps instead of a url", () => {
    const input = {
      identifier: 3,
      name: "kill",
      effective_attacks: ["T1041"],
      cost: 0,
      steps: [{ agent: "kill-process", details: { signal: 9 } }],
    };
    expect(validateMitigation(input)).toEqual({
      ok: true,
      value: { ...input, params: {}, args: {} },
    });
  });

  it("needs a url or a step", () => {
    const base = { identifier: "m", name: "m", effective_attacks: ["T1041"], cost: 1 };
    expect(errorsOf(validateMitigation(base))).toEqual([
      { field: "url", message: expect.stringContaining("url (webhook) or at least one step") },
    ]);
    expect(errorsOf(validateMitigation({ ...base, steps: [] }))[0]?.field).toBe("url");
  });

  it("names each malformed field", () => {
    expect(
      errorsOf(
        validateMitigation({
          identifier: "m",
          name: "m",
          url: "ftp://firewall/drop",
          effective_attacks: ["T1041", "t1041", "T1041.1"],
          cost: -1,
          conditions: ["ok", 2, null],
          steps: [{ agent: "reboot" }, { agent: "block-ip", details: "x" }],
        }),
      ),
    ).toEqual([
      { field: "url", message: "must be an http(s) URL" },
      { field: "effective_attacks[1]", message: expect.stringContaining("technique id") },
      { field: "effective_attacks[2]", message: expect.stringContaining("technique id") },
      { field: "cost", message: "must be >= 0" },
      { field: "conditions[2]", message: "must be a non-empty string or an integer" },
      {
        field: "steps[0].agent",
        message: `must be one of ${AGENT_COMMANDS.join(", ")}, push-rules`,
      },
      { field: "steps[1].details", message: "must be an object" },
    ]);
    expect(
      errorsOf(
        validateMitigation({
          identifier: "m",
          name: "m",
          url: "http://x",
          effective_attacks: [],
          cost: "1",
        }),
      ),
    ).toEqual([
      { field: "effective_attacks", message: "must list at least one technique" },
      { field: "cost", message: expect.stringContaining("expected number") },
    ]);
  });

  it("checks push-rules details: a rule set (host or group) or the alert's techniques", () => {
    const withStep = (details: unknown) => ({
      identifier: "p",
      name: "p",
      effective_attacks: ["T1003"],
      cost: 1,
      steps: [{ agent: "push-rules", details }],
    });
    for (const ok of [
      { rule_set: "windows" },
      { rule_set: "windows", version: 3, target: "group" },
      { techniques: "alert" },
    ])
      expect(validateMitigation(withStep(ok)).ok, JSON.stringify(ok)).toBe(true);
    // The details, or the field of them zod could pin down (e.g. steps[0].details.version).
    for (const bad of [
      {},
      { rule_set: "" },
      { rule_set: "w", target: "everyone" },
      { rule_set: "w", version: 0 },
      { techniques: "all" },
      { techniques: "alert", target: "group" },
      { rule_set: "w", extra: 1 },
    ])
      expect(errorsOf(validateMitigation(withStep(bad))), JSON.stringify(bad)).toEqual([
        { field: expect.stringMatching(/^steps\[0\]\.details/), message: expect.any(String) },
      ]);
  });
});

const flow = (nodes: unknown[], start: string[] = ["a"]) => ({
  identifier: "f",
  name: "f",
  nodes,
  start,
});

describe("validateAttackFlow", () => {
  it("accepts a DAG with shared successors", () => {
    const input = flow([
      { id: "a", techniques: ["T1041"], next: ["b", "c"] },
      { id: "b", techniques: ["T1222"], next: ["d"], conditions: ["x", 2] },
      { id: "c", techniques: ["T1222.002"], next: ["d"], preemptive: true },
      { id: "d", techniques: ["T1204.002"] },
    ]);
    expect(validateAttackFlow(input)).toEqual({ ok: true, value: input });
  });

  it("reports duplicate ids and dangling references with their paths", () => {
    const input = flow(
      [
        { id: "a", techniques: ["T1041"], next: ["b", "zz"] },
        { id: "b", techniques: ["T1041"] },
        { id: "a", techniques: ["T1041"] },
      ],
      ["a", "nope"],
    );
    expect(errorsOf(validateAttackFlow(input))).toEqual([
      { field: "nodes[2].id", message: 'duplicate node id "a"' },
      { field: "nodes[0].next[1]", message: 'no node has id "zz"' },
      { field: "start[1]", message: 'no node has id "nope"' },
    ]);
  });

  it("reports a cycle by its nodes", () => {
    const input = flow([
      { id: "a", techniques: ["T1041"], next: ["b"] },
      { id: "b", techniques: ["T1041"], next: ["c"] },
      { id: "c", techniques: ["T1041"], next: ["b"] },
    ]);
    expect(errorsOf(validateAttackFlow(input))).toEqual([
      { field: "nodes", message: "attack flows must be acyclic: b → c → b" },
    ]);
    expect(
      errorsOf(validateAttackFlow(flow([{ id: "a", techniques: ["T1041"], next: ["a"] }]))),
    ).toEqual([{ field: "nodes", message: "attack flows must be acyclic: a → a" }]);
  });

  it("names malformed nodes", () => {
    expect(
      errorsOf(
        validateAttackFlow(
          flow(
            [
              { id: "", techniques: [] },
              { id: "b", techniques: ["T12"], preemptive: "yes" },
            ],
            [],
          ),
        ),
      ),
    ).toEqual([
      { field: "nodes[0].id", message: "must not be empty" },
      { field: "nodes[0].techniques", message: "must list at least one technique" },
      { field: "nodes[1].techniques[0]", message: expect.stringContaining("technique id") },
      { field: "nodes[1].preemptive", message: expect.stringContaining("expected boolean") },
      { field: "start", message: "must name at least one start node" },
    ]);
    expect(
      errorsOf(validateAttackFlow({ identifier: "f", name: "f", nodes: [], start: ["a"] })),
    ).toEqual([{ field: "nodes", message: "must have at least one node" }]);
  });
});

describe("helpers", () => {
  it("referencedConditions lists each condition once, as given", () => {
    const f = flow([
      { id: "a", techniques: ["T1041"], conditions: ["x", 2], next: ["b"] },
      { id: "b", techniques: ["T1041"], conditions: ["2", "y", "x"] },
    ]);
    expect(referencedConditions(f as never)).toEqual(["x", 2, "y"]);
  });

  it('identifierKey makes 999 and "999" the same document', () => {
    expect(identifierKey(999)).toBe("999");
    expect(identifierKey("999")).toBe("999");
  });

  it("fieldPath", () => {
    expect(fieldPath(["nodes", 1, "next", 0])).toBe("nodes[1].next[0]");
    expect(fieldPath([])).toBe("(root)");
  });

  it("AGENT_COMMANDS are the seed's commands", () => {
    expect(AGENT_COMMANDS).toEqual([
      "isolate-host",
      "release-host",
      "kill-process",
      "delete-file",
      "quarantine-file",
      "block-ip",
      "unblock-ip",
    ]);
  });
});
