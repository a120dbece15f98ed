import { Client, Connection } from "@temporalio/client";
import type { WorkflowBundleOption } from "@temporalio/worker";
import {
  type AgentGateway,
  agentCommandActivities,
  noAgentGateway,
} from "./activities/agent-commands.ts";
import { approvalActivities, gatePreview } from "./activities/approvals.ts";
import { auditActivities } from "./activities/audit.ts";
import { type EngineDeps, engineActivities, engineDryRun } from "./activities/engine.ts";
import { isolationActivities } from "./activities/isolation.ts";
import { pushRulesActivities } from "./activities/push-rules.ts";
import { rolloutActivities } from "./activities/rollout.ts";
import { createApi } from "./api/app.ts";
import { healthCheck } from "./api/health.ts";
import { listenMetrics } from "./api/metrics.ts";
import type { Config } from "./config.ts";
import { connectNatsAs, openNeo4j, temporalConnection } from "./connections.ts";
import { checkRunner } from "./domain/check-budget.ts";
import { defaultCatalog } from "./domain/defaults.ts";
import { egressPolicy } from "./domain/egress.ts";
import { startGateway } from "./gateway/server.ts";
import { startCommandSupervisor } from "./gateway/supervisor.ts";
import { alertIntake } from "./ingest/intake.ts";
import { startNatsIngest } from "./ingest/nats.ts";
import { listen } from "./listen.ts";
import { createLogger } from "./log.ts";
import { siemSinks } from "./siem/config.ts";
import { startSiemForwarder } from "./siem/forwarder.ts";
import { resolveHost } from "./store/agents.ts";
import { loadDefaultCatalog } from "./store/catalog.ts";
import { createDb, migrate } from "./store/db.ts";
import { clientInterceptors, flushTracing, installTracing } from "./tracing.ts";
import { startWorker } from "./worker.ts";

export const ROLES = ["api", "worker", "ingest", "gateway"] as const;
export type Role = (typeof ROLES)[number];

export interface ServiceOptions {
  /**
   * Where agent commands go: by default the agent gateway's (PostgreSQL + NATS, so it works in a
   * worker without the gateway role); engine tests give a recording double.
   */
  agents?: AgentGateway;
  workflowBundle?: WorkflowBundleOption;
}

export interface Service {
  /** The REST API's base URL, when the api role runs. */
  apiUrl?: string;
  /** The agent gateway's base URL (what agents get as --gateway), when the gateway role runs. */
  gatewayUrl?: string;
  /** The MM_METRICS_PORT listener's base URL, when configured. */
  metricsUrl?: string;
  close(): Promise<void>;
}

/**
 * Starts the given roles in this process. Each role can run alone (to scale out) or all together;
 * whichever starts first applies pending migrations and, once per database, the default catalog.
 */
export async function startService(
  config: Config,
  roles: readonly Role[],
  options: ServiceOptions,
): Promise<Service> {
  const log = createLogger(config.logLevel);
  const closers: (() => Promise<unknown>)[] = [];
  // Once, however often it is called (a signal handler and a test's cleanup may both ask).
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const c of closers.reverse())
        await c().catch((err) => log.warn("shutdown step failed", { error: String(err) }));
    })());
  try {
    if (installTracing()) {
      log.info("tracing on: spans exported over OTLP (OTEL_* variables)");
      closers.push(() => flushTracing());
    }
    const db = createDb(config.databaseUrl, config.databasePoolSize);
    closers.push(() => db.destroy());
    const applied = await migrate(db);
    if (applied.length) log.info("migrations applied", { applied });
    if (config.loadDefaults && (await loadDefaultCatalog(db, catalogOf(config))))
      log.info("default configuration loaded");

    const neo4jDriver = openNeo4j(config.neo4j);
    closers.push(() => neo4jDriver.close());

    const connection = await Connection.connect(temporalConnection(config.temporal));
    closers.push(() => connection.close());
    const temporal = new Client({
      connection,
      namespace: config.temporal.namespace,
      interceptors: clientInterceptors(),
    });

    // One NATS connection per role, as the role's user: the server enforces what each may publish.
    const connectNats = async (role: Role) => {
      const nc = await connectNatsAs(config.nats, role);
      closers.push(() => nc.drain());
      return nc;
    };

    const intake = alertIntake({
      db,
      temporal,
      taskQueue: config.temporal.taskQueue,
      incidentIdleMs: config.incidentIdleMs,
    });
    const service: Service = { close };

    // Expiry and lost reports of agent commands; wherever commands are issued or delivered.
    if (roles.includes("worker") || roles.includes("gateway")) {
      const supervisor = startCommandSupervisor({ db, temporal, log });
      closers.push(() => supervisor.stop());
    }

    // The engine's evaluation: the worker decides with it, the API's dry-run rehearses with it.
    let checks: ReturnType<typeof checkRunner> | undefined;
    const engineDeps = (agents: AgentGateway): EngineDeps => {
      if (!checks) {
        const runner = checkRunner({ budgetMs: config.checkBudgetMs });
        closers.push(() => runner.close());
        checks = runner;
      }
      return {
        db,
        neo4j: neo4jDriver,
        agents,
        checks,
        webhooks: egressPolicy({
          allow: config.webhookAllow,
          firewallWebhookUrl: config.firewallWebhookUrl,
        }),
        queryTimeoutMs: config.neo4j.queryTimeoutMs,
        webhookTimeoutMs: config.webhookTimeoutMs,
        protectedAddresses: config.protectedAddresses,
        commandTtlMs: config.commands.ttlMs,
        approvals: config.approvals,
      };
    };

    if (roles.includes("worker")) {
      const agents =
        options.agents ??
        agentCommandActivities({ db, nc: await connectNats("worker"), commands: config.commands });
      // Rule rollouts and pushes publish to agents' subjects as the worker.
      const workerNats = await connectNats("worker");
      const activities = {
        ...engineActivities(engineDeps(agents)),
        ...approvalActivities(engineDeps(agents)),
        ...isolationActivities({ db, commandTtlMs: config.commands.ttlMs }),
        runAgentCommand: agents.runAgentCommand.bind(agents),
        ...auditActivities({ db }),
        ...rolloutActivities({ db, nc: workerNats }),
        ...pushRulesActivities({
          db,
          nc: workerNats,
          temporal,
          taskQueue: config.temporal.taskQueue,
        }),
      };
      const worker = await startWorker({
        config,
        activities,
        workflowBundle: options.workflowBundle,
      });
      closers.push(() => worker.stop());
      log.info("worker polling", { taskQueue: config.temporal.taskQueue });
      // With no sink configured this unregisters any, so nothing queues for nobody.
      const sinks = await siemSinks(config.siem, () => connectNats("worker"));
      const forwarder = await startSiemForwarder({ db, log, sinks }, config.siem);
      closers.push(() => forwarder.stop());
      if (sinks.length) log.info("forwarding events to SIEM", { sinks: sinks.map((s) => s.name) });
    }

    if (roles.includes("ingest")) {
      const ingest = await startNatsIngest(
        { nc: await connectNats("ingest"), db, intake, log },
        {
          subject: config.nats.alertSubject,
          stream: config.nats.alertStream,
          consumer: config.nats.alertConsumer,
        },
      );
      closers.push(() => ingest.stop());
      log.info("consuming alerts from NATS", {
        subject: config.nats.alertSubject,
        stream: config.nats.alertStream,
      });
    }

    if (roles.includes("gateway")) {
      const gateway = await startGateway({
        db,
        nc: await connectNats("gateway"),
        temporal,
        intake,
        log,
        config,
      });
      closers.push(() => gateway.close());
      service.gatewayUrl = gateway.url;
      log.info("agent gateway listening", {
        url: gateway.url,
        gateway: gateway.gatewayId,
        tls: Boolean(config.gateway.tls),
      });
    }

    if (roles.includes("api")) {
      const nc = await connectNats("api");
      // A rehearsal resolves the host's agent as the engine would, and can send nothing.
      const rehearsalDeps = engineDeps({
        ...noAgentGateway,
        resolveAgent: (host) => resolveHost(db, host),
      });
      const app = createApi({
        db,
        temporal,
        intake,
        dryRun: engineDryRun(rehearsalDeps),
        gatePreview: gatePreview(rehearsalDeps),
        log,
        nats: nc,
        config,
        health: healthCheck({ db, temporal, nats: nc, neo4j: neo4jDriver }),
      });
      const { server, url } = await listen({
        fetch: app.fetch,
        host: config.host,
        port: config.apiPort,
        tls: config.api.tls,
        headersTimeoutMs: config.api.headersTimeoutMs,
        log,
        name: "api",
      });
      closers.push(() => new Promise((resolve) => server.close(resolve)));
      service.apiUrl = url;
      log.info("REST API listening", { url: service.apiUrl });
      if (!config.adminToken) {
        log.warn(
          "MM_ADMIN_TOKEN is not set: only operator tokens created before are accepted (see .env.example)",
        );
      }
    }
    if (config.metricsPort !== undefined) {
      const { server, url } = await listenMetrics({ db, config, log, port: config.metricsPort });
      closers.push(() => new Promise((resolve) => server.close(resolve)));
      service.metricsUrl = url;
      log.info("metrics listening", { url });
    }
    return service;
  } catch (err) {
    await close();
    throw err;
  }
}

function catalogOf(config: Config) {
  const defaults = defaultCatalog({ firewallWebhookUrl: config.firewallWebhookUrl });
  return {
    condition: defaults.conditions,
    mitigation: defaults.mitigations,
    attack_flow: defaults.attackFlows,
  };
}
