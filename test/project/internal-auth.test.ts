import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  connect,
  errors,
  type NatsConnection,
  type PermissionViolationError,
} from "@nats-io/transport-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { connectNatsAs } from "../../src/connections.ts";
import { ensureAlertStream } from "../../src/ingest/nats.ts";
import { connectPublisher, publishAlert } from "../support/nats.ts";

// The finding of issue 9: a local user reached NATS, PostgreSQL and the rest without credentials.
// These run against the stack scripts/stack.sh starts, with the passwords it keeps in .env.
const config = loadConfig();

/** Resolves with the server's refusal of `operation` on `subject` for this connection. */
async function refusal(
  nc: NatsConnection,
  operation: "publish" | "subscription",
  subject: string,
): Promise<PermissionViolationError> {
  for await (const s of nc.status()) {
    if (
      s.type === "error" &&
      s.error instanceof errors.PermissionViolationError &&
      s.error.operation === operation &&
      s.error.subject === subject
    )
      return s.error;
  }
  throw new Error("connection closed without a permission violation");
}

describe("NATS", () => {
  const agentId = `agt_${randomBytes(8).toString("hex")}`;
  const control = `mm.agent.${agentId}.control`;
  const subject = `${config.nats.alertSubject}.test_auth_${randomBytes(4).toString("hex")}`;
  const stream = { subject, stream: `T_auth_${agentId}`, consumer: `C_auth_${agentId}` };
  let publisher: NatsConnection;
  let gateway: NatsConnection;
  let ingest: NatsConnection;

  beforeAll(async () => {
    publisher = await connectPublisher();
    gateway = await connectNatsAs(config.nats, "gateway", { reconnect: false });
    ingest = await connectNatsAs(config.nats, "ingest", { reconnect: false });
    await ensureAlertStream(ingest, stream);
  });
  afterAll(async () => {
    await (await jetstreamManager(ingest)).streams.delete(stream.stream).catch(() => {});
    await Promise.all([publisher, gateway, ingest].map((nc) => nc?.close()));
  });

  const storedAlerts = async () =>
    (await (await jetstreamManager(ingest)).streams.info(stream.stream)).state.messages;

  it("refuses a connection without credentials", async () => {
    await expect(connect({ servers: config.nats.url, maxReconnectAttempts: 0 })).rejects.toThrow(
      /Authorization Violation/i,
    );
  });

  it("refuses a wrong password", async () => {
    await expect(
      connect({
        servers: config.nats.url,
        user: "ingest",
        pass: "not-the-password",
        maxReconnectAttempts: 0,
      }),
    ).rejects.toThrow(/Authorization Violation/i);
  });

  it("lets the alert publisher neither read nor forge the gateway's control messages", async () => {
    const sub = publisher.subscribe(control);
    await expect(sub.closed).resolves.toBeInstanceOf(errors.PermissionViolationError);

    const received: string[] = [];
    const listening = gateway.subscribe(`mm.agent.${agentId}.*`, {
      callback: (_err, m) => {
        received.push(m.string());
      },
    });
    await gateway.flush();
    const refused = refusal(publisher, "publish", control);
    publisher.publish(control, JSON.stringify({ action: "revoked" }));
    await refused;
    // The gateway's own control message arrives, and it alone: the forged one was never routed.
    gateway.publish(control, "from-the-gateway");
    await expect.poll(() => received, { timeout: 5_000 }).toEqual(["from-the-gateway"]);
    listening.unsubscribe();
  });

  it("takes alerts from the publisher but not from the gateway's user", async () => {
    const refused = refusal(gateway, "publish", subject);
    gateway.publish(subject, JSON.stringify({ forged: true }));
    await refused;
    await publishAlert(publisher, subject, { genuine: true });
    expect(await storedAlerts()).toBe(1);
  });
});

describe("PostgreSQL", () => {
  const query = async (url: string, sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  };

  it("refuses the service's role with a wrong password", async () => {
    const url = new URL(config.databaseUrl);
    url.password = "mm";
    await expect(query(url.toString(), "SELECT 1")).rejects.toThrow(
      /password authentication failed/,
    );
  });

  it("gives the service a role that is no superuser", async () => {
    const rows = await query(
      config.databaseUrl,
      "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    );
    expect(rows).toEqual([{ rolsuper: false, rolcreaterole: false }]);
  });
});
