import { inject } from "vitest";
import type { AgentGateway } from "../../src/activities/agent-commands.ts";
import type { Config } from "../../src/config.ts";
import { ROLES, type Role, type Service, startService } from "../../src/service.ts";
import { createScratch } from "./scratch.ts";

export interface TestContext {
  /** Unique per test file: database, task queue, NATS subject/stream/consumer. */
  suffix: string;
  config: Config;
  /** A host name no other test uses, so incident workflow ids never collide. */
  host(label?: string): string;
  /** Without `agents`, agent commands go through the real gateway (PostgreSQL + NATS). */
  start(opts: {
    agents?: AgentGateway;
    roles?: readonly Role[];
    config?: Partial<Config>;
  }): Promise<Service>;
  cleanup(): Promise<void>;
}

/**
 * Gives a test file its own database (migrated by the service on start), Temporal task queue and
 * NATS stream, all on the shared local stack.
 */
export async function createTestContext(
  name: string,
  overrides: Partial<Config> = {},
): Promise<TestContext> {
  const { suffix, config, drop } = await createScratch(name, overrides);
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
      await drop();
    },
  };
}
