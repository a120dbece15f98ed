import { ConfigError, loadConfig } from "./config.ts";
import { ROLES, type Role, startService } from "./service.ts";
import { verifyAuditChain } from "./store/audit.ts";
import { createDb, migrate } from "./store/db.ts";

const USAGE = `usage: mm <command>

  all            run every role below (api, worker, ingest, gateway) in one process (default)
  api            run the REST API only
  worker         run the Temporal worker only
  ingest         run the NATS alert consumer only
  gateway        run the agent gateway only (WebSocket sessions of endpoint agents)
  migrate        apply pending database migrations and exit
  audit verify   check the audit log's hash chain: the first rewritten row (exit 1), or intact
  agent …        run the reference endpoint agent (mm agent --help)
  help           show this text (also: mm <command> --help)

Configuration comes from the environment (see .env.example).`;

async function main(argv: string[]): Promise<void> {
  const [command = "all", ...rest] = argv;
  if (command === "agent") {
    // The agent runs on endpoints: it needs none of the service's configuration.
    const agent = await import("./agent/cli.ts");
    await agent.main(rest);
    return;
  }
  if (command === "audit") {
    if (rest.join(" ") !== "verify") throw new UsageError("audit takes one subcommand: verify");
    process.exitCode = (await verifyAudit()) ? 0 : 1;
    return;
  }
  if (command === "help" || argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return;
  }
  if (rest.length) throw new UsageError(`unexpected arguments: ${rest.join(" ")}`);
  const config = loadConfig();
  if (command === "migrate") {
    const db = createDb(config.databaseUrl, 1);
    try {
      const applied = await migrate(db);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
    } finally {
      await db.destroy();
    }
    return;
  }
  const roles: readonly Role[] =
    command === "all" ? ROLES : ROLES.includes(command as Role) ? [command as Role] : [];
  if (!roles.length) throw new UsageError(`unknown command '${command}'`);
  const service = await startService(config, roles, {});
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`${signal} received, stopping…`);
    service.close().then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

/** Prints the verdict; true when the chain is intact. */
async function verifyAudit(): Promise<boolean> {
  const db = createDb(loadConfig().databaseUrl, 1);
  try {
    const verdict = await verifyAuditChain(db);
    if (!verdict.intact) {
      console.log(`audit log row ${verdict.brokenId} is broken: ${verdict.reason}`);
      console.log(`(${verdict.rows - 1} rows before it verified)`);
      return false;
    }
    // Kept elsewhere, the head also shows a log cut short or rewritten from a row on: compare it.
    console.log(
      `${verdict.rows} rows, chain intact${verdict.head ? `; head ${verdict.head}` : ""}`,
    );
    return true;
  } finally {
    await db.destroy();
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof UsageError) {
    console.error(`mm: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (err instanceof ConfigError) {
    console.error(`mm: ${err.message}`);
    process.exit(2);
  }
  console.error(`mm: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
