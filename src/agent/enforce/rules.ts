// update_rules: Fibratus YAML rules, one rule per file, in the folder Fibratus loads rules from.
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import type { RuleStatus, UpdateRules } from "../../protocol/messages.ts";
import { writeAtomic } from "../state.ts";

type RuleFile = UpdateRules["rules"][number];

// The rule name becomes a file name: no separators, no dot-files, nothing that leaves the folder.
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function ruleChecksum(content: string): string {
  return `sha256:${createHash("sha256").update(content, "utf8").digest("hex")}`;
}

/**
 * Checks a rule (safe name, checksum of its content, YAML mapping) and, when `rulesDir` is given,
 * writes it atomically as `<rulesDir>/<name>.yml`, so Fibratus never reads half a rule.
 * Never throws: the outcome is the rule's status.
 */
export async function applyRule(rule: RuleFile, rulesDir: string | null): Promise<RuleStatus> {
  const status = { name: rule.name, version: rule.version, checksum: rule.checksum };
  const fail = (error: string): RuleStatus => ({ ...status, status: "failed", error });
  if (!SAFE_NAME.test(rule.name)) return fail(`unsafe rule name ${JSON.stringify(rule.name)}`);
  const actual = ruleChecksum(rule.content);
  if (actual !== rule.checksum.toLowerCase()) {
    return fail(`checksum mismatch: content has ${actual}`);
  }
  try {
    const document: unknown = parse(rule.content);
    if (typeof document !== "object" || document === null || Array.isArray(document)) {
      return fail("content is not a YAML mapping (a Fibratus rule)");
    }
  } catch (error) {
    return fail(`content is not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  if (rulesDir !== null) {
    try {
      await mkdir(rulesDir, { recursive: true });
      await writeAtomic(join(rulesDir, `${rule.name}.yml`), rule.content, 0o644);
    } catch (error) {
      return fail(`cannot write the rule file: ${(error as Error).message}`);
    }
  }
  return { ...status, status: "applied" };
}
