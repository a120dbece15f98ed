// Fibratus detection rules: the rule format, reading rules from YAML, and the macro references of
// a condition. The format restates Fibratus's own JSON Schema (pkg/config/rules.schema.json) as
// zod, because the service must validate without the corpus beside it; a test checks the two agree
// on every rule of the real catalogue and on mutated copies. Where the upstream schema is looser
// than it means to be, this one says what it means, and the difference is named beside the field.
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { type Document, isCollection, LineCounter, parseAllDocuments } from "yaml";
import { z } from "zod";
import type { FieldError } from "./model.ts";

// Upstream writes `^([0-9]+.)([0-9]+.)([0-9]+)$` (an unescaped dot): the intent is x.y.z.
const SEMVER = /^[0-9]+\.[0-9]+\.[0-9]+$/;
/** "is required" when absent, `wrong` when present but not a string. */
const text = (what: string, wrong: string) =>
  z.string({ error: (iss) => (iss.input === undefined ? `${what} is required` : wrong) });
const semver = (what: string) => {
  const wrong = `${what} must be a version x.y.z (e.g. 1.0.0), quoted if YAML reads it as a number`;
  return text(what, wrong).regex(SEMVER, { error: wrong });
};

// Upstream's arrays use draft-07 tuple `items`, which checks only the first element; every element
// is meant to be a non-empty string.
const strings = (what: string) =>
  z.array(z.string({ error: `each ${what} must be a string` }).min(1, `empty ${what}`));

const killAction = z.strictObject({ name: z.literal("kill") });
const isolateAction = z.strictObject({
  name: z.literal("isolate"),
  whitelist: z
    .array(z.string().refine((s) => isIP(s) === 4, { error: "must be an IPv4 address" }))
    .min(1, { error: "whitelist needs at least one address" })
    .optional(),
});

export const ruleSchema = z.strictObject({
  id: z
    .string({
      error: (iss) => (iss.input === undefined ? "id is required" : "id must be a string"),
    })
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      error: "id must be a lower-case UUID",
    }),
  version: semver("version"),
  name: text("name", "name must be a string").min(3, { error: "name needs 3 characters or more" }),
  description: z.string().optional(),
  output: z.string().min(5, { error: "output needs 5 characters or more" }).optional(),
  notes: z.string().optional(),
  severity: z
    .enum(["low", "medium", "high", "critical"], {
      error: "severity must be one of low, medium, high, critical",
    })
    .optional(),
  "min-engine-version": semver("min-engine-version"),
  enabled: z.boolean().optional(),
  condition: text("condition", "condition must be a string").min(3, {
    error: "condition needs 3 characters or more",
  }),
  labels: z.record(z.string(), z.string({ error: "label values must be strings" })).optional(),
  tags: strings("tag").optional(),
  references: strings("reference").optional(),
  authors: strings("author").optional(),
  action: z
    .array(
      z.discriminatedUnion("name", [killAction, isolateAction], {
        error: "action name must be kill or isolate",
      }),
    )
    .optional(),
});

export type Rule = z.infer<typeof ruleSchema>;

/** A rule as read from YAML: the document, its exact source text and that text's SHA-256. */
export interface ParsedRule {
  rule: Rule;
  content: string;
  sha256: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** The most documents one request may carry: the whole catalogue is ~150. */
export const MAX_RULES_PER_REQUEST = 2000;

export const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

/** Where (1-based line) a path of the document starts, when the parser knows. */
function lineOf(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number | null {
  let node: unknown = doc.contents;
  for (const key of path) {
    // A missing field has no line of its own.
    if (!isCollection(node)) return null;
    node = node.get(typeof key === "symbol" ? String(key) : key, true);
  }
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lines.linePos(range[0]).line : null;
}

const lineSuffix = (line: number | null) => (line === null ? "" : ` (line ${line})`);

function fieldOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) =>
      typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key),
    "",
  );
}

/**
 * Reads a YAML stream of rules (one document or many), checking each against the rule format.
 * Errors name the document (`[i]` when there are several), the field, and the YAML line.
 */
export function parseRules(source: string): Parsed<ParsedRule[]> {
  const lines = new LineCounter();
  const docs = parseAllDocuments(source, { lineCounter: lines, prettyErrors: false });
  if (!Array.isArray(docs)) return { ok: false, errors: [{ field: "(body)", message: "empty" }] };
  const present = docs.filter((d) => d.contents !== null || d.errors.length);
  if (!present.length) return { ok: false, errors: [{ field: "(body)", message: "no rule" }] };
  if (present.length > MAX_RULES_PER_REQUEST) {
    const message = `${present.length} documents; at most ${MAX_RULES_PER_REQUEST} per request`;
    return { ok: false, errors: [{ field: "(body)", message }] };
  }
  const many = present.length > 1;
  const errors: FieldError[] = [];
  const rules: ParsedRule[] = [];
  present.forEach((doc, i) => {
    const prefix = many ? `[${i}]` : "";
    const at = lineSuffix;
    if (doc.errors.length) {
      for (const e of doc.errors) {
        const line = lines.linePos(e.pos[0]).line;
        const reason = (e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
        errors.push({ field: prefix || "(body)", message: `invalid YAML${at(line)}: ${reason}` });
      }
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      // An alias bomb: refused rather than expanded.
      errors.push({ field: prefix || "(body)", message: `invalid YAML: ${(e as Error).message}` });
      return;
    }
    const checked = ruleSchema.safeParse(value);
    if (!checked.success) {
      for (const issue of checked.error.issues) {
        // An unknown key is named as the field itself, so the message points at it.
        const keys = issue.code === "unrecognized_keys" ? issue.keys : [null];
        for (const key of keys) {
          const path = key === null ? issue.path : [...issue.path, key];
          const field = fieldOf(path) || "(rule)";
          const message = key === null ? issue.message : `unknown key ${JSON.stringify(key)}`;
          errors.push({
            field: prefix ? `${prefix}.${field}` : field,
            message: `${message}${at(lineOf(doc, lines, path))}`,
          });
        }
      }
      return;
    }
    const [start, , end] = doc.range;
    // The rule's own text, as a file of its own would hold it: without the stream's `---`.
    const content = `${source
      .slice(start, end)
      .replace(/^---[^\n]*\n/, "")
      .trimEnd()}\n`;
    rules.push({ rule: checked.data, content, sha256: sha256Hex(content) });
  });
  return errors.length ? { ok: false, errors } : { ok: true, value: rules };
}

/** One entry of a Fibratus macros file: an expression macro or a list macro. */
const macroSchema = z.union([
  z.strictObject({
    macro: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "must be an identifier" }),
    expr: z.string().min(1),
    description: z.string().optional(),
  }),
  z.strictObject({
    macro: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "must be an identifier" }),
    list: z.array(z.union([z.string(), z.number()])).min(1),
    description: z.string().optional(),
  }),
]);
export type Macro = z.infer<typeof macroSchema>;

/**
 * Reads a macros file (a YAML list of macros) and checks that every
 * macro an expression refers to is defined in the same file.
 */
export function parseMacros(source: string): Parsed<Macro[]> {
  const lines = new LineCounter();
  const docs = parseAllDocuments(source, { lineCounter: lines, prettyErrors: false });
  if (!Array.isArray(docs) || docs.length !== 1) {
    return { ok: false, errors: [{ field: "(body)", message: "one YAML document expected" }] };
  }
  const doc = docs[0] as Document;
  if (doc.errors.length) {
    return {
      ok: false,
      errors: doc.errors.map((e) => ({
        field: "(body)",
        message: `invalid YAML (line ${lines.linePos(e.pos[0]).line}): ${e.message.split("\n")[0]}`,
      })),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return {
      ok: false,
      errors: [{ field: "(body)", message: `invalid YAML: ${(e as Error).message}` }],
    };
  }
  const checked = z
    .array(macroSchema, { error: "a macros file is a YAML list of macros" })
    .safeParse(value);
  if (!checked.success) {
    return {
      ok: false,
      errors: checked.error.issues.map((issue) => ({
        field: fieldOf(issue.path) || "(body)",
        message: `${issue.message}${lineSuffix(lineOf(doc, lines, issue.path))}`,
      })),
    };
  }
  // A name defined twice is not refused: Fibratus keeps the last definition, and its own macros
  // file does define one macro twice.
  const names = new Set(checked.data.map((m) => m.macro));
  const errors: FieldError[] = [];
  checked.data.forEach((m, i) => {
    if (!("expr" in m)) return;
    for (const ref of macroReferences(m.expr)) {
      if (!names.has(ref))
        errors.push({ field: `[${i}].expr`, message: `refers to undefined macro ${ref}` });
    }
  });
  return errors.length ? { ok: false, errors } : { ok: true, value: checked.data };
}

// Words of the Fibratus filter language that are not macro names: operators, sequence syntax and
// literals. Fields are dotted (ps.name), functions are called (base(...)), bound variables start
// with $ and output references with %, so none of those are taken for macros.
const KEYWORDS = new Set([
  "and",
  "or",
  "not",
  "in",
  "iin",
  "matches",
  "imatches",
  "contains",
  "icontains",
  "startswith",
  "istartswith",
  "endswith",
  "iendswith",
  "fuzzy",
  "ifuzzy",
  "fuzzynorm",
  "ifuzzynorm",
  "intersects",
  "iintersects",
  "sequence",
  "maxspan",
  "by",
  "as",
  "true",
  "false",
  "nil",
]);

/**
 * The macro (or list) names a condition refers to: bare identifiers that are not keywords, fields,
 * function calls, bound variables or the name a sequence step is bound to (`|...| as e1`).
 */
export function macroReferences(condition: string): string[] {
  // Strings are opaque: a path such as '?:\Windows\cmd.exe' holds no references.
  const code = condition.replace(/'[^']*'|"[^"]*"/g, "''");
  const refs = new Set<string>();
  const token = /([$%]?)([A-Za-z_]\w*)((?:\.\w+|\[[^\]]*\])*)(\s*\()?/g;
  let previous = "";
  for (const m of code.matchAll(token)) {
    const [, sigil, name = "", rest, call] = m;
    const before = code[m.index - 1] ?? "";
    const boundName = previous === "as";
    previous = name;
    // Part of a number or duration (7m, 0x1F), a bound variable ($e1.ps.pid), a field (ps.name,
    // evt.arg[exe]), a call (base(file.path)), a keyword, or the name `as` binds.
    if (/[\w.$%\]]/.test(before) || sigil || rest || call || KEYWORDS.has(name) || boundName)
      continue;
    refs.add(name);
  }
  return [...refs];
}

/** Techniques (with the parents of sub-techniques) and tactics named by a rule's labels. */
export function attackLabels(rule: Rule): { techniques: string[]; tactics: string[] } {
  const techniques = new Set<string>();
  const tactics = new Set<string>();
  for (const [key, value] of Object.entries(rule.labels ?? {})) {
    if (/^(sub)?technique\.id$/.test(key)) {
      for (const id of value.toUpperCase().match(/T\d{4}(\.\d{3})?/g) ?? []) {
        techniques.add(id);
        techniques.add(id.slice(0, 5));
      }
    } else if (key === "tactic.id") {
      for (const id of value.toUpperCase().match(/TA\d{4}/g) ?? []) tactics.add(id);
    }
  }
  return { techniques: [...techniques].sort(), tactics: [...tactics].sort() };
}

/**
 * A rule version as the integer the update_rules frame carries (the seed's shape): x.y.z →
 * x·1,000,000 + y·1,000 + z, so the integers order as the versions do while y and z stay < 1,000.
 */
export function ruleVersionCode(version: string): number {
  const [x = 0, y = 0, z = 0] = version.split(".").map(Number);
  return x * 1_000_000 + Math.min(y, 999) * 1_000 + Math.min(z, 999);
}

/** Orders versions x.y.z numerically: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * A line diff of two texts (longest common subsequence), as unified-diff-style lines prefixed
 * with " ", "-" or "+". Rules are short; inputs over `maxLines` lines are refused by the caller.
 */
export function lineDiff(before: string, after: string): string[] {
  const a = before.split("\n");
  const b = after.split("\n");
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () =>
    new Array<number>(b.length + 1).fill(0),
  );
  const at = (i: number, j: number) => lcs[i]?.[j] ?? 0;
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      (lcs[i] as number[])[j] =
        a[i] === b[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push(` ${a[i++]}`);
      j++;
    } else if (at(i + 1, j) >= at(i, j + 1)) out.push(`-${a[i++]}`);
    else out.push(`+${b[j++]}`);
  }
  while (i < a.length) out.push(`-${a[i++]}`);
  while (j < b.length) out.push(`+${b[j++]}`);
  return out;
}

/** A rollout's pace unless its requester says otherwise (REST and push-rules steps alike). */
export const ROLLOUT_DEFAULTS = {
  canaryShare: 0.05,
  waveSize: 250,
  agentTimeoutSeconds: 60,
  retries: 2,
} as const;
