// One service with every role (the real gateway at the agent boundary) on a test file's own
// database and task queue, plus what gateway tests keep needing: an admin REST client, a Temporal
// client, enrollment, connected test agents.
import { Client, Connection } from "@temporalio/client";
import type { Config } from "../../../src/config.ts";
import type { Service } from "../../../src/service.ts";
import { createDb, type Db } from "../../../src/store/db.ts";
import { createTestContext, type TestContext } from "../../support/context.ts";
import { restClient } from "../../support/http.ts";
import { type ConnectOptions, type Enrollment, enrolled, TestAgent } from "./agent.ts";

export interface GatewayTestContext {
  ctx: TestContext;
  service: Service;
  gatewayUrl: string;
  rest: ReturnType<typeof restClient>;
  temporal: Client;
  db: Db;
  /** A new enrollment token (admin REST); options as POST /api/enrollment-tokens takes them. */
  enrollmentToken(options?: Record<string, unknown>): Promise<string>;
  /** Enrolls a new agent on a fresh token. */
  enroll(hostname: string, options?: Record<string, unknown>): Promise<Enrollment>;
  /** Enrolls and connects a new agent (hello sent, welcome received). */
  agent(hostname: string, options?: ConnectOptions): Promise<TestAgent & Enrollment>;
  cleanup(): Promise<void>;
}

export async function gatewayTestContext(
  name: string,
  overrides: Partial<Config> = {},
): Promise<GatewayTestContext> {
  const ctx = await createTestContext(name, {
    loadDefaults: false,
    logLevel: "warn",
    ...overrides,
  });
  const service = await ctx.start({});
  const rest = restClient(() => service.apiUrl);
  const connection = await Connection.connect({ address: ctx.config.temporal.address });
  const temporal = new Client({ connection, namespace: ctx.config.temporal.namespace });
  const db = createDb(ctx.config.databaseUrl, 2);
  const agents: TestAgent[] = [];
  const gatewayUrl = service.gatewayUrl as string;

  const enrollmentToken = async (options: Record<string, unknown> = {}) => {
    const res = await rest.post("/api/enrollment-tokens", options);
    if (res.status !== 201)
      throw new Error(`enrollment token: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.token as string;
  };
  const enroll = async (hostname: string, options: Record<string, unknown> = {}) =>
    enrolled(gatewayUrl, await enrollmentToken(options), hostname);

  return {
    ctx,
    service,
    gatewayUrl,
    rest,
    temporal,
    db,
    enrollmentToken,
    enroll,
    async agent(hostname, options = {}) {
      const enrollment = await enroll(hostname);
      const agent = await TestAgent.connect(gatewayUrl, enrollment.apiKey, hostname, options);
      agents.push(agent);
      return Object.assign(agent, enrollment);
    },
    async cleanup() {
      for (const agent of agents) await agent.close();
      await db.destroy();
      await connection.close();
      await ctx.cleanup();
    },
  };
}
