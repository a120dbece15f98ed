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
 * The catalog's version: advanced by every change, in the change's transaction (migration 0013),
 * so it is seen only with the change. Read before the documents it versions: a change committed
 * between the two reads shows as a newer version next time (a needless reload, never a stale one).
 */
async function catalogVersion(db: Db): Promise<string> {
  const { rows } = await sql<{ version: string }>`
    SELECT version::text AS version FROM catalog_state`.execute(db);
  return rows[0]?.version ?? "";
}

/** The whole catalog at one version, read from memory. */
export interface CatalogSnapshot {
  readonly version: string;
  list<K extends CatalogKind>(kind: K): DocumentOf[K][];
  get<K extends CatalogKind>(kind: K, key: string): DocumentOf[K] | undefined;
}

const snapshotSources = new WeakMap<Db, { current(): Promise<CatalogSnapshot> }>();

/**
 * The catalog as of its current version, shared by everything that reads it in this process for
 * a database: each current() reads the version (a sequence, one tiny statement) and reloads the
 * documents only when it moved, so a change made through any process applies from the next call
 * on. Concurrent calls share one reload. An engine activity takes one snapshot and decides from
 * it throughout, instead of a statement per document it looks at.
 */
export function catalogSnapshots(db: Db): { current(): Promise<CatalogSnapshot> } {
  const known = snapshotSources.get(db);
  if (known) return known;
  let loaded: CatalogSnapshot | null = null;
  let reloading: { version: string; snapshot: Promise<CatalogSnapshot> } | null = null;
  const source = {
    async current(): Promise<CatalogSnapshot> {
      const version = await catalogVersion(db);
      if (loaded?.version === version) return loaded;
      if (reloading?.version !== version) {
        const attempt = { version, snapshot: loadSnapshot(db, version) };
        reloading = attempt;
        // A failed reload is tried again by the next call (its caller sees the error).
        attempt.snapshot.then(
          (snapshot) => {
            if (reloading === attempt) [loaded, reloading] = [snapshot, null];
          },
          () => {
            if (reloading === attempt) reloading = null;
          },
        );
      }
      return reloading.snapshot;
    },
  };
  snapshotSources.set(db, source);
  return source;
}

async function loadSnapshot(db: Db, version: string): Promise<CatalogSnapshot> {
  const rows = await db
    .selectFrom("catalog")
    .select(["kind", "key", "document"])
    .orderBy("key")
    .execute();
  const byKind = new Map<CatalogKind, Map<string, unknown>>();
  for (const row of rows) {
    const documents = byKind.get(row.kind) ?? new Map<string, unknown>();
    // Frozen: every reader shares these objects, so none may change one under another.
    documents.set(row.key, deepFreeze(row.document));
    byKind.set(row.kind, documents);
  }
  return {
    version,
    list: <K extends CatalogKind>(kind: K) =>
      [...(byKind.get(kind)?.values() ?? [])] as DocumentOf[K][],
    get: <K extends CatalogKind>(kind: K, key: string) =>
      byKind.get(kind)?.get(key) as DocumentOf[K] | undefined,
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
