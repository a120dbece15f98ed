// The agent gateway: its own port, HTTP or HTTPS (wss) when a certificate is configured.
//   POST /api/enroll   {token, hostname} → 201 {agent_id, api_key}
//   GET  /agent/ws     WebSocket upgrade with `Authorization: Bearer <api_key>` (401 before the upgrade)
import { readFile } from "node:fs/promises";
import type { Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { hostname as machineName } from "node:os";
import { serve } from "@hono/node-server";
import { createNodeWebSocket } from "@hono/node-ws";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Client } from "@temporalio/client";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { reportOutcome } from "../activities/agent-commands.ts";
import type { Config } from "../config.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import type { Logger } from "../log.ts";
import { describeIssues } from "../protocol/messages.ts";
import { bearerToken, newId } from "../secrets.ts";
import { type AgentCredentials, authenticateAgent } from "../store/agent-keys.ts";
import type { OutcomeToReport } from "../store/commands.ts";
import type { Db } from "../store/db.ts";
import { enroll } from "../store/enrollment-tokens.ts";
import { AgentSession, CLOSE } from "./session.ts";

// @hono/node-ws reports every socket error (an oversized or malformed frame, a reset) with
// `new ErrorEvent(…)`, a global Node 20 does not have: without this, one agent's bad frame would
// throw out of the socket's error handler and take the whole process down.
if (!("ErrorEvent" in globalThis)) {
  Object.defineProperty(globalThis, "ErrorEvent", {
    configurable: true,
    writable: true,
    value: class ErrorEvent extends Event {
      readonly error: unknown;
      readonly message: string;
      constructor(type: string, init: { error?: unknown; message?: string } = {}) {
        super(type);
        this.error = init.error;
        this.message = init.message ?? (init.error instanceof Error ? init.error.message : "");
      }
    },
  });
}

const HELLO_TIMEOUT_MS = 10_000;
const SWEEP_MS = 1_000;

const EnrollRequest = z.object({
  token: z.string().min(1).max(200),
  hostname: z.string().trim().min(1).max(253),
});

export interface GatewayDeps {
  db: Db;
  nc: NatsConnection;
  temporal: Client;
  intake: AlertIntake;
  log: Logger;
  config: Config;
}

export interface Gateway {
  /** http(s)://host:port: what agents are given as --gateway. */
  url: string;
  gatewayId: string;
  /** Live sessions by agent id. */
  sessions: ReadonlyMap<string, AgentSession>;
  close(): Promise<void>;
}

export async function startGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config, log } = deps;
  const gatewayId = newId(
    `gw_${
      machineName()
        .replace(/[^A-Za-z0-9]/g, "")
        .slice(0, 20) || "host"
    }`,
  );
  const sessions = new Map<string, AgentSession>();
  const opened = new Set<AgentSession>();

  const app = new Hono<{ Variables: { agent: AgentCredentials } }>();
  const nodeWs = createNodeWebSocket({ app });
  // An oversized frame closes the session (1009) before it is ever buffered whole.
  nodeWs.wss.options.maxPayload = config.gateway.maxFrameBytes;

  app.get("/health", (c) =>
    c.json({ status: "up", gateway_id: gatewayId, sessions: sessions.size }),
  );

  app.post(
    "/api/enroll",
    bodyLimit({
      maxSize: 16 * 1024,
      onError: (c) => c.json({ error: "request body too large" }, 413),
    }),
    async (c) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return c.json({ error: "the body must be JSON: {token, hostname}" }, 400);
      }
      const request = EnrollRequest.safeParse(body);
      if (!request.success)
        return c.json(
          { error: `invalid enrollment request: ${describeIssues(request.error)}` },
          400,
        );
      const enrolled = await enroll(deps.db, request.data);
      if (!enrolled)
        return c.json(
          { error: "the enrollment token is unknown, revoked, expired or used up" },
          401,
        );
      log.info("agent enrolled", { agent: enrolled.agentId, hostname: request.data.hostname });
      return c.json({ agent_id: enrolled.agentId, api_key: enrolled.apiKey }, 201);
    },
  );

  const report = (outcome: OutcomeToReport) => reportOutcome(deps, outcome);

  app.get(
    "/agent/ws",
    async (c, next) => {
      const key = bearerToken(c.req.header("authorization"));
      const agent = key ? await authenticateAgent(deps.db, key) : null;
      if (!agent)
        return c.json(
          { error: "a valid agent API key is required (Authorization: Bearer <api_key>)" },
          401,
        );
      c.set("agent", agent);
      await next();
    },
    nodeWs.upgradeWebSocket((c) => {
      const session = new AgentSession(c.get("agent"), {
        db: deps.db,
        nc: deps.nc,
        intake: deps.intake,
        log,
        gatewayId,
        heartbeatMs: config.gateway.heartbeatMs,
        maxBadFrames: config.gateway.maxBadFrames,
        sessions,
        report,
      });
      return {
        onOpen: (_event, ws) => {
          opened.add(session);
          if (ws.raw) session.open(ws.raw);
        },
        onMessage: (event) => session.message(event.data),
        onError: (event) => session.error((event as Event & { error?: unknown }).error),
        onClose: (event) => {
          opened.delete(session);
          void session.closed(event.code);
        },
      };
    }),
    (c) => c.json({ error: "this endpoint only speaks WebSocket" }, 426),
  );

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    log.error("gateway request failed", { path: c.req.path, error: err.message });
    return c.json({ error: "internal error" }, 500);
  });

  const tls = config.gateway.tls
    ? {
        cert: await readFile(config.gateway.tls.certFile),
        key: await readFile(config.gateway.tls.keyFile),
      }
    : undefined;
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        port: config.gatewayPort,
        hostname: config.host,
        ...(tls && { createServer: createHttpsServer, serverOptions: tls }),
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  nodeWs.injectWebSocket(server);
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `${tls ? "https" : "http"}://${host}:${port}`;

  // Sessions that never said hello, and agents whose heartbeats stopped, are let go.
  const silenceMs = config.gateway.heartbeatMs * config.gateway.missedHeartbeats;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const session of opened) {
      if (!session.isWelcomed && now - session.openedAt > HELLO_TIMEOUT_MS) {
        session.close(CLOSE.noHello, `no hello within ${HELLO_TIMEOUT_MS / 1000} s`);
      } else if (session.isWelcomed && now - session.lastFrameAt > silenceMs) {
        session.terminate(`no heartbeat for ${silenceMs} ms`);
      }
    }
  }, SWEEP_MS);

  return {
    url,
    gatewayId,
    sessions,
    async close() {
      clearInterval(sweep);
      const closing = [...opened];
      for (const session of closing) session.close(CLOSE.goingAway, "gateway shutting down");
      // Agents answer the close handshake at once; the ones that do not are cut after 2 s.
      const deadline = Date.now() + 3_000;
      while (opened.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      await Promise.all(closing.map((s) => s.closed(CLOSE.goingAway)));
      // Upgraded sockets are the sessions (closed above); this ends idle keep-alive connections.
      (server as HttpServer).closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
