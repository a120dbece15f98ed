// What a condition's Cypher may do: read the graph with the reading clauses, and call a few
// read-only db.* procedures. Condition queries also run in a READ session, but a READ session
// still runs LOAD CSV (which fetches URLs and files) and any installed procedure, so this check is a
// guard of its own, with the Neo4j launcher (stack/neo4j) configured without file or URL import.
// Without a full parser the allowlist works on keywords: every clause keyword Cypher knows beyond the
// reading ones is refused, as is every namespaced function (built-in ones like point.distance
// excepted), since user-defined functions and procedures (APOC) can reach files and the network.

type Token = { kind: "word" | "quoted" | "number" | "punct"; text: string };

const READING = "MATCH, OPTIONAL MATCH, WHERE, WITH, RETURN, ORDER BY, SKIP, LIMIT, UNWIND, UNION";
/** Cypher's clause keywords (and query prefixes) other than the reading ones. */
const NOT_READING = new Set([
  "CREATE",
  "MERGE",
  "DELETE",
  "SET",
  "REMOVE",
  "DROP",
  "FOREACH",
  "INSERT",
  "LOAD",
  "USE",
  "FINISH",
  "LET",
  "FILTER",
  "NEXT",
  "SHOW",
  "TERMINATE",
  "ALTER",
  "RENAME",
  "GRANT",
  "DENY",
  "REVOKE",
  "START",
  "STOP",
  "ENABLE",
  "DISABLE",
  "EXPLAIN",
  "PROFILE",
  "CYPHER",
  "PERIODIC",
]);
const CLAUSE_NAME: Record<string, string> = { DETACH: "DETACH DELETE", LOAD: "LOAD CSV" };
const PROCEDURES = ["db.labels", "db.relationshiptypes", "db.propertykeys"];
/** Namespaced functions built into Neo4j; anything else namespaced is a plugin's. */
const FUNCTION_NAMESPACES = ["point.", "vector.similarity.", "db.nameFromElementId"];
/** After these a word is a property key, label, relationship type or parameter, not a keyword. */
const NAME_CONTEXT = new Set([".", ":", "$", "|", "&", "!"]);

/** null when the query only reads with the allowed clauses; otherwise a message naming what is not. */
export function checkReadOnlyCypher(query: string): string | null {
  const tokens = tokenize(query);
  if (typeof tokens === "string") return tokens;
  for (const [i, token] of tokens.entries()) {
    if (token.kind !== "word" && token.kind !== "quoted") continue;
    const prev = tokens[i - 1];
    const next = tokens[i + 1];
    if (prev?.text !== "." && next?.text === ".") {
      const problem = checkFunction(tokens, i);
      if (problem) return problem;
    }
    if (token.kind !== "word") continue;
    if ((prev && NAME_CONTEXT.has(prev.text)) || next?.text === ":") continue; // n.set, :Create, {delete: 1}
    const word = token.text.toUpperCase();
    if (NOT_READING.has(word) || word in CLAUSE_NAME) return refuse(CLAUSE_NAME[word] ?? word);
    if (word === "TRANSACTIONS") return refuse("CALL { … } IN TRANSACTIONS");
    if (word === "CALL") {
      const problem = checkCall(tokens, i + 1);
      if (problem) return problem;
    }
  }
  return null;
}

/** `a.b.c(` where a is not a variable's property access: a namespaced function call. */
function checkFunction(tokens: Token[], at: number): string | null {
  const { name, end } = dottedName(tokens, at);
  if (tokens[end]?.text !== "(" || tokens[at - 1]?.text.toUpperCase() === "CALL") return null;
  const lower = name.toLowerCase();
  if (FUNCTION_NAMESPACES.some((ns) => lower.startsWith(ns.toLowerCase()))) return null;
  return `${name}() is not allowed: condition queries may only use Neo4j's built-in functions`;
}

function dottedName(tokens: Token[], at: number): { name: string; end: number } {
  const parts: string[] = [];
  let i = at;
  for (; ; i += 2) {
    const part = tokens[i];
    if (!part || (part.kind !== "word" && part.kind !== "quoted")) break;
    parts.push(part.text);
    if (tokens[i + 1]?.text !== ".") {
      i++;
      break;
    }
  }
  return { name: parts.join("."), end: i };
}

function refuse(clause: string): string {
  return `${clause} is not allowed: condition queries may only use ${READING} and CALL`;
}

/** CALL { … } and CALL (x) { … } are subqueries, whose clauses the main scan sees anyway. */
function checkCall(tokens: Token[], at: number): string | null {
  const first = tokens[at];
  if (first?.text === "{" || first?.text === "(") return null;
  const { name } = dottedName(tokens, at);
  const parts = name.split(".");
  const lower = name.toLowerCase();
  if (PROCEDURES.includes(lower) || (lower.startsWith("db.schema.") && parts.length > 2))
    return null;
  return `CALL ${name || "(no procedure name)"} is not allowed: condition queries may only call db.labels, db.relationshipTypes, db.propertyKeys and db.schema.*`;
}

const LEXEME = /([\p{L}_][\p{L}\p{N}_]*)|(\d[\p{L}\p{N}_]*)|!=|./suy;

/** Words, backticked names, numbers and punctuation; strings and comments are dropped, so keywords
 * inside them never count. Returns a message for an unterminated string, name or comment. */
function tokenize(q: string): Token[] | string {
  const tokens: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "/" && q[i + 1] === "/") {
      const end = q.indexOf("\n", i);
      i = end < 0 ? q.length : end + 1;
    } else if (c === "/" && q[i + 1] === "*") {
      const end = q.indexOf("*/", i + 2);
      if (end < 0) return "unterminated /* comment in query";
      i = end + 2;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < q.length && q[j] !== c) j += q[j] === "\\" ? 2 : 1;
      if (j >= q.length) return "unterminated string literal in query";
      i = j + 1;
    } else if (c === "`") {
      let j = i + 1;
      let text = "";
      for (; j < q.length; j++) {
        if (q[j] === "`" && q[j + 1] === "`")
          j++; // `` escapes a backtick
        else if (q[j] === "`") break;
        text += q[j];
      }
      if (j >= q.length) return "unterminated `name` in query";
      tokens.push({ kind: "quoted", text });
      i = j + 1;
    } else {
      LEXEME.lastIndex = i;
      const m = LEXEME.exec(q) as RegExpExecArray; // the last alternative matches any character
      const kind = m[1] !== undefined ? "word" : m[2] !== undefined ? "number" : "punct";
      tokens.push({ kind, text: m[0] });
      i += m[0].length;
    }
  }
  return tokens;
}
