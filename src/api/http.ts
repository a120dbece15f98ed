import type { Context } from "hono";
import type { FieldError } from "../domain/model.ts";

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

/** The request body as JSON, or the 400 to answer with. */
export async function readJson(
  c: Context,
): Promise<{ ok: true; body: unknown } | { ok: false; response: Response }> {
  const text = await c.req.text();
  if (text.trim() === "")
    return {
      ok: false,
      response: invalid(c, [{ field: "(body)", message: "a JSON body is required" }]),
    };
  try {
    return { ok: true, body: JSON.parse(text) };
  } catch (err) {
    return {
      ok: false,
      response: invalid(c, [
        { field: "(body)", message: `not valid JSON: ${(err as Error).message}` },
      ]),
    };
  }
}

/** Reads `?name=` as a non-negative integer within bounds, or names the field in the error. */
export function intParam(
  c: Context,
  name: string,
  fallback: number,
  max: number,
): number | FieldError {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max)
    return { field: name, message: `must be an integer from 0 to ${max}` };
  return n;
}

/** The largest page any list route returns. */
export const MAX_PAGE = 500;

/** `?limit=` and `?offset=` of a list route; invalid ones come back as errors naming them. */
export function pageParams(
  c: Context,
  defaultLimit: number,
): { limit: number; offset: number; errors: FieldError[] } {
  const limit = intParam(c, "limit", defaultLimit, MAX_PAGE);
  const offset = intParam(c, "offset", 0, Number.MAX_SAFE_INTEGER);
  return {
    limit: isFieldError(limit) ? defaultLimit : limit,
    offset: isFieldError(offset) ? 0 : offset,
    errors: [limit, offset].filter(isFieldError),
  };
}

export function dateParam(c: Context, name: string): Date | undefined | FieldError {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "") return undefined;
  const d = new Date(raw);
  return Number.isNaN(d.getTime()) ? { field: name, message: "must be an ISO 8601 date-time" } : d;
}

export function isFieldError(v: unknown): v is FieldError {
  return typeof v === "object" && v !== null && "field" in v && "message" in v;
}
