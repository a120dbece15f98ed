import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNats } from "@nats-io/transport-node";
import pg from "pg";
import { inject } from "vitest";
import type { AgentGateway } from "../../src/activities/agent-commands.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { type Role, ROLES, type Service, startService } from "../../src/service.ts";

export interface TestContext {
  /** Unique per test file: database, task queue, NATS subject/stream/consumer. */
  suffix: string;
  config: Config;
  /** A host name no other test uses, so incident workflow ids never collide. */
  host(label?: string): string;
  start(opts: { agents: AgentGateway; roles?: readonly Role[]; config?: Partial<Config> }): Promise<Service>;
  cleanup(): Promise<void>;
}

/**
 * Gives a test file its own database (migrated by the service on start), Temporal task queue and
 * NATS stream, all on the shared local stack.
 */
export async function createTestContext(name: string, overrides: Partial<Config> = {}): Promise<TestContext> {
  const base = loadConfig();
  const suffix = `${name.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${randomBytes(4).toString("hex")}`;
  const database = `mm_test_${suffix}`;
  const admin = new pg.Client({ connectionString: base.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const url = new URL(base.databaseUrl);
  url.pathname = `/${database}`;
  const config: Config = {
    ...base,
    apiPort: 0,
    databaseUrl: url.toString(),
    temporal: { ...base.temporal, taskQueue: `test-${suffix}` },
    nats: { ...base.nats, alertSubject: `test.${suffix}.alerts`, alertStream: `T_${suffix}`, alertConsumer: `C_${suffix}` },
    ...overrides,
  };
  const services: Service[] = [];
  let hosts = 0;
  return {
    suffix,
    config,
    host: (label = "host") => `${label}-${suffix.replace(/_/g, "-")}-${++hosts}`,
    async start(opts) {
      const service = await startService({ ...config, ...opts.config }, opts.roles ?? ROLES, {
        agents: opts.agents,
        workflowBundle: { codePath: inject("workflowBundlePath") },
      });
      services.push(service);
      return service;
    },
    async cleanup() {
      for (const s of services.splice(0)) await s.close();
      const nc = await connectNats({ servers: config.nats.url });
      await (await jetstreamManager(nc)).streams.delete(config.nats.alertStream).catch(() => {});
      await nc.close();
      const admin = new pg.Client({ connectionString: base.databaseUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    },
  };
}
