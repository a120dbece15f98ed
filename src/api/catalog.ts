import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  catalogSchemas,
  type Validated,
  validateAttackFlow,
  validateCondition,
  validateMitigation,
} from "../domain/catalog.ts";
import { type FieldError, type Identifier, identifierKey } from "../domain/model.ts";
import type { CatalogStore, DocumentOf } from "../store/catalog.ts";
import type { CatalogKind } from "../store/schema.ts";
import type { AuthEnv } from "./auth.ts";
import { conflict, errorResponse, invalid, json, jsonBody, notFound } from "./http.ts";

interface CatalogRoute<K extends CatalogKind> {
  kind: K;
  noun: string;
  tag: string;
  /** The document's shape, named in the OpenAPI document. */
  schema: z.ZodType;
  validate(input: unknown): Validated<DocumentOf[K]>;
  /** Condition identifiers the document refers to, each with the field that names it. */
  conditionRefs(doc: DocumentOf[K]): { field: string; id: Identifier }[];
}

// Argument specs are checked by a custom schema (args.ts), which OpenAPI cannot see into.
const argSpec = {
  args: catalogSchemas.condition.shape.args.openapi({
    type: "object",
    description: 'argument name → path into the alert ("alert.<path>"), or a list of paths',
    additionalProperties: {
      anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
    },
  }),
};

const conditionRoute: CatalogRoute<"condition"> = {
  kind: "condition",
  noun: "condition",
  tag: "conditions",
  schema: catalogSchemas.condition.extend(argSpec).openapi("Condition"),
  validate: validateCondition,
  conditionRefs: () => [],
};
const mitigationRoute: CatalogRoute<"mitigation"> = {
  kind: "mitigation",
  noun: "mitigation",
  tag: "mitigations",
  schema: catalogSchemas.mitigation.extend(argSpec).openapi("Mitigation"),
  validate: validateMitigation,
  conditionRefs: (m) => (m.conditions ?? []).map((id, i) => ({ field: `conditions[${i}]`, id })),
};
const attackFlowRoute: CatalogRoute<"attack_flow"> = {
  kind: "attack_flow",
  noun: "attack flow",
  tag: "attack flows",
  schema: catalogSchemas.attackFlow.openapi("AttackFlow"),
  validate: validateAttackFlow,
  conditionRefs: (f) =>
    f.nodes.flatMap((n, i) =>
      (n.conditions ?? []).map((id, j) => ({ field: `nodes[${i}].conditions[${j}]`, id })),
    ),
};

const idQuery = z.object({
  id: z
    .string({ error: "the query parameter id is required" })
    .min(1, { error: "the query parameter id is required" })
    .openapi({ description: "the document's identifier" }),
});

/**
 * The seed's REST shape for catalog documents: GET ?id= reads one, GET lists, POST creates,
 * PUT ?id= replaces, DELETE ?id= removes. Documents are returned exactly as posted.
 */
function catalogRoutes<K extends CatalogKind>(store: CatalogStore, route: CatalogRoute<K>) {
  const app = new OpenAPIHono<AuthEnv>();
  const actorOf = (c: Context<AuthEnv>) => c.get("principal").actor;
  const { noun } = route;
  const { schema } = route;
  const tags = [route.tag];

  /** What the shape cannot say: the document's own rules, and that the conditions it names exist. */
  const check = async (c: Context, input: DocumentOf[K]) => {
    const checked = route.validate(input);
    const errors = checked.ok ? await missingRefs(checked.value) : checked.errors;
    return checked.ok && !errors.length
      ? { ok: true as const, document: checked.value }
      : { ok: false as const, response: invalid(c, errors) };
  };

  const missingRefs = async (doc: DocumentOf[K]): Promise<FieldError[]> => {
    const errors: FieldError[] = [];
    for (const ref of route.conditionRefs(doc)) {
      if (!(await store.get("condition", identifierKey(ref.id)))) {
        errors.push({
          field: ref.field,
          message: `condition ${JSON.stringify(ref.id)} does not exist`,
        });
      }
    }
    return errors;
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      tags,
      summary: `Read one ${noun} (?id=) or list them all`,
      request: { query: idQuery.partial() },
      responses: {
        200: {
          description: `the ${noun}, or an array of them without id`,
          content: json(z.union([schema, z.array(schema)])),
        },
        404: errorResponse("unknown id"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("query");
      if (id === undefined) return c.json(await store.list(route.kind), 200);
      const doc = await store.get(route.kind, id);
      return doc ? c.json(doc, 200) : notFound(c, `${noun} ${id}`);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/",
      tags,
      summary: `Create a ${noun}`,
      request: jsonBody(schema),
      responses: {
        201: { description: "created, as stored", content: json(schema) },
        400: errorResponse("invalid document; the field is named"),
        409: errorResponse("the identifier exists"),
      },
    }),
    async (c) => {
      const read = await check(c, c.req.valid("json") as DocumentOf[K]);
      if (!read.ok) return read.response;
      const key = identifierKey(read.document.identifier);
      if (!(await store.create(route.kind, read.document, actorOf(c))))
        return conflict(c, `${noun} ${key} already exists`);
      return c.json(read.document, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/",
      tags,
      summary: `Replace a ${noun}`,
      request: { query: idQuery, ...jsonBody(schema) },
      responses: {
        200: { description: "replaced", content: json(schema) },
        400: errorResponse("invalid document"),
        404: errorResponse("unknown id"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("query");
      const read = await check(c, c.req.valid("json") as DocumentOf[K]);
      if (!read.ok) return read.response;
      if (identifierKey(read.document.identifier) !== id) {
        return invalid(c, [
          { field: "identifier", message: `must equal the id being updated (${id})` },
        ]);
      }
      if (!(await store.update(route.kind, id, read.document, actorOf(c))))
        return notFound(c, `${noun} ${id}`);
      return c.json(read.document, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/",
      tags,
      summary: `Delete a ${noun}`,
      request: { query: idQuery },
      responses: {
        204: { description: "deleted" },
        404: errorResponse("unknown id"),
        409: errorResponse("still referenced"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("query");
      if (route.kind === "condition") {
        const users = await conditionUsers(store, id);
        if (users.length) return conflict(c, `condition ${id} is used by ${users.join(", ")}`);
      }
      if (!(await store.remove(route.kind, id, actorOf(c)))) return notFound(c, `${noun} ${id}`);
      return c.body(null, 204);
    },
  );

  return app;
}

async function conditionUsers(store: CatalogStore, key: string): Promise<string[]> {
  const [mitigations, flows] = await Promise.all([
    store.list("mitigation"),
    store.list("attack_flow"),
  ]);
  return [
    ...mitigations
      .filter((m) => mitigationRoute.conditionRefs(m).some((r) => identifierKey(r.id) === key))
      .map((m) => `mitigation ${identifierKey(m.identifier)}`),
    ...flows
      .filter((f) => attackFlowRoute.conditionRefs(f).some((r) => identifierKey(r.id) === key))
      .map((f) => `attack flow ${identifierKey(f.identifier)}`),
  ];
}

/** The catalogue: conditions, mitigations (the seed's /api/workflow) and attack flows. */
export function catalogApi(store: CatalogStore) {
  return new OpenAPIHono<AuthEnv>()
    .route("/condition", catalogRoutes(store, conditionRoute))
    .route("/workflow", catalogRoutes(store, mitigationRoute))
    .route("/attack-flow", catalogRoutes(store, attackFlowRoute));
}
