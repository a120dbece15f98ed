// The API's self-description: the document is valid OpenAPI 3.1, documents every route the app
// answers, and the interactive reference is served by the service itself (consoles are offline).
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { type ApiDeps, createApi } from "../../src/api/app.ts";
import { UNDOCUMENTED_PATHS } from "../../src/api/docs.ts";
import { loadConfig } from "../../src/config.ts";
import type { Json } from "../support/http.ts";

// Building the app touches no dependency; only requests would, and these tests make none that do.
const app = createApi({ config: loadConfig({}) } as ApiDeps);
const document = async (): Promise<Json> => (await app.request("/openapi.json")).json();

describe("/openapi.json", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  it("documents exactly the routes the app answers", async () => {
    const doc = await document();
    const documented = Object.entries(doc.paths as Record<string, object>).flatMap(
      ([path, operations]) =>
        Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const registered = app.routes
      .filter((r) => r.method !== "ALL" && !UNDOCUMENTED_PATHS.includes(r.path))
      .map((r) => `${r.method} ${r.path.replace(/:([^/]+)/g, "{$1}")}`);
    expect(new Set(registered).size).toBeGreaterThan(20);
    expect([...new Set(documented)].sort()).toEqual([...new Set(registered)].sort());
  });

  it("describes request bodies with the schemas that validate them", async () => {
    const doc = await document();
    const schemas = doc.components.schemas;
    expect(schemas.Mitigation.properties).toHaveProperty("effective_attacks");
    expect(schemas.WazuhAlert.required).toEqual(["id", "timestamp", "agent", "rule"]);
    expect(schemas.AgentAlert.required).toEqual(["host", "alert"]);
    const command = JSON.stringify(schemas.CommandRequest);
    // block-ip's details come from the protocol's schema.
    expect(command).toContain('"block-ip"');
    expect(command).toContain('"portal_ips"');
    expect(doc.paths["/api/agents"].get.parameters.map((p: { name: string }) => p.name)).toContain(
      "label",
    );
    expect(doc.paths["/api/version"].get.security).toEqual([]);
    expect(doc.security).toEqual([{ bearer: [] }]);
  });
});

describe("/docs", () => {
  it("serves the interactive reference and its assets from this service", async () => {
    const page = await app.request("/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toContain("/openapi.json");
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(sources.length).toBeGreaterThanOrEqual(2);
    for (const source of sources) {
      expect(source, "no asset from another host").not.toMatch(/^(https?:)?\/\//);
      const asset = await app.request(source);
      expect(asset.status, source).toBe(200);
      expect((await asset.arrayBuffer()).byteLength, source).toBeGreaterThan(0);
    }
    const script = await app.request("/docs/swagger-ui-bundle.js");
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    expect(await script.text()).toContain("SwaggerUIBundle");
  });

  it("serves nothing else from the package directory", async () => {
    for (const path of ["/docs/package.json", "/docs/..%2Fpackage.json", "/docs/index.html"])
      expect((await app.request(path)).status, path).toBe(404);
  });
});
