// Alert normalisation: Wazuh alerts and agent-forwarded alerts become one Alert shape. Runs in the
// API, the gateway and activities (it hashes with node:crypto), never in workflow code — workflows
// only import its types.
import { createHash } from "node:crypto";
import { z } from "zod";
import { canonicalJson } from "./canonical-json.ts";
import { type FieldError, fieldErrors, TECHNIQUE_ID } from "./model.ts";

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

const SEVERITIES = ["low", "medium", "high", "critical"] as const satisfies readonly Severity[];
/** Agents report a severity, flows and the UI reason in Wazuh levels; these sit inside each band. */
const LEVEL_OF_SEVERITY: Record<Severity, number> = { low: 3, medium: 7, high: 12, critical: 15 };

/** Wazuh bands: 0-6 low, 7-11 medium, 12-14 high, 15 and above critical. */
export function severityFromLevel(level: number): Severity {
  if (level >= 15) return "critical";
  if (level >= 12) return "high";
  if (level >= 7) return "medium";
  return "low";
}

// ---- the shapes: lenient where forwarders differ, and every message names what was wrong --------

type Issue = { input?: unknown };

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

const missing = (v: unknown) => v === undefined || v === null;
/** An error map: "is required" for an absent value, else `wrong` of what was sent. */
const required =
  (wrong: (input: unknown) => string) =>
  ({ input }: Issue) =>
    missing(input) ? "is required" : wrong(input);

function object<S extends z.core.$ZodLooseShape>(shape: S, absent = "is required") {
  return z.looseObject(shape, {
    error: ({ input }) => (missing(input) ? absent : `must be an object, got ${kind(input)}`),
  });
}

/** A non-blank string; with `numeric`, forwarders' numbers too (as strings). */
function text(numeric = false) {
  return stringOrNumber(numeric).refine((v) => v.trim() !== "", "must not be empty");
}

/** An optional string: absent, null and blank (Wazuh's manager-local alerts carry no agent ip) alike. */
function optionalText(numeric = false) {
  return stringOrNumber(numeric)
    .nullish()
    .transform((v) => (v?.trim() ? v : undefined));
}

function stringOrNumber(numeric: boolean): z.ZodType<string> {
  const error = required((v) => `must be a string${numeric ? " or a number" : ""}, got ${kind(v)}`);
  return numeric
    ? z.union([z.string(), z.number()], { error }).transform(String)
    : z.string({ error });
}

const levelError = required((v) => `must be a non-negative integer, got ${show(v)}`);
// Wazuh sends a number; some forwarders stringify every value.
const ruleLevel = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z.int({ error: levelError }).min(0, { error: levelError }),
);

const severity = z.preprocess(
  (v) => (typeof v === "string" ? v.trim().toLowerCase() : v),
  z.enum(SEVERITIES, { error: required(() => `must be one of ${SEVERITIES.join(", ")}`) }),
);

const TIMESTAMP_EXAMPLE = "must be an ISO 8601 date-time such as 2024-10-22T09:31:15.007+0000";
const timestamp = z.string({ error: required(() => TIMESTAMP_EXAMPLE) }).transform((s, ctx) => {
  const iso = parseTimestamp(s);
  if (iso) return iso;
  ctx.addIssue({ code: "custom", message: TIMESTAMP_EXAMPLE });
  return z.NEVER;
});

const techniqueError = required(
  (v) => `must be a MITRE ATT&CK technique id like T1222 or T1222.002, got ${show(v)}`,
);
const techniqueId = z
  .string({ error: techniqueError })
  .refine((s) => TECHNIQUE_ID.test(s.trim().toUpperCase()), { error: techniqueError })
  .transform((s) => s.trim().toUpperCase());

// Alerts without ATT&CK mapping are still stored; they just match no attack flow.
const techniqueList = z
  .array(techniqueId, {
    error: ({ input }) => `must be a list of technique ids, got ${kind(input)}`,
  })
  .nullish()
  .transform((ids) => [...new Set(ids ?? [])]);

const stringList = z
  .array(z.string({ error: ({ input }) => `must be a string, got ${kind(input)}` }), {
    error: ({ input }) => `must be a list of strings, got ${kind(input)}`,
  })
  .nullish()
  .transform((list) => list ?? []);

/** A Wazuh alert, as Wazuh's integrations and the seed's fixtures send it. */
export const WazuhAlertInput = object({
  id: text(true),
  timestamp,
  agent: object({
    name: text(),
    id: optionalText(true),
    ip: optionalText(),
  }),
  rule: object({
    id: text(true),
    level: ruleLevel,
    description: optionalText(),
    mitre: object({ id: techniqueList, tactic: stringList }).nullish(),
  }),
}).meta({ description: "A Wazuh alert" });

const agentAlertBody = object({
  rule_name: text(),
  severity,
  timestamp,
  details: object({ technique_id: techniqueId, tactic: optionalText() }),
});

const alertHost = object(
  {
    name: text(),
    agent_id: optionalText(true),
    ip: optionalText(),
  },
  'is required for an agent alert: send {"host": {"name": …}, "alert": …}',
);

/** An agent's alert as REST clients send it: the host is named beside the alert. */
export const AgentAlertInput = object({ host: alertHost, alert: agentAlertBody }).meta({
  description: "An agent alert with its host",
});
/** The same alert from the gateway, which names the (authenticated) host itself. */
const agentAlertFromGateway = object({ alert: agentAlertBody });

/**
 * Accepts a Wazuh alert, or an agent alert `{"alert": {rule_name, severity, timestamp, details, …}}`
 * whose host comes from `context.host` (the gateway's authenticated agent, which wins) or from a
 * top-level `host: {name, agent_id?, ip?}` (REST clients). Never throws.
 */
export function normaliseAlert(input: unknown, context?: { host?: AlertHost }): NormaliseResult {
  try {
    if (!isObject(input)) {
      return fail([
        {
          field: "(root)",
          message: `must be a JSON object (a Wazuh alert or {"alert": …}), got ${kind(input)}`,
        },
      ]);
    }
    return isObject(input.alert) && !("rule" in input)
      ? fromAgent(input, context)
      : fromWazuh(input);
  } catch (err) {
    // Only inputs no JSON parser produces get here (cycles, BigInts, nesting that exhausts the stack).
    return fail([
      {
        field: "(root)",
        message: `unreadable alert: ${err instanceof Error ? err.message : String(err)}`,
      },
    ]);
  }
}

function fromWazuh(input: Obj): NormaliseResult {
  const parsed = WazuhAlertInput.safeParse(input);
  if (!parsed.success) return fail(fieldErrors(parsed.error.issues));
  const { id, timestamp: time, agent, rule } = parsed.data;
  return {
    ok: true,
    alert: {
      id,
      time,
      host: compact({ name: agent.name, agentId: agent.id, ip: agent.ip }),
      rule: compact({ id: rule.id, level: rule.level, description: rule.description }),
      techniques: rule.mitre?.id ?? [],
      tactics: rule.mitre?.tactic ?? [],
      severity: severityFromLevel(rule.level),
      format: "wazuh",
      raw: input,
    },
  };
}

function fromAgent(input: Obj, context: { host?: AlertHost } | undefined): NormaliseResult {
  const gatewayHost = context?.host?.name ? context.host : undefined;
  const parsed = gatewayHost
    ? agentAlertFromGateway
        .transform(({ alert }) => ({ alert, host: gatewayHost }))
        .safeParse(input)
    : AgentAlertInput.transform(({ alert, host }) => ({
        alert,
        host: compact({ name: host.name, agentId: host.agent_id, ip: host.ip }),
      })).safeParse(input);
  if (!parsed.success) return fail(fieldErrors(parsed.error.issues));
  const { alert, host } = parsed.data;
  const inner = input.alert as Obj;
  const rawHost = compact({ name: host.name, agent_id: host.agentId, ip: host.ip });
  return {
    ok: true,
    alert: {
      // Content-derived, so a re-forwarded identical alert is recognised as the same alert.
      id: `agent-${createHash("sha256")
        .update(canonicalJson({ alert: inner, host: host.name }))
        .digest("hex")}`,
      time: alert.timestamp,
      host,
      rule: { id: alert.rule_name, level: LEVEL_OF_SEVERITY[alert.severity] },
      techniques: [alert.details.technique_id],
      tactics: alert.details.tactic ? [alert.details.tactic] : [],
      severity: alert.severity,
      format: "agent",
      raw: { ...inner, host: rawHost },
    },
  };
}

function fail(errors: FieldError[]): NormaliseResult {
  return { ok: false, errors };
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
