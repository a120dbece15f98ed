// What every resource module shares: the error body and its helpers, the validation hook that
// turns zod issues into it, and the query parameters several list routes take.
import { z } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import { createMiddleware } from "hono/factory";
import { type FieldError, fieldErrors, fieldPath } from "../domain/model.ts";

export const ErrorBody = z
  .object({
    error: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi("Error");

/** 400 with every offending field named. */
export function invalid(c: Context, errors: FieldError[]) {
  const summary = errors.map((e) => `${e.field}: ${e.message}`).join("; ");
  return c.json({ error: `invalid request: ${summary}`, errors }, 400);
}

export function notFound(c: Context, what: string) {
  return c.json({ error: `${what} not found` }, 404);
}

export function conflict(c: Context, message: string) {
  return c.json({ error: message }, 409);
}

/** Params, query and body that fail their schema answer 400 naming each field. */
export const validationHook = <E extends Env>(
  result: { success: true } | { success: false; error: { issues: z.core.$ZodIssue[] } },
  c: Context<E>,
) => (result.success ? undefined : invalid(c, fieldErrors(result.error.issues)));

export const json = <S extends z.ZodType>(schema: S) => ({
  "application/json": { schema },
});
export const errorResponse = (description: string) => ({ description, content: json(ErrorBody) });
export const jsonBody = <S extends z.ZodType>(schema: S) => ({
  body: { required: true, content: json(schema) },
});

/** An empty query parameter (`?status=`, as forms send) means the parameter is absent. */
const absentIfEmpty = (v: unknown) => (v === "" ? undefined : v);

export const optionalQuery = <S extends z.ZodType>(schema: S, description: string) =>
  z.preprocess(absentIfEmpty, schema.optional()).openapi({ description });

/** The largest page any list route returns. */
const MAX_PAGE = 500;

const integerQuery = (max: number, fallback: number, description: string) => {
  const error = `must be an integer from 0 to ${max}`;
  return z
    .preprocess(
      (v) => (absentIfEmpty(v) === undefined ? undefined : Number(v)),
      z.int({ error }).min(0, { error }).max(max, { error }).default(fallback),
    )
    .openapi({ type: "integer", minimum: 0, maximum: max, default: fallback, description });
};

/** `?limit=` and `?offset=` of a list route. */
export const pageQuery = (defaultLimit: number) => ({
  limit: integerQuery(MAX_PAGE, defaultLimit, `page size (at most ${MAX_PAGE})`),
  offset: integerQuery(Number.MAX_SAFE_INTEGER, 0, "rows to skip"),
});

export const dateTimeQuery = (description: string) =>
  optionalQuery(
    z.coerce
      .date({ error: "must be an ISO 8601 date-time" })
      .openapi({ type: "string", format: "date-time" }),
    description,
  );

/** The page a list route answers with: its items, and how they were asked for. */
export const page = <S extends z.ZodType>(item: S) =>
  z.object({ items: z.array(item), total: z.int().optional(), limit: z.int(), offset: z.int() });

/** A row as the store returns it; its columns are the store's to describe. */
export const Row = z.record(z.string(), z.unknown());

// Versions of rule sets and macros files are PostgreSQL integers: a larger number is a 400, not a
// database error.
const MAX_VERSION = 2 ** 31 - 1;
/** A version number in a JSON body. */
export const VersionNumber = z.int().min(1).max(MAX_VERSION);
/** A version number in a query string. */
export const versionQuery = z.coerce
  .number({ error: "must be a version number" })
  .int({ error: "must be a version number" })
  .min(1, { error: "must be a version number" })
  .max(MAX_VERSION, { error: "must be a version number" });

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored: PostgreSQL text and jsonb refuse NUL, and jsonb lone surrogates. */
function unstorable(s: string): string | undefined {
  if (s.includes("\u0000")) return "must not contain the NUL character (U+0000)";
  if (LONE_SURROGATE.test(s)) return "must be well-formed Unicode (no lone surrogate)";
  return undefined;
}

/** The first string (key or value) in a parsed JSON document that cannot be stored. */
function unstorableIn(value: unknown, path: PropertyKey[] = []): FieldError | undefined {
  if (typeof value === "string") {
    const message = unstorable(value);
    return message ? { field: fieldPath(path), message } : undefined;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = unstorableIn(item, [...path, i]);
      if (found) return found;
    }
  } else if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      const message = unstorable(key);
      if (message) return { field: fieldPath([...path, key]), message: `key ${message}` };
      const found = unstorableIn(item, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}

const BINARY_BODY = /^\s*application\/(x-)?(tar|gzip|zip|zip-compressed)\s*(;|$)/i;

const MAY_HIDE_UNSTORABLE = /\\u(0000|[dD][89a-fA-F])/;

/**
 * 400 for text the database cannot hold, in the path, the query or a JSON body, before any route
 * runs: found by API fuzzing, a NUL in `?id=`, `?host=` or a document reached PostgreSQL, whose
 * refusal was a 500. One guard here rather than a refinement on every string of every schema.
 */
export const storableText = createMiddleware(async (c, next) => {
  const errors: FieldError[] = [];
  let path: string;
  try {
    path = decodeURIComponent(new URL(c.req.url).pathname);
  } catch {
    return invalid(c, [{ field: "(path)", message: "malformed percent-encoding" }]);
  }
  const inPath = unstorable(path);
  if (inPath) errors.push({ field: "(path)", message: inPath });
  for (const [name, values] of Object.entries(c.req.queries())) {
    const message = unstorable(name) ?? values.map(unstorable).find(Boolean);
    if (message) errors.push({ field: name, message });
  }
  // Whatever its Content-Type: POST /api/alert reads any body as JSON (docs/api.md). But for
  // archives (POST /api/rule), which are binary: decoding them as text here would corrupt the
  // bytes the route reads after; that route checks every file's text itself.
  const binary = BINARY_BODY.test(c.req.header("content-type") ?? "");
  if (errors.length === 0 && c.req.raw.body !== null && !binary) {
    const text = await c.req.text();
    // JSON can only carry a NUL or a lone surrogate as a \u escape (a raw control character is not
    // JSON, and decoding the bytes already replaced broken UTF-8): a body without such an escape is
    // not parsed here a second time, so the route's own parse is the only one on the alert path.
    if (MAY_HIDE_UNSTORABLE.test(text)) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        // NDJSON (POST /api/alert takes batches so): each line, named by its item's index.
        body = text
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((line) => {
            try {
              return JSON.parse(line);
            } catch {
              return undefined; // not JSON: the route says so, naming the line
            }
          });
      }
      const found = unstorableIn(body);
      if (found) errors.push(found);
    }
  }
  return errors.length > 0 ? invalid(c, errors) : next();
});

/** The body as JSON whatever its content type (Wazuh integrations do not all send one). */
export async function readJson(
  c: Context,
): Promise<{ ok: true; value: unknown } | { ok: false; response: ReturnType<typeof invalid> }> {
  const text = await c.req.text();
  if (text.trim() === "")
    return {
      ok: false,
      response: invalid(c, [{ field: "(body)", message: "a JSON body is required" }]),
    };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return {
      ok: false,
      response: invalid(c, [
        { field: "(body)", message: `not valid JSON: ${(err as Error).message}` },
      ]),
    };
  }
}
