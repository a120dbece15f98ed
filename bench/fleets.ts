// What the agent benchmarks (bench/gateway.ts, bench/rollout.ts) share: service roles and fleets of
// simulated agents (bench/agent-fleet.ts) as processes of their own, so that /proc tells each one's
// CPU and memory apart; enrollment through the gateway; the gateway's resident memory peak.
import { type ChildProcess, fork, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Config } from "../src/config.ts";
import type { Db } from "../src/store/db.ts";
import { createEnrollmentToken } from "../src/store/enrollment-tokens.ts";
import { residentMiB } from "./support.ts";

export interface Identity {
  agentId: string;
  apiKey: string;
  hostname: string;
}

export interface Role {
  child: ChildProcess;
  pid: number;
  url?: string;
  stop(): Promise<void>;
}

const root = path.resolve(import.meta.dirname, "..");
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A service role as its own process on the benchmark's scratch configuration, e.g. `mm gateway`;
 * resolves on its `ready` log line (whose `url` it keeps).
 */
export async function startRole(
  config: Config,
  role: string,
  ready: string,
  env: Record<string, string> = {},
): Promise<Role> {
  const child = spawn(path.join(root, "bin/mm"), [role], {
    env: {
      ...process.env,
      DATABASE_URL: config.databaseUrl,
      MM_GATEWAY_PORT: "0",
      MM_API_PORT: "0",
      MM_TASK_QUEUE: config.temporal.taskQueue,
      MM_LOAD_DEFAULTS: "false",
      MM_LOG_LEVEL: "info",
      ...(config.adminToken && { MM_ADMIN_TOKEN: config.adminToken }),
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.race([exited, sleep(15_000)]);
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  };
  const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mm ${role}: not ready in 60 s`)), 60_000);
    child.once("exit", (code) => reject(new Error(`mm ${role} exited with ${code}`)));
    lines.on("line", (text) => {
      if (text.includes(ready)) {
        clearTimeout(timer);
        resolve(JSON.parse(text));
      }
    });
  });
  // bin/mm execs node: the spawned pid is the service's own process.
  return { child, pid: child.pid as number, url: line.url as string | undefined, stop };
}

/** A fleet process's messages (bench/agent-fleet.ts lists them). */
export type FleetMessage = { type: string } & Record<string, unknown>;

export interface Fleet {
  child: ChildProcess;
  ready: Promise<void>;
  connected: Promise<{ ok: number; failed: string[]; ms: number }>;
}

/** A fleet process, loaded; connectFleets then opens its agents' sessions. */
export function startFleet(onMessage: (message: FleetMessage) => void): Fleet {
  const child = fork(path.join(import.meta.dirname, "agent-fleet.ts"), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let ready = () => {};
  const loaded = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const connected = new Promise<{ ok: number; failed: string[]; ms: number }>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`agent fleet exited with ${code}`)));
    child.on("message", (m: FleetMessage) => {
      if (m.type === "ready") ready();
      else if (m.type === "connected")
        resolve(m as unknown as { ok: number; failed: string[]; ms: number });
      else onMessage(m);
    });
  });
  connected.catch(() => {}); // awaited by the caller; a late exit is not unhandled
  return { child, ready: loaded, connected };
}

/** Resolves once every fleet process is loaded (the connect clock starts after their start-up). */
export async function fleetsLoaded(fleets: Fleet[]) {
  await Promise.race([
    Promise.all(fleets.map((f) => f.ready)),
    sleep(60_000).then(() => {
      throw new Error("the fleet processes did not start in 60 s");
    }),
  ]);
}

/** Handshakes in flight across the fleets: below the gateway's MM_GATEWAY_MAX_PENDING_UPGRADES. */
const CONNECT_WIDTH = 128;

/**
 * Every fleet connects its share of the agents, handshakes bounded. A few refused handshakes (a
 * loaded machine's timeouts) are counted and those agents left out; more than 1% fails the run.
 */
export async function connectFleets(
  fleets: Fleet[],
  url: string,
  agents: Identity[],
  timeoutMs: number,
) {
  for (const [k, fleet] of fleets.entries())
    fleet.child.send({
      type: "connect",
      url,
      agents: agents.filter((_, i) => i % fleets.length === k),
      width: Math.ceil(CONNECT_WIDTH / fleets.length),
    });
  const results = await Promise.race([
    Promise.all(fleets.map((f) => f.connected)),
    sleep(timeoutMs).then(() => {
      throw new Error(`connect of ${agents.length} agents: not done in ${timeoutMs / 1000} s`);
    }),
  ]);
  const failed = new Set(results.flatMap((r) => r.failed));
  if (failed.size > agents.length / 100)
    throw new Error(`${failed.size} of ${agents.length} agents could not connect`);
  return { failed, online: agents.filter((a) => !failed.has(a.agentId)) };
}

export async function stopFleet(fleet: Fleet) {
  if (fleet.child.exitCode !== null) return;
  const exited = new Promise((r) => fleet.child.once("exit", r));
  fleet.child.send({ type: "close" });
  await Promise.race([exited, sleep(10_000)]);
  if (fleet.child.exitCode === null) fleet.child.kill("SIGKILL");
}

export async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/**
 * One token per enrollment lane: an enrollment locks its token's row until it commits, so one
 * token shared by the fleet would measure that lock rather than the gateway.
 */
const ENROLL_WIDTH = 32;

/** Enrollment tokens of a group for `agents` enrollments, one per lane (see enrollAgents). */
export async function enrollmentTokens(db: Db, group: string, agents: number) {
  const tokens = await Promise.all(
    Array.from({ length: ENROLL_WIDTH }, () =>
      createEnrollmentToken(db, {
        group,
        description: null,
        maxUses: Math.ceil(agents / ENROLL_WIDTH) + 1,
        expiresInMs: 6 * 3_600_000,
        createdBy: "bench",
      }),
    ),
  );
  return tokens.map((t) => t.token);
}

/** Enrolls one agent per host name through the gateway, a lane (and its token) per host. */
export async function enrollAgents(
  url: string,
  tokens: string[],
  hostnames: string[],
): Promise<Identity[]> {
  const enrolled: Identity[] = [];
  await pool(
    hostnames.map((hostname, i) => ({ hostname, token: tokens[i % tokens.length] as string })),
    tokens.length,
    async ({ hostname, token }) => {
      const res = await fetch(`${url}/api/enroll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token, hostname }),
      });
      const body = (await res.json()) as { agent_id: string; api_key: string };
      if (res.status !== 201) throw new Error(`enrollment: ${res.status} ${JSON.stringify(body)}`);
      enrolled.push({ agentId: body.agent_id, apiKey: body.api_key, hostname });
    },
  );
  return enrolled;
}

/** A process's resident memory, sampled every 100 ms: the peak of each phase. */
export function rssSampler(pid: number) {
  let peak = residentMiB(pid) ?? 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, residentMiB(pid) ?? 0);
  }, 100);
  return {
    /** The peak since the last reset, then a new phase begins. */
    reset(): number {
      const p = Math.max(peak, residentMiB(pid) ?? 0);
      peak = residentMiB(pid) ?? 0;
      return p;
    },
    stop: () => clearInterval(timer),
  };
}
