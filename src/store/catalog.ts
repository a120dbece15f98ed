import { sql } from "kysely";
import type { AttackFlow, Condition, Mitigation } from "../domain/model.ts";
import { identifierKey } from "../domain/model.ts";
import { type AuditAction, appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import type { CatalogKind } from "./schema.ts";

export interface DocumentOf {
  condition: Condition;
  mitigation: Mitigation;
  attack_flow: AttackFlow;
}

/**
 * Conditions, mitigations and attack flows, stored as the documents operators post. They decide
 * what the engine does to hosts, so every change is audited with who made it (`actor`, e.g.
 * `operator:<name>`) in the transaction of the change: no change without its entry, no entry
 * without its change.
 */
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
    async create<K extends CatalogKind>(
      kind: K,
      document: DocumentOf[K],
      actor: string,
    ): Promise<boolean> {
      const key = identifierKey(document.identifier);
      return db.transaction().execute(async (tx) => {
        const inserted = await tx
          .insertInto("catalog")
          .values({ kind, key, document: JSON.stringify(document) })
          .onConflict((oc) => oc.doNothing())
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return false;
        await audited(tx, actor, "catalog.created", kind, key, document);
        return true;
      });
    },

    /** Returns false when there is no such document. */
    async update<K extends CatalogKind>(
      kind: K,
      key: string,
      document: DocumentOf[K],
      actor: string,
    ): Promise<boolean> {
      return db.transaction().execute(async (tx) => {
        const updated = await tx
          .updateTable("catalog")
          .set({ document: JSON.stringify(document), updated_at: new Date() })
          .where("kind", "=", kind)
          .where("key", "=", key)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 0) return false;
        await audited(tx, actor, "catalog.updated", kind, key, document);
        return true;
      });
    },

    async remove(kind: CatalogKind, key: string, actor: string): Promise<boolean> {
      return db.transaction().execute(async (tx) => {
        const deleted = await tx
          .deleteFrom("catalog")
          .where("kind", "=", kind)
          .where("key", "=", key)
          .executeTakeFirst();
        if (Number(deleted.numDeletedRows) === 0) return false;
        await audited(tx, actor, "catalog.deleted", kind, key);
        return true;
      });
    },
  };
}

export type CatalogStore = ReturnType<typeof catalogStore>;

/** The entry of one change: the document as it now is (none after a deletion). */
const audited = (
  tx: Db,
  actor: string,
  action: AuditAction,
  kind: CatalogKind,
  key: string,
  document?: object,
) => appendAudit(tx, { actor, action, details: { kind, key, ...(document && { document }) } });

/**
 * Loads the default configuration the first time a database is used, and never again: an operator
 * who deletes or edits a default document keeps that change across restarts. Audited as the
 * `system`'s creations.
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
    if (!rows.length) return true;
    const inserted = await tx
      .insertInto("catalog")
      .values(rows)
      .onConflict((oc) => oc.doNothing())
      .returning(["kind", "key", "document"])
      .execute();
    for (const row of inserted)
      await audited(tx, "system", "catalog.created", row.kind, row.key, row.document);
    return true;
  });
}

/**
 * The catalog's version: advanced by every change (migration 0010's trigger). Read before the
 * documents it versions, so a change racing the read shows as a newer version next time.
 */
export async function catalogVersion(db: Db): Promise<string> {
  const { rows } = await sql<{ version: string }>`
    SELECT last_value::text || '/' || is_called::text AS version FROM catalog_version`.execute(db);
  return rows[0]?.version ?? "";
}
