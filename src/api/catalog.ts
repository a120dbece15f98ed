import { type Context, Hono } from "hono";
import { validateAttackFlow, validateCondition, validateMitigation } from "../domain/catalog.ts";
import { type FieldError, type Identifier, identifierKey } from "../domain/model.ts";
import type { CatalogStore, DocumentOf } from "../store/catalog.ts";
import type { CatalogKind } from "../store/schema.ts";
import type { AuthEnv } from "./auth.ts";
import { conflict, invalid, notFound, readJson } from "./http.ts";

type Validation<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

interface CatalogRoute<K extends CatalogKind> {
  kind: K;
  noun: string;
  validate(input: unknown): Validation<DocumentOf[K]>;
  /** Condition identifiers the document refers to, each with the field that names it. */
  conditionRefs(doc: DocumentOf[K]): { field: string; id: Identifier }[];
}

const conditionRoute: CatalogRoute<"condition"> = {
  kind: "condition",
  noun: "condition",
  validate: validateCondition,
  conditionRefs: () => [],
};
const mitigationRoute: CatalogRoute<"mitigation"> = {
  kind: "mitigation",
  noun: "mitigation",
  validate: validateMitigation,
  conditionRefs: (m) => (m.conditions ?? []).map((id, i) => ({ field: `conditions[${i}]`, id })),
};
const attackFlowRoute: CatalogRoute<"attack_flow"> = {
  kind: "attack_flow",
  noun: "attack flow",
  validate: validateAttackFlow,
  conditionRefs: (f) =>
    f.nodes.flatMap((n, i) =>
      (n.conditions ?? []).map((id, j) => ({ field: `nodes[${i}].conditions[${j}]`, id })),
    ),
};

/**
 * The seed's REST shape for catalog documents: GET ?id= reads one, GET lists, POST creates,
 * PUT ?id= replaces, DELETE ?id= removes. Documents are returned exactly as posted.
 */
function catalogRoutes<K extends CatalogKind>(store: CatalogStore, route: CatalogRoute<K>) {
  const app = new Hono<AuthEnv>();
  const actorOf = (c: Context<AuthEnv>) => c.get("principal").actor;

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

  const readDocument = async (
    c: Context,
  ): Promise<{ document: DocumentOf[K] } | { response: Response }> => {
    const body = await readJson(c);
    if (!body.ok) return { response: body.response };
    const checked = route.validate(body.body);
    if (!checked.ok) return { response: invalid(c, checked.errors) };
    const refErrors = await missingRefs(checked.value);
    if (refErrors.length) return { response: invalid(c, refErrors) };
    return { document: checked.value };
  };

  app.get("/", async (c) => {
    const id = c.req.query("id");
    if (id === undefined) return c.json(await store.list(route.kind));
    const doc = await store.get(route.kind, id);
    return doc ? c.json(doc) : notFound(c, `${route.noun} ${id}`);
  });

  app.post("/", async (c) => {
    const read = await readDocument(c);
    if ("response" in read) return read.response;
    const key = identifierKey(read.document.identifier);
    if (!(await store.create(route.kind, read.document, actorOf(c))))
      return conflict(c, `${route.noun} ${key} already exists`);
    return c.json(read.document, 201);
  });

  app.put("/", async (c) => {
    const id = c.req.query("id");
    if (!id) return invalid(c, [{ field: "id", message: "the query parameter id is required" }]);
    const read = await readDocument(c);
    if ("response" in read) return read.response;
    if (identifierKey(read.document.identifier) !== id) {
      return invalid(c, [
        { field: "identifier", message: `must equal the id being updated (${id})` },
      ]);
    }
    if (!(await store.update(route.kind, id, read.document, actorOf(c))))
      return notFound(c, `${route.noun} ${id}`);
    return c.json(read.document);
  });

  app.delete("/", async (c) => {
    const id = c.req.query("id");
    if (!id) return invalid(c, [{ field: "id", message: "the query parameter id is required" }]);
    if (route.kind === "condition") {
      const users = await conditionUsers(store, id);
      if (users.length) return conflict(c, `condition ${id} is used by ${users.join(", ")}`);
    }
    if (!(await store.remove(route.kind, id, actorOf(c))))
      return notFound(c, `${route.noun} ${id}`);
    return c.body(null, 204);
  });

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

export function catalogApi(store: CatalogStore) {
  return new Hono<AuthEnv>()
    .route("/condition", catalogRoutes(store, conditionRoute))
    .route("/workflow", catalogRoutes(store, mitigationRoute))
    .route("/attack-flow", catalogRoutes(store, attackFlowRoute));
}
