// `mm agent …`: flags → startAgent, until SIGINT/SIGTERM.
import { parseArgs } from "node:util";
import { createLogger } from "../log.ts";
import { restoreFile } from "./enforce/files.ts";
import { DEFAULT_RULES_DIR, DEFAULT_STATE_DIR, startAgent } from "./index.ts";

const USAGE = `usage: mm agent --gateway <url> [--enroll <token>] [options]
  --gateway <url>          gateway base URL, e.g. http://127.0.0.1:8334 (stored after enrollment)
  --enroll <token>         enrollment token, needed on the first start only
  --state-dir <dir>        identity, command ledger, isolation state (default ${DEFAULT_STATE_DIR})
  --rules-dir <dir>        folder Fibratus loads rules from (default ${DEFAULT_RULES_DIR})
  --alerts-file <file>     JSON-lines file of alerts to forward
  --allow <a,b,…>          commands this agent may run (default: all it supports)
  --quarantine-dir <dir>   where quarantined files go (default <state-dir>/quarantine)
  --heartbeat-ms <n>       heartbeat interval, overriding the gateway's
  --ca <file>              PEM CA certificate to trust for an https gateway
  --simulate               load tests: enforce nothing, declare every result simulated
  --restore <file>         put a quarantined file (.quarantine) back, then exit
  --help`;

class UsageError extends Error {}

const OPTIONS = {
  gateway: { type: "string" },
  enroll: { type: "string" },
  "state-dir": { type: "string" },
  "rules-dir": { type: "string" },
  "alerts-file": { type: "string" },
  allow: { type: "string" },
  "quarantine-dir": { type: "string" },
  "heartbeat-ms": { type: "string" },
  ca: { type: "string" },
  simulate: { type: "boolean" },
  restore: { type: "string" },
  help: { type: "boolean" },
} as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options: OPTIONS })
      .values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function parse(argv: string[]) {
  const values = parseFlags(argv);
  let heartbeatMs: number | undefined;
  if (values["heartbeat-ms"] !== undefined) {
    heartbeatMs = Number(values["heartbeat-ms"]);
    if (!Number.isInteger(heartbeatMs) || heartbeatMs <= 0) {
      throw new UsageError(
        `--heartbeat-ms must be a positive integer, got ${values["heartbeat-ms"]}`,
      );
    }
  }
  const allow = values.allow
    ?.split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  if (allow && !allow.length) throw new UsageError("--allow needs at least one command");
  return { values, heartbeatMs, allow };
}

export async function main(argv: string[]): Promise<void> {
  try {
    const { values, heartbeatMs, allow } = parse(argv);
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (values.restore) {
      process.stdout.write(`restored ${await restoreFile(values.restore)}\n`);
      return;
    }
    const log = createLogger("info", "agent");
    const agent = await startAgent({
      log,
      ...(values.gateway !== undefined && { gateway: values.gateway }),
      ...(values.enroll !== undefined && { enrollToken: values.enroll }),
      ...(values["state-dir"] !== undefined && { stateDir: values["state-dir"] }),
      ...(values["rules-dir"] !== undefined && { rulesDir: values["rules-dir"] }),
      ...(values["alerts-file"] !== undefined && { alertsFile: values["alerts-file"] }),
      ...(values["quarantine-dir"] !== undefined && { quarantineDir: values["quarantine-dir"] }),
      ...(values.ca !== undefined && { caFile: values.ca }),
      ...(allow && { allow }),
      ...(heartbeatMs !== undefined && { heartbeatMs }),
      simulate: values.simulate ?? false,
    });
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    log.info("stopping", { signal });
    await agent.stop();
  } catch (error) {
    const usage = error instanceof UsageError;
    process.stderr.write(`mm agent: ${(error as Error).message}\n${usage ? `${USAGE}\n` : ""}`);
    process.exitCode = usage ? 2 : 1;
  }
}
