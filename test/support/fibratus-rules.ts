// The real Fibratus rule catalogue, read from the shared corpus (never copied into the project),
// and mutated copies of one of its rules for the refusals.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// The worktree sits beside shared/ (as /work/main does).
export const corpusDir = fileURLToPath(
  new URL("../../../shared/corpus/fibratus-rules/", import.meta.url),
);

export const corpusFile = (name: string) => readFileSync(`${corpusDir}/${name}`, "utf8");

/** Every rule file of the catalogue: [file name, YAML text]. */
export const corpusRules = (): [string, string][] =>
  readdirSync(corpusDir)
    .filter((f) => f.endsWith(".yml"))
    .sort()
    .map((f) => [f, corpusFile(f)]);

export const corpusMacros = () => corpusFile("macros/macros.yml");
export const corpusSchema = () => JSON.parse(corpusFile("rules.schema.json"));

/** The rule the mutations start from (it uses macros, labels and an action). */
export const BASE_RULE = "credential_access_lsass_access_from_unsigned_executable.yml";

/** Mutated copies of BASE_RULE: [what, YAML, field the refusal names, words of its message]. */
export function mutants(): [string, string, string, RegExp][] {
  const base = corpusFile(BASE_RULE);
  const replace = (from: RegExp, to: string) => {
    const out = base.replace(from, to);
    if (out === base) throw new Error(`mutation ${from} changed nothing`);
    return out;
  };
  return [
    ["missing id", replace(/^id: .*\n/m, ""), "id", /id is required/],
    ["bad version", replace(/^version: .*$/m, "version: 1.0.x"), "version", /x\.y\.z.*line 3/],
    ["unknown key", `${base}\npriority: 5\n`, "priority", /unknown key "priority"/],
    ["bad severity", replace(/^severity: .*$/m, "severity: extreme"), "severity", /one of low/],
    [
      "missing condition",
      replace(/^condition: >\n( {2}.*\n)+/m, ""),
      "condition",
      /condition is required/,
    ],
    [
      "upper-case id",
      replace(/^id: .*$/m, "id: 348BF896-2201-444F-B1C9-E957A1F063BF"),
      "id",
      /lower-case UUID/,
    ],
  ];
}

/** Posts the corpus's macros file, then every rule as one multi-document stream; the rules' reply. */
export async function postCatalogue(rest: {
  call: (
    method: string,
    path: string,
    body: string,
    headers: Record<string, string>,
  ) => Promise<{
    status: number;
    // biome-ignore lint/suspicious/noExplicitAny: a test's JSON reply
    body: any;
  }>;
}) {
  const yaml = { "content-type": "application/yaml" };
  const macros = await rest.call("POST", "/api/rule-macros", corpusMacros(), yaml);
  if (macros.status !== 201) throw new Error(`macros: ${macros.status}`);
  const text = corpusRules()
    .map(([, t]) => t)
    .join("\n---\n");
  const posted = await rest.call("POST", "/api/rule", text, yaml);
  if (posted.status !== 201)
    throw new Error(`rules: ${posted.status} ${JSON.stringify(posted.body)}`);
  return posted.body as { rules: { id: string }[] };
}
