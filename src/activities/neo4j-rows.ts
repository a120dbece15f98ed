import neo4j, { type Record as Neo4jRecord } from "neo4j-driver";

/** Turns Neo4j records into plain JSON rows for CEL: nodes and relationships become their properties. */
export function toRows(records: Neo4jRecord[]): Record<string, unknown>[] {
  return records.map((r) => Object.fromEntries(r.keys.map((k) => [String(k), toPlain(r.get(k))])));
}

function toPlain(value: unknown): unknown {
  if (neo4j.isInt(value)) return value.inSafeRange() ? value.toNumber() : value.toString();
  if (Array.isArray(value)) return value.map(toPlain);
  if (value === null || typeof value !== "object") return value;
  if (neo4j.isNode(value) || neo4j.isRelationship(value)) return toPlain(value.properties);
  if (neo4j.isPath(value)) return value.segments.flatMap((s) => [toPlain(s.start), toPlain(s.end)]);
  if (isTemporal(value)) return value.toString();
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]));
}

function isTemporal(value: object): boolean {
  return (
    neo4j.isDate(value) ||
    neo4j.isDateTime(value) ||
    neo4j.isLocalDateTime(value) ||
    neo4j.isLocalTime(value) ||
    neo4j.isTime(value) ||
    neo4j.isDuration(value) ||
    neo4j.isPoint(value)
  );
}
