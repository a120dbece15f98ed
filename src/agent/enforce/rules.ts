// update_rules: Fibratus YAML rules, one rule per file, in the folder Fibratus loads rules from.
//
// A frame is applied as a whole or not at all: every file is verified (safe name, checksum of its
// content, a YAML mapping) before anything touches the disk, and one bad file fails them all, so
// Fibratus never runs a set the service did not mean (half of a new set beside half of the old).
// On disk the rules folder is a symbolic link to a versioned folder in a hidden sibling
// (`.<folder>.sets/<stamp>`): the next set is written and synced there in full, then a new link is
// renamed over the old one. rename(2) is atomic, so Fibratus (and a crash at any point) sees the
// old set or the new one, never a mix. A complete frame's folder holds only its rules; any other
// frame's folder also keeps the previous rules it does not replace. What is not a top-level rule
// file (the macros/ folder Fibratus reads beside the rules) is carried over either way.
import { createHash, randomBytes } from "node:crypto";
import { cp, lstat, mkdir, readdir, readlink, rename, rm, symlink } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { parse } from "yaml";
import type { RuleStatus, UpdateRules } from "../../protocol/messages.ts";
import { fsyncPath, writeAtomic } from "../state.ts";

type RuleFile = UpdateRules["rules"][number];
/** What an agent runs: rule file name → version and checksum. */
export type DeployedRules = Record<string, { version: number; checksum: string }>;

// The rule name becomes a file name: no separators, no dot-files, nothing that leaves the folder.
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Rule set folders kept: the current one and the one before it (what a crash may still point at). */
const KEEP_FOLDERS = 2;

export function ruleChecksum(content: string): string {
  return `sha256:${createHash("sha256").update(content, "utf8").digest("hex")}`;
}

// Contents (by their own digest) already found to be a YAML mapping: parsing is most of the cost
// of a rule set, and a rollout or a reconnection sends mostly rules the agent has checked before
// (a simulated fleet in one process checks each rule once, not once per agent). Bounded.
const MAPPINGS_KNOWN = 8_192;
const knownMappings = new Set<string>();

/** Why this rule file must not be applied, or null when it may. */
export function ruleFileError(rule: RuleFile): string | null {
  if (!SAFE_NAME.test(rule.name)) return `unsafe rule name ${JSON.stringify(rule.name)}`;
  const actual = ruleChecksum(rule.content);
  if (actual !== rule.checksum.toLowerCase()) return `checksum mismatch: content has ${actual}`;
  if (knownMappings.has(actual)) return null;
  const error = yamlMappingError(rule.content);
  if (error === null) {
    if (knownMappings.size >= MAPPINGS_KNOWN) knownMappings.clear();
    knownMappings.add(actual);
  }
  return error;
}

function yamlMappingError(content: string): string | null {
  try {
    const document: unknown = parse(content, { maxAliasCount: 100 });
    if (typeof document !== "object" || document === null || Array.isArray(document)) {
      return "content is not a YAML mapping (a Fibratus rule)";
    }
  } catch (error) {
    return `content is not valid YAML: ${(error as Error).message.split("\n")[0]}`;
  }
  return null;
}

const statusOf = (r: RuleFile, error?: string): RuleStatus => ({
  name: r.name,
  version: r.version,
  checksum: r.checksum,
  ...(error === undefined ? { status: "applied" } : { status: "failed", error }),
});

/** Every rule of the frame failed with one reason (the frame was refused as a whole). */
export function refuseAll(frame: UpdateRules, error: string): RuleStatus[] {
  return frame.rules.map((r) => statusOf(r, error));
}

export interface RuleSetOutcome {
  statuses: RuleStatus[];
  /** What the agent runs now; null when nothing was applied. */
  rules: DeployedRules | null;
  /** Why nothing was applied. */
  error?: string;
}

/**
 * Verifies every file of the frame, then (with `rulesDir`; simulation passes null and only keeps
 * the books) switches the rules folder to the new set in one step. Never throws.
 */
export async function applyRuleSet(
  frame: UpdateRules,
  current: DeployedRules,
  rulesDir: string | null,
): Promise<RuleSetOutcome> {
  const errors = new Map<string, string>();
  const seen = new Set<string>();
  for (const rule of frame.rules) {
    const error = seen.has(rule.name)
      ? `rule ${rule.name} appears twice in the frame`
      : ruleFileError(rule);
    seen.add(rule.name);
    if (error) errors.set(rule.name, error);
  }
  if (errors.size) {
    const failed = [...errors.keys()];
    const error = `${failed.length} of ${frame.rules.length} rules failed verification; none applied`;
    return {
      statuses: frame.rules.map((r) =>
        statusOf(r, errors.get(r.name) ?? `not applied: ${failed[0]} failed`),
      ),
      rules: null,
      error,
    };
  }
  if (rulesDir !== null) {
    try {
      await switchRulesFolder(rulesDir, frame.rules, frame.complete === true);
    } catch (err) {
      const error = `cannot write the rule set: ${(err as Error).message}`;
      return { statuses: refuseAll(frame, error), rules: null, error };
    }
  }
  const rules: DeployedRules = frame.complete ? {} : { ...current };
  for (const r of frame.rules) rules[r.name] = { version: r.version, checksum: r.checksum };
  return {
    statuses: frame.rules.map((r) => statusOf(r)),
    rules,
  };
}

const setsDirOf = (rulesDir: string) => join(dirname(rulesDir), `.${basename(rulesDir)}.sets`);

/** The folder the rules folder resolves to now; null when there is none yet. */
async function currentFolder(rulesDir: string): Promise<string | null> {
  try {
    const st = await lstat(rulesDir);
    if (st.isSymbolicLink()) return resolve(dirname(rulesDir), await readlink(rulesDir));
    if (st.isDirectory()) return rulesDir;
    throw new Error(`${rulesDir} is neither a folder nor a link to one`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

async function switchRulesFolder(rulesDir: string, files: RuleFile[], complete: boolean) {
  const parent = dirname(rulesDir);
  const sets = setsDirOf(rulesDir);
  await mkdir(sets, { recursive: true });
  const current = await currentFolder(rulesDir);
  // Stamps sort by time, so pruning keeps the newest.
  const next = join(
    sets,
    `${Date.now().toString().padStart(15, "0")}-${randomBytes(4).toString("hex")}`,
  );
  await mkdir(next);
  try {
    const replaced = new Set(files.map((f) => `${f.name}.yml`));
    if (current) {
      for (const entry of await readdir(current, { withFileTypes: true })) {
        if (entry.name.startsWith(".")) continue; // temporary files of an interrupted write
        const rule = entry.isFile() && entry.name.endsWith(".yml");
        if (rule && (complete || replaced.has(entry.name))) continue;
        await cp(join(current, entry.name), join(next, entry.name), { recursive: true });
      }
    }
    for (const f of files) await writeAtomic(join(next, `${f.name}.yml`), f.content, 0o644);
    await fsyncPath(next);
    const link = join(parent, `.${basename(rulesDir)}.${randomBytes(4).toString("hex")}.link`);
    await symlink(relative(parent, next), link);
    try {
      // A plain folder (before the first switch) cannot be renamed over: it is moved aside first.
      // A crash right there leaves no rules folder; recoverRulesFolder puts the old one back.
      if (current === rulesDir) {
        await rm(join(sets, "original"), { recursive: true, force: true });
        await rename(rulesDir, join(sets, "original"));
      }
      await rename(link, rulesDir);
    } catch (err) {
      await rm(link, { force: true });
      throw err;
    }
    await fsyncPath(parent);
  } catch (err) {
    await rm(next, { recursive: true, force: true });
    throw err;
  }
  await pruneFolders(sets, next);
}

async function pruneFolders(sets: string, keep: string) {
  const stamped = (await readdir(sets)).filter((n) => /^\d{15}-/.test(n)).sort();
  for (const name of stamped.slice(0, Math.max(0, stamped.length - KEEP_FOLDERS))) {
    if (join(sets, name) !== keep) await rm(join(sets, name), { recursive: true, force: true });
  }
}

/** On start: a crash between moving a plain rules folder aside and linking the new set undone. */
export async function recoverRulesFolder(rulesDir: string): Promise<boolean> {
  if ((await currentFolder(rulesDir)) !== null) return false;
  const original = join(setsDirOf(rulesDir), "original");
  try {
    await rename(original, rulesDir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
