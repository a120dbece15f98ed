// CEL checks of conditions. Activities and the API only (workflow code never evaluates CEL).
//
// Values: CEL distinguishes int from double, JSON does not. Inputs are normalised so that every
// integral JS number becomes a CEL int (BigInt) and every other number a double; `args.level > 10`,
// `args.level + 1 == 15` and `rows.size() > 0` then behave as an analyst expects. Wazuh often
// sends numbers as strings ("3613"); compare those with int(args.pid) or as strings.
//
// Safety: CEL cannot execute code or loop unboundedly. The one remaining hazard is a regular
// expression with catastrophic backtracking in matches(), which would stall the worker's event
// loop; compileCheck therefore requires literal patterns and refuses nested unbounded quantifiers.

import type { ParseResult } from "@marcbachmann/cel-js";
import { Environment } from "@marcbachmann/cel-js";

export interface CheckVars {
  params: Record<string, unknown>;
  args: Record<string, unknown>;
  alert: unknown;
  rows: Record<string, unknown>[];
}

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
  .registerFunction("isLoopbackIp(string): bool", (ip: string) => isLoopbackIp(ip));

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
    const typed = program.check();
    if (!typed.valid) return { ok: false, error: describe(typed.error) };
    if (typed.type !== "bool" && typed.type !== "dyn") {
      return { ok: false, error: `check must evaluate to a bool, but it is ${typed.type}` };
    }
    const regexProblem = unsafeMatches(program.ast);
    return regexProblem ? { ok: false, error: regexProblem } : { ok: true, program };
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
  return summary ? `${summary}${range ? ` (at offset ${range.start})` : ""}` : err.message;
}

// ---- matches(): literal patterns without catastrophic backtracking -------------------------------

interface AstLike {
  op: string;
  args: unknown;
}

function isAst(v: unknown): v is AstLike {
  return (
    typeof v === "object" && v !== null && typeof (v as AstLike).op === "string" && "args" in v
  );
}

function unsafeMatches(node: unknown): string | null {
  if (Array.isArray(node)) {
    for (const child of node) {
      const problem = unsafeMatches(child);
      if (problem) return problem;
    }
    return null;
  }
  if (!isAst(node)) return null;
  const args = node.args as unknown[];
  // rcall: [name, receiver, [args]] — "s".matches(p); call: [name, [args]] — matches(s, p)
  const pattern =
    node.op === "rcall" && args[0] === "matches"
      ? (args[2] as unknown[])?.[0]
      : node.op === "call" && args[0] === "matches"
        ? (args[1] as unknown[])?.[1]
        : undefined;
  if (pattern !== undefined) {
    if (!isAst(pattern) || pattern.op !== "value" || typeof pattern.args !== "string") {
      return "matches() needs a string literal pattern";
    }
    const problem = regexProblem(pattern.args);
    if (problem) return `matches("${pattern.args}"): ${problem}`;
  }
  return Array.isArray(node.args) ? unsafeMatches(node.args) : null;
}

/**
 * A conservative screen for exponential backtracking: refuses backreferences and a group under an
 * unbounded quantifier (*, +, {n,}) that itself contains a quantifier, e.g. (a+)+ or (\w*\s?)*.
 * Overlapping alternations like (a|a)* slip through; the patterns analysts write rarely need
 * either construct.
 */
export function regexProblem(pattern: string): string | null {
  if (pattern.length > 512) return "pattern longer than 512 characters";
  try {
    new RegExp(pattern);
  } catch {
    return "invalid regular expression";
  }
  const groups: boolean[] = [false]; // per open group: does it contain a quantifier?
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      if (/[1-9k]/.test(pattern[i + 1] ?? "")) return "backreferences are not allowed";
      i++;
    } else if (c === "[") {
      for (i++; i < pattern.length && pattern[i] !== "]"; i++) if (pattern[i] === "\\") i++;
    } else if (c === "(") {
      groups.push(false);
      if (pattern[i + 1] === "?") i++; // (?: (?= (?! (?<name> — not a quantifier
    } else if (c === ")") {
      const inner = groups.pop() ?? false;
      const quantifier = quantifierAt(pattern, i + 1);
      if (inner && quantifier === "unbounded")
        return "nested quantifiers can backtrack catastrophically";
      if (inner || quantifier) groups[groups.length - 1] = true;
    } else if (quantifierAt(pattern, i)) {
      groups[groups.length - 1] = true;
    }
  }
  return null;
}

function quantifierAt(p: string, i: number): "bounded" | "unbounded" | null {
  const c = p[i];
  if (c === "*" || c === "+") return "unbounded";
  if (c === "?") return "bounded";
  if (c === "{") {
    const m = /^\{\d+(,(\d*))?\}/.exec(p.slice(i));
    if (m) return m[1] !== undefined && m[2] === "" ? "unbounded" : "bounded";
  }
  return null;
}

// ---- IP addresses ----------------------------------------------------------------------------

interface Ip {
  version: 4 | 6;
  value: bigint;
}

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused: some stacks read them as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseV6(s: string): bigint | null {
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (half: string): bigint[] | null => {
    if (half === "") return [];
    const out: bigint[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseV4(part);
        if (v4 === null) return null;
        out.push(v4 >> 16n, v4 & 0xffffn);
      } else if (/^[0-9a-f]{1,4}$/i.test(part)) {
        out.push(BigInt(`0x${part}`));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groupsOf(halves[0] ?? "");
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? "") : [];
  if (!head || !tail) return null;
  // An embedded IPv4 part may only end the address.
  if (halves.length === 2 && halves[0]?.includes(".")) return null;
  const present = head.length + tail.length;
  if (halves.length === 1 ? present !== 8 : present > 7) return null;
  const groups = [...head, ...Array<bigint>(8 - present).fill(0n), ...tail];
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** IPv4 or IPv6 (no zone ids); null when the text is not an address. */
export function parseIp(s: string): Ip | null {
  if (typeof s !== "string" || s.length > 64) return null;
  const v4 = parseV4(s);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = s.includes(":") ? parseV6(s) : null;
  return v6 === null ? null : { version: 6, value: v6 };
}

/** ::ffff:a.b.c.d is the IPv4 address a.b.c.d for every predicate below. */
function unmapped(ip: Ip): Ip {
  return ip.version === 6 && ip.value >> 32n === 0xffffn
    ? { version: 4, value: ip.value & 0xffffffffn }
    : ip;
}

function requireIp(s: string, fn: string): Ip {
  const ip = parseIp(s);
  // An error, not false: a condition over a garbled address must not hold by negation
  // (!isLoopbackIp("garbage") would otherwise let a mitigation block it).
  if (!ip) throw new Error(`${fn}: "${s.slice(0, 64)}" is not an IP address`);
  return ip;
}

function inRange(ip: Ip, base: Ip, prefix: number): boolean {
  if (ip.version !== base.version) return false;
  const shift = BigInt((ip.version === 4 ? 32 : 128) - prefix);
  return ip.value >> shift === base.value >> shift;
}

/** `cidr` may also be a bare address (a /32 or /128). An address matches in its IPv4-mapped form too. */
export function inCidr(ipText: string, cidr: string): boolean {
  const ip = requireIp(ipText, "inCidr");
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(cidr);
  const base = m?.[1] ? parseIp(m[1]) : null;
  if (!m || !base) throw new Error(`inCidr: "${cidr.slice(0, 64)}" is not a CIDR range`);
  const max = base.version === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) throw new Error(`inCidr: prefix /${prefix} is too long for "${cidr}"`);
  const ranges: Array<[Ip, number]> = [[base, prefix]];
  if (prefix >= 96 && unmapped(base) !== base) ranges.push([unmapped(base), prefix - 96]);
  return [ip, unmapped(ip)].some((candidate) => ranges.some(([b, p]) => inRange(candidate, b, p)));
}

const PRIVATE: ReadonlyArray<[string, number]> = [
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["fc00::", 7],
];
const LOOPBACK: ReadonlyArray<[string, number]> = [
  ["127.0.0.0", 8],
  ["::1", 128],
];

function inAny(ip: Ip, ranges: ReadonlyArray<[string, number]>): boolean {
  return ranges.some(([base, prefix]) => inRange(ip, parseIp(base) as Ip, prefix));
}

/** RFC 1918 and RFC 4193 (fc00::/7), as Go's net.IP.IsPrivate; loopback and link-local are not private. */
export function isPrivateIp(s: string): boolean {
  return inAny(unmapped(requireIp(s, "isPrivateIp")), PRIVATE);
}

export function isLoopbackIp(s: string): boolean {
  return inAny(unmapped(requireIp(s, "isLoopbackIp")), LOOPBACK);
}
