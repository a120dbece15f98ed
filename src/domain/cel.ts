// CEL checks of conditions. Activities and the API only (workflow code never evaluates CEL).
//
// Values: CEL distinguishes int from double, JSON does not. Inputs are normalised so that every
// integral JS number becomes a CEL int (BigInt) and every other number a double; `args.level > 10`,
// `args.level + 1 == 15` and `rows.size() > 0` then behave as an analyst expects. Wazuh often
// sends numbers as strings ("3613"); compare those with int(args.pid) or as strings.
//
// Safety: CEL cannot execute code or loop unboundedly, and matches() runs on RE2 (re2js), whose
// time is linear in the text: JavaScript's backtracking engine takes minutes for an ordinary
// pattern like ".*powershell.*-enc.*z" over 22 KB of alert text. Nested comprehensions can still
// cost n^k; check-budget.ts bounds what one evaluation may take in time and memory.

import type { ParseResult } from "@marcbachmann/cel-js";
import { Environment } from "@marcbachmann/cel-js";
import { RE2JS } from "re2js";
import { inCidr, isLoopbackIp, isPrivateIp, parseIp } from "./ip.ts";

export interface CheckVars {
  params: Record<string, unknown>;
  args: Record<string, unknown>;
  alert: unknown;
  rows: Record<string, unknown>[];
}

const RE2_MATCHES = "matchesRe2";

type Compiled = { ok: true; program: ParseResult } | { ok: false; error: string };

const env = new Environment({
  enableOptionalTypes: true, // alert.?data.?pid.orValue("") for fields only some alerts carry
  limits: {
    maxAstNodes: 2_000,
    maxDepth: 48,
    maxListElements: 500,
    maxMapEntries: 500,
    maxCallArguments: 16,
  },
})
  .registerVariable("params", "map")
  .registerVariable("args", "map")
  .registerVariable("alert", "map")
  .registerVariable("rows", "list")
  .registerFunction("isIp(string): bool", (s: string) => parseIp(s) !== null)
  .registerFunction("inCidr(string, string): bool", (ip: string, cidr: string) => inCidr(ip, cidr))
  .registerFunction("isPrivateIp(string): bool", (ip: string) => isPrivateIp(ip))
  .registerFunction("isLoopbackIp(string): bool", (ip: string) => isLoopbackIp(ip))
  // cel-js's own matches() uses RegExp and cannot be replaced, so compile() renames the calls.
  .registerFunction(`string.${RE2_MATCHES}(string): bool`, (text: string, pattern: string) =>
    re2(pattern).matcher(text).find(),
  );

const MAX_CACHED = 1_000;
const cache = new Map<string, Compiled>();

function compile(expr: string): Compiled {
  const hit = cache.get(expr);
  if (hit) return hit;
  const compiled = compileUncached(expr);
  // Checks come from a small catalogue; the bound only guards against a client posting garbage.
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
  cache.set(expr, compiled);
  return compiled;
}

function compileUncached(expr: string): Compiled {
  if (typeof expr !== "string" || expr.trim() === "")
    return { ok: false, error: "check must be a non-empty CEL expression" };
  try {
    const program = env.parse(expr);
    const regexProblem = useRe2(program.ast);
    if (regexProblem) return { ok: false, error: regexProblem };
    const typed = program.check();
    if (!typed.valid) return { ok: false, error: describe(typed.error) };
    if (typed.type !== "bool" && typed.type !== "dyn") {
      return { ok: false, error: `check must evaluate to a bool, but it is ${typed.type}` };
    }
    return { ok: true, program };
  } catch (err) {
    return { ok: false, error: describe(err) };
  }
}

/** Parses and type-checks a check expression (cached); the error is fit for a 400 response. */
export function compileCheck(expr: string): { ok: true } | { ok: false; error: string } {
  const compiled = compile(expr);
  return compiled.ok ? { ok: true } : compiled;
}

/** Evaluates a check; anything other than a bool result is an error. Never throws. */
export function evaluateCheck(
  expr: string,
  vars: CheckVars,
): { ok: true; value: boolean } | { ok: false; error: string } {
  const compiled = compile(expr);
  if (!compiled.ok) return compiled;
  try {
    const value: unknown = compiled.program({
      params: toCel(vars.params ?? {}, 0),
      args: toCel(vars.args ?? {}, 0),
      alert: toCel(vars.alert ?? {}, 0),
      rows: toCel(vars.rows ?? [], 0),
    });
    if (typeof value !== "boolean")
      return { ok: false, error: `check must evaluate to a bool, got ${celKind(value)}` };
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: describe(err) };
  }
}

const MAX_DEPTH = 64;

/** JSON-ish value → CEL value (see the header for the int rule). Drops functions and undefined. */
function toCel(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new Error(`input nested deeper than ${MAX_DEPTH} levels`);
  if (typeof v === "number") return Number.isSafeInteger(v) ? BigInt(v) : v;
  if (v === undefined || typeof v === "function" || typeof v === "symbol") return undefined;
  if (typeof v !== "object" || v === null || v instanceof Date || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map((x) => toCel(x, depth + 1) ?? null);
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(
    Object.entries(v)
      .map(([k, x]) => [k, toCel(x, depth + 1)] as const)
      .filter(([, x]) => x !== undefined),
  );
}

function celKind(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "bigint") return "int";
  if (typeof v === "number") return "double";
  return Array.isArray(v) ? "list" : typeof v === "object" ? "map" : typeof v;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const { summary, range } = err as Error & { summary?: string; range?: { start: number } };
  const message = summary ? `${summary}${range ? ` (at offset ${range.start})` : ""}` : err.message;
  return message.replaceAll(RE2_MATCHES, "matches");
}

// ---- matches(): literal RE2 patterns ------------------------------------------------------------

interface AstLike {
  op: string;
  args: unknown;
}

function isAst(v: unknown): v is AstLike {
  return (
    typeof v === "object" && v !== null && typeof (v as AstLike).op === "string" && "args" in v
  );
}

/**
 * Points every `s.matches(p)` at the RE2 implementation and checks its pattern; a message when a
 * pattern is not a string literal (a literal is checked here, once, and yields a 400 at once).
 */
function useRe2(node: unknown): string | null {
  if (Array.isArray(node)) {
    for (const child of node) {
      const problem = useRe2(child);
      if (problem) return problem;
    }
    return null;
  }
  if (!isAst(node)) return null;
  const args = node.args as unknown[];
  // rcall: [name, receiver, [args]]
  if (node.op === "rcall" && args[0] === "matches") {
    const pattern = (args[2] as unknown[])?.[0];
    if (!isAst(pattern) || pattern.op !== "value" || typeof pattern.args !== "string")
      return "matches() needs a string literal pattern";
    const problem = regexProblem(pattern.args);
    if (problem) return `matches("${pattern.args}"): ${problem}`;
    args[0] = RE2_MATCHES;
  }
  return Array.isArray(node.args) ? useRe2(node.args) : null;
}

/** null when RE2 accepts the pattern (it has no backreferences or lookaround). */
export function regexProblem(pattern: string): string | null {
  if (pattern.length > 512) return "pattern longer than 512 characters";
  try {
    re2(pattern);
    return null;
  } catch (err) {
    return `invalid RE2 pattern: ${(err as Error).message}`;
  }
}

const patterns = new Map<string, RE2JS>();

function re2(pattern: string): RE2JS {
  const hit = patterns.get(pattern);
  if (hit) return hit;
  const compiled = RE2JS.compile(pattern);
  if (patterns.size >= MAX_CACHED) patterns.delete(patterns.keys().next().value as string);
  patterns.set(pattern, compiled);
  return compiled;
}
