// Argument resolution: condition and mitigation args name values inside the received alert by
// path. Pure and dependency-free, so workflow code may use it too.
import type { ArgSpec, FieldError } from "./model.ts";

export type { ArgSpec } from "./model.ts";

export type ResolvedArgs =
  | { ok: true; values: Record<string, unknown> }
  | { ok: false; missing: string[] };

const PREFIX = "alert.";

/** Keys of a valid path ("alert.a.b.0" → ["a", "b", "0"]), or null when it is not an alert path. */
export function argPathKeys(path: string): string[] | null {
  if (!path.startsWith(PREFIX)) return null;
  const keys = path.slice(PREFIX.length).split(".");
  return keys.every((k) => k !== "") ? keys : null;
}

/** The value at an alert path; undefined when any step is absent. Only own keys count, so paths
 * like "alert.constructor" or "alert.a.__proto__" never reach into prototypes. */
export function valueAtPath(alertRaw: unknown, keys: readonly string[]): unknown {
  let current: unknown = alertRaw;
  for (const key of keys) {
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(key)) return undefined;
      current = current[Number(key)];
    } else if (typeof current === "object" && current !== null && Object.hasOwn(current, key)) {
      current = (current as Record<string, unknown>)[key];
    } else {
      return undefined;
    }
  }
  return current;
}

/**
 * Resolves every arg; a list of paths takes the first present one. null counts as absent (JSON
 * forwarders write null for "no value"). Missing args are reported by name, in spec order, so the
 * caller can record why a condition did not hold or a mitigation did not apply.
 */
export function resolveArgs(spec: ArgSpec, alertRaw: unknown): ResolvedArgs {
  const values: Record<string, unknown> = {};
  const missing: string[] = [];
  for (const [name, paths] of Object.entries(spec)) {
    let found: unknown;
    for (const path of typeof paths === "string" ? [paths] : paths) {
      const keys = typeof path === "string" ? argPathKeys(path) : null;
      found = keys ? valueAtPath(alertRaw, keys) : undefined;
      if (found !== undefined && found !== null) break;
    }
    if (found === undefined || found === null) missing.push(name);
    else
      Object.defineProperty(values, name, {
        value: found,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return missing.length > 0 ? { ok: false, missing } : { ok: true, values };
}

export interface ArgSpecIssue {
  /** Path below the spec: [] for the spec itself, [name] or [name, index]. */
  path: (string | number)[];
  message: string;
}

/** Problems of an `args` member, with structured paths (zod schemas attach them to their own). */
export function argSpecIssues(spec: unknown): ArgSpecIssue[] {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    return [
      {
        path: [],
        message: 'must be an object mapping arg names to paths like "alert.syscheck.path"',
      },
    ];
  }
  const issues: ArgSpecIssue[] = [];
  const checkPath = (path: unknown, at: (string | number)[]) => {
    if (typeof path !== "string" || !argPathKeys(path)) {
      issues.push({
        path: at,
        message: 'must be a path into the alert: "alert." followed by dot-separated keys',
      });
    }
  };
  for (const [name, paths] of Object.entries(spec)) {
    if (name.trim() === "") issues.push({ path: [name], message: "arg names must not be empty" });
    if (Array.isArray(paths)) {
      if (paths.length === 0) issues.push({ path: [name], message: "must list at least one path" });
      for (const [i, p] of paths.entries()) checkPath(p, [name, i]);
    } else {
      checkPath(paths, [name]);
    }
  }
  return issues;
}

/** REST validation of an `args` member; `field` prefixes the reported paths ("args" → "args.b[1]"). */
export function validateArgSpec(spec: unknown, field: string): FieldError[] {
  return argSpecIssues(spec).map(({ path, message }) => ({
    field: path.reduce<string>(
      (at, key) => (typeof key === "number" ? `${at}[${key}]` : `${at}.${key}`),
      field,
    ),
    message,
  }));
}
