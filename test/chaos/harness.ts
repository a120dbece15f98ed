// The chaos run (`npm run chaos`, README "Chaos run"): the service as separate processes on a stack
// of its own, agents in simulation mode, alerts over NATS at a steady rate, and in turn one fault
// per phase. After each phase it waits for quiescence (bounded) and counts, from the records: alerts
// lost, nodes undecided, decisions duplicated, commands executed twice, and the time to recover.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, openSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { sql } from "kysely";
import neo4j, { type Driver } from "neo4j-driver";
import { natsInboxPrefix } from "../../src/connections.ts";
import { createDb, type Db } from "../../src/store/db.ts";
import { tcpProxy } from "../support/tcp-proxy.ts";
import { type ChaosEnvironment, chaosEnvironment, ROOT, secrets } from "./environment.ts";
import { executions, type Snapshot, snapshot } from "./observe.ts";
import { killAllChildren, killServer, Supervised, until } from "./processes.ts";
import { CATALOG, hostName, type PlannedAlert, planAlert, seedGraph } from "./scenario.ts";

export const KILLS = [
  "worker",
  "api",
  "ingest",
  "gateway",
  "temporal",
  "nats",
  "postgres",
  "neo4j",
  "agent",
] as const;
export const FAULTS = [
  "none",
  ...KILLS,
  "gateway-nats-cut",
  "postgres-outage",
  "neo4j-outage",
] as const;
export type Fault = (typeof FAULTS)[number];

export interface ChaosOptions {
  hosts: number;
  alerts: number;
  /** Alerts per second while publishing. */
  rate: number;
  faults: Fault[];
  /** How long the gateway is cut from NATS. */
  cutSeconds: number;
  /** How long PostgreSQL, then Neo4j, stay down in the outage phases. */
  outageSeconds: number;
  /** Longest wait for quiescence after a phase; what is still open then is counted as it stands. */
  settleSeconds: number;
  dataDir: string;
  portOffset: number;
  /** Leave the chaos stack's servers running afterwards (faster reruns). */
  keepStack: boolean;
  /** Build dist/ first when stale, so restarts take seconds (otherwise bin/mm may run src/ via tsx). */
  build: boolean;
  log: (line: string) => void;
}

export interface PhaseResult {
  fault: Fault;
  published: number;
  /** Published, acknowledged by JetStream, never stored. */
  alertsLost: number;
  /** Stored more than once. */
  alertsDuplicated: number;
  /** Reached nodes without a final decision once the phase settled (or at the end). */
  nodesUndecided: number;
  /** Final decisions beyond the first for a node. */
  decisionsDuplicated: number;
  /** Executions of one action beyond the first (agents' event logs). */
  commandsExecutedTwice: number;
  /** Nodes decided, but not with a success (e.g. a command expired with its agent down). */
  notMitigated: number;
  /** Mitigation candidates recorded as skipped and as chosen. */
  contradictions: number;
  conditionErrors: number;
  /** Processes that exited by themselves during the phase (restarted by the harness). */
  crashes: number;
  /**
   * Fault end (restart done, link back) → the first alert published after the fault began fully
   * mitigated; 0 when one was mitigated while the fault lasted; null when none was.
   */
  recoverySeconds: number | null;
  /** A few undecided alerts with their latest decision, as evidence. */
  undecidedExamples: string[];
  /** Seconds the phase took to settle, or null when it did not within settleSeconds. */
  settledSeconds: number | null;
  downSeconds: number;
}

export interface ChaosReport {
  run: string;
  phases: PhaseResult[];
  /** Commands the agents executed in all (command_completed in their event logs). */
  executions: number;
  /** Executions whose command the commands table does not know. */
  unattributedExecutions: number;
  ok: boolean;
}

type PhaseCounts = Omit<
  PhaseResult,
  "fault" | "published" | "crashes" | "settledSeconds" | "downSeconds"
>;

interface Published {
  alert: PlannedAlert;
  phase: number;
  at: number;
  acked: boolean;
}

/** Counted columns that must be 0. */
const MUST_BE_ZERO = [
  "alertsLost",
  "alertsDuplicated",
  "nodesUndecided",
  "decisionsDuplicated",
  "commandsExecutedTwice",
  // A candidate recorded as skipped and as chosen by one run: a verdict written too early.
  "contradictions",
] as const;

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const env = chaosEnvironment({ dataDir: o.dataDir, portOffset: o.portOffset });
  const run = Date.now().toString(36).slice(-6);
  const runDir = path.join(o.dataDir, "chaos", run);
  const logDir = path.join(runDir, "logs");
  const agentsDir = path.join(runDir, "agents");
  mkdirSync(logDir, { recursive: true });
  mkdirSync(agentsDir, { recursive: true });
  o.log(`chaos run ${run}: logs in ${logDir}`);
  const started = new Date();
  const h = new Harness(env, o, run, logDir, agentsDir);
  try {
    await h.setUp();
    const phases: PhaseResult[] = [];
    for (const [index, fault] of o.faults.entries()) {
      phases.push(await h.phase(index, fault));
    }
    // Counted again at the end: a duplicate that comes late belongs to the phase of its alert.
    const final = await h.count(started);
    const report: ChaosReport = {
      run,
      phases: phases.map((p, i) => ({ ...p, ...final.perPhase[i] })),
      executions: final.executions,
      unattributedExecutions: final.unattributed,
      ok: false,
    };
    report.ok = report.phases.every((p) => MUST_BE_ZERO.every((k) => p[k] === 0));
    writeFileSync(path.join(runDir, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    await h.tearDown();
  }
}

class Harness {
  private readonly secrets = secrets();
  private db!: Db;
  private graph!: Driver;
  private nc: NatsConnection | null = null;
  private proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
  private readonly roles = new Map<string, Supervised>();
  private readonly fleets: Supervised[] = [];
  private readonly published: Published[] = [];
  private hosts: string[] = [];
  private phaseTimes: { faultAt: number; restoredAt: number }[] = [];
  private sent = 0;
  private readonly since = new Date();

  constructor(
    private readonly env: ChaosEnvironment,
    private readonly o: ChaosOptions,
    private readonly run: string,
    private readonly logDir: string,
    private readonly agentsDir: string,
  ) {}

  async setUp() {
    this.o.log("starting the chaos stack (scripts/stack.sh up)…");
    await this.stack("up");
    if (this.o.build) buildIfStale(this.o.log);
    this.db = createDb(
      `postgres://mm:${this.secrets.pgPassword}@127.0.0.1:${this.env.ports.postgres}/mm`,
      2,
    );
    this.proxy = await tcpProxy(
      { host: "127.0.0.1", port: this.env.ports.nats },
      this.env.ports.natsProxy,
    );
    const role = (name: string, ready: string, extra: NodeJS.ProcessEnv = {}) =>
      new Supervised({
        name,
        command: path.join(ROOT, "bin/mm"),
        args: [name],
        env: { ...this.env.serviceEnv, ...extra },
        log: path.join(this.logDir, `${name}.log`),
        ready,
        readyTimeoutMs: 120_000,
      });
    this.roles.set("api", role("api", "REST API listening"));
    this.roles.set("worker", role("worker", "worker polling"));
    this.roles.set("ingest", role("ingest", "consuming alerts from NATS"));
    this.roles.set(
      "gateway",
      role("gateway", "agent gateway listening", {
        NATS_URL: `nats://127.0.0.1:${this.env.ports.natsProxy}`,
      }),
    );
    // The API first: it applies the migrations the others would race for.
    for (const r of this.roles.values()) await r.start();
    this.o.log("service up: api, worker, ingest, gateway");

    await this.loadCatalog();
    this.hosts = Array.from({ length: this.o.hosts }, (_, i) => hostName(this.run, i));
    this.graph = neo4j.driver(
      this.env.urls.neo4j,
      neo4j.auth.basic("neo4j", this.secrets.neo4jPassword),
    );
    await seedGraph(this.graph, this.hosts);
    const token = await this.rest("POST", "/api/enrollment-tokens", {
      description: `chaos ${this.run}`,
      max_uses: this.o.hosts,
    });
    // The first host's agent runs alone, so the agent fault kills exactly one agent.
    const groups = [this.hosts.slice(0, 1)];
    for (let i = 1; i < this.hosts.length; i += 10) groups.push(this.hosts.slice(i, i + 10));
    for (const [i, hosts] of groups.entries()) {
      const fleet = new Supervised({
        name: `fleet-${i}`,
        command: process.execPath,
        args: [
          "--import",
          "tsx",
          path.join(ROOT, "test/chaos/fleet.ts"),
          this.agentsDir,
          this.env.urls.gateway,
          ...hosts,
        ],
        env: { ...this.env.serviceEnv, CHAOS_ENROLL_TOKEN: token.token as string },
        log: path.join(this.logDir, `fleet-${i}.log`),
        ready: "fleet ready",
        readyTimeoutMs: 120_000,
      });
      this.fleets.push(fleet);
    }
    await Promise.all(this.fleets.map((f) => f.start()));
    await until(
      "every agent connected",
      async () => (await this.connectedAgents()) === this.hosts.length,
      60_000,
      500,
    );
    this.o.log(`${this.hosts.length} agents connected (simulation mode)`);

    this.nc = await connect({
      servers: this.env.urls.nats,
      user: "publisher",
      pass: this.secrets.publisherPassword,
      inboxPrefix: natsInboxPrefix("publisher"),
      // The alert source keeps trying, as Wazuh's buffer would, through a NATS restart.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
  }

  async tearDown() {
    await this.nc?.close().catch(() => undefined);
    for (const f of this.fleets) await f.stop();
    for (const r of this.roles.values()) await r.stop();
    killAllChildren();
    await this.proxy?.close();
    await this.db?.destroy().catch(() => undefined);
    await this.graph?.close().catch(() => undefined);
    if (!this.o.keepStack)
      await this.stack("down").catch((e) => this.o.log(`stack down: ${e.message}`));
  }

  /** scripts/stack.sh with this stack's placement only. */
  private stack(command: "up" | "down", ...services: string[]): Promise<void> {
    const out = openSync(path.join(this.logDir, "stack.log"), "a");
    const child = spawn("bash", [path.join(ROOT, "scripts/stack.sh"), command, ...services], {
      env: this.env.stackEnv,
      stdio: ["ignore", out, out],
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 600_000);
      child.once("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else
          reject(
            new Error(
              `stack.sh ${command} ${services.join(" ")} exited ${code} (log ${this.logDir}/stack.log)`,
            ),
          );
      });
    });
  }

  // biome-ignore lint/suspicious/noExplicitAny: JSON answers of the service's own API
  private async rest(method: string, route: string, body?: unknown): Promise<any> {
    const res = await fetch(`${this.env.urls.api}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${this.secrets.adminToken}`,
        ...(body !== undefined && { "content-type": "application/json" }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) {
      const error = new Error(`${method} ${route}: ${res.status} ${text.slice(0, 300)}`);
      Object.assign(error, { status: res.status });
      throw error;
    }
    return text ? JSON.parse(text) : null;
  }

  /** The catalog through the REST API; a rerun on the same database updates it in place. */
  private async loadCatalog() {
    const put = async (route: string, doc: { identifier: string | number }) => {
      try {
        await this.rest("POST", route, doc);
      } catch (error) {
        if ((error as { status?: number }).status !== 409) throw error;
        await this.rest("PUT", `${route}?id=${encodeURIComponent(doc.identifier)}`, doc);
      }
    };
    for (const c of CATALOG.conditions) await put("/api/condition", c);
    for (const m of CATALOG.mitigations) await put("/api/workflow", m);
    for (const f of CATALOG.flows) await put("/api/attack-flow", f);
  }

  private async connectedAgents(): Promise<number> {
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM agents
      WHERE identity_hostname = ANY(${this.hosts}) AND connected_at IS NOT NULL
        AND (disconnected_at IS NULL OR disconnected_at < connected_at)`.execute(this.db);
    return rows[0]?.n ?? 0;
  }

  private crashes(): number {
    return [...this.roles.values(), ...this.fleets].reduce((n, p) => n + p.crashes, 0);
  }

  async phase(index: number, fault: Fault): Promise<PhaseResult> {
    const phases = this.o.faults.length;
    const count = Math.floor(this.o.alerts / phases) + (index < this.o.alerts % phases ? 1 : 0);
    const outage = fault.endsWith("-outage");
    // An outage phase spreads its alerts over the outage, so flows are under way throughout.
    const windowMs = outage
      ? (this.o.outageSeconds + 30) * 1000
      : Math.max((count / this.o.rate) * 1000, 3000);
    await this.healthy();
    const crashesBefore = this.crashes();
    const began = Date.now();
    this.o.log(
      `phase ${index + 1}/${phases}: ${fault} (${count} alerts over ${Math.round(windowMs / 1000)} s)`,
    );
    const publishing = this.publish(index, count, windowMs);
    await sleep(windowMs / 3);
    const faultAt = Date.now();
    await this.inject(fault);
    const restoredAt = Date.now();
    this.phaseTimes[index] = { faultAt, restoredAt };
    await publishing;
    const settledSeconds = await this.settle(index, new Date(began));
    this.o.log(
      `  settled ${settledSeconds === null ? "NOT within the deadline" : `in ${settledSeconds} s`}` +
        ` (phase ${Math.round((Date.now() - began) / 1000)} s)`,
    );
    const base = {
      fault,
      published: this.published.filter((p) => p.phase === index && p.acked).length,
      crashes: this.crashes() - crashesBefore,
      settledSeconds,
      downSeconds: Math.round((restoredAt - faultAt) / 100) / 10,
    };
    const { perPhase } = await this.count(this.since);
    return { ...base, ...(perPhase[index] as PhaseCounts) };
  }

  /**
   * Waits (bounded) until every dependency answers the service's own health check, the graph
   * answers the condition's read and every agent is connected, so that what a fault leaves behind
   * (Neo4j terminates transactions for a while after it restarts) is not charged to the next phase.
   */
  private async healthy() {
    const ok = async () => {
      try {
        const health = await this.rest("GET", "/health");
        if (health?.status !== "up") return false;
        const { records } = await this.graph.executeQuery(
          "MATCH (h:ChaosHost) WHERE h.name IN $hosts RETURN count(h) AS n",
          { hosts: this.hosts },
        );
        return (
          Number(records[0]?.get("n")) === this.hosts.length &&
          (await this.connectedAgents()) === this.hosts.length
        );
      } catch {
        return false;
      }
    };
    try {
      // Three answers in a row: one right after a restart can still be followed by failures.
      let streak = 0;
      await until(
        "the service healthy",
        async () => {
          streak = (await ok()) ? streak + 1 : 0;
          return streak >= 3;
        },
        180_000,
        1000,
      );
    } catch (error) {
      this.o.log(`  ! ${(error as Error).message}; the phase starts anyway`);
    }
  }

  private async inject(fault: Fault) {
    const o = this.o;
    const server = {
      temporal: "temporal",
      nats: "nats",
      postgres: "postgres",
      neo4j: "neo4j",
    } as const;
    const ports = {
      temporal: this.env.ports.temporal,
      nats: this.env.ports.nats,
      postgres: this.env.ports.postgres,
      neo4j: this.env.ports.neo4j,
    };
    const bounce = async (name: keyof typeof server, downMs: number) => {
      const pid = await killServer(name, ports[name]);
      o.log(`  SIGKILL ${name} (pid ${pid})${downMs ? `, down ${downMs / 1000} s` : ""}`);
      if (downMs) await sleep(downMs);
      await this.stack("up", server[name]);
      o.log(`  ${name} restarted`);
    };
    switch (fault) {
      case "none":
        return;
      case "worker":
      case "api":
      case "ingest":
      case "gateway": {
        const role = this.roles.get(fault) as Supervised;
        await role.settled();
        await role.kill();
        o.log(`  SIGKILL ${fault}`);
        await role.start();
        o.log(`  ${fault} restarted`);
        return;
      }
      case "temporal":
      case "nats":
      case "postgres":
      case "neo4j":
        return bounce(fault, 0);
      case "postgres-outage":
        return bounce("postgres", o.outageSeconds * 1000);
      case "neo4j-outage":
        return bounce("neo4j", o.outageSeconds * 1000);
      case "agent": {
        const fleet = this.fleets[0] as Supervised;
        await fleet.kill();
        o.log(`  SIGKILL the agent of ${this.hosts[0]}`);
        await fleet.start();
        o.log("  agent restarted");
        return;
      }
      case "gateway-nats-cut":
        this.proxy?.cut();
        o.log(`  gateway cut from NATS for ${o.cutSeconds} s`);
        await sleep(o.cutSeconds * 1000);
        this.proxy?.restore();
        o.log("  link restored");
        return;
    }
  }

  /** Publishes `count` alerts evenly over `windowMs`, each retried until JetStream acknowledges it. */
  private async publish(phase: number, count: number, windowMs: number) {
    const js = jetstream(this.nc as NatsConnection);
    const start = Date.now();
    for (let i = 0; i < count; i++) {
      const due = start + (i * windowMs) / count;
      if (due > Date.now()) await sleep(due - Date.now());
      const alert = planAlert(this.run, this.sent++, this.hosts);
      const entry: Published = { alert, phase, at: Date.now(), acked: false };
      this.published.push(entry);
      const payload = JSON.stringify(alert.body);
      const giveUp = Date.now() + 600_000;
      while (!entry.acked && Date.now() < giveUp) {
        try {
          // The message id lets JetStream drop a retry whose first attempt did land.
          await js.publish("alerts", payload, { msgID: alert.id, timeout: 5_000 });
          entry.acked = true;
        } catch {
          await sleep(500);
        }
      }
    }
  }

  /**
   * Seconds until every alert of the phase is stored and decided and no command issued since the
   * phase began is open; null past the deadline. An earlier phase's loss does not hold this one up:
   * what it left is counted again at the end.
   */
  private async settle(phase: number, began: Date): Promise<number | null> {
    const start = Date.now();
    const deadline = start + this.o.settleSeconds * 1000;
    while (Date.now() < deadline) {
      try {
        const s = await snapshot(this.db, this.run, this.since);
        const done = this.published
          .filter((p) => p.phase === phase && p.acked)
          .every((p) => s.stored.has(p.alert.id) && s.finals.has(`${p.alert.id} ${p.alert.node}`));
        const open = s.openCommands.filter((at) => at >= began).length;
        if (done && open === 0) return Math.round((Date.now() - start) / 1000);
      } catch {
        // PostgreSQL just restarted: ask again
      }
      await sleep(1000);
    }
    return null;
  }

  async count(since: Date) {
    let s: Snapshot | null = null;
    for (let attempt = 0; !s; attempt++) {
      try {
        s = await snapshot(this.db, this.run, since);
      } catch (error) {
        if (attempt > 30) throw error;
        await sleep(1000);
      }
    }
    const byAction = new Map<string, number>();
    let unattributed = 0;
    const executed = executions(this.agentsDir);
    for (const e of executed) {
      const action = s.actions.get(e.commandId);
      if (!action) unattributed++;
      else byAction.set(`${e.host} ${action}`, (byAction.get(`${e.host} ${action}`) ?? 0) + 1);
    }
    const perPhase = this.o.faults.map((_, i) => this.phaseCounts(i, s, byAction));
    return { perPhase, unattributed, executions: executed.length };
  }

  private phaseCounts(index: number, s: Snapshot, byAction: Map<string, number>): PhaseCounts {
    const mine = this.published.filter((p) => p.phase === index && p.acked);
    const times = this.phaseTimes[index];
    let alertsLost = 0;
    let alertsDuplicated = 0;
    let nodesUndecided = 0;
    let decisionsDuplicated = 0;
    let notMitigated = 0;
    let commandsExecutedTwice = 0;
    let contradictions = 0;
    let conditionErrors = 0;
    let firstDone: number | null = null;
    const examples: string[] = [];
    for (const p of mine) {
      const stored = s.stored.get(p.alert.id) ?? 0;
      if (stored === 0) alertsLost++;
      alertsDuplicated += Math.max(0, stored - 1);
      const finals = s.finals.get(`${p.alert.id} ${p.alert.node}`) ?? [];
      if (finals.length === 0) nodesUndecided++;
      decisionsDuplicated += Math.max(0, finals.length - 1);
      const success = finals.find((f) => f.kind === "mitigation_succeeded");
      if (finals.length && !success) notMitigated++;
      commandsExecutedTwice += Math.max(
        0,
        (byAction.get(`${p.alert.host} ${p.alert.action}`) ?? 0) - 1,
      );
      contradictions += s.contradictions.get(p.alert.id) ?? 0;
      conditionErrors += s.conditionErrors.get(p.alert.id) ?? 0;
      if (finals.length === 0 && examples.length < 5)
        examples.push(
          `${p.alert.id} (${p.alert.host}, ${p.alert.node}): ${s.latest.get(p.alert.id) ?? "no decision at all"}`,
        );
      const doneAt = success?.at.getTime();
      if (times && p.at >= times.faultAt && doneAt !== undefined)
        firstDone = firstDone === null ? doneAt : Math.min(firstDone, doneAt);
    }
    return {
      alertsLost,
      alertsDuplicated,
      nodesUndecided,
      decisionsDuplicated,
      commandsExecutedTwice,
      notMitigated,
      contradictions,
      conditionErrors,
      // 0: an alert that came after the fault was mitigated while it lasted (never interrupted).
      recoverySeconds:
        times && firstDone !== null
          ? Math.max(0, Math.round((firstDone - times.restoredAt) / 100) / 10)
          : null,
      undecidedExamples: examples,
    };
  }
}

/** Stops the chaos stack's servers, synchronously (a Ctrl-C handler cannot wait for promises). */
export function stopStackSync(o: { dataDir: string; portOffset: number }): void {
  const env = chaosEnvironment(o);
  execFileSync("bash", [path.join(ROOT, "scripts/stack.sh"), "down"], {
    env: env.stackEnv,
    stdio: "ignore",
    timeout: 120_000,
  });
}

/** Builds dist/ when bin/mm would otherwise run src/ through tsx (a worker restart would bundle for 20 s). */
function buildIfStale(log: (line: string) => void) {
  const fresh = `[ -f dist/.built ] && [ -z "$(find src migrations package.json -newer dist/.built -print -quit)" ]`;
  try {
    execFileSync("bash", ["-c", fresh], { cwd: ROOT });
    return;
  } catch {
    log("building dist/ (npm run build), so restarts take seconds…");
  }
  execFileSync("bash", [path.join(ROOT, "scripts/build.sh")], { cwd: ROOT, stdio: "ignore" });
}

/** The table the run prints, one row per phase. */
export function formatTable(report: ChaosReport): string {
  const head = [
    "fault",
    "alerts",
    "alerts lost",
    "undecided",
    "decisions duplicated",
    "commands executed twice",
    "not mitigated",
    "recovery s",
    "notes",
  ];
  const rows = report.phases.map((p) => [
    p.fault,
    String(p.published),
    String(p.alertsLost),
    String(p.nodesUndecided),
    String(p.decisionsDuplicated),
    String(p.commandsExecutedTwice),
    String(p.notMitigated),
    p.recoverySeconds === null ? "-" : p.recoverySeconds.toFixed(1),
    [
      p.settledSeconds === null ? "not settled" : "",
      p.alertsDuplicated ? `${p.alertsDuplicated} alerts stored twice` : "",
      p.crashes ? `${p.crashes} crash(es)` : "",
      p.contradictions ? `${p.contradictions} contradicted` : "",
      p.conditionErrors ? `${p.conditionErrors} condition errors` : "",
    ]
      .filter(Boolean)
      .join(", "),
  ]);
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  return [
    line(head),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}
