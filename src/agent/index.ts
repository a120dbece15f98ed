// The reference agent: state, enforcement, alert forwarding and the gateway session, wired together.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { hostname } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "../log.ts";
import type { Hello } from "../protocol/messages.ts";
import { AlertForwarder } from "./alerts.ts";
import { CAPABILITIES, CommandRunner, supportedCapabilities } from "./commands.ts";
import { SYSTEM_PATHS } from "./enforce/files.ts";
import { firewallAvailable } from "./enforce/firewall.ts";
import { recoverRulesFolder } from "./enforce/rules.ts";
import { hostFacts, systemResolvers } from "./host.ts";
import { enroll, refusePlainText, Session } from "./session.ts";
import { type Identity, StateStore } from "./state.ts";
import { type CommandCheck, commandCheck, type RulesCheck, rulesCheck } from "./trust.ts";

export const DEFAULT_STATE_DIR = "/var/lib/mm-agent";
export const DEFAULT_RULES_DIR = "/etc/fibratus/rules";

const AGENT_VERSION: string = createRequire(import.meta.url)("../../package.json").version;

export interface AgentOptions {
  /** The gateway's base URL, e.g. http://127.0.0.1:8334; defaults to the one stored at enrollment. */
  gateway?: string;
  /** Enrollment token, used only while the agent has no stored identity. */
  enrollToken?: string;
  stateDir?: string;
  rulesDir?: string;
  /** A JSON-lines file of alerts to forward. */
  alertsFile?: string;
  /** Load tests: act on nothing, answer as if, and say so in hello and every result. */
  simulate?: boolean;
  /** The seed's "command authorization": the commands this agent may run (default: all). */
  allow?: readonly string[];
  quarantineDir?: string;
  heartbeatMs?: number;
  /** PEM file of a CA to trust for an https/wss gateway (e.g. a self-signed portal certificate). */
  caFile?: string;
  /**
   * Accept a plain http gateway, and run unsigned commands when no command signing key is known.
   * For tests and labs: on a real network both let anyone on the path command the agent.
   */
  insecure?: boolean;
  /** SPKI PEM file of the service's command signing key (overrides the one from enrollment). */
  commandKeyFile?: string;
  /** Resolvers isolation with allow_dns lets through (default: those of /etc/resolv.conf). */
  dnsServers?: readonly string[];
  /** CIDR ranges never blocked nor isolated away, e.g. the Wazuh manager. */
  protectedRanges?: readonly string[];
  /** Directories whose files are never deleted nor quarantined, besides the system's. */
  protectedPaths?: readonly string[];
  backoff?: { initialMs: number; maxMs: number };
  alertPollMs?: number;
  /** Default: one JSON line per event on stderr. */
  log?: Logger;
}

export interface RunningAgent {
  agentId: string;
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.log ?? createLogger("info", "agent");
  const simulate = options.simulate ?? false;
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const rulesDir = options.rulesDir ?? DEFAULT_RULES_DIR;
  const quarantineDir = options.quarantineDir ?? join(stateDir, "quarantine");
  const allow = options.allow ?? CAPABILITIES;
  const unknown = allow.filter((name) => !(CAPABILITIES as readonly string[]).includes(name));
  if (unknown.length) {
    throw new Error(
      `--allow: unknown command ${unknown.join(", ")} (known: ${CAPABILITIES.join(", ")})`,
    );
  }
  const ca = options.caFile ? await readFile(options.caFile) : undefined;
  const commandKey = options.commandKeyFile
    ? await readFile(options.commandKeyFile, "utf8")
    : undefined;
  const insecure = options.insecure ?? false;
  const protectedRanges = options.protectedRanges ?? [];

  const state = await StateStore.open(stateDir);
  const firewall = !simulate && process.platform === "linux" && (await firewallAvailable());
  const supported = supportedCapabilities({ platform: process.platform, firewall, simulate });
  let session: Session | undefined;
  // Set once the identity is known, before the session (and so any command) starts.
  let check: CommandCheck = () => "not enrolled yet";
  let checkRules: RulesCheck = () => "not enrolled yet";
  const runner = new CommandRunner({
    state,
    simulate,
    supported,
    allow,
    rulesDir,
    quarantineDir,
    protectedPaths: [...SYSTEM_PATHS, stateDir, quarantineDir, ...(options.protectedPaths ?? [])],
    protectedRanges,
    dnsServers: async () => [...(options.dnsServers ?? (await systemResolvers()))],
    check: (command) => check(command),
    rulesCheck: (frame, lastIssuedAt) => checkRules(frame, lastIssuedAt),
    log,
    send: (message) => session?.send(message),
    managementEndpoints: () => session?.endpoints() ?? [],
  });
  // Security first: a reboot must not leave an isolated host open while it reconnects.
  await runner.restoreEnforcement();
  if (!simulate && (await recoverRulesFolder(rulesDir)))
    log.warn("rules_folder_recovered", { rules_dir: rulesDir });

  const identity = await ensureIdentity(state, options, ca, log);
  check = commandCheck({
    agentId: identity.agent_id,
    keyPem: commandKey ?? identity.command_signing_key,
    insecure,
    log,
  });
  checkRules = rulesCheck({
    agentId: identity.agent_id,
    keyPem: commandKey ?? identity.command_signing_key,
    insecure,
  });
  const alerts = options.alertsFile
    ? new AlertForwarder({
        file: options.alertsFile,
        state,
        send: (message) => session?.send(message) ?? false,
        log,
        ...(options.alertPollMs !== undefined && { pollMs: options.alertPollMs }),
      })
    : null;
  await alerts?.start();

  const hello = async (): Promise<Hello> => {
    const { isolation, rules } = state.state;
    return {
      type: "hello",
      ...(await hostFacts()),
      agent_version: AGENT_VERSION,
      capabilities: runner.capabilities(),
      isolation: isolation
        ? {
            isolated: true,
            since: isolation.since,
            portal_ips: [
              ...new Set([
                ...(isolation.allow_portal_communication ? isolation.portal_ips : []),
                ...isolation.management.map((endpoint) => endpoint.address),
              ]),
            ],
          }
        : { isolated: false },
      rules: Object.entries(rules).map(([name, rule]) => ({ name, ...rule })),
      simulation: simulate,
      config: {
        rules_dir: rulesDir,
        alerts_file: options.alertsFile ?? null,
        quarantine_dir: quarantineDir,
        allow,
        heartbeat_ms: options.heartbeatMs ?? null,
        insecure,
        dns_servers: options.dnsServers ?? null,
        protected: protectedRanges,
      },
    };
  };

  session = new Session({
    gateway: identity.gateway,
    apiKey: identity.api_key,
    ...(ca && { ca }),
    ...(options.heartbeatMs !== undefined && { heartbeatMs: options.heartbeatMs }),
    backoff: options.backoff ?? { initialMs: 1000, maxMs: 30_000 },
    log,
    hello,
    beforeConnect: (endpoints) => runner.allowManagement(endpoints),
    onConnected: () => alerts?.onConnected(),
    onDisconnected: () => alerts?.onDisconnected(),
    onMessage: (message) => {
      if ("command" in message) runner.receive(message);
      else if ("operation" in message) {
        runner
          .updateRules(message)
          .catch((error: Error) => log.error("rules_error", { error: error.message }));
      } else if (message.type === "alert_ack") {
        alerts
          ?.ack(message.seq)
          .catch((error: Error) => log.error("alerts_error", { error: error.message }));
      }
    },
  });
  session.start();
  log.info("started", {
    agent_id: identity.agent_id,
    gateway: identity.gateway,
    simulate,
    capabilities: runner.capabilities(),
  });

  const running = session;
  return {
    agentId: identity.agent_id,
    async stop() {
      // Running commands finish first, so their completions still go out on this connection.
      await runner.idle();
      await running.stop();
      await alerts?.stop();
      log.info("stopped");
    },
  };
}

/** The stored identity wins over --enroll, so a service unit may keep the token in its arguments. */
async function ensureIdentity(
  state: StateStore,
  options: AgentOptions,
  ca: Buffer | undefined,
  log: Logger,
): Promise<Identity> {
  const stored = await state.identity();
  const gateway = options.gateway ?? stored?.gateway;
  if (!gateway) throw new Error("no gateway known: pass --gateway <url>");
  refusePlainText(gateway, options.insecure ?? false);
  if (stored) {
    if (options.enrollToken)
      log.info("enroll_token_ignored", { agent_id: stored.agent_id, reason: "already enrolled" });
    if (gateway === stored.gateway) return stored;
    const moved = { ...stored, gateway };
    await state.saveIdentity(moved);
    log.info("gateway_changed", { from: stored.gateway, to: gateway });
    return moved;
  }
  if (!options.enrollToken) {
    throw new Error(`not enrolled: pass --enroll <token> once (state dir ${state.dir})`);
  }
  const enrolled = await enroll(gateway, options.enrollToken, hostname(), ca);
  const identity = { ...enrolled, gateway };
  await state.saveIdentity(identity);
  log.info("enrolled", {
    agent_id: identity.agent_id,
    gateway,
    command_signing_key: identity.command_signing_key !== undefined,
  });
  return identity;
}
