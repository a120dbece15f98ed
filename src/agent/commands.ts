// Command execution: authorization (platform capabilities and the --allow list), the ledger that
// makes every command id run at most once, a priority queue, and one handler per command.
// Isolation and blocks live in the persisted state, which the agent re-applies on start. Adding
// enforcement persists first and then acts; removing acts first and then persists. A crash in
// between therefore always errs toward enforcing, and the interrupted command reports failure.

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
import { applyRule } from "./enforce/rules.ts";
import type { Endpoint, IsolationState, LedgerEntry, StateStore } from "./state.ts";

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

type Outcome = { message: string; details: Record<string, unknown> };
type Handlers = { [C in AgentCommandName]: (details: CommandDetails<C>) => Promise<Outcome> };

export interface RunnerOptions {
  state: StateStore;
  simulate: boolean;
  supported: string[];
  allow: readonly string[];
  rulesDir: string;
  quarantineDir: string;
  log: Logger;
  send: (message: AgentMessage) => void;
  /** Where the gateway is: the live connection and the gateway's resolved addresses. */
  managementEndpoints: () => Endpoint[];
}

export class CommandRunner {
  private readonly queue: { command: Command; entry: LedgerEntry }[] = [];
  /** Ids admitted and not yet completed: a redelivery of one of them only gets an ack. */
  private readonly inFlight = new Set<string>();
  private worker: Promise<void> | null = null;

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

  /** Resolves once every queued command has completed. */
  async idle(): Promise<void> {
    while (this.worker) await this.worker;
  }

  private async admit(command: Command) {
    if (this.inFlight.has(command.id)) return;
    this.inFlight.add(command.id);
    try {
      const seen = await this.o.state.ledgerGet(command.id);
      if (seen) {
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
      const entry = {
        id: command.id,
        command: command.command,
        received_at: new Date().toISOString(),
      };
      await this.o.state.ledgerPut(entry);
      const rank = PRIORITY_RANK[command.priority];
      const at = this.queue.findIndex((queued) => PRIORITY_RANK[queued.command.priority] > rank);
      this.queue.splice(at === -1 ? this.queue.length : at, 0, { command, entry });
      this.pump();
    } catch (error) {
      this.inFlight.delete(command.id);
      throw error;
    }
  }

  // One command at a time: isolate/release/block must not interleave; priority picks the next.
  private pump() {
    if (this.worker) return;
    this.worker = (async () => {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) await this.execute(next);
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
      completion = this.completion(command.id, await this.run(command));
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
      const previous = this.o.state.state.isolation;
      const isolation: IsolationState = {
        since: previous?.since ?? new Date().toISOString(),
        ...(d.reason !== undefined && { reason: d.reason }),
        allow_dns: d.allow_dns,
        allow_portal_communication: d.allow_portal_communication,
        portal_ips: d.portal_ips.map(normalizeIp),
        portal_ports: d.portal_ports,
        management: this.o.managementEndpoints(),
      };
      await this.o.state.update((s) => {
        s.isolation = isolation;
      });
      let rules = isolationRuleset(isolationSpec(isolation)).rules;
      if (!this.o.simulate) {
        try {
          rules = await applyIsolation(isolationSpec(isolation));
          await this.verifyReachable(isolation);
        } catch (error) {
          // Back to exactly what was in force before this command.
          if (previous) await applyIsolation(isolationSpec(previous));
          else await removeIsolation();
          await this.o.state.update((s) => {
            s.isolation = previous;
          });
          throw error;
        }
      }
      return {
        message: "Host isolated successfully",
        details: {
          firewall_rules_added: rules,
          execution_time_ms: Math.round(performance.now() - started),
          isolation_level: "full",
        },
      };
    },

    "release-host": async () => {
      const started = performance.now();
      const previous = this.o.state.state.isolation;
      const removed = this.o.simulate
        ? previous
          ? isolationRuleset(isolationSpec(previous)).rules
          : 0
        : await removeIsolation();
      await this.o.state.update((s) => {
        s.isolation = null;
      });
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
      if (!this.o.simulate) await killProcess(pid, d.process_name);
      return { message: `Process ${pid} killed`, details: { pid, killed: true } };
    },

    "delete-file": async (d) => {
      if (this.o.simulate)
        return { message: `${d.path} deleted`, details: { path: d.path, deleted: true } };
      const sha256 = await deleteFile(d.path, d.sha256);
      return { message: `${d.path} deleted`, details: { path: d.path, sha256, deleted: true } };
    },

    "quarantine-file": async (d) => {
      if (this.o.simulate) return { message: `${d.path} quarantined`, details: {} };
      const result = await quarantineFile(d.path, this.o.quarantineDir, d.sha256);
      return { message: `${d.path} quarantined`, details: result };
    },

    "block-ip": async (d) => {
      const ip = normalizeIp(d.ip);
      if (this.o.managementEndpoints().some((e) => normalizeIp(e.address) === ip)) {
        throw new Error(`refusing to block ${ip}: this agent is managed through it`);
      }
      const blocked = this.o.state.state.blocked_ips;
      if (!blocked.includes(ip)) await this.setBlocked([...blocked, ip], "adding");
      return { message: `${ip} blocked`, details: { ip, blocked: true } };
    },

    "unblock-ip": async (d) => {
      const ip = normalizeIp(d.ip);
      const blocked = this.o.state.state.blocked_ips;
      const was = blocked.includes(ip);
      if (was)
        await this.setBlocked(
          blocked.filter((other) => other !== ip),
          "removing",
        );
      return {
        message: was ? `${ip} unblocked` : `${ip} was not blocked`,
        details: { ip, blocked: false },
      };
    },
  };

  private async setBlocked(ips: string[], change: "adding" | "removing") {
    const persist = (next: string[]) =>
      this.o.state.update((s) => {
        s.blocked_ips = next;
      });
    const previous = this.o.state.state.blocked_ips;
    if (change === "adding") await persist(ips);
    if (!this.o.simulate) {
      try {
        await applyBlocks(ips);
      } catch (error) {
        if (change === "adding") await persist(previous);
        throw error;
      }
    }
    if (change === "removing") await persist(ips);
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

  /** On start: isolation and blocks are back in force before the agent talks to anyone. */
  async restoreEnforcement(): Promise<void> {
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
      await applyIsolation(isolationSpec(isolation));
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
    if (!this.o.simulate) await applyIsolation(isolationSpec(next));
    this.o.log.info("isolation_management_added", { endpoints: missing });
  }

  async updateRules(message: UpdateRules): Promise<void> {
    const allowed = this.o.allow.includes(RULES_CAPABILITY);
    const statuses: RuleStatus[] = [];
    for (const rule of message.rules) {
      statuses.push(
        allowed
          ? await applyRule(rule, this.o.simulate ? null : this.o.rulesDir)
          : {
              name: rule.name,
              version: rule.version,
              checksum: rule.checksum,
              status: "failed",
              error: `${RULES_CAPABILITY} is not allowed by this agent's configuration (--allow)`,
            },
      );
    }
    await this.o.state.update((s) => {
      for (const { name, version, checksum, status } of statuses) {
        if (status === "applied") s.rules[name] = { version, checksum };
      }
    });
    this.o.log.info("rules_updated", {
      applied: statuses.filter((s) => s.status === "applied").map((s) => s.name),
      failed: statuses.filter((s) => s.status === "failed").map((s) => `${s.name}: ${s.error}`),
    });
    this.o.send({
      type: "rules_status",
      rules: statuses,
      ...(this.o.simulate && { simulated: true }),
    });
  }
}

function isolationSpec(isolation: IsolationState): IsolationSpec {
  return {
    portalIps: isolation.allow_portal_communication ? isolation.portal_ips : [],
    portalPorts: isolation.portal_ports,
    allowDns: isolation.allow_dns,
    management: isolation.management,
  };
}
