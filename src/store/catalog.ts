import type { AttackFlow, Condition, Mitigation } from "../domain/model.ts";
import { identifierKey } from "../domain/model.ts";
import type { Db } from "./db.ts";
import type { CatalogKind } from "./schema.ts";

export interface DocumentOf {
  condition: Condition;
  mitigation: Mitigation;
  attack_flow: AttackFlow;
}

/** Conditions, mitigations and attack flows, stored as the documents operators post. */
export function catalogStore(db: Db) {
  return {
    async list<K extends CatalogKind>(kind: K): Promise<DocumentOf[K][]> {
      const rows = await db
        .selectFrom("catalog")
        .select("document")
        .where("kind", "=", kind)
        .orderBy("key")
        .execute();
      return rows.map((r) => r.document as unknown as DocumentOf[K]);
    },

    async get<K extends CatalogKind>(kind: K, key: string): Promise<DocumentOf[K] | undefined> {
      const row = await db
        .selectFrom("catalog")
        .select("document")
        .where("kind", "=", kind)
        .where("key", "=", key)
        .executeTakeFirst();
      return row?.document as unknown as DocumentOf[K] | undefined;
    },

    /** Returns false when a document with that identifier exists already. */
    async create<K extends CatalogKind>(kind: K, document: DocumentOf[K]): Promise<boolean> {
      const inserted = await db
        .insertInto("catalog")
        .values({
          kind,
          key: identifierKey(document.identifier),
          document: JSON.stringify(document),
        })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      return Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0;
    },

    /** Returns false when there is no such document. */
    async update<K extends CatalogKind>(
      kind: K,
      key: string,
      document: DocumentOf[K],
    ): Promise<boolean> {
      const updated = await db
        .updateTable("catalog")
        .set({ document: JSON.stringify(document), updated_at: new Date() })
        .where("kind", "=", kind)
        .where("key", "=", key)
        .executeTakeFirst();
      return Number(updated.numUpdatedRows) > 0;
    },

    async remove(kind: CatalogKind, key: string): Promise<boolean> {
      const deleted = await db
        .deleteFrom("catalog")
        .where("kind", "=", kind)
        .where("key", "=", key)
        .executeTakeFirst();
      return Number(deleted.numDeletedRows) > 0;
    },
  };
}

export type CatalogStore = ReturnType<typeof catalogStore>;

/**
 * Loads the default configuration the first time a database is used, and never again: an operator
 * who deletes or edits a default document keeps that change across restarts.
 */
export async function loadDefaultCatalog(
  db: Db,
  catalog: { [K in CatalogKind]: DocumentOf[K][] },
): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const marked = await tx
      .insertInto("meta")
      .values({ key: "default_catalog_loaded", value: JSON.stringify(new Date().toISOString()) })
      .onConflict((oc) => oc.column("key").doNothing())
      .executeTakeFirst();
    if (Number(marked.numInsertedOrUpdatedRows ?? 0) === 0) return false;
    const rows = (Object.keys(catalog) as CatalogKind[]).flatMap((kind) =>
      catalog[kind].map((document) => ({
        kind,
        key: identifierKey(document.identifier),
        document: JSON.stringify(document),
      })),
    );
    if (rows.length)
      await tx
        .insertInto("catalog")
        .values(rows)
        .onConflict((oc) => oc.doNothing())
        .execute();
    return true;
  });
}
