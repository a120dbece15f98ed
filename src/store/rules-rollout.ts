// What rule rollouts, the gateway's reconciliation and drift read and write: the rule files of a
// rule set version as agents receive them, who should run what, and what agents report running.
import { sql } from "kysely";
import { ruleVersionCode } from "../domain/rules.ts";
import type { RuleFile, RulesStatus } from "../protocol/messages.ts";
import type { Db } from "./db.ts";
import { selectRuleVersions, upsertAssignment } from "./rules.ts";

export type AgentRolloutStatus = "pending" | "applied" | "rejected" | "offline";

/** A rule as an agent holds it (the hello's and the agents table's shape). */
interface DeployedRule {
  name: string;
  version: number;
  checksum: string;
}

/**
 * The update_rules files of a rule set version: each rule is sent as `<id>` (a rule id is a safe
 * file name; rule names have spaces), its version as a number (the frame's field is an integer),
 * and the checksum of the exact stored text.
 */
export async function ruleSetFiles(db: Db, name: string, version: number): Promise<RuleFile[]> {
  // Versions are immutable: a wave of a thousand agents reads each version once per process.
  const key = `${name}\n${version}`;
  const cache = filesCaches.get(db) ?? new Map<string, RuleFile[]>();
  filesCaches.set(db, cache);
  const cached = cache.get(key);
  if (cached) return cached;
  const files = await readRuleSetFiles(db, name, version);
  if (files.length) {
    if (cache.size >= FILES_CACHE_SIZE) cache.delete(cache.keys().next().value ?? "");
    cache.set(key, files);
  }
  return files;
}

const FILES_CACHE_SIZE = 16;
const filesCaches = new WeakMap<Db, Map<string, RuleFile[]>>();

async function readRuleSetFiles(db: Db, name: string, version: number): Promise<RuleFile[]> {
  const set = await db
    .selectFrom("rule_sets")
    .select("rules")
    .where("name", "=", name)
    .where("version", "=", version)
    .executeTakeFirst();
  return set ? ruleFilesOf(db, set.rules) : [];
}

/** The update_rules files of these rule versions (see ruleSetFiles). */
export async function ruleFilesOf(
  db: Db,
  versions: { id: string; version: string }[],
): Promise<RuleFile[]> {
  if (!versions.length) return [];
  const rows = await selectRuleVersions(db, versions)
    .select(["id", "version", "content", "sha256"])
    .orderBy("id")
    .execute();
  return rows.map((r) => ({
    name: r.id,
    content: r.content,
    version: ruleVersionCode(r.version),
    checksum: `sha256:${r.sha256}`,
  }));
}

/** The rule set versions assigned to the groups an agent is in. */
async function assignedTo(db: Db, agentId: string) {
  return db
    .selectFrom("rule_set_assignments as s")
    .innerJoin("agents as a", (j) => j.on(sql<boolean>`s."group" = ANY(a.groups)`))
    .select(["s.rule_set", "s.version"])
    .where("a.id", "=", agentId)
    .orderBy("s.group")
    .execute();
}

/** A rule set version assigned to one of an agent's groups. */
export interface AssignedSet {
  rule_set: string;
  version: number;
}

/** The files of several rule set versions as one set (a rule in two sets once: the later's). */
export async function filesOfSets(db: Db, sets: AssignedSet[]): Promise<RuleFile[]> {
  const files = new Map<string, RuleFile>();
  for (const a of sets)
    for (const f of await ruleSetFiles(db, a.rule_set, a.version)) files.set(f.name, f);
  return [...files.values()];
}

/**
 * The rule set an agent's groups assign it: every file of every assigned version, and which
 * versions those are. An agent in no assigned group has none: the service does not manage its
 * rules, so nothing is ever removed from it.
 */
export async function assignedRuleSet(db: Db, agentId: string) {
  const sets = await assignedTo(db, agentId);
  return { sets, files: await filesOfSets(db, sets) };
}

/** The assigned rule set versions of many agents in one query (a rollout wave's). */
export async function assignmentsOf(db: Db, agentIds: string[]) {
  const out = new Map<string, AssignedSet[]>(agentIds.map((id) => [id, []]));
  if (!agentIds.length) return out;
  const rows = await db
    .selectFrom("rule_set_assignments as s")
    .innerJoin("agents as a", (j) => j.on(sql<boolean>`s."group" = ANY(a.groups)`))
    .select(["a.id", "s.rule_set", "s.version"])
    .where("a.id", "in", agentIds)
    .orderBy("a.id")
    .orderBy("s.group")
    .execute();
  for (const r of rows) out.get(r.id)?.push({ rule_set: r.rule_set, version: r.version });
  return out;
}

/** Files the agent lacks, or holds with another checksum: what a reconnecting agent is sent. */
export function missingFiles(expected: RuleFile[], deployed: DeployedRule[]): RuleFile[] {
  const held = new Set(deployed.map((d) => `${d.name}\n${d.checksum}`));
  return expected.filter((f) => !held.has(`${f.name}\n${f.checksum}`));
}

/** Whether an agent runs anything but exactly the expected files (a lack, a change or an extra). */
export function differs(expected: RuleFile[], deployed: DeployedRule[]): boolean {
  if (missingFiles(expected, deployed).length) return true;
  const wanted = new Set(expected.map((f) => f.name));
  return deployed.some((d) => !wanted.has(d.name));
}

/**
 * Records an agent's rules_status and folds what it applied into what it runs (`agents.rules`),
 * so rollouts and drift read one list whatever frame brought the rules.
 */
export async function recordRulesReport(db: Db, agentId: string, status: RulesStatus) {
  await db.transaction().execute(async (tx) => {
    const row = await tx
      .selectFrom("agents")
      .select("rules")
      .where("id", "=", agentId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return;
    // A complete set replaces what the agent ran; any other report adds to it.
    const rules = new Map(
      status.complete ? [] : (row.rules as DeployedRule[]).map((r) => [r.name, r]),
    );
    for (const r of status.rules)
      if (r.status === "applied")
        rules.set(r.name, { name: r.name, version: r.version, checksum: r.checksum });
    await tx
      .updateTable("agents")
      .set({
        rules: JSON.stringify([...rules.values()]),
        rules_status: JSON.stringify({ ...status, received_at: new Date().toISOString() }),
      })
      .where("id", "=", agentId)
      .execute();
  });
}

export function rolloutStore(db: Db) {
  return {
    /**
     * Points the groups at this rule set version (those given, or every group assigned any
     * version of the set) and returns those groups' agents, ordered by id.
     */
    async assignAndTarget(name: string, version: number, groups?: string[]) {
      return db.transaction().execute(async (tx) => {
        const chosen =
          groups ??
          (
            await tx
              .selectFrom("rule_set_assignments")
              .select("group")
              .where("rule_set", "=", name)
              .execute()
          ).map((r) => r.group);
        for (const group of chosen) await upsertAssignment(tx, group, name, version);
        if (!chosen.length) return { groups: chosen, agents: [] as string[] };
        const agents = await tx
          .selectFrom("agents")
          .select("id")
          .where(sql<boolean>`groups && ${sql.val(chosen)}::text[]`)
          .orderBy("id")
          .execute();
        return { groups: chosen, agents: agents.map((a) => a.id) };
      });
    },

    /** Which of these agents hold a live session now. */
    async online(agentIds: string[]): Promise<Set<string>> {
      if (!agentIds.length) return new Set();
      const rows = await db
        .selectFrom("agents")
        .select("id")
        .where("id", "in", agentIds)
        .where("session_id", "is not", null)
        .execute();
      return new Set(rows.map((r) => r.id));
    },

    /**
     * Each agent's standing against the expected files: applied when it runs every one of them,
     * rejected when its latest report (since `since`: an older one answered an earlier send)
     * refused one (with the agent's error), pending otherwise.
     */
    async standing(agentIds: string[], expected: RuleFile[], since: Date) {
      const rows = agentIds.length
        ? await db
            .selectFrom("agents")
            .select(["id", "rules", "rules_status"])
            .where("id", "in", agentIds)
            .execute()
        : [];
      const wanted = new Map(expected.map((f) => [f.name, f.checksum]));
      const out = new Map<string, { status: AgentRolloutStatus; error?: string }>();
      for (const row of rows) {
        const deployed = row.rules as DeployedRule[];
        if (!missingFiles(expected, deployed).length) {
          out.set(row.id, { status: "applied" });
          continue;
        }
        const report = row.rules_status as (RulesStatus & { received_at: string }) | null;
        const fresh = report && new Date(report.received_at) >= since;
        const refused =
          fresh &&
          report.rules.find((r) => r.status === "failed" && wanted.get(r.name) === r.checksum);
        out.set(
          row.id,
          refused
            ? { status: "rejected", error: `${refused.name}: ${refused.error ?? "failed"}` }
            : { status: "pending" },
        );
      }
      return out;
    },

    /** Agents of assigned groups that do not run every rule their assignment names. */
    async drift() {
      const rows = await db
        .selectFrom("rule_set_assignments as s")
        .innerJoin("agents as a", (j) => j.on(sql<boolean>`s."group" = ANY(a.groups)`))
        .select(["a.id", "a.hostname", "a.rules", "s.group", "s.rule_set", "s.version"])
        .orderBy("a.id")
        .execute();
      const files = new Map<string, RuleFile[]>();
      const out = [];
      for (const r of rows) {
        const key = `${r.rule_set}\n${r.version}`;
        let expected = files.get(key);
        if (!expected) {
          expected = await ruleSetFiles(db, r.rule_set, r.version);
          files.set(key, expected);
        }
        const missing = missingFiles(expected, r.rules as DeployedRule[]);
        out.push({
          agent_id: r.id,
          hostname: r.hostname,
          group: r.group,
          rule_set: r.rule_set,
          version: r.version,
          in_sync: missing.length === 0,
          missing: missing.map((m) => m.name),
        });
      }
      return out;
    },
  };
}

export type RolloutStore = ReturnType<typeof rolloutStore>;

/** What a push-rules step needs to know to plan itself. */
export function pushRulesStore(db: Db) {
  return {
    /** The newest version of a rule set; null when it has none. */
    async newestRuleSetVersion(name: string): Promise<number | null> {
      const row = await db
        .selectFrom("rule_sets")
        .select((eb) => eb.fn.max("version").as("version"))
        .where("name", "=", name)
        .executeTakeFirst();
      return row?.version ?? null;
    },

    /**
     * The newest version of every rule whose labels name one of these techniques. Stored labels
     * carry each sub-technique's parent too, and the techniques asked for are widened to their
     * parents here, so T1003.001 finds rules for T1003 and for T1003.001.
     */
    async rulesForTechniques(techniques: string[]): Promise<{ id: string; version: string }[]> {
      const wanted = [
        ...new Set(
          techniques.flatMap((t) => [t.toUpperCase(), t.toUpperCase().split(".")[0] ?? t]),
        ),
      ];
      if (!wanted.length) return [];
      return db
        .selectFrom("rules")
        .select(["id", "version"])
        .where(sql<boolean>`techniques && ${sql.val(wanted)}::text[]`)
        .orderBy("id")
        .limit(MAX_PUSHED_RULES)
        .execute();
    },

    async groupsOf(agentId: string): Promise<string[]> {
      const row = await db
        .selectFrom("agents")
        .select("groups")
        .where("id", "=", agentId)
        .executeTakeFirst();
      return row?.groups ?? [];
    },
  };
}

/** A push by technique sends at most this many rules (a frame stays a bounded size). */
export const MAX_PUSHED_RULES = 500;
