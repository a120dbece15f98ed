// /openapi.json, generated from the routes' schemas, and /docs, an interactive reference served
// entirely from this service: operators' consoles are often offline, so nothing comes from a CDN.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { type Env, Hono } from "hono";
import { CONSOLE_PATHS } from "./console.ts";
import { versionInfo } from "./health.ts";

const SWAGGER_UI = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mitigation Manager API</title>
<link rel="icon" href="/docs/favicon-32x32.png"><link rel="stylesheet" href="/docs/swagger-ui.css">
</head><body><div id="api"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#api", deepLinking: true });</script>
</body></html>`;

/** The paths this module serves itself, which the OpenAPI document does not describe. */
export const UNDOCUMENTED_PATHS = ["/openapi.json", "/docs", "/docs/:asset", ...CONSOLE_PATHS];

export function docsApi<E extends Env>(api: OpenAPIHono<E>) {
  let document: unknown;
  const assets = new Map<string, Promise<Buffer>>();
  return new Hono()
    .get("/openapi.json", (c) => {
      document ??= api.getOpenAPI31Document({
        openapi: "3.1.0",
        info: {
          title: "Mitigation Manager",
          version: versionInfo().version,
          description:
            "Turns security alerts into automated, durable responses walking attack flows of MITRE ATT&CK techniques.",
        },
        security: [{ bearer: [] }],
      });
      return c.json(document);
    })
    .get("/docs", (c) => c.html(PAGE))
    .get("/docs/:asset", async (c) => {
      const asset = c.req.param("asset");
      const type = ASSETS[asset];
      if (!type) return c.json({ error: `no route for GET ${c.req.path}` }, 404);
      if (!assets.has(asset)) assets.set(asset, readFile(join(SWAGGER_UI, asset)));
      const body = await (assets.get(asset) as Promise<Buffer>);
      return c.body(new Uint8Array(body), 200, {
        "content-type": type,
        "cache-control": "public, max-age=86400",
      });
    });
}
