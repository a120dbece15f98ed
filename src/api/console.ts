// /console: the operator console (console/, built by `npm run build` into MM_CONSOLE_DIR), served
// as static files with an SPA fallback so a deep link (/console/incidents/web-1) loads the app.
// The pages run with a strict CSP (scripts only from this origin, nothing inline, no framing): the
// console shows attacker-controlled text (alert fields, host names), and if any of it were ever
// rendered as markup, the browser would still refuse to run it.
import { readFile, realpath } from "node:fs/promises";
import path from "node:path";
import { type Context, Hono } from "hono";

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

/** The paths this module serves, which the OpenAPI document does not describe. */
export const CONSOLE_PATHS = ["/", "/console", "/console/*"];

export function consoleApi(dir: string) {
  const root = path.resolve(dir);
  const headers = (c: Context) => {
    c.header("Content-Security-Policy", CSP);
    c.header("X-Frame-Options", "DENY");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
  };
  const index = async (c: Context) => {
    headers(c);
    let html: Buffer;
    try {
      html = await readFile(path.join(root, "index.html"));
    } catch {
      return c.text(`the console is not built: run npm run build (looked in ${root})`, 503);
    }
    // The page names the current asset files: a cached copy would point at deleted ones.
    c.header("Cache-Control", "no-store");
    return c.body(new Uint8Array(html), 200, { "content-type": TYPES[".html"] as string });
  };

  return new Hono()
    .get("/", (c) => c.redirect("/console/", 302))
    .get("/console", (c) => c.redirect("/console/", 302))
    .get("/console/*", async (c) => {
      const relative = c.req.path.slice("/console/".length);
      const type = TYPES[path.extname(relative)];
      // Only files with a known type are files; every other path is a page of the app.
      if (!relative || !type || relative === "index.html") return index(c);
      const file = await fileWithin(root, relative);
      if (!file) return c.json({ error: `no console file ${relative}` }, 404);
      headers(c);
      // Vite names assets by their content hash: a name never changes meaning.
      c.header(
        "Cache-Control",
        relative.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      );
      return c.body(new Uint8Array(file), 200, { "content-type": type });
    });
}

/** The file at `relative` under `root`, or null: nothing outside root (.., symlinks) is served. */
async function fileWithin(root: string, relative: string): Promise<Buffer | null> {
  try {
    const real = await realpath(path.join(root, relative));
    const realRoot = await realpath(root);
    if (!real.startsWith(realRoot + path.sep)) return null;
    return await readFile(real);
  } catch {
    return null;
  }
}
