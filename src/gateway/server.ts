// The agent gateway: its own port, HTTP or HTTPS (wss) when a certificate is configured.
//   GET  /health       liveness only: nothing about the machine or its agents
//   GET  /metrics      Prometheus metrics, for a viewer's operator token (src/api/metrics.ts)
//   POST /api/enroll   {token, hostname} → 201 {agent_id, api_key, command_signing_key}
//   GET  /agent/ws     WebSocket upgrade with `Authorization: Bearer <api_key>` (401 before the upgrade)
//
// Anyone on the network reaches this port, so no client can take it down or hog it: every socket
// has an error handler from its accept on, headers and hello have a deadline, key checks in flight
// are bounded, and each session's queues are (session.ts).
import type { Server as HttpServer, IncomingMessage } from "node:http";
import { hostname as machineName } from "node:os";
import type { Duplex } from "node:stream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Client } from "@temporalio/client";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type WebSocket, WebSocketServer } from "ws";
import { z } from "zod";
import { reportOutcome } from "../activities/agent-commands.ts";
import { metricsApp } from "../api/metrics.ts";
import type { Config } from "../config.ts";
import type { AlertIntake } from "../ingest/intake.ts";
import { listen, refuse } from "../listen.ts";
import type { Logger } from "../log.ts";
import { describeIssues } from "../protocol/messages.ts";
import { bearerToken, newId } from "../secrets.ts";
import { type AgentCredentials, authenticateAgent } from "../store/agent-keys.ts";
import { touchSessions } from "../store/agents.ts";
import {
  claimForDelivery,
  type OutcomeToReport,
  recordAcks,
  recordCompletions,
} from "../store/commands.ts";
import type { Db } from "../store/db.ts";
import { enroll } from "../store/enrollment-tokens.ts";
import { Batcher } from "./batcher.ts";
import { AgentSession, CLOSE, type CommandWrites } from "./session.ts";
import { loadCommandSigningKey } from "./signing-key.ts";
import { DeliveryWindow } from "./window.ts";

const SWEEP_MS = 1_000;
/**
 * Commands, acks or completions written by one statement at most. A statement of 1,000 rows holds
 * the audit chain's lock for tens of milliseconds; larger ones only make the next wait longer.
 */
const MAX_WRITE_BATCH = 1_000;
const WS_PATH = "/agent/ws";

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
  const limits = config.gateway;
  const signingKey = await loadCommandSigningKey(config.commandSigningKeyFile);
  // Its path only: the key itself is never printed.
  if (signingKey.created)
    log.info("command signing key created", { file: config.commandSigningKeyFile });
  const sessions = new Map<string, AgentSession>();
  const opened = new Set<AgentSession>();

  const app = new Hono();
  // An oversized frame closes the session (1009) before it is ever buffered whole.
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: limits.maxFrameBytes,
  });

  app.get("/health", (c) => c.json({ status: "up" }));

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
      // Agents pin this key and refuse commands it did not sign. Learnt over the enrollment
      // request (https in production): the welcome frame repeats it only for agents enrolled
      // before commands were signed, which may trust it on first use.
      return c.json(
        {
          agent_id: enrolled.agentId,
          api_key: enrolled.apiKey,
          command_signing_key: signingKey.publicKeyPem,
        },
        201,
      );
    },
  );

  const report = (outcome: OutcomeToReport) => reportOutcome(deps, outcome);
  const writes: CommandWrites = {
    touch: new Batcher((sessions) => touchSessions(deps.db, sessions), MAX_WRITE_BATCH),
    claim: new Batcher((claims) => claimForDelivery(deps.db, gatewayId, claims), MAX_WRITE_BATCH),
    ack: new Batcher((acks) => recordAcks(deps.db, acks), MAX_WRITE_BATCH),
    complete: new Batcher((done) => recordCompletions(deps.db, done), MAX_WRITE_BATCH),
  };
  const window = new DeliveryWindow(limits.deliveryWindow);
  const sessionDeps = {
    db: deps.db,
    nc: deps.nc,
    intake: deps.intake,
    log,
    gatewayId,
    heartbeatMs: limits.heartbeatMs,
    limits,
    signingKey,
    sessions,
    report,
    writes,
    window,
  };

  const accept = (ws: WebSocket, agent: AgentCredentials) => {
    const session = new AgentSession(agent, sessionDeps);
    opened.add(session);
    session.open(ws);
    ws.on("message", (data, isBinary) => session.message(isBinary ? data : String(data)));
    ws.on("error", (err) => session.error(err));
    ws.on("close", (code) => {
      opened.delete(session);
      void session.closed(code);
    });
  };

  // Upgrades whose key is being checked; each holds a socket and waits on the database.
  const upgrading = new Set<Duplex>();
  const upgrade = async (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(request.url ?? "/", "http://gateway").pathname;
    if (path !== WS_PATH) return refuse(socket, 404);
    if (request.headers.upgrade?.toLowerCase() !== "websocket") return refuse(socket, 400);
    if (upgrading.size >= limits.maxPendingUpgrades) return refuse(socket, 503);
    upgrading.add(socket);
    // A lookup that hangs (the database away) does not hold the socket past the handshake.
    const deadline = setTimeout(() => socket.destroy(), limits.handshakeTimeoutMs);
    try {
      const key = bearerToken(request.headers.authorization);
      const agent = key ? await authenticateAgent(deps.db, key) : null;
      if (!agent) return refuse(socket, 401);
      // A client that reset while its key was checked is gone; ws drops a dead socket itself.
      wss.handleUpgrade(request, socket, head, (ws) => accept(ws, agent));
    } catch (err) {
      log.error("agent upgrade failed", { error: (err as Error).message });
      refuse(socket, 500);
    } finally {
      clearTimeout(deadline);
      upgrading.delete(socket);
    }
  };

  app.route("/", metricsApp(deps));

  // A plain GET of the WebSocket endpoint (an upgrade never reaches the app).
  app.get(WS_PATH, (c) => c.json({ error: "this endpoint only speaks WebSocket" }, 426));

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    log.error("gateway request failed", { path: c.req.path, error: err.message });
    return c.json({ error: "internal error" }, 500);
  });

  const { server, url } = await listen({
    fetch: app.fetch,
    host: config.host,
    port: config.gatewayPort,
    tls: config.gateway.tls,
    headersTimeoutMs: limits.handshakeTimeoutMs,
    log,
    name: "gateway",
  });
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    void upgrade(request, socket, head);
  });

  // Sessions that never said hello in time, and agents whose heartbeats stopped, are let go.
  const silenceMs = config.gateway.heartbeatMs * config.gateway.missedHeartbeats;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const session of opened) {
      session.releaseUnanswered(now);
      if (!session.isWelcomed && now - session.openedAt > limits.handshakeTimeoutMs) {
        session.close(CLOSE.noHello, `no hello within ${limits.handshakeTimeoutMs / 1000} s`);
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
      for (const socket of upgrading) socket.destroy();
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

/**
 * Answers an upgrade with a bare status and closes the connection; a client that keeps its side
 * open (the server allows half-open sockets) is cut a second later.
 */
