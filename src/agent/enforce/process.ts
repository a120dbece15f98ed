// kill-process (Linux: names come from /proc).
import { readFile, readlink } from "node:fs/promises";
import { basename } from "node:path";
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

/**
 * SIGKILL (malware may trap SIGTERM), then waits until the process is gone.
 * The expected name guards against killing an unrelated process that reused the pid since the
 * alert was raised.
 */
export async function killProcess(pid: number, expectedName?: string): Promise<void> {
  if (pid <= 1) throw new Error(`refusing to kill pid ${pid} (init)`);
  if (pid === process.pid) throw new Error(`refusing to kill pid ${pid}: it is the agent itself`);
  const names = await processNames(pid);
  if (expectedName !== undefined && !matches(names, expectedName)) {
    throw new Error(
      `process ${pid} is ${JSON.stringify(names[0])}, not ${JSON.stringify(expectedName)}; not killed`,
    );
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
