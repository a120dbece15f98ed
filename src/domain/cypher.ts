// An early, explainable refusal of Cypher that writes. The real guard is that condition queries
// run in a READ session; this only turns an obvious mistake into a 400 naming the clause.

type Token = { kind: "word" | "quoted" | "number" | "punct"; text: string };

const WRITE_CLAUSES = new Set([
  "CREATE",
  "MERGE",
  "DELETE",
  "SET",
  "REMOVE",
  "DROP",
  "FOREACH",
  // Administration and database switching have no place in a condition either.
  "ALTER",
  "RENAME",
  "GRANT",
  "DENY",
  "REVOKE",
  "TERMINATE",
  "USE",
]);
const CLAUSE_NAME: Record<string, string> = { DETACH: "DETACH DELETE", LOAD: "LOAD CSV" };
const READ_PROCEDURES = ["db.labels", "db.relationshiptypes", "db.propertykeys"];
/** After these a word is a property key, label, relationship type or parameter, not a keyword. */
const NAME_CONTEXT = new Set([".", ":", "$", "|", "&", "!"]);

/** null when the query reads only; otherwise a message naming the offending clause. */
export function checkReadOnlyCypher(query: string): string | null {
  const tokens = tokenize(query);
  if (typeof tokens === "string") return tokens;
  for (const [i, token] of tokens.entries()) {
    if (token.kind !== "word") continue;
    const prev = tokens[i - 1];
    const next = tokens[i + 1];
    if ((prev && NAME_CONTEXT.has(prev.text)) || next?.text === ":") continue; // n.set, :Create, {delete: 1}
    const word = token.text.toUpperCase();
    if (WRITE_CLAUSES.has(word) || word in CLAUSE_NAME) return refuse(CLAUSE_NAME[word] ?? word);
    if (word === "TRANSACTIONS" && prev?.text.toUpperCase() !== "SHOW")
      return refuse("CALL { … } IN TRANSACTIONS");
    if (word === "CALL") {
      const problem = checkCall(tokens, i + 1);
      if (problem) return problem;
    }
  }
  return null;
}

function refuse(clause: string): string {
  return `${clause} is not allowed: condition queries must be read-only`;
}

/** CALL { … } and CALL (x) { … } are subqueries, whose clauses the main scan sees anyway. */
function checkCall(tokens: Token[], at: number): string | null {
  const first = tokens[at];
  if (first?.text === "{" || first?.text === "(") return null;
  const parts: string[] = [];
  for (let i = at; ; i += 2) {
    const part = tokens[i];
    if (!part || (part.kind !== "word" && part.kind !== "quoted")) break;
    parts.push(part.text);
    if (tokens[i + 1]?.text !== ".") break;
  }
  const name = parts.join(".");
  const lower = name.toLowerCase();
  if (READ_PROCEDURES.includes(lower) || (lower.startsWith("db.schema.") && parts.length > 2))
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
