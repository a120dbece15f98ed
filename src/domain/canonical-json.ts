/**
 * JSON with object keys sorted at every level, so equal content always has one spelling: alerts
 * hash the same however they were serialised, and a signed command verifies however a gateway
 * re-serialised it. Undefined members are left out, as JSON.stringify does.
 */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v))
    return `[${v.map((x) => (x === undefined ? "null" : canonicalJson(x))).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const members = Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined && typeof o[k] !== "function")
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
