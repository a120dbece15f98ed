// kill-process (Linux: names come from /proc).
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, readlink } from "node:fs/promises";
import { basename } from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";

const KILL_WAIT_MS = 3000;

/** The names a process answers to: its comm (truncated to 15 bytes), executable and argv[0]. */
async function processNames(pid: number): Promise<string[]> {
  let comm: string;
  try {
    comm = (await readFile(`/proc/${pid}/comm`, "utf8")).trim();
  } catch {
    throw new Error(`no process with pid ${pid}`);
  }
  const names = [comm];
  const exe = await readlink(`/proc/${pid}/exe`).catch(() => null);
  if (exe) names.push(basename(exe.replace(/ \(deleted\)$/, "")));
  const argv0 = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0")[0];
  if (argv0) names.push(basename(argv0));
  return names;
}

function matches(names: string[], expected: string): boolean {
  // comm holds at most 15 bytes, so a longer expected name matches its prefix there.
  return names.some((name, i) => name === expected || (i === 0 && name === expected.slice(0, 15)));
}

/** "Z" (exited, not yet reaped) counts as gone: the process runs no more code. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  if (stat === null) return false;
  return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

async function executableSha256(pid: number): Promise<string> {
  const hash = createHash("sha256");
  try {
    await pipeline(createReadStream(`/proc/${pid}/exe`), hash);
  } catch (error) {
    throw new Error(`cannot read the executable of process ${pid}: ${(error as Error).message}`);
  }
  return hash.digest("hex");
}

/** What the process must be: a pid alone may name any process (reused pid, forged alert). */
export interface ProcessIdentity {
  name?: string | undefined;
  executableSha256?: string | undefined;
}

/**
 * SIGKILL (malware may trap SIGTERM), then waits until the process is gone.
 * The expected name and executable guard against killing an unrelated process that reused the pid
 * since the alert was raised, or one an attacker names to have the agent kill its defences.
 */
export async function killProcess(pid: number, expected: ProcessIdentity): Promise<void> {
  if (pid <= 1) throw new Error(`refusing to kill pid ${pid} (init)`);
  if (pid === process.pid) throw new Error(`refusing to kill pid ${pid}: it is the agent itself`);
  if (expected.name === undefined && expected.executableSha256 === undefined) {
    throw new Error(`refusing to kill pid ${pid} without its process_name or executable_sha256`);
  }
  const names = await processNames(pid);
  if (expected.name !== undefined && !matches(names, expected.name)) {
    throw new Error(
      `process ${pid} is ${JSON.stringify(names[0])}, not ${JSON.stringify(expected.name)}; not killed`,
    );
  }
  if (expected.executableSha256 !== undefined) {
    const actual = await executableSha256(pid);
    if (actual !== expected.executableSha256.toLowerCase()) {
      throw new Error(
        `process ${pid} runs an executable with sha256 ${actual}, not ${expected.executableSha256}; not killed`,
      );
    }
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH")
      throw new Error(`no process with pid ${pid}`);
    throw error;
  }
  const deadline = Date.now() + KILL_WAIT_MS;
  while (await alive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still runs after SIGKILL`);
    await sleep(10);
  }
}
