// What every resource module shares: the error body and its helpers, the validation hook that
// turns zod issues into it, and the query parameters several list routes take.
import { z } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import { type FieldError, fieldErrors } from "../domain/model.ts";

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
