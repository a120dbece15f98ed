// `mm agent …`: flags → startAgent, until SIGINT/SIGTERM.
import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseCidr } from "../domain/protected-addresses.ts";
import { createLogger } from "../log.ts";
import { installTracing } from "../tracing.ts";
import { restoreFile } from "./enforce/files.ts";
import { DEFAULT_RULES_DIR, DEFAULT_STATE_DIR, startAgent } from "./index.ts";

const USAGE = `usage: mm agent --gateway <url> [--enroll <token>] [options]
  --gateway <url>          gateway base URL, e.g. https://portal:8334 (stored after enrollment)
  --enroll <token>         enrollment token, needed on the first start only
  --state-dir <dir>        identity, command ledger, isolation state (default ${DEFAULT_STATE_DIR})
  --rules-dir <dir>        folder Fibratus loads rules from (default ${DEFAULT_RULES_DIR})
  --alerts-file <file>     JSON-lines file of alerts to forward
  --allow <a,b,…>          commands this agent may run (default: all it supports)
  --quarantine-dir <dir>   where quarantined files go (default <state-dir>/quarantine)
  --heartbeat-ms <n>       heartbeat interval, overriding the gateway's
  --ca <file>              PEM CA certificate to trust for an https gateway
  --command-key <file>     the service's command signing public key (PEM), if enrollment gave none
  --insecure               allow an http:// gateway, and unsigned commands when no key is known
                           (tests and labs only: anyone on the path could command the agent)
  --protected <cidr,…>     ranges never blocked nor cut off by isolation (e.g. the Wazuh manager);
                           loopback, link-local and the gateway are always protected
  --protected-paths <d,…>  directories whose files are never deleted nor quarantined, besides
                           /, /bin, /boot, /dev, /etc, /lib*, /proc, /run, /sbin, /sys, /usr and
                           the agent's state and quarantine dirs
  --dns-servers <ip,…>     resolvers an isolation with allow_dns may reach, when the command names
                           none (default: the nameservers of /etc/resolv.conf)
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
  "command-key": { type: "string" },
  insecure: { type: "boolean" },
  protected: { type: "string" },
  "protected-paths": { type: "string" },
  "dns-servers": { type: "string" },
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
  const allow = list(values.allow);
  if (allow && !allow.length) throw new UsageError("--allow needs at least one command");
  const flagged = <T>(flag: string, parse: (item: string) => T) =>
    list(values[flag as keyof typeof values] as string | undefined)?.map((item) => {
      try {
        return parse(item);
      } catch (error) {
        throw new UsageError(`--${flag}: ${(error as Error).message}`);
      }
    });
  const protectedRanges = flagged("protected", (item) => parseCidr(item).text);
  const dnsServers = flagged("dns-servers", (item) => {
    if (!isIP(item)) throw new Error(`not an IP address: ${JSON.stringify(item)}`);
    return item;
  });
  const protectedPaths = flagged("protected-paths", (item) => {
    if (!isAbsolute(item)) throw new Error(`not an absolute path: ${JSON.stringify(item)}`);
    return resolve(item);
  });
  return { values, heartbeatMs, allow, protectedRanges, dnsServers, protectedPaths };
}

const list = (value: string | undefined) =>
  value
    ?.split(",")
    .map((item) => item.trim())
    .filter(Boolean);

export async function main(argv: string[]): Promise<void> {
  try {
    const { values, heartbeatMs, allow, protectedRanges, dnsServers, protectedPaths } = parse(argv);
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (values.restore) {
      process.stdout.write(`restored ${await restoreFile(values.restore)}\n`);
      return;
    }
    const log = createLogger("info", "agent");
    // Only when the OTEL_* variables ask for it (README "Operations: tracing and SIEM").
    if (installTracing()) log.info("tracing on: command spans exported over OTLP");
    const agent = await startAgent({
      log,
      ...(values.gateway !== undefined && { gateway: values.gateway }),
      ...(values.enroll !== undefined && { enrollToken: values.enroll }),
      ...(values["state-dir"] !== undefined && { stateDir: values["state-dir"] }),
      ...(values["rules-dir"] !== undefined && { rulesDir: values["rules-dir"] }),
      ...(values["alerts-file"] !== undefined && { alertsFile: values["alerts-file"] }),
      ...(values["quarantine-dir"] !== undefined && { quarantineDir: values["quarantine-dir"] }),
      ...(values.ca !== undefined && { caFile: values.ca }),
      ...(values["command-key"] !== undefined && { commandKeyFile: values["command-key"] }),
      ...(protectedRanges && { protectedRanges }),
      ...(protectedPaths && { protectedPaths }),
      ...(dnsServers && { dnsServers }),
      insecure: values.insecure ?? false,
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
