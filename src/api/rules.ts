// Detection rules (Fibratus YAML), the macros files their conditions use, and rule sets: named,
// versioned selections of rule versions assigned to agent groups. Reading is a viewer's business,
// writing an admin's (auth.ts).
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { FieldError } from "../domain/model.ts";
import {
  type ArchiveFile,
  type ArchiveKind,
  type ArchiveLimits,
  readRuleArchive,
} from "../domain/rule-archive.ts";
import {
  lineDiff,
  MAX_RULES_PER_REQUEST,
  macroReferences,
  type ParsedRule,
  parseMacros,
  parseRules,
  sha256Hex,
} from "../domain/rules.ts";
import type { RulesStore } from "../store/rules.ts";
import type { AuthEnv } from "./auth.ts";
import {
  conflict,
  errorResponse,
  invalid,
  json,
  jsonBody,
  notFound,
  optionalQuery,
  page,
  pageQuery,
  Row,
  VersionNumber,
  versionQuery,
} from "./http.ts";

const yamlBody = (description: string) => ({
  body: {
    required: true,
    description,
    content: { "application/yaml": { schema: z.string().openapi({ format: "yaml" }) } },
  },
});

const SavedRule = z
  .object({
    id: z.string(),
    name: z.string(),
    version: z.string(),
    sha256: z.string(),
    status: z.enum(["created", "unchanged"]),
  })
  .openapi("SavedRule");

const RuleVersion = z
  .object({
    id: z.string(),
    version: z.string(),
    name: z.string(),
    sha256: z.string(),
    content: z.string(),
    document: Row,
    created_at: z.string(),
    created_by: z.string(),
  })
  .openapi("RuleVersion");

const required = (name: string) =>
  z
    .string({ error: `the query parameter ${name} is required` })
    .min(1, { error: `the query parameter ${name} is required` });

const RuleSetInput = z
  .object({
    name: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9._-]+$/, {
        error: "letters, digits, . _ - only (it names workflow ids)",
      }),
    rules: z
      .array(z.strictObject({ id: z.string().min(1), version: z.string().min(1) }))
      .max(10_000),
    macros_version: VersionNumber.nullable().default(null),
  })
  .openapi("RuleSetInput");

const Assignment = z
  .object({ group: z.string().min(1).max(200), name: z.string().min(1), version: VersionNumber })
  .openapi("RuleSetAssignment");

/** A YAML body's text; null when sent as anything but YAML or text (refused before parsing). */
async function yamlText(c: Context): Promise<string | null> {
  const type = c.req.header("content-type") ?? "";
  if (!/^(application\/(x-)?yaml|text\/(x-)?yaml|text\/plain)\b/i.test(type)) return null;
  return c.req.text();
}
const notYaml = {
  error:
    "send YAML (Content-Type: application/yaml) or a rules folder (application/x-tar, application/gzip, application/zip)",
};

const ARCHIVE_TYPES: Record<string, ArchiveKind> = {
  "application/x-tar": "tar",
  "application/tar": "tar",
  "application/gzip": "gzip",
  "application/x-gzip": "gzip",
  "application/zip": "zip",
  "application/x-zip-compressed": "zip",
};
const archiveKind = (type: string | undefined): ArchiveKind | undefined => {
  const base = (type ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return Object.hasOwn(ARCHIVE_TYPES, base) ? ARCHIVE_TYPES[base] : undefined;
};
/** Fibratus keeps macros in the rules folder's macros/ (the corpus: macros/macros.yml). */
const isMacrosFile = (path: string) => path.split("/").slice(0, -1).includes("macros");
/** An error of one archive file: the file names the field, as a document index does for YAML. */
const inFile = (path: string, e: FieldError): FieldError => ({
  field: e.field && e.field !== "(body)" ? `${path}: ${e.field}` : path,
  message: e.message,
});

export interface RuleArchiveLimits extends ArchiveLimits {
  maxArchiveBytes: number;
}

export function rulesApi(store: RulesStore, archiveLimits: RuleArchiveLimits) {
  const app = new OpenAPIHono<AuthEnv>();
  const actorOf = (c: Context<AuthEnv>) => c.get("principal").actor;

  /**
   * Stores parsed rules all or none: ids and names unique within the request, every condition's
   * macros defined (by `macros`, else the newest stored macros file). `where(i, field)` names a
   * field of the i-th rule as the request spells it (a document index, or an archive's file).
   */
  async function saveRules(
    c: Context<AuthEnv>,
    rules: ParsedRule[],
    where: (i: number, field: string) => string,
    macros: { text: string; names: string[]; path: string } | null,
  ) {
    const errors: FieldError[] = [];
    const seenIds = new Map<string, number>();
    const seenNames = new Map<string, number>();
    const stored = macros ? null : await store.macros();
    const defined = new Set(macros?.names ?? stored?.names ?? []);
    rules.forEach(({ rule }, i) => {
      const twin = seenIds.get(rule.id) ?? seenNames.get(rule.name);
      if (twin !== undefined) {
        const field = seenIds.has(rule.id) ? "id" : "name";
        errors.push({ field: where(i, field), message: `the same ${field} as ${where(twin, "")}` });
      }
      seenIds.set(rule.id, i);
      seenNames.set(rule.name, i);
      const unknown = macroReferences(rule.condition).filter((ref) => !defined.has(ref));
      if (unknown.length) {
        const source = macros
          ? `the archive's ${macros.path}`
          : stored
            ? `macros version ${stored.version}`
            : "no macros file was posted";
        errors.push({
          field: where(i, "condition"),
          message: `undefined macro or list ${unknown.join(", ")} (${source})`,
        });
      }
    });
    if (errors.length) return invalid(c, errors);
    const savedMacros = macros
      ? await store.saveMacros(macros.text, sha256Hex(macros.text), macros.names, actorOf(c))
      : null;
    const saved = await store.save(rules, actorOf(c));
    if (!saved.ok) return conflict(c, saved.conflicts.join("; "));
    return c.json({ rules: saved.rules, ...(savedMacros && { macros: savedMacros }) }, 201);
  }

  /** A rules folder as an archive: its macros file (if any) and its rule files, parsed. */
  async function fromArchive(c: Context<AuthEnv>, kind: ArchiveKind) {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length > archiveLimits.maxArchiveBytes)
      return c.json(
        {
          error: `archive over ${archiveLimits.maxArchiveBytes} bytes (MM_RULE_ARCHIVE_MAX_BYTES)`,
        },
        413,
      );
    const read = readRuleArchive(kind, bytes, archiveLimits);
    if (!read.ok) return invalid(c, read.errors);
    const yamlFiles = read.files.filter((f) => /\.ya?ml$/i.test(f.path));
    const macroFiles = yamlFiles.filter((f) => isMacrosFile(f.path));
    const ruleFiles = yamlFiles.filter((f) => !isMacrosFile(f.path));
    if (macroFiles.length > 1)
      return invalid(c, [
        {
          field: (macroFiles[1] as ArchiveFile).path,
          message: `one macros file per archive (also ${(macroFiles[0] as ArchiveFile).path})`,
        },
      ]);
    if (!ruleFiles.length)
      return invalid(c, [{ field: "(body)", message: "the archive holds no rule file (.yml)" }]);
    const errors: FieldError[] = [];
    let macros: { text: string; names: string[]; path: string } | null = null;
    const macroFile = macroFiles[0];
    if (macroFile) {
      const parsed = parseMacros(macroFile.text);
      if (parsed.ok)
        macros = {
          text: macroFile.text,
          names: [...new Set(parsed.value.map((m) => m.macro))],
          path: macroFile.path,
        };
      else for (const e of parsed.errors) errors.push(inFile(macroFile.path, e));
    }
    const rules: ParsedRule[] = [];
    const paths: string[] = [];
    for (const file of ruleFiles) {
      const parsed = parseRules(file.text);
      if (!parsed.ok) for (const e of parsed.errors) errors.push(inFile(file.path, e));
      else
        for (const [n, rule] of parsed.value.entries()) {
          rules.push(rule);
          paths.push(parsed.value.length > 1 ? `${file.path}[${n}]` : file.path);
        }
    }
    if (rules.length > MAX_RULES_PER_REQUEST)
      errors.push({
        field: "(body)",
        message: `${rules.length} rules; at most ${MAX_RULES_PER_REQUEST} per request`,
      });
    if (errors.length) return invalid(c, errors);
    return saveRules(
      c,
      rules,
      (i, field) => inFile(paths[i] ?? "", { field, message: "" }).field,
      macros,
    );
  }

  app.openapi(
    createRoute({
      method: "post",
      path: "/rule",
      tags: ["rules"],
      summary:
        "Store rules: one Fibratus YAML rule, many as a multi-document stream, or a rules folder as a tar, tar.gz or zip",
      description:
        "All or none. Each rule is checked against Fibratus's rule format and its condition's macros " +
        "against the newest macros file (an archive's own macros file, under macros/, when it has one; " +
        "it is stored as a new macros version). A stored version posted again unchanged is `unchanged`; " +
        "changed content needs a higher version (409 otherwise). Archives are bounded " +
        "(MM_RULE_ARCHIVE_*: bytes, entries, bytes per file and in all); links, devices, absolute " +
        "paths and `..` are refused with the entry named; files other than .yml/.yaml are ignored.",
      request: {
        body: {
          required: true,
          description: "Fibratus rules (YAML), or a rules folder archive",
          content: {
            "application/yaml": { schema: z.string().openapi({ format: "yaml" }) },
            "application/x-tar": { schema: z.string().openapi({ format: "binary" }) },
            "application/gzip": { schema: z.string().openapi({ format: "binary" }) },
            "application/zip": { schema: z.string().openapi({ format: "binary" }) },
          },
        },
      },
      responses: {
        201: {
          description: "stored",
          content: json(z.object({ rules: z.array(SavedRule), macros: Row.optional() })),
        },
        400: errorResponse(
          "invalid YAML, rule or archive; the field (for archives, the file) and line are named",
        ),
        409: errorResponse("a version not bumped, an older version, or a name already taken"),
        413: errorResponse("an archive over MM_RULE_ARCHIVE_MAX_BYTES"),
        415: errorResponse("neither YAML nor an archive"),
      },
    }),
    async (c) => {
      const kind = archiveKind(c.req.header("content-type"));
      if (kind) return fromArchive(c, kind);
      const text = await yamlText(c);
      if (text === null) return c.json(notYaml, 415);
      const parsed = parseRules(text);
      if (!parsed.ok) return invalid(c, parsed.errors);
      const many = parsed.value.length > 1;
      return saveRules(
        c,
        parsed.value,
        (i, field) =>
          many ? (field ? `[${i}].${field}` : `document [${i}]`) : field || "the rule",
        null,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule",
      tags: ["rules"],
      summary: "Read a rule (?id=, newest or ?version=) or search rules",
      description:
        "Without id: rules whose labels name the technique (a sub-technique counts for its parent) " +
        "or tactic, or whose name or description contains q.",
      request: {
        query: z.object({
          id: optionalQuery(z.string(), "the rule's id"),
          version: optionalQuery(z.string(), "a version of the rule (with id)"),
          technique: optionalQuery(
            z
              .string()
              .regex(/^T\d{4}(\.\d{3})?$/i, { error: "must be an ATT&CK technique (T1003)" }),
            "ATT&CK technique, e.g. T1003 or T1003.001",
          ),
          tactic: optionalQuery(
            z.string().regex(/^TA\d{4}$/i, { error: "must be an ATT&CK tactic (TA0006)" }),
            "ATT&CK tactic, e.g. TA0006",
          ),
          q: optionalQuery(z.string().max(200), "words of the name or description"),
          ...pageQuery(100),
        }),
      },
      responses: {
        200: {
          description: "the rule version, or a page of rules",
          content: json(z.union([RuleVersion, page(Row)])),
        },
        404: errorResponse("unknown id or version"),
      },
    }),
    async (c) => {
      const { id, version, technique, tactic, q, limit, offset } = c.req.valid("query");
      if (id === undefined) {
        const found = await store.list({ technique, tactic, q }, { limit, offset });
        return c.json({ ...found, limit, offset }, 200);
      }
      const rule = await store.get(id, version);
      return rule
        ? c.json(rule, 200)
        : notFound(c, `rule ${id}${version ? ` version ${version}` : ""}`);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule/versions",
      tags: ["rules"],
      summary: "Every version of a rule, newest first",
      request: { query: z.object({ id: required("id") }) },
      responses: {
        200: { description: "the versions", content: json(z.array(Row)) },
        404: errorResponse("unknown id"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("query");
      const versions = await store.versions(id);
      return versions.length ? c.json(versions, 200) : notFound(c, `rule ${id}`);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule/diff",
      tags: ["rules"],
      summary: "The line diff of two versions of a rule",
      request: {
        query: z.object({ id: required("id"), from: required("from"), to: required("to") }),
      },
      responses: {
        200: {
          description: "lines prefixed with ' ', '-' or '+'",
          content: json(
            z.object({
              id: z.string(),
              from: z.string(),
              to: z.string(),
              diff: z.array(z.string()),
            }),
          ),
        },
        404: errorResponse("unknown id or version"),
      },
    }),
    async (c) => {
      const { id, from, to } = c.req.valid("query");
      const [a, b] = await Promise.all([store.get(id, from), store.get(id, to)]);
      if (!a) return notFound(c, `rule ${id} version ${from}`);
      if (!b) return notFound(c, `rule ${id} version ${to}`);
      return c.json({ id, from, to, diff: lineDiff(a.content, b.content) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/rule-macros",
      tags: ["rules"],
      summary: "Store a Fibratus macros file as a new version",
      request: yamlBody("a Fibratus macros file (YAML list of macros)"),
      responses: {
        201: {
          description: "stored (or unchanged: the same content is its existing version)",
          content: json(
            z.object({
              version: z.int(),
              status: z.enum(["created", "unchanged"]),
              macros: z.int(),
            }),
          ),
        },
        400: errorResponse("invalid YAML or macro; the field is named"),
        415: errorResponse("not sent as YAML"),
      },
    }),
    async (c) => {
      const text = await yamlText(c);
      if (text === null) return c.json(notYaml, 415);
      const parsed = parseMacros(text);
      if (!parsed.ok) return invalid(c, parsed.errors);
      const names = [...new Set(parsed.value.map((m) => m.macro))];
      const saved = await store.saveMacros(text, sha256Hex(text), names, actorOf(c));
      return c.json({ ...saved, macros: names.length }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule-macros",
      tags: ["rules"],
      summary: "The newest macros file, or ?version=",
      request: { query: z.object({ version: optionalQuery(versionQuery, "a version") }) },
      responses: {
        200: { description: "the macros file", content: json(Row) },
        404: errorResponse("no such version"),
      },
    }),
    async (c) => {
      const { version } = c.req.valid("query");
      const macros = await store.macros(version);
      return macros ? c.json(macros, 200) : notFound(c, `macros version ${version ?? "(any)"}`);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/rule-set",
      tags: ["rules"],
      summary: "Store a new version of a rule set: rule versions and a macros version",
      request: jsonBody(RuleSetInput),
      responses: {
        201: {
          description: "the new version",
          content: json(z.object({ name: z.string(), version: z.int() })),
        },
        400: errorResponse("invalid, or naming rule or macros versions that do not exist"),
      },
    }),
    async (c) => {
      const input = c.req.valid("json");
      const ids = new Set<string>();
      const twice = input.rules.findIndex((r) => ids.size === ids.add(r.id).size);
      if (twice >= 0)
        return invalid(c, [{ field: `rules[${twice}].id`, message: "the rule is listed twice" }]);
      const saved = await store.saveRuleSet(
        input.name,
        input.rules,
        input.macros_version,
        actorOf(c),
      );
      if (!saved.ok)
        return invalid(c, [{ field: "rules", message: `${saved.missing.join(", ")} not found` }]);
      return c.json({ name: input.name, version: saved.version }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule-set",
      tags: ["rules"],
      summary: "A rule set (?name=, newest or ?version=), or every rule set's newest version",
      request: {
        query: z.object({
          name: optionalQuery(z.string(), "the rule set"),
          version: optionalQuery(versionQuery, "a version"),
        }),
      },
      responses: {
        200: {
          description: "the rule set, or a list",
          content: json(z.union([Row, z.array(Row)])),
        },
        404: errorResponse("unknown name or version"),
      },
    }),
    async (c) => {
      const { name, version } = c.req.valid("query");
      if (name === undefined) return c.json(await store.ruleSets(), 200);
      const set = await store.ruleSet(name, version);
      return set ? c.json(set, 200) : notFound(c, `rule set ${name}`);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/rule-set/assignment",
      tags: ["rules"],
      summary: "Assign a rule set version to an agent group",
      request: jsonBody(Assignment),
      responses: {
        200: { description: "assigned", content: json(Assignment) },
        404: errorResponse("unknown rule set version"),
      },
    }),
    async (c) => {
      const a = c.req.valid("json");
      if (!(await store.assign(a.group, a.name, a.version, actorOf(c))))
        return notFound(c, `rule set ${a.name} version ${a.version}`);
      return c.json(a, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/rule-set/assignment",
      tags: ["rules"],
      summary: "Which rule set version each agent group is assigned",
      responses: { 200: { description: "assignments", content: json(z.array(Row)) } },
    }),
    async (c) => c.json(await store.assignments(), 200),
  );

  return app;
}
