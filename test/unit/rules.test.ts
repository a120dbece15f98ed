// The rule format as the service states it (src/domain/rules.ts) against Fibratus's own JSON
// Schema from the corpus: both accept every catalogue rule and refuse the same mutated copies.
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  attackLabels,
  lineDiff,
  macroReferences,
  parseMacros,
  parseRules,
  ruleSchema,
} from "../../src/domain/rules.ts";
import { corpusMacros, corpusRules, corpusSchema, mutants } from "../support/fibratus-rules.ts";

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats.default(ajv);
const upstream = ajv.compile(corpusSchema());

describe("the rule format", () => {
  const rules = corpusRules();

  it("accepts every rule of the catalogue, as Fibratus's schema does", () => {
    expect(rules.length).toBeGreaterThanOrEqual(130);
    for (const [file, text] of rules) {
      const doc = parse(text);
      expect(upstream(doc), `${file}: ${ajv.errorsText(upstream.errors)}`).toBe(true);
      expect(ruleSchema.safeParse(doc).success, file).toBe(true);
      const parsed = parseRules(text);
      expect(parsed.ok, file).toBe(true);
    }
  });

  it("refuses each mutated copy, as Fibratus's schema does, naming the field", () => {
    for (const [what, text, field, message] of mutants()) {
      expect(upstream(parse(text)), what).toBe(false);
      const parsed = parseRules(text);
      expect(parsed.ok, what).toBe(false);
      if (parsed.ok) continue;
      const error = parsed.errors.find((e) => e.field === field);
      expect(error?.message, `${what}: ${JSON.stringify(parsed.errors)}`).toMatch(message);
    }
  });

  it("names the line of invalid YAML", () => {
    const parsed = parseRules("name: ok\nid: [unclosed\nversion: 1.0.0\n");
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.errors[0]?.message).toMatch(/^invalid YAML \(line \d\)/);
  });

  it("reads a multi-document stream, naming the document of each error", () => {
    const [[, a], [, b]] = rules as [[string, string], [string, string]];
    const ok = parseRules(`${a}\n---\n${b}`);
    expect(ok.ok && ok.value.length).toBe(2);
    const bad = parseRules(`${a}\n---\n${b.replace(/^severity: .*$/m, "severity: extreme")}`);
    expect(!bad.ok && bad.errors.map((e) => e.field)).toEqual(["[1].severity"]);
  });
});

describe("macros", () => {
  const macros = parseMacros(corpusMacros());

  it("reads the catalogue's macros file, and every rule's references are defined in it", () => {
    expect(macros.ok).toBe(true);
    if (!macros.ok) return;
    const names = new Set(macros.value.map((m) => m.macro));
    let referenced = 0;
    for (const [file, text] of corpusRules()) {
      const refs = macroReferences(parse(text).condition);
      referenced += refs.length;
      expect(
        refs.filter((r) => !names.has(r)),
        file,
      ).toEqual([]);
    }
    expect(referenced).toBeGreaterThan(100);
  });

  it("finds macros and lists, not fields, calls, keywords, strings or bound names", () => {
    const condition = `sequence maxspan 1m by ps.uuid
      |spawn_process and ps.name iin msoffice_binaries and base(file.path) = 'a and b'| as e1
      |write_file and evt.arg[exe] != $e1.ps.exe and length(ps.args) > 0x1F and not my_macro|`;
    expect(macroReferences(condition).sort()).toEqual(
      ["msoffice_binaries", "my_macro", "spawn_process", "write_file"].sort(),
    );
  });

  it("refuses a macros file whose expression refers to an undefined macro", () => {
    const parsed = parseMacros("- macro: a\n  expr: b and evt.name = 'x'\n");
    expect(!parsed.ok && parsed.errors[0]).toEqual({
      field: "[0].expr",
      message: "refers to undefined macro b",
    });
  });
});

describe("ATT&CK labels and diffs", () => {
  it("counts a sub-technique for its parent", () => {
    const parsed = parseRules(corpusRules()[0]?.[1] ?? "");
    const rule = {
      ...(parsed.ok ? parsed.value[0]?.rule : undefined),
      labels: { "tactic.id": "TA0006", "subtechnique.id": "T1003.001" },
    } as Parameters<typeof attackLabels>[0];
    expect(attackLabels(rule)).toEqual({ techniques: ["T1003", "T1003.001"], tactics: ["TA0006"] });
  });

  it("diffs lines", () => {
    expect(lineDiff("a\nb\nc", "a\nx\nc")).toEqual([" a", "-b", "+x", " c"]);
  });
});
