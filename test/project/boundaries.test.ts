// Each concern has one home, and this test keeps it there: it reads every import of src/ and fails
// on one that crosses a boundary (SQL only in src/store; workflow code deterministic and bundled
// alone). A failure names the file, the import and the rule.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "../..");

interface ImportSite {
  specifier: string;
  /** `import type …` / `export type … from`: erased, never loaded at run time. */
  typeOnly: boolean;
}

/** Every module a file names: static imports, re-exports and dynamic import(). */
function importsOf(fileName: string, source: string): ImportSite[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false);
  const found: ImportSite[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({
        specifier: node.moduleSpecifier.text,
        typeOnly: node.importClause?.isTypeOnly ?? false,
      });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ specifier: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

const DATABASE_PACKAGES = /^(kysely|pg)(\/|$)/;
// Workflow code runs in Temporal's deterministic sandbox and is bundled on its own: it may load the
// workflow SDK (and @temporalio/common, where search attribute keys are defined), its own folder
// (which holds the workflow-id module) and the pure domain; activities only as types.
const WORKFLOW_PACKAGES = new Set(["@temporalio/workflow", "@temporalio/common"]);

/** Why an import breaks a boundary, or null. Paths are relative to the repository, with "/". */
function violation(file: string, site: ImportSite): string | null {
  const { specifier, typeOnly } = site;
  const relative = specifier.startsWith(".");
  const target = relative ? path.posix.join(path.posix.dirname(file), specifier) : null;
  if (DATABASE_PACKAGES.test(specifier) && !file.startsWith("src/store/"))
    return `${specifier} outside src/store: SQL and the database client live in src/store`;
  if (file.startsWith("src/workflows/")) {
    if (!relative) {
      return WORKFLOW_PACKAGES.has(specifier)
        ? null
        : `workflow code may not load ${specifier} (only @temporalio/workflow)`;
    }
    if (target?.startsWith("src/workflows/") || target?.startsWith("src/domain/")) return null;
    if (target?.startsWith("src/activities/"))
      return typeOnly ? null : "workflow code imports activities with `import type` only";
    return `workflow code may not load ${target}`;
  }
  return null;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(rel);
    return entry.name.endsWith(".ts") ? [rel] : [];
  });
}

describe("import boundaries", () => {
  it("hold for every file of src/", () => {
    const files = sourceFiles("src");
    expect(files.length).toBeGreaterThan(50);
    const broken = files.flatMap((file) =>
      importsOf(file, readFileSync(path.join(root, file), "utf8")).flatMap((site) => {
        const why = violation(file, site);
        return why ? [`${file}: "${site.specifier}": ${why}`] : [];
      }),
    );
    expect(broken).toEqual([]);
  });

  it("finds every kind of import a file can make", () => {
    const sites = importsOf(
      "src/x.ts",
      `import a from "a"; import type { B } from "b"; import { type C } from "c";
       export { d } from "d"; export type { E } from "e"; const f = () => import("f");`,
    );
    expect(sites).toEqual([
      { specifier: "a", typeOnly: false },
      { specifier: "b", typeOnly: true },
      // An inline `type` still loads the module under verbatimModuleSyntax.
      { specifier: "c", typeOnly: false },
      { specifier: "d", typeOnly: false },
      { specifier: "e", typeOnly: true },
      { specifier: "f", typeOnly: false },
    ]);
  });

  it("refuses SQL outside src/store, in the API, the gateway and the intake alike", () => {
    for (const file of ["src/api/views.ts", "src/gateway/session.ts", "src/ingest/intake.ts"]) {
      expect(violation(file, { specifier: "kysely", typeOnly: false })).toMatch(/src\/store/);
      expect(violation(file, { specifier: "pg", typeOnly: false })).toMatch(/src\/store/);
    }
    expect(violation("src/activities/engine.ts", { specifier: "kysely", typeOnly: true })).toMatch(
      /src\/store/,
    );
    expect(violation("src/store/alerts.ts", { specifier: "kysely", typeOnly: false })).toBeNull();
  });

  it("keeps workflow code to the workflow SDK, its folder, the domain and activity types", () => {
    const wf = "src/workflows/mitigation.ts";
    const allowed = [
      { specifier: "@temporalio/workflow", typeOnly: false },
      { specifier: "./ids.ts", typeOnly: false },
      { specifier: "../domain/attack-flow.ts", typeOnly: false },
      { specifier: "../activities/engine.ts", typeOnly: true },
    ];
    for (const site of allowed) expect(violation(wf, site)).toBeNull();
    expect(violation(wf, { specifier: "../activities/engine.ts", typeOnly: false })).toMatch(
      /import type/,
    );
    expect(violation(wf, { specifier: "../store/decisions.ts", typeOnly: true })).toMatch(
      /src\/store\/decisions/,
    );
    expect(violation(wf, { specifier: "@temporalio/activity", typeOnly: false })).toMatch(
      /may not load @temporalio\/activity/,
    );
    expect(violation(wf, { specifier: "node:crypto", typeOnly: false })).toMatch(/node:crypto/);
  });
});
