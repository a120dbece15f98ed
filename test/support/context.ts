import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNats } from "@nats-io/transport-node";
import { inject } from "vitest";
import type { AgentGateway } from "../../src/activities/agent-commands.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { type Role, ROLES, type Service, startService } from "../../src/service.ts";
import { TEST_ADMIN_TOKEN } from "./http.ts";
import { createScratchDatabase, dropScratchDatabase } from "./scratch-database.ts";

export interface TestContext {
  /** Unique per test file: database, task queue, NATS subject/stream/consumer. */
  suffix: string;
  config: Config;
  /** A host name no other test uses, so incident workflow ids never collide. */
  host(label?: string): string;
  /** Without `agents`, agent commands go through the real gateway (PostgreSQL + NATS). */
  start(opts: { agents?: AgentGateway; roles?: readonly Role[]; config?: Partial<Config> }): Promise<Service>;
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
  const config: Config = {
    ...base,
    apiPort: 0,
    gatewayPort: 0,
    // restClient sends it by default, so every test is an admin unless it says otherwise.
    adminToken: TEST_ADMIN_TOKEN,
    databaseUrl: await createScratchDatabase(base.databaseUrl, database),
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
      await dropScratchDatabase(base.databaseUrl, database);
    },
  };
}
