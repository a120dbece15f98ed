// Child processes of the chaos run: the service's roles and the agent fleets, each in a process
// group of its own so a SIGKILL takes all of it, restarted like a service manager would when one
// dies unasked (counted: a crash is a finding). Every group is killed when this process exits,
// however it exits, so no role outlives the run.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const groups = new Set<number>();
let exitHookInstalled = false;

/** SIGKILLs every live group; synchronous, so it also runs in an `exit` handler. */
export function killAllChildren(): void {
  for (const pid of groups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  groups.clear();
}

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", killAllChildren);
}

/** Waits until `check` holds, polling, or throws after `timeoutMs` naming `what`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  log: string;
  /** A line the process logs once it serves (e.g. "worker polling"). */
  ready: string;
  readyTimeoutMs: number;
}

/** One supervised process: started, killed on demand, restarted when it dies on its own. */
export class Supervised {
  private child: ChildProcess | null = null;
  private killedOnPurpose = false;
  private stopped = false;
  /** Exits nobody asked for (the harness restarts the process after each). */
  crashes = 0;
  /** Set by each restart after a crash, so a caller can wait for it. */
  private restarting: Promise<void> | null = null;

  constructor(private readonly spec: ProcessSpec) {}

  get name() {
    return this.spec.name;
  }

  get pid() {
    return this.child?.pid;
  }

  /** Starts the process and waits for its ready line. */
  async start(): Promise<void> {
    installExitHook();
    const offset = existsSync(this.spec.log) ? statSync(this.spec.log).size : 0;
    const fd = openSync(this.spec.log, "a");
    this.killedOnPurpose = false;
    const child = spawn(this.spec.command, this.spec.args, {
      env: this.spec.env,
      stdio: ["ignore", fd, fd],
      detached: true,
    });
    closeSync(fd);
    this.child = child;
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${this.spec.name}: spawn failed`);
    groups.add(pid);
    let exited = false;
    child.once("exit", (code, signal) => {
      exited = true;
      groups.delete(pid);
      if (this.child === child) this.child = null;
      if (this.killedOnPurpose || this.stopped) return;
      this.crashes++;
      console.error(`  ! ${this.spec.name} exited by itself (${signal ?? code}); restarting`);
      this.restarting = sleep(1000).then(() => (this.stopped ? undefined : this.start()));
      this.restarting.catch((err) => console.error(`  ! ${this.spec.name}: ${err.message}`));
    });
    await until(
      `${this.spec.name} ready ("${this.spec.ready}" in ${this.spec.log})`,
      () => {
        if (exited) throw new Error(`${this.spec.name} exited during start (log ${this.spec.log})`);
        return readFrom(this.spec.log, offset).includes(this.spec.ready);
      },
      this.spec.readyTimeoutMs,
    );
  }

  /** SIGKILLs the process group and waits until the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    this.killedOnPurpose = true;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
    await gone;
  }

  /** Whether the process runs now (after a crash it may be restarting). */
  get running(): boolean {
    return this.child !== null;
  }

  async settled(): Promise<void> {
    while (this.restarting) {
      const r = this.restarting;
      await r.catch(() => undefined);
      if (this.restarting === r) this.restarting = null;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill();
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString("utf8");
  } catch {
    return "";
  }
}

/** The pid listening on a loopback TCP port, if any (from `ss`, by id, never by name). */
export function listenerPid(port: number): number | null {
  let out = "";
  try {
    out = execFileSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" });
  } catch {
    return null;
  }
  const match = /pid=(\d+)/.exec(out);
  return match ? Number(match[1]) : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

/**
 * SIGKILLs the server listening on `port` (with its direct children: PostgreSQL's backends die with
 * their postmaster, as in a crash of the machine's server) and waits until the port is free.
 */
export async function killServer(name: string, port: number): Promise<number> {
  const pid = listenerPid(port);
  if (pid === null) throw new Error(`${name}: nothing listens on port ${port}`);
  const victims = [pid, ...childrenOf(pid)];
  for (const victim of victims) {
    try {
      process.kill(victim, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await until(
    `${name} (pid ${pid}) gone`,
    () => victims.every((v) => !alive(v)) && listenerPid(port) === null,
    30_000,
  );
  return pid;
}
