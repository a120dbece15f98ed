// What the benchmarks share: the Temporal mode flag, percentiles, CPU accounting of the processes
// involved, and the JSON + table report.
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { sql } from "kysely";
import type { Config } from "../src/config.ts";
import { temporalConnection } from "../src/connections.ts";
import type { Db } from "../src/store/db.ts";

export type TemporalMode = "dev" | "server";

/**
 * `--temporal dev|server`: which local Temporal to measure. The dev server is at TEMPORAL_ADDRESS;
 * the full server, started beside it as `npm test` does (scripts/test.sh), 100 ports above:
 *   MM_TEMPORAL_MODE=server TEMPORAL_ADDRESS=127.0.0.1:7333 npm run stack -- up temporal
 * Must run before the configuration is loaded. The mode is then checked against the server itself.
 */
export function temporalModeFromArgs(argv = process.argv): TemporalMode {
  const i = argv.indexOf("--temporal");
  const mode = i >= 0 ? argv[i + 1] : "dev";
  if (mode !== "dev" && mode !== "server") throw new Error("--temporal must be dev or server");
  if (mode === "server" && !process.env.MM_BENCH_KEEP_ADDRESS) {
    const address = process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233";
    const port = Number(address.slice(address.lastIndexOf(":") + 1));
    process.env.TEMPORAL_ADDRESS = `${address.slice(0, address.lastIndexOf(":"))}:${port + 100}`;
  }
  return mode;
}

/** Numeric positional arguments (flags and their values skipped). */
export function numberArg(index: number, fallback: number, argv = process.argv.slice(2)): number {
  const positional = argv.filter((a, i) => !a.startsWith("--") && argv[i - 1] !== "--temporal");
  const value = Number(positional[index]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

/** `--name value` from the command line, or the fallback. */
export function optionArg(name: string, fallback: string, argv = process.argv.slice(2)): string {
  const i = argv.indexOf(`--${name}`);
  const value = i >= 0 ? argv[i + 1] : undefined;
  return value && !value.startsWith("--") ? value : fallback;
}

export function positiveIntArg(name: string, fallback: number): number {
  const value = Number(optionArg(name, String(fallback)));
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${name} must be a positive integer`);
  return value;
}

/** `--agents 1000,5000`: a list of positive integers. */
export function sizesArg(name: string, fallback: string): number[] {
  return optionArg(name, fallback)
    .split(",")
    .map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a list of integers`);
      return n;
    });
}

/** Fails unless the server at the configured address is the mode asked for. */
export async function checkTemporalMode(config: Config, mode: TemporalMode): Promise<string> {
  const connection = await Connection.connect(temporalConnection(config.temporal));
  try {
    const client = new Client({ connection, namespace: config.temporal.namespace });
    const info = await client.workflowService.getClusterInfo({});
    const store = info.persistenceStore ?? "";
    const actual: TemporalMode = store.includes("sqlite") ? "dev" : "server";
    if (actual !== mode)
      throw new Error(
        `--temporal ${mode}, but ${config.temporal.address} runs the ${actual === "dev" ? "dev server" : "full server"} (${store})`,
      );
    return `${mode} (${store}, ${info.serverVersion}, ${config.temporal.address})`;
  } finally {
    await connection.close();
  }
}

export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ??
    Number.NaN
  );
};

export const latencySummary = (values: number[]) => ({
  n: values.length,
  p50: round(percentile(values, 50)),
  p95: round(percentile(values, 95)),
  p99: round(percentile(values, 99)),
});

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds a process has used (user + system), from /proc; null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Resident memory of a process in MiB, from /proc; null when it is gone. */
export function residentMiB(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return round(kb / 1024);
  } catch {
    return null;
  }
}

/** Pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((d: string) => /^\d+$/.test(d))
    .map(Number)
    .filter((child: number) => {
      try {
        const stat = readFileSync(`/proc/${child}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    });
}

/**
 * This stack's own servers, from the pid files scripts/stack.sh keeps under MM_DATA_DIR (another
 * stack on the machine, e.g. a colleague's tests, runs the same binaries): the Temporal server of
 * the mode measured, and PostgreSQL's postmaster with its backends and workers.
 */
export function stackPids(mode: TemporalMode): { temporal: number[]; postgres: number[] } {
  const dataDir = process.env.MM_DATA_DIR ?? ".data";
  const pidIn = (file: string) => {
    try {
      return [Number(readFileSync(path.join(dataDir, file), "utf8").split("\n")[0])];
    } catch {
      return [];
    }
  };
  const postmaster = pidIn("postgres/postmaster.pid");
  return {
    temporal: pidIn(`run/${mode === "dev" ? "temporal" : "temporal-server"}.pid`),
    postgres: [...postmaster, ...postmaster.flatMap(childrenOf)],
  };
}

/**
 * CPU used by a set of processes between two calls: start() then stop() → seconds per name. Only
 * processes alive at both reads count (PostgreSQL's backends come and go).
 */
export function cpuMeter(processes: Record<string, number[]>) {
  const before = new Map<number, number>();
  for (const pids of Object.values(processes))
    for (const pid of pids) before.set(pid, cpuSeconds(pid) ?? Number.NaN);
  return () =>
    Object.fromEntries(
      Object.entries(processes).map(([name, pids]) => {
        let used = 0;
        for (const pid of pids) {
          const delta = (cpuSeconds(pid) ?? Number.NaN) - (before.get(pid) ?? Number.NaN);
          if (Number.isFinite(delta)) used += delta;
        }
        return [name, round(used, 2)];
      }),
    );
}

/**
 * PostgreSQL's statement statistics for one database (pg_stat_statements, which the local stack
 * preloads, read through the service's own database): call it before a phase, and the function
 * it returns after, for the statements executed per unit of work (e.g. per alert) and the ones
 * that took the most time. Null where the statistics are not available (another server).
 */
export async function statementMeter(db: Db, database: string) {
  const read = async () => {
    try {
      const { rows } = await sql<{ id: string; query: string; calls: string; ms: number }>`
        SELECT s.queryid::text AS id, min(s.query) AS query, sum(s.calls)::text AS calls,
               sum(s.total_exec_time) AS ms
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = ${database} GROUP BY s.queryid`.execute(db);
      return new Map(rows.map((r) => [r.id, r]));
    } catch {
      return null;
    }
  };
  const before = await read();
  return async (units: number) => {
    const after = await read();
    if (!before || !after || units <= 0) return null;
    const deltas = [...after.values()].map((r) => {
      const b = before.get(r.id);
      return {
        query: r.query.replace(/\s+/g, " ").slice(0, 90),
        calls: Number(r.calls) - Number(b?.calls ?? 0),
        ms: r.ms - (b?.ms ?? 0),
      };
    });
    const calls = deltas.reduce((n, d) => n + d.calls, 0);
    const ms = deltas.reduce((n, d) => n + d.ms, 0);
    return {
      statementsPerUnit: round(calls / units, 1),
      execMsPerUnit: round(ms / units, 2),
      top: deltas
        .filter((d) => d.calls > 0)
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 6)
        .map((d) => ({ ...d, callsPerUnit: round(d.calls / units, 2), ms: round(d.ms, 0) })),
    };
  };
}

/** Prints the figures as one JSON line (for machines) and a table (for people). */
export function report(title: string, rows: Record<string, unknown>[], extra: object = {}) {
  // The machine, and how busy it was: figures on a shared machine mean little without it.
  const machine = {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
    memoryGiB: round(totalmem() / 2 ** 30),
    loadAverage1m: round(loadavg()[0] ?? 0, 2),
  };
  console.log(JSON.stringify({ benchmark: title, machine, ...extra, rows }));
  console.log(
    `machine: ${machine.cpus}, ${machine.memoryGiB} GiB, load average ${machine.loadAverage1m}`,
  );
  console.log(`\n${title}`);
  if (!rows.length) return;
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) =>
    typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "");
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) =>
    `| ${values.map((v, i) => v.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  console.log(line(columns));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
}

export async function until(
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`benchmark timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A simulated agent's answer to a command frame: acknowledged, then completed at once. */
export function answerCommand(ws: { send(data: string): void }, commandId: string): void {
  const timestamp = new Date().toISOString();
  ws.send(JSON.stringify({ command_id: commandId, status: "received", timestamp }));
  ws.send(
    JSON.stringify({
      command_id: commandId,
      status: "completed",
      success: true,
      message: "done",
      details: { simulated: true },
      timestamp,
    }),
  );
}
