import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { Client, Connection } from "@temporalio/client";
import pg from "pg";
import { type Config, loadConfig } from "../../src/config.ts";
import { connectNatsAs, temporalConnection } from "../../src/connections.ts";
import { TEST_ADMIN_TOKEN } from "./http.ts";

export interface Scratch {
  /** Unique: names the database, task queue and NATS subject/stream/consumer. */
  suffix: string;
  config: Config;
  /** Ends its running workflows, drops the database and the NATS stream. */
  drop(): Promise<void>;
}

/**
 * A configuration of its own on the shared local stack (tests, benchmarks, recordings): an empty
 * database, a task queue and a NATS stream nobody else uses, and the test admin token.
 */
export async function createScratch(
  name: string,
  overrides: Partial<Config> = {},
): Promise<Scratch> {
  const base = loadConfig();
  const suffix = `${name.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${randomBytes(4).toString("hex")}`;
  const database = `mm_test_${suffix}`;
  await adminQuery(base.databaseUrl, `CREATE DATABASE ${database}`);
  const url = new URL(base.databaseUrl);
  url.pathname = `/${database}`;
  const config: Config = {
    ...base,
    apiPort: 0,
    gatewayPort: 0,
    // restClient sends it by default, so every test is an admin unless it says otherwise.
    adminToken: TEST_ADMIN_TOKEN,
    databaseUrl: url.toString(),
    // Tests' webhook receivers listen on loopback, which the egress policy allows only when named.
    webhookAllow: ["127.0.0.1"],
    temporal: { ...base.temporal, taskQueue: `test-${suffix}` },
    nats: {
      ...base.nats,
      // Below the alert subject: the NATS user of Wazuh (and of the tests) may publish there only.
      alertSubject: `${base.nats.alertSubject}.test_${suffix}`,
      alertStream: `T_${suffix}`,
      alertConsumer: `C_${suffix}`,
    },
    ...overrides,
  };
  return {
    suffix,
    config,
    async drop() {
      // Incidents wait an idle hour: end this scratch's workflows so the dev server stays light.
      const connection = await Connection.connect(temporalConnection(config.temporal));
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const query = `TaskQueue = '${config.temporal.taskQueue}' AND ExecutionStatus = 'Running'`;
      for await (const wf of client.workflow.list({ query })) {
        await client.workflow
          .getHandle(wf.workflowId, wf.runId)
          .terminate("test finished")
          .catch(() => {});
      }
      await connection.close();
      // The ingest role creates the alert streams, and may delete them.
      const nc = await connectNatsAs(config.nats, "ingest", { reconnect: false });
      await (await jetstreamManager(nc)).streams.delete(config.nats.alertStream).catch(() => {});
      await nc.close();
      await dropDatabase(base.databaseUrl, database);
    },
  };
}

/**
 * FORCE ends the test's own connections, but not an autovacuum worker busy in the database (a
 * process of no role the test may signal: "must be a member of the role whose process is being
 * terminated"); it finishes within moments, so the drop is tried again.
 */
async function dropDatabase(baseUrl: string, database: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await adminQuery(baseUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    } catch (err) {
      if ((err as { code?: string }).code !== "42501" || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function adminQuery(baseUrl: string, sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}
