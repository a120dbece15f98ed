// Command execution: authorization (platform capabilities and the --allow list), the ledger that
// makes every command id run at most once, a priority queue, and one handler per command.
// Isolation and blocks live in the persisted state, which the agent re-applies on start. Adding
// enforcement persists first and then acts; removing acts first and then persists. A crash in
// between therefore always errs toward enforcing, and the interrupted command reports failure.

import {
  LINK_LOCAL,
  LOOPBACK,
  type Protection,
  protectionOf,
} from "../domain/protected-addresses.ts";
import type { Logger } from "../log.ts";
import {
  AGENT_COMMANDS,
  type AgentCommandName,
  type AgentMessage,
  type Command,
  CommandDetails,
  type Completion,
  describeIssues,
  type Priority,
  type RuleStatus,
  type UpdateRules,
} from "../protocol/messages.ts";
import { contextOf, inSpan } from "../tracing.ts";
import { deleteFile, quarantineFile } from "./enforce/files.ts";
import {
  applyBlocks,
  applyIsolation,
  canConnect,
  type IsolationSpec,
  isolationRuleset,
  normalizeIp,
  removeIsolation,
} from "./enforce/firewall.ts";
import { killProcess } from "./enforce/process.ts";
import { applyRuleSet, refuseAll } from "./enforce/rules.ts";
import type { Endpoint, IsolationState, LedgerEntry, StateStore } from "./state.ts";
import { type CommandCheck, expiredCommand, type RulesCheck } from "./trust.ts";

const RULES_CAPABILITY = "update_rules";
export const CAPABILITIES = [...AGENT_COMMANDS, RULES_CAPABILITY] as const;
const FIREWALL_COMMANDS = ["isolate-host", "release-host", "block-ip", "unblock-ip"];

/** What this agent can enforce here; simulation "supports" everything since it enforces nothing. */
export function supportedCapabilities(options: {
  platform: NodeJS.Platform;
  firewall: boolean;
  simulate: boolean;
}): string[] {
  return CAPABILITIES.filter((capability) => {
    if (options.simulate) return true;
    if (FIREWALL_COMMANDS.includes(capability))
      return options.platform === "linux" && options.firewall;
    if (capability === "kill-process") return options.platform === "linux"; // names come from /proc
    return true; // files and rules are portable
  });
}

const PRIORITY_RANK: Record<Priority, number> = { critical: 0, high: 1, normal: 2, low: 3 };

// setTimeout's longest delay; a later expiry re-arms the timer when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

type Outcome = { message: string; details: Record<string, unknown> };
type Task = { rank: number; run: () => Promise<void> };
type Handlers = { [C in AgentCommandName]: (details: CommandDetails<C>) => Promise<Outcome> };

export interface RunnerOptions {
  state: StateStore;
  simulate: boolean;
  supported: string[];
  allow: readonly string[];
  rulesDir: string;
  quarantineDir: string;
  /** Directories whose files delete-file and quarantine-file refuse (the system's, the agent's). */
  protectedPaths: readonly string[];
  /** Ranges never blocked and always reachable while isolated (--protected: e.g. the SIEM). */
  protectedRanges: readonly string[];
  /** The resolvers isolation with allow_dns lets through when the command names none. */
  dnsServers: () => Promise<string[]>;
  /** Whether a command frame may run at all (its signature); checked before anything else. */
  check: CommandCheck;
  /** Whether an update_rules frame may be applied (signature, expiry, replay). */
  rulesCheck: RulesCheck;
  log: Logger;
  send: (message: AgentMessage) => void;
  /** Where the gateway is: the live connection and the gateway's resolved addresses. */
  managementEndpoints: () => Endpoint[];
}

export class CommandRunner {
  private readonly queue: Task[] = [];
  private expiryTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Ids admitted and not yet completed: a redelivery of one of them only gets an ack. */
  private readonly inFlight = new Set<string>();
  private worker: Promise<void> | null = null;
  /** update_rules frames apply one after another: each starts from what the previous left. */
  private rulesChain: Promise<void> = Promise.resolve();

  constructor(private readonly o: RunnerOptions) {}

  capabilities(): string[] {
    return this.o.supported.filter((capability) => this.o.allow.includes(capability));
  }

  /** Acks at once, then runs the command unless its id was seen before. */
  receive(command: Command): void {
    this.o.send({
      command_id: command.id,
      status: "received",
      timestamp: new Date().toISOString(),
    });
    this.o.log.info("command_received", {
      id: command.id,
      command: command.command,
      priority: command.priority,
    });
    this.admit(command).catch((error: Error) =>
      this.o.log.error("command_error", { id: command.id, error: error.message }),
    );
  }

  /** Resolves once every queued command has completed; no expiry fires afterwards. */
  async idle(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.expiryTimer);
    while (this.worker) await this.worker;
  }

  private async admit(command: Command) {
    if (this.inFlight.has(command.id)) return;
    this.inFlight.add(command.id);
    try {
      const refusal = this.o.check(command);
      const seen = await this.o.state.ledgerGet(command.id);
      if (refusal) return await this.refuse(command, seen, refusal);
      if (seen && !seen.refused) {
        // A start without an end: the agent stopped mid-run. Running it again could act twice.
        const completion =
          seen.completion ??
          this.completion(
            command.id,
            new Error("interrupted: the agent stopped while this command ran; not run again"),
          );
        if (!seen.completion) await this.o.state.ledgerPut({ ...seen, completion });
        this.o.log.info("command_duplicate", { id: command.id, success: completion.success });
        this.o.send(completion);
        this.inFlight.delete(command.id);
        return;
      }
      // Checked once the ledger had its say: a redelivered command that ran answers as it did.
      const expired = expiredCommand(command);
      if (expired) return await this.refuse(command, seen, expired);
      const entry = {
        id: command.id,
        command: command.command,
        received_at: new Date().toISOString(),
      };
      await this.o.state.ledgerPut(entry);
      this.enqueue(PRIORITY_RANK[command.priority], () => this.execute({ command, entry }));
    } catch (error) {
      this.inFlight.delete(command.id);
      throw error;
    }
  }

  /**
   * A command that must not run: answered failed, never executed. The ledger records the refusal,
   * unless the id already ran (a forged copy of a real command must not overwrite its result);
   * a refused id may still run when a valid frame for it comes.
   */
  private async refuse(command: Command, seen: LedgerEntry | null, reason: string) {
    const completion = this.completion(command.id, new Error(reason));
    this.o.log.warn("command_refused", { id: command.id, command: command.command, reason });
    if (!seen || seen.refused) {
      await this.o.state.ledgerPut({
        id: command.id,
        command: command.command,
        received_at: new Date().toISOString(),
        refused: reason,
        completion,
      });
    }
    this.inFlight.delete(command.id);
    this.o.send(completion);
  }

  private enqueue(rank: number, run: () => Promise<void>) {
    const at = this.queue.findIndex((queued) => queued.rank > rank);
    this.queue.splice(at === -1 ? this.queue.length : at, 0, { rank, run });
    this.pump();
  }

  // One task at a time: isolate/release/block (and expiries) must not interleave; priority picks
  // the next.
  private pump() {
    if (this.worker) return;
    this.worker = (async () => {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) await next.run();
    })();
    void this.worker.finally(() => {
      this.worker = null;
      if (this.queue.length) this.pump();
    });
  }

  private async execute({ command, entry }: { command: Command; entry: LedgerEntry }) {
    const started = performance.now();
    let completion: Completion;
    try {
      // A child of the gateway's send when the frame carries its context and tracing is on here.
      const outcome = await inSpan(
        "agent.command",
        { "mm.command.id": command.id, "mm.command": command.command },
        () => this.run(command),
        contextOf(command.traceparent),
      );
      completion = this.completion(command.id, outcome);
    } catch (error) {
      completion = this.completion(command.id, error as Error);
    }
    this.o.log[completion.success ? "info" : "warn"]("command_completed", {
      id: command.id,
      command: command.command,
      success: completion.success,
      result: completion.message,
      ms: Math.round(performance.now() - started),
    });
    try {
      await this.o.state.ledgerPut({ ...entry, completion });
    } catch (error) {
      this.o.log.error("ledger_error", { id: command.id, error: (error as Error).message });
    }
    this.inFlight.delete(command.id);
    this.o.send(completion);
  }

  private completion(id: string, outcome: Outcome | Error): Completion {
    const timestamp = new Date().toISOString();
    // Simulation is declared in every result, so load-test results are never taken for real ones.
    const mark = (details: Record<string, unknown>) =>
      this.o.simulate ? { ...details, simulated: true } : details;
    if (outcome instanceof Error) {
      return {
        command_id: id,
        status: "failed",
        success: false,
        message: outcome.message,
        details: mark({}),
        timestamp,
      };
    }
    return {
      command_id: id,
      status: "completed",
      success: true,
      message: outcome.message,
      details: mark(outcome.details),
      timestamp,
    };
  }

  private async run(command: Command): Promise<Outcome> {
    const name = command.command as AgentCommandName;
    if (!AGENT_COMMANDS.includes(name) || !this.o.supported.includes(name)) {
      throw new Error(
        `command ${JSON.stringify(command.command)} is not supported by this agent on ${process.platform}` +
          ` (supported: ${this.o.supported.filter((c) => c !== RULES_CAPABILITY).join(", ")})`,
      );
    }
    if (!this.o.allow.includes(name)) {
      throw new Error(
        `command ${JSON.stringify(name)} is not allowed by this agent's configuration (--allow)`,
      );
    }
    const details = CommandDetails[name].safeParse(command.details);
    if (!details.success) {
      throw new Error(`invalid details for ${name}: ${describeIssues(details.error)}`);
    }
    return (this.handlers[name] as (details: unknown) => Promise<Outcome>)(details.data);
  }

  private readonly handlers: Handlers = {
    "isolate-host": async (d) => {
      const started = performance.now();
      const expiresAt = expiryOf(d);
      const previous = this.o.state.state.isolation;
      const dnsServers = d.allow_dns ? (d.dns_servers ?? (await this.o.dnsServers())) : [];
      if (d.allow_dns && !dnsServers.length) {
        this.o.log.warn("isolation_without_dns", { reason: "no resolver configured or given" });
      }
      const isolation: IsolationState = {
        since: previous?.since ?? new Date().toISOString(),
        ...(d.reason !== undefined && { reason: d.reason }),
        allow_dns: d.allow_dns,
        dns_servers: dnsServers.map(normalizeIp),
        allow_portal_communication: d.allow_portal_communication,
        portal_ips: d.portal_ips.map(normalizeIp),
        portal_ports: d.portal_ports,
        management: this.o.managementEndpoints(),
        ...(expiresAt !== undefined && { expires_at: expiresAt }),
      };
      await this.o.state.update((s) => {
        s.isolation = isolation;
      });
      let rules = isolationRuleset(this.isolationSpec(isolation)).rules;
      if (!this.o.simulate) {
        try {
          rules = await applyIsolation(this.isolationSpec(isolation));
          await this.verifyReachable(isolation);
        } catch (error) {
          // Back to exactly what was in force before this command.
          if (previous) await applyIsolation(this.isolationSpec(previous));
          else await removeIsolation();
          await this.o.state.update((s) => {
            s.isolation = previous;
          });
          throw error;
        }
      }
      this.scheduleExpiry();
      return {
        message: "Host isolated successfully",
        details: {
          firewall_rules_added: rules,
          execution_time_ms: Math.round(performance.now() - started),
          isolation_level: "full",
          dns_servers: isolation.dns_servers,
          ...(expiresAt !== undefined && { expires_at: expiresAt }),
        },
      };
    },

    "release-host": async () => {
      const started = performance.now();
      const previous = this.o.state.state.isolation;
      const removed = await this.release();
      return {
        message: previous ? "Host released successfully" : "Host was not isolated",
        details: {
          firewall_rules_removed: removed,
          execution_time_ms: Math.round(performance.now() - started),
        },
      };
    },

    "kill-process": async (d) => {
      const pid = Number(d.pid);
      if (!this.o.simulate) {
        await killProcess(pid, { name: d.process_name, executableSha256: d.executable_sha256 });
      }
      return { message: `Process ${pid} killed`, details: { pid, killed: true } };
    },

    "delete-file": async (d) => {
      if (this.o.simulate)
        return { message: `${d.path} deleted`, details: { path: d.path, deleted: true } };
      const sha256 = await deleteFile(d.path, this.fileAction(d.sha256));
      return { message: `${d.path} deleted`, details: { path: d.path, sha256, deleted: true } };
    },

    "quarantine-file": async (d) => {
      if (this.o.simulate) return { message: `${d.path} quarantined`, details: {} };
      const result = await quarantineFile(d.path, this.o.quarantineDir, this.fileAction(d.sha256));
      return { message: `${d.path} quarantined`, details: result };
    },

    "block-ip": async (d) => {
      const ip = normalizeIp(d.ip);
      const expiresAt = expiryOf(d);
      const protection = protectionOf(ip, this.neverBlocked());
      if (protection) {
        throw new Error(`refusing to block ${ip}: ${protection.reason} (${protection.range})`);
      }
      const { blocked_ips: blocked, block_expiry } = this.o.state.state;
      const expiry = { ...block_expiry };
      if (expiresAt === undefined) delete expiry[ip];
      else expiry[ip] = expiresAt;
      if (!blocked.includes(ip)) await this.setBlocked([...blocked, ip], expiry, "adding");
      else
        await this.o.state.update((s) => {
          s.block_expiry = expiry;
        });
      this.scheduleExpiry();
      return {
        message: `${ip} blocked`,
        details: { ip, blocked: true, ...(expiresAt !== undefined && { expires_at: expiresAt }) },
      };
    },

    "unblock-ip": async (d) => {
      const ip = normalizeIp(d.ip);
      const was = this.o.state.state.blocked_ips.includes(ip);
      if (was) await this.unblock([ip]);
      return {
        message: was ? `${ip} unblocked` : `${ip} was not blocked`,
        details: { ip, blocked: false },
      };
    },
  };

  /** Enforcement on this host's firewall (not simulated, nftables usable). */
  private get firewall(): boolean {
    return !this.o.simulate && this.o.supported.includes("block-ip");
  }

  private fileAction(sha256: string | undefined) {
    return { protectedPaths: this.o.protectedPaths, ...(sha256 !== undefined && { sha256 }) };
  }

  /** What block-ip refuses: cutting the host off from itself, its link, its managers. */
  private neverBlocked(): Protection[] {
    const isolation = this.o.state.state.isolation;
    return [
      ...LOOPBACK,
      ...LINK_LOCAL,
      ...this.o.managementEndpoints().map((e) => ({
        range: normalizeIp(e.address),
        reason: "this agent is managed through it",
      })),
      ...this.o.protectedRanges.map((range) => ({ range, reason: "protected (--protected)" })),
      ...(isolation?.portal_ips ?? []).map((range) => ({
        range,
        reason: "the portal of the current isolation",
      })),
    ];
  }

  private async setBlocked(
    ips: string[],
    expiry: Record<string, string>,
    change: "adding" | "removing",
  ) {
    const persist = (next: string[], nextExpiry: Record<string, string>) =>
      this.o.state.update((s) => {
        s.blocked_ips = next;
        s.block_expiry = nextExpiry;
      });
    const { blocked_ips: previous, block_expiry: previousExpiry } = this.o.state.state;
    if (change === "adding") await persist(ips, expiry);
    if (this.firewall) {
      try {
        await applyBlocks(ips);
      } catch (error) {
        if (change === "adding") await persist(previous, previousExpiry);
        throw error;
      }
    }
    if (change === "removing") await persist(ips, expiry);
  }

  private unblock(ips: string[]) {
    const { blocked_ips, block_expiry } = this.o.state.state;
    const expiry = Object.fromEntries(
      Object.entries(block_expiry).filter(([ip]) => !ips.includes(ip)),
    );
    return this.setBlocked(
      blocked_ips.filter((ip) => !ips.includes(ip)),
      expiry,
      "removing",
    );
  }

  /** Lifts the isolation; returns how many rules it held. */
  private async release(): Promise<number> {
    const previous = this.o.state.state.isolation;
    const removed = this.firewall
      ? await removeIsolation()
      : previous
        ? isolationRuleset(this.isolationSpec(previous)).rules
        : 0;
    await this.o.state.update((s) => {
      s.isolation = null;
    });
    return removed;
  }

  /**
   * Expiries hold without the gateway: one timer at the earliest expiry lifts what is due, in the
   * command queue so that it never interleaves with a command.
   */
  private scheduleExpiry() {
    clearTimeout(this.expiryTimer);
    if (this.stopping) return;
    const { isolation, block_expiry } = this.o.state.state;
    const times = [isolation?.expires_at, ...Object.values(block_expiry)]
      .filter((at): at is string => at !== undefined)
      .map((at) => Date.parse(at));
    if (!times.length) return;
    const delay = Math.max(0, Math.min(...times) - Date.now());
    this.expiryTimer = setTimeout(
      () => this.enqueue(PRIORITY_RANK.critical, () => this.liftExpired("expired")),
      Math.min(delay, MAX_TIMER_MS),
    );
    this.expiryTimer.unref();
  }

  private async liftExpired(when: string) {
    const now = Date.now();
    const { isolation, block_expiry } = this.o.state.state;
    try {
      const ips = Object.keys(block_expiry).filter(
        (ip) => Date.parse(block_expiry[ip] as string) <= now,
      );
      if (ips.length) {
        await this.unblock(ips);
        for (const ip of ips) {
          this.o.log.info("block_expired", { ip, expires_at: block_expiry[ip], when });
        }
      }
      if (isolation?.expires_at && Date.parse(isolation.expires_at) <= now) {
        const removed = await this.release();
        this.o.log.info("isolation_expired", {
          expires_at: isolation.expires_at,
          firewall_rules_removed: removed,
          when,
        });
      }
    } catch (error) {
      this.o.log.error("expiry_error", { error: (error as Error).message });
    }
    this.scheduleExpiry();
  }

  private isolationSpec(isolation: IsolationState): IsolationSpec {
    return {
      portalIps: isolation.allow_portal_communication ? isolation.portal_ips : [],
      portalPorts: isolation.portal_ports,
      // An isolation persisted before resolvers were recorded gets no DNS: closed, not open.
      dnsServers: isolation.allow_dns ? (isolation.dns_servers ?? []) : [],
      management: isolation.management,
      protectedRanges: [...this.o.protectedRanges],
    };
  }

  /**
   * "Verification of isolation effectiveness": the rules are counted by applyIsolation; here the
   * portal must still answer. If it does not, the isolation is rolled back: a host nobody can
   * reach to release is worse than a failed isolate-host, which the engine sees and handles.
   */
  private async verifyReachable(isolation: IsolationState) {
    const portals = isolation.allow_portal_communication
      ? isolation.portal_ips.flatMap((address) =>
          isolation.portal_ports.map((port) => ({ address, port })),
        )
      : [];
    const targets = [...isolation.management, ...portals];
    if (targets.length && !(await canConnect(targets))) {
      const tried = targets.map((t) => `${t.address}:${t.port}`).join(", ");
      throw new Error(`portal unreachable after isolation (tried ${tried}); isolation rolled back`);
    }
  }

  /**
   * On start: what expired while the agent was down is lifted; the rest, isolation and blocks, is
   * back in force before the agent talks to anyone.
   */
  async restoreEnforcement(): Promise<void> {
    await this.liftExpired("while the agent was down");
    const { isolation, blocked_ips } = this.o.state.state;
    if (this.o.simulate) return;
    if (!this.o.supported.includes("isolate-host")) {
      if (isolation || blocked_ips.length) {
        this.o.log.warn("enforcement_unavailable", {
          reason: "nftables is not usable",
          isolated: !!isolation,
        });
      }
      return;
    }
    if (isolation) {
      await applyIsolation(this.isolationSpec(isolation));
      this.o.log.info("isolation_reapplied", { since: isolation.since });
    }
    if (blocked_ips.length) {
      await applyBlocks(blocked_ips);
      this.o.log.info("blocks_reapplied", { ips: blocked_ips });
    }
  }

  /** Before (re)connecting while isolated: the gateway's current addresses must be let through. */
  async allowManagement(endpoints: Endpoint[]): Promise<void> {
    const isolation = this.o.state.state.isolation;
    if (!isolation) return;
    const missing = endpoints.filter(
      (e) =>
        !isolation.management.some(
          (m) => m.port === e.port && normalizeIp(m.address) === normalizeIp(e.address),
        ),
    );
    if (!missing.length) return;
    const next = { ...isolation, management: [...isolation.management, ...missing] };
    await this.o.state.update((s) => {
      s.isolation = next;
    });
    if (!this.o.simulate) await applyIsolation(this.isolationSpec(next));
    this.o.log.info("isolation_management_added", { endpoints: missing });
  }

  /** Applies an update_rules frame after those before it; resolves once its status is sent. */
  updateRules(message: UpdateRules): Promise<void> {
    const run = this.rulesChain.then(() => this.applyRules(message));
    this.rulesChain = run.catch(() => undefined);
    return run;
  }

  private async applyRules(message: UpdateRules): Promise<void> {
    const report = (rules: RuleStatus[], extra: { error?: string; complete?: boolean }) =>
      this.o.send({
        type: "rules_status",
        rules,
        ...(message.rule_set && { rule_set: message.rule_set }),
        ...extra,
        ...(this.o.simulate && { simulated: true }),
      });
    const refusal = this.o.allow.includes(RULES_CAPABILITY)
      ? this.o.rulesCheck(message, this.o.state.state.rules_issued_at)
      : `${RULES_CAPABILITY} is not allowed by this agent's configuration (--allow)`;
    if (refusal) {
      this.o.log.warn("rules_refused", {
        rule_set: message.rule_set ?? null,
        rules: message.rules.length,
        reason: refusal,
      });
      report(refuseAll(message, refusal), { error: refusal });
      return;
    }
    const outcome = await applyRuleSet(
      message,
      this.o.state.state.rules,
      this.o.simulate ? null : this.o.rulesDir,
    );
    const applied = outcome.rules;
    if (applied) {
      await this.o.state.update((s) => {
        s.rules = applied;
        if (message.issued_at !== undefined) s.rules_issued_at = message.issued_at;
      });
    }
    this.o.log.info(applied ? "rules_updated" : "rules_failed", {
      rule_set: message.rule_set ?? null,
      complete: message.complete === true,
      applied: applied ? message.rules.length : 0,
      running: Object.keys(this.o.state.state.rules).length,
      failed: outcome.statuses
        .filter((s) => s.status === "failed" && !s.error?.startsWith("not applied:"))
        .map((s) => `${s.name}: ${s.error}`),
    });
    report(outcome.statuses, {
      ...(outcome.error !== undefined && { error: outcome.error }),
      ...(applied && message.complete && { complete: true }),
    });
  }
}

/** An enforcement's end: expires_at, or duration_seconds from now; none when neither is given. */
function expiryOf(d: { expires_at?: string | undefined; duration_seconds?: number | undefined }) {
  if (d.expires_at !== undefined) {
    if (Date.parse(d.expires_at) <= Date.now()) {
      throw new Error(`expires_at ${d.expires_at} has passed; nothing to enforce`);
    }
    return new Date(d.expires_at).toISOString();
  }
  if (d.duration_seconds === undefined) return undefined;
  return new Date(Date.now() + d.duration_seconds * 1000).toISOString();
}
