// `npm run chaos [-- flags]`: the chaos run from the command line (README "Chaos run").
import path from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "./environment.ts";
import {
  type ChaosOptions,
  FAULTS,
  type Fault,
  formatTable,
  KILLS,
  runChaos,
  stopStackSync,
} from "./harness.ts";
import { killAllChildren } from "./processes.ts";

const USAGE = `usage: npm run chaos -- [options]
  --reduced             the CI form: 150 alerts over 10 hosts (default: 1,000 alerts, 50 hosts)
  --long                also PostgreSQL down, then Neo4j down, for --outage seconds each
  --alerts <n>          alerts in all (spread over the phases)
  --hosts <n>           hosts, each with a reference agent in simulation mode
  --rate <n>            alerts per second while publishing (default 4)
  --faults <a,b,…>      phases to run, in order (default: none, every kill, gateway-nats-cut)
                        known: ${FAULTS.join(", ")}
  --cut <s>             how long the gateway is cut from NATS (default 30)
  --outage <s>          how long each --long outage lasts (default 300)
  --settle <s>          longest wait for quiescence after a phase (default 180, reduced 90)
  --data-dir <dir>      the chaos stack's data (default MM_CHAOS_DATA_DIR or .data/chaos-stack)
  --port-offset <n>     its ports are the local stack's plus this (default 10000)
  --keep-stack          leave the chaos stack's servers running afterwards
  --json <file>         also write the report there (it is always in <data-dir>/chaos/<run>/)`;

function options(argv: string[]): ChaosOptions & { json?: string } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      reduced: { type: "boolean" },
      long: { type: "boolean" },
      alerts: { type: "string" },
      hosts: { type: "string" },
      rate: { type: "string" },
      faults: { type: "string" },
      cut: { type: "string" },
      outage: { type: "string" },
      settle: { type: "string" },
      "data-dir": { type: "string" },
      "port-offset": { type: "string" },
      "keep-stack": { type: "boolean" },
      json: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0)
      throw new Error(`--${name} must be a positive number, got ${value}`);
    return n;
  };
  let faults: Fault[] = ["none", ...KILLS, "gateway-nats-cut"];
  if (values.faults) {
    faults = values.faults.split(",").map((f) => {
      if (!(FAULTS as readonly string[]).includes(f))
        throw new Error(`--faults: unknown fault ${f}`);
      return f as Fault;
    });
  }
  if (values.long) faults.push("postgres-outage", "neo4j-outage");
  const reduced = values.reduced ?? false;
  return {
    alerts: number("alerts", values.alerts, reduced ? 150 : 1000),
    hosts: number("hosts", values.hosts, reduced ? 10 : 50),
    rate: number("rate", values.rate, 4),
    faults,
    cutSeconds: number("cut", values.cut, 30),
    outageSeconds: number("outage", values.outage, 300),
    settleSeconds: number("settle", values.settle, reduced ? 90 : 180),
    dataDir: path.resolve(
      values["data-dir"] ?? process.env.MM_CHAOS_DATA_DIR ?? path.join(ROOT, ".data/chaos-stack"),
    ),
    portOffset: number("port-offset", values["port-offset"], 10_000),
    keepStack: values["keep-stack"] ?? false,
    build: true,
    log: (line) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`),
    ...(values.json && { json: values.json }),
  };
}

async function main() {
  let o: ReturnType<typeof options>;
  try {
    o = options(process.argv.slice(2));
  } catch (error) {
    console.error(`chaos: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  // Ctrl-C: every role and agent goes with this process (the exit hook kills their groups).
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      console.error(`${signal}: stopping every process of the run`);
      killAllChildren();
      if (!o.keepStack) stopStackSync(o);
      process.exit(130);
    });
  const report = await runChaos(o);
  console.log(`\n${formatTable(report)}\n`);
  console.log(JSON.stringify(report));
  if (o.json)
    (await import("node:fs")).writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

main().catch((error) => {
  console.error(`chaos: ${(error as Error).stack ?? error}`);
  killAllChildren();
  process.exit(1);
});
