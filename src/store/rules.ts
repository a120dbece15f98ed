import { sql } from "kysely";
import { attackLabels, compareVersions, type ParsedRule } from "../domain/rules.ts";
import { appendAudit } from "./audit.ts";
import type { Db } from "./db.ts";
import { type Page, pageOf } from "./paging.ts";

export interface SavedRule {
  id: string;
  name: string;
  version: string;
  sha256: string;
  status: "created" | "unchanged";
}

export type SaveResult = { ok: true; rules: SavedRule[] } | { ok: false; conflicts: string[] };

export interface RuleFilter {
  technique?: string;
  tactic?: string;
  q?: string;
}

// Rule writes are few and small; one lock makes "is this name or version free" and the insert one
// step, so two operators posting the same rule cannot both win.
const RULES_LOCK = sql`pg_advisory_xact_lock(hashtext('mm.rules'))`;

/** Whether a rule set version exists (in the transaction `db` may be). */
export const ruleSetExists = async (db: Db, name: string, version: number) =>
  Boolean(
    await db
      .selectFrom("rule_sets")
      .select("version")
      .where("name", "=", name)
      .where("version", "=", version)
      .executeTakeFirst(),
  );

/** Points a group at a rule set version. */
export const upsertAssignment = (db: Db, group: string, name: string, version: number) => {
  const row = { rule_set: name, version, assigned_at: new Date() };
  return db
    .insertInto("rule_set_assignments")
    .values({ group, ...row })
    .onConflict((oc) => oc.column("group").doUpdateSet(row))
    .execute();
};

/** The stored versions among these (id, version) pairs, with the columns asked for. */
export const selectRuleVersions = (db: Db, pairs: { id: string; version: string }[]) =>
  db
    .selectFrom("rule_versions")
    .where((eb) =>
      eb.or(pairs.map((r) => eb.and([eb("id", "=", r.id), eb("version", "=", r.version)]))),
    );

const versionColumns = [
  "id",
  "version",
  "name",
  "sha256",
  "content",
  "document",
  "created_at",
  "created_by",
] as const;

/**
 * Detection rules, every version immutable with its SHA-256; `rules` holds each rule's newest
 * version for searching. Macros files and rule sets are versioned artefacts of their own.
 */
export function rulesStore(db: Db) {
  return {
    /**
     * Stores a batch of rules, all or none: a version already stored with other content, a version
     * older than the newest stored, or a name another rule holds is a conflict.
     */
    async save(parsed: ParsedRule[], actor: string): Promise<SaveResult> {
      return db.transaction().execute(async (tx) => {
        await sql`SELECT ${RULES_LOCK}`.execute(tx);
        const ids = parsed.map((p) => p.rule.id);
        const names = parsed.map((p) => p.rule.name);
        const [stored, heads] = await Promise.all([
          tx
            .selectFrom("rule_versions")
            .select(["id", "version", "sha256"])
            .where("id", "in", ids)
            .execute(),
          tx
            .selectFrom("rules")
            .select(["id", "name", "version"])
            .where((eb) => eb.or([eb("id", "in", ids), eb("name", "in", names)]))
            .execute(),
        ]);
        const conflicts: string[] = [];
        const saved: SavedRule[] = [];
        const fresh: ParsedRule[] = [];
        for (const p of parsed) {
          const { id, name, version } = p.rule;
          const same = stored.find((s) => s.id === id && s.version === version);
          const head = heads.find((h) => h.id === id);
          const namesake = heads.find((h) => h.name === name && h.id !== id);
          if (same && same.sha256 !== p.sha256) {
            conflicts.push(
              `rule ${id} (${name}) version ${version} is stored with other content: bump version`,
            );
          } else if (!same && head && compareVersions(version, head.version) < 0) {
            conflicts.push(
              `rule ${id} (${name}) version ${version} is older than the stored ${head.version}`,
            );
          } else if (namesake) {
            conflicts.push(`name ${JSON.stringify(name)} is already rule ${namesake.id}`);
          } else {
            saved.push({
              id,
              name,
              version,
              sha256: p.sha256,
              status: same ? "unchanged" : "created",
            });
            if (!same) fresh.push(p);
          }
        }
        if (conflicts.length) return { ok: false as const, conflicts };
        if (fresh.length) {
          await tx
            .insertInto("rule_versions")
            .values(
              fresh.map((p) => ({
                id: p.rule.id,
                version: p.rule.version,
                name: p.rule.name,
                content: p.content,
                sha256: p.sha256,
                document: JSON.stringify(p.rule),
                created_by: actor,
              })),
            )
            .execute();
          const newest = fresh.filter((p) => {
            const head = heads.find((h) => h.id === p.rule.id);
            return !head || compareVersions(p.rule.version, head.version) > 0;
          });
          for (const p of newest) {
            const labels = attackLabels(p.rule);
            const row = {
              name: p.rule.name,
              version: p.rule.version,
              description: p.rule.description ?? "",
              techniques: labels.techniques,
              tactics: labels.tactics,
              updated_at: new Date(),
            };
            await tx
              .insertInto("rules")
              .values({ id: p.rule.id, ...row })
              .onConflict((oc) => oc.column("id").doUpdateSet(row))
              .execute();
          }
          await appendAudit(tx, {
            actor,
            action: "rule.created",
            details: {
              rules: fresh.map((p) => ({
                id: p.rule.id,
                version: p.rule.version,
                sha256: p.sha256,
              })),
            },
          });
        }
        return { ok: true as const, rules: saved };
      });
    },

    /** One version of a rule; its newest without `version`. */
    async get(id: string, version?: string) {
      const v =
        version ??
        (await db.selectFrom("rules").select("version").where("id", "=", id).executeTakeFirst())
          ?.version;
      if (v === undefined) return undefined;
      return db
        .selectFrom("rule_versions")
        .select(versionColumns)
        .where("id", "=", id)
        .where("version", "=", v)
        .executeTakeFirst();
    },

    /** Every version of a rule, newest first (by semantic version). */
    async versions(id: string) {
      const rows = await db
        .selectFrom("rule_versions")
        .select(["id", "version", "name", "sha256", "created_at", "created_by"])
        .where("id", "=", id)
        .execute();
      return rows.sort((a, b) => compareVersions(b.version, a.version));
    },

    /** Rules (their newest versions) by ATT&CK technique, tactic or words of name/description. */
    async list(filter: RuleFilter, page: Page) {
      let q = db.selectFrom("rules");
      // @> rather than = ANY(): the GIN indexes answer containment.
      if (filter.technique)
        q = q.where(sql<boolean>`techniques @> ARRAY[${filter.technique.toUpperCase()}]::text[]`);
      if (filter.tactic)
        q = q.where(sql<boolean>`tactics @> ARRAY[${filter.tactic.toUpperCase()}]::text[]`);
      if (filter.q) {
        // A substring, not a pattern: the operator's % and _ match themselves.
        const like = `%${filter.q.replace(/[\\%_]/g, "\\$&")}%`;
        q = q.where((eb) => eb.or([eb("name", "ilike", like), eb("description", "ilike", like)]));
      }
      return pageOf(
        q,
        (f) =>
          f
            .select(["id", "name", "version", "description", "techniques", "tactics", "updated_at"])
            .orderBy("name"),
        page,
      );
    },

    /** The newest macros file, or a given version of it. */
    async macros(version?: number) {
      let q = db
        .selectFrom("rule_macros")
        .select(["version", "content", "sha256", "names", "created_at", "created_by"]);
      q =
        version === undefined
          ? q.orderBy("version", "desc").limit(1)
          : q.where("version", "=", version);
      return q.executeTakeFirst();
    },

    /** Stores a macros file as a new version; the same content again is its existing version. */
    async saveMacros(content: string, sha256: string, names: string[], actor: string) {
      return db.transaction().execute(async (tx) => {
        await sql`SELECT ${RULES_LOCK}`.execute(tx);
        const existing = await tx
          .selectFrom("rule_macros")
          .select("version")
          .where("sha256", "=", sha256)
          .executeTakeFirst();
        if (existing) return { version: existing.version, status: "unchanged" as const };
        const { version } = await tx
          .insertInto("rule_macros")
          .values({ content, sha256, names, created_by: actor })
          .returning("version")
          .executeTakeFirstOrThrow();
        await appendAudit(tx, {
          actor,
          action: "rule_macros.created",
          details: { version, sha256 },
        });
        return { version, status: "created" as const };
      });
    },

    /**
     * A new version of a rule set. Returns the rule versions (and macros version) that do not
     * exist, instead of storing, when there are any.
     */
    async saveRuleSet(
      name: string,
      rules: { id: string; version: string }[],
      macrosVersion: number | null,
      actor: string,
    ): Promise<{ ok: true; version: number } | { ok: false; missing: string[] }> {
      return db.transaction().execute(async (tx) => {
        await sql`SELECT ${RULES_LOCK}`.execute(tx);
        const found = rules.length
          ? await selectRuleVersions(tx, rules).select(["id", "version"]).execute()
          : [];
        const missing = rules
          .filter((r) => !found.some((f) => f.id === r.id && f.version === r.version))
          .map((r) => `rule ${r.id} version ${r.version}`);
        if (
          macrosVersion !== null &&
          !(await tx
            .selectFrom("rule_macros")
            .select("version")
            .where("version", "=", macrosVersion)
            .executeTakeFirst())
        )
          missing.push(`macros version ${macrosVersion}`);
        if (missing.length) return { ok: false as const, missing };
        const last = await tx
          .selectFrom("rule_sets")
          .select(sql<number>`coalesce(max(version), 0)`.as("v"))
          .where("name", "=", name)
          .executeTakeFirstOrThrow();
        const version = Number(last.v) + 1;
        await tx
          .insertInto("rule_sets")
          .values({
            name,
            version,
            rules: JSON.stringify(rules),
            macros_version: macrosVersion,
            created_by: actor,
          })
          .execute();
        await appendAudit(tx, {
          actor,
          action: "rule_set.created",
          details: { name, version, rules: rules.length, macros_version: macrosVersion },
        });
        return { ok: true as const, version };
      });
    },

    /** A rule set version (its newest without `version`), or every rule set's newest. */
    async ruleSet(name: string, version?: number) {
      let q = db.selectFrom("rule_sets").selectAll().where("name", "=", name);
      q =
        version === undefined
          ? q.orderBy("version", "desc").limit(1)
          : q.where("version", "=", version);
      return q.executeTakeFirst();
    },

    async ruleSets() {
      return db
        .selectFrom("rule_sets")
        .select(["name", sql<number>`max(version)`.as("version")])
        .groupBy("name")
        .orderBy("name")
        .execute();
    },

    /** Assigns a rule set version to an agent group; false when that version does not exist. */
    async assign(group: string, name: string, version: number, actor: string) {
      return db.transaction().execute(async (tx) => {
        if (!(await ruleSetExists(tx, name, version))) return false;
        await upsertAssignment(tx, group, name, version);
        await appendAudit(tx, {
          actor,
          action: "rule_set.assigned",
          details: { group, rule_set: name, version },
        });
        return true;
      });
    },

    async assignments() {
      return db.selectFrom("rule_set_assignments").selectAll().orderBy("group").execute();
    },
  };
}

export type RulesStore = ReturnType<typeof rulesStore>;
