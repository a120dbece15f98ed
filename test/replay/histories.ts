// Where recorded workflow histories live: histories/<release>/<name>.json, the release being the
// package.json version of the code that recorded them. A history is what a running workflow of that
// release may look like in production, so it is kept as long as such workflows may still run, and
// never overwritten: a recorder that would replace one fails instead.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

export const HISTORIES = path.join(import.meta.dirname, "histories");
const ROOT = path.resolve(import.meta.dirname, "../..");

/** The release being recorded: the package.json version. */
export const RELEASE = (
  JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }
).version;

/** Every recorded history, of every release, relative to HISTORIES (e.g. "0.1.0/incident-x.json"). */
export function historyFiles(): string[] {
  return readdirSync(HISTORIES, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".json"))
    .sort();
}

/** The workflow type a recorded history is of (its first event starts the workflow). */
export function workflowTypeOf(file: string): string {
  const history = JSON.parse(readFileSync(path.join(HISTORIES, file), "utf8")) as {
    events: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[];
  };
  return history.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? "";
}

/**
 * The files of this release's new histories; throws, before anything is recorded, when one of them
 * exists: a change of behaviour gets a new name (or the next release's folder), never a rewrite.
 */
export function newHistoryFiles(names: readonly string[]): Record<string, string> {
  const files = Object.fromEntries(
    names.map((name) => [name, path.join(HISTORIES, RELEASE, `${name}.json`)]),
  );
  const existing = Object.values(files).filter((f) => existsSync(f));
  if (existing.length > 0)
    throw new Error(
      `${existing.join(", ")} exist: recorded histories are never overwritten; choose another name`,
    );
  return files;
}

/** Writes a finished workflow's history, in the JSON form every Temporal tool reads (the temporal CLI's). */
export function saveHistory(address: string, workflowId: string, file: string): void {
  // The stack's temporal CLI, in the tool cache scripts/env.sh names.
  const cache =
    process.env.MM_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), ".cache"), "mitigation-manager");
  const temporal = path.join(cache, "bin/temporal-1.5.1");
  const json = execFileSync(
    temporal,
    ["workflow", "show", "--address", address, "-w", workflowId, "-o", "json"],
    { encoding: "utf8" },
  );
  mkdirSync(path.dirname(file), { recursive: true });
  // "wx": fails rather than replaces, should the file have appeared since newHistoryFiles.
  writeFileSync(file, json, { flag: "wx" });
  console.log(
    `recorded ${path.relative(HISTORIES, file)} (${JSON.parse(json).events.length} events)`,
  );
}
