// Alert normalisation: Wazuh alerts and agent-forwarded alerts become one Alert shape. Runs in the
// API, the gateway and activities (it hashes with node:crypto), never in workflow code — workflows
// only import its types.
import { createHash } from "node:crypto";
import { type FieldError, TECHNIQUE_ID } from "./model.ts";

export type { FieldError } from "./model.ts";

export type Severity = "low" | "medium" | "high" | "critical";

export interface AlertHost {
  name: string;
  agentId?: string;
  ip?: string;
}

export interface Alert {
  id: string;
  /** ISO 8601 UTC with milliseconds, e.g. 2024-10-22T09:31:15.007Z. */
  time: string;
  host: AlertHost;
  rule: { id: string; level: number; description?: string };
  techniques: string[];
  tactics: string[];
  severity: Severity;
  format: "wazuh" | "agent";
  /** What condition and mitigation args point into ("alert.<path>"). */
  raw: Record<string, unknown>;
}

export type NormaliseResult = { ok: true; alert: Alert } | { ok: false; errors: FieldError[] };

type Obj = Record<string, unknown>;

const ROOT = "(root)";
const SEVERITIES: readonly Severity[] = ["low", "medium", "high", "critical"];
/** Agents report a severity, flows and the UI reason in Wazuh levels; these sit inside each band. */
const LEVEL_OF_SEVERITY: Record<Severity, number> = { low: 3, medium: 7, high: 12, critical: 15 };

/** Wazuh bands: 0-6 low, 7-11 medium, 12-14 high, 15 and above critical. */
export function severityFromLevel(level: number): Severity {
  if (level >= 15) return "critical";
  if (level >= 12) return "high";
  if (level >= 7) return "medium";
  return "low";
}

/**
 * Accepts a Wazuh alert, or an agent alert `{"alert": {rule_name, severity, timestamp, details, …}}`
 * whose host comes from `context.host` (the gateway's authenticated agent, which wins) or from a
 * top-level `host: {name, agent_id?, ip?}` (REST clients). Never throws.
 */
export function normaliseAlert(input: unknown, context?: { host?: AlertHost }): NormaliseResult {
  try {
    if (!isObject(input)) {
      return fail(
        ROOT,
        `must be a JSON object (a Wazuh alert or {"alert": …}), got ${kind(input)}`,
      );
    }
    return isObject(input.alert) && !("rule" in input)
      ? fromAgent(input, context)
      : fromWazuh(input);
  } catch (err) {
    // Only inputs no JSON parser produces get here (cycles, BigInts, nesting that exhausts the stack).
    return fail(ROOT, `unreadable alert: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function fromWazuh(input: Obj): NormaliseResult {
  const errors: FieldError[] = [];
  const id = text(errors, input.id, "id", { numeric: true });
  const time = timestamp(errors, input.timestamp, "timestamp");

  const agent = object(errors, input.agent, "agent");
  const name = agent && text(errors, agent.name, "agent.name");
  const agentId = agent && text(errors, agent.id, "agent.id", { optional: true, numeric: true });
  const ip = agent && text(errors, agent.ip, "agent.ip", { optional: true });

  const rule = object(errors, input.rule, "rule");
  const ruleId = rule && text(errors, rule.id, "rule.id", { numeric: true });
  const level = rule && ruleLevel(errors, rule.level, "rule.level");
  const description =
    rule && text(errors, rule.description, "rule.description", { optional: true });
  // Alerts without ATT&CK mapping are still stored; they just match no attack flow.
  const mitre = rule && object(errors, rule.mitre, "rule.mitre", { optional: true });
  const techniques = techniqueList(errors, mitre?.id, "rule.mitre.id");
  const tactics = stringList(errors, mitre?.tactic, "rule.mitre.tactic");

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    alert: {
      id: id as string,
      time: time as string,
      host: compact({ name: name as string, agentId, ip }),
      rule: compact({ id: ruleId as string, level: level as number, description }),
      techniques,
      tactics,
      severity: severityFromLevel(level as number),
      format: "wazuh",
      raw: input,
    },
  };
}

function fromAgent(input: Obj, context: { host?: AlertHost } | undefined): NormaliseResult {
  const errors: FieldError[] = [];
  const inner = input.alert as Obj;
  const host = context?.host?.name ? context.host : hostOf(errors, input.host);

  const ruleName = text(errors, inner.rule_name, "alert.rule_name");
  const severity = severityOf(errors, inner.severity, "alert.severity");
  const time = timestamp(errors, inner.timestamp, "alert.timestamp");
  const details = object(errors, inner.details, "alert.details");
  const technique =
    details && techniqueId(errors, details.technique_id, "alert.details.technique_id");
  const tactic =
    details && text(errors, details.tactic, "alert.details.tactic", { optional: true });

  if (errors.length > 0 || !host) return { ok: false, errors };
  const rawHost = compact({ name: host.name, agent_id: host.agentId, ip: host.ip });
  return {
    ok: true,
    alert: {
      // Content-derived, so a re-forwarded identical alert is recognised as the same alert.
      id: `agent-${createHash("sha256")
        .update(canonicalJson({ alert: inner, host: host.name }))
        .digest("hex")}`,
      time: time as string,
      host,
      rule: { id: ruleName as string, level: LEVEL_OF_SEVERITY[severity as Severity] },
      techniques: [technique as string],
      tactics: tactic ? [tactic] : [],
      severity: severity as Severity,
      format: "agent",
      raw: { ...inner, host: rawHost },
    },
  };
}

function hostOf(errors: FieldError[], value: unknown): AlertHost | undefined {
  if (value === undefined || value === null) {
    errors.push({
      field: "host",
      message: 'is required for an agent alert: send {"host": {"name": …}, "alert": …}',
    });
    return undefined;
  }
  const host = object(errors, value, "host");
  if (!host) return undefined;
  const name = text(errors, host.name, "host.name");
  const agentId = text(errors, host.agent_id, "host.agent_id", { optional: true, numeric: true });
  const ip = text(errors, host.ip, "host.ip", { optional: true });
  return name === undefined ? undefined : compact({ name, agentId, ip });
}

// ---- field readers: each returns the value, or undefined after recording why -------------------

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  if (v === null) return "null";
  return Array.isArray(v) ? "array" : typeof v;
}

/** A short rendering of a bad value for messages; long or structured values are only named. */
function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return typeof v === "number" || typeof v === "boolean" ? String(v) : kind(v);
}

function fail(field: string, message: string): NormaliseResult {
  return { ok: false, errors: [{ field, message }] };
}

function missing(v: unknown): boolean {
  return v === undefined || v === null;
}

function object(
  errors: FieldError[],
  v: unknown,
  field: string,
  opts: { optional?: boolean } = {},
): Obj | undefined {
  if (missing(v)) {
    if (!opts.optional) errors.push({ field, message: "is required" });
    return undefined;
  }
  if (isObject(v)) return v;
  errors.push({ field, message: `must be an object, got ${kind(v)}` });
  return undefined;
}

function text(
  errors: FieldError[],
  v: unknown,
  field: string,
  opts: { optional?: boolean; numeric?: boolean } = {},
): string | undefined {
  if (missing(v)) {
    if (!opts.optional) errors.push({ field, message: "is required" });
    return undefined;
  }
  if (opts.numeric && typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v !== "string") {
    errors.push({
      field,
      message: `must be a string${opts.numeric ? " or a number" : ""}, got ${kind(v)}`,
    });
    return undefined;
  }
  if (v.trim() === "") {
    // An empty optional value (Wazuh's manager-local alerts carry no agent ip) is just absent.
    if (!opts.optional) errors.push({ field, message: "must not be empty" });
    return undefined;
  }
  return v;
}

function ruleLevel(errors: FieldError[], v: unknown, field: string): number | undefined {
  // Wazuh sends a number; some forwarders stringify every value.
  const n = typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof n === "number" && Number.isInteger(n) && n >= 0) return n;
  errors.push({
    field,
    message: missing(v) ? "is required" : `must be a non-negative integer, got ${show(v)}`,
  });
  return undefined;
}

function severityOf(errors: FieldError[], v: unknown, field: string): Severity | undefined {
  const s = typeof v === "string" ? v.trim().toLowerCase() : undefined;
  if (SEVERITIES.includes(s as Severity)) return s as Severity;
  errors.push({
    field,
    message: missing(v) ? "is required" : `must be one of ${SEVERITIES.join(", ")}`,
  });
  return undefined;
}

function timestamp(errors: FieldError[], v: unknown, field: string): string | undefined {
  if (typeof v === "string") {
    const iso = parseTimestamp(v);
    if (iso) return iso;
  }
  errors.push({
    field,
    message: missing(v)
      ? "is required"
      : "must be an ISO 8601 date-time such as 2024-10-22T09:31:15.007+0000",
  });
  return undefined;
}

function techniqueList(errors: FieldError[], v: unknown, field: string): string[] {
  if (missing(v)) return [];
  if (!Array.isArray(v)) {
    errors.push({ field, message: `must be a list of technique ids, got ${kind(v)}` });
    return [];
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    const id = techniqueId(errors, item, `${field}[${i}]`);
    if (id && !out.includes(id)) out.push(id);
  });
  return out;
}

function techniqueId(errors: FieldError[], v: unknown, field: string): string | undefined {
  const id = typeof v === "string" ? v.trim().toUpperCase() : "";
  if (TECHNIQUE_ID.test(id)) return id;
  errors.push({
    field,
    message: missing(v)
      ? "is required"
      : `must be a MITRE ATT&CK technique id like T1222 or T1222.002, got ${show(v)}`,
  });
  return undefined;
}

function stringList(errors: FieldError[], v: unknown, field: string): string[] {
  if (missing(v)) return [];
  if (!Array.isArray(v)) {
    errors.push({ field, message: `must be a list of strings, got ${kind(v)}` });
    return [];
  }
  v.forEach((item, i) => {
    if (typeof item !== "string")
      errors.push({ field: `${field}[${i}]`, message: `must be a string, got ${kind(item)}` });
  });
  return v.filter((item): item is string => typeof item === "string");
}

/** Drops undefined members so documents compare and serialise cleanly. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * ISO 8601 (and Wazuh's "+0000" offset form) → UTC "YYYY-MM-DDTHH:mm:ss.sssZ", or null.
 * Computed by hand rather than with Date.parse because Date.parse reads a zone-less time in the
 * machine's zone; here a zone-less time is UTC, so the result never depends on the machine.
 */
export function parseTimestamp(s: string): string | null {
  const m = TIMESTAMP.exec(s.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Number((m[7] ?? "").padEnd(3, "0").slice(0, 3));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return null;
  if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return null; // 31 April, 29 Feb 2023
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || "0");
    if (oh > 23 || om > 59) return null;
    offsetMinutes = (zone[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, sec, ms) - offsetMinutes * 60_000);
  // Date.UTC maps years 0-99 to 1900-1999; such alerts are garbage, not history.
  return y < 1970 || Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** JSON with object keys sorted at every level, so equal content always hashes the same. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v))
    return `[${v.map((x) => (x === undefined ? "null" : canonicalJson(x))).join(",")}]`;
  if (isObject(v)) {
    const members = Object.keys(v)
      .sort()
      .filter((k) => v[k] !== undefined && typeof v[k] !== "function")
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
