import path from "node:path";
import { z } from "zod";
import { type GatePolicy, MODES } from "./domain/approval.ts";
import { allowEntryProblem } from "./domain/egress.ts";
import { LINK_LOCAL, LOOPBACK, parseCidr } from "./domain/protected-addresses.ts";

// Every setting comes from the environment and is documented in .env.example; the defaults match
// what scripts/stack.sh starts on loopback, so a fresh clone works with no .env at all.
const port = z.coerce.number().int().min(0).max(65535);
const positiveMs = z.coerce.number().int().positive();
const flag = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");
const httpUrl = z.url({ protocol: /^https?$/ });
// scripts/env.sh generates every password of the local stack (48 hex characters) into .env.
const secret = z.string().min(8, "must be at least 8 characters");
/** A comma-separated list, each item checked by `item`; empty means none. */
const list = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .string()
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(item));

const schema = z
  .object({
    MM_HOST: z.string().min(1).default("127.0.0.1"),
    MM_API_PORT: port.default(8333),
    MM_API_TLS_CERT: z.string().min(1).optional(),
    MM_API_TLS_KEY: z.string().min(1).optional(),
    MM_API_MAX_BODY_BYTES: z.coerce.number().int().min(1_024).default(1_048_576),
    MM_API_REQUESTS_PER_SECOND: z.coerce.number().positive().default(100),
    MM_API_REQUEST_BURST: z.coerce.number().int().min(1).default(500),
    MM_API_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
    // A rules folder uploaded as an archive (POST /api/rule): bounds against archive bombs.
    MM_RULE_ARCHIVE_MAX_BYTES: z.coerce.number().int().min(1_024).default(1_048_576),
    MM_RULE_ARCHIVE_MAX_ENTRIES: z.coerce.number().int().min(1).max(100_000).default(1_000),
    MM_RULE_ARCHIVE_MAX_TOTAL_BYTES: z.coerce.number().int().min(1_024).default(16_777_216),
    MM_RULE_ARCHIVE_MAX_FILE_BYTES: z.coerce.number().int().min(1_024).default(262_144),
    MM_GATEWAY_PORT: port.default(8334),
    // Unset: no listener of its own (the API and gateway serve /metrics on their ports).
    MM_METRICS_PORT: port.optional(),
    // Unset: Temporal's SDK metrics are not exported. host:port, loopback unless scraped from afar.
    MM_TEMPORAL_METRICS_ADDRESS: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):[0-9]{1,5}$/, "must be host:port, e.g. 127.0.0.1:9464")
      .optional(),
    // Unset: the local stack's cluster, reached with the MM_PG_* settings scripts/stack.sh uses.
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
    MM_PG_HOST: z.string().min(1).default("127.0.0.1"),
    MM_PG_PORT: port.default(5433),
    MM_PG_USER: z.string().min(1).default("mm"),
    MM_PG_PASSWORD: secret.optional(),
    MM_PG_DATABASE: z.string().min(1).default("mm"),
    MM_PG_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10),
    NATS_URL: z
      .string()
      .regex(/^nats:\/\/.+/, "must look like nats://host:port")
      .default("nats://127.0.0.1:4222"),
    MM_NATS_API_PASSWORD: secret.optional(),
    MM_NATS_WORKER_PASSWORD: secret.optional(),
    MM_NATS_INGEST_PASSWORD: secret.optional(),
    MM_NATS_GATEWAY_PASSWORD: secret.optional(),
    MM_ALERT_SUBJECT: z.string().min(1).default("alerts"),
    MM_ALERT_STREAM: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only")
      .default("ALERTS"),
    MM_ALERT_CONSUMER: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only")
      .default("mitigation-manager"),
    TEMPORAL_ADDRESS: z.string().min(1).default("127.0.0.1:7233"),
    TEMPORAL_NAMESPACE: z.string().min(1).default("default"),
    TEMPORAL_TLS_CERT: z.string().min(1).optional(),
    TEMPORAL_TLS_KEY: z.string().min(1).optional(),
    TEMPORAL_TLS_CA: z.string().min(1).optional(),
    MM_TASK_QUEUE: z.string().min(1).default("mitigation-manager"),
    // Worker tuning (README "Performance"): unset keeps the Temporal SDK's defaults.
    MM_WORKER_WORKFLOW_TASK_SLOTS: z.coerce.number().int().min(2).max(1_000).optional(),
    MM_WORKER_WORKFLOW_POLLERS: z.coerce.number().int().min(2).max(100).optional(),
    MM_WORKER_ACTIVITY_SLOTS: z.coerce.number().int().min(1).max(10_000).optional(),
    MM_WORKER_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).optional(),
    MM_WORKER_WORKFLOW_THREADS: z.coerce.number().int().min(1).max(16).optional(),
    NEO4J_URI: z
      .string()
      .regex(/^(bolt|neo4j)(\+s|\+ssc)?:\/\/.+/, "must be a bolt:// or neo4j:// URI")
      .default("bolt://127.0.0.1:7687"),
    NEO4J_USER: z.string().min(1).default("neo4j"),
    NEO4J_PASSWORD: secret.optional(),
    MM_QUERY_TIMEOUT_MS: positiveMs.default(5_000),
    MM_CHECK_BUDGET_MS: positiveMs.max(60_000).default(100),
    MM_INCIDENT_IDLE_MINUTES: z.coerce.number().positive().default(60),
    MM_WEBHOOK_TIMEOUT_MS: positiveMs.default(10_000),
    MM_FIREWALL_WEBHOOK_URL: httpUrl
      .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), "must not carry credentials (user:password@)")
      .default("http://127.0.0.1:8090/firewall/block"),
    MM_WEBHOOK_ALLOW: list(
      z.string().superRefine((entry, ctx) => {
        const problem = allowEntryProblem(entry);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      }),
    ).default([]),
    MM_LOAD_DEFAULTS: flag.default(true),
    MM_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
    // --- operator authentication and the agent gateway ---
    MM_ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
    MM_GATEWAY_TLS_CERT: z.string().min(1).optional(),
    MM_GATEWAY_TLS_KEY: z.string().min(1).optional(),
    MM_GATEWAY_HEARTBEAT_MS: positiveMs.min(1_000).default(30_000),
    MM_GATEWAY_MISSED_HEARTBEATS: z.coerce.number().int().min(1).default(3),
    MM_GATEWAY_MAX_FRAME_BYTES: z.coerce.number().int().min(1_024).default(1_048_576),
    MM_GATEWAY_MAX_BAD_FRAMES: z.coerce.number().int().min(1).default(10),
    MM_GATEWAY_FRAMES_PER_SECOND: z.coerce.number().positive().default(200),
    MM_GATEWAY_FRAME_BURST: z.coerce.number().int().min(1).default(1_000),
    MM_GATEWAY_MAX_QUEUED_FRAMES: z.coerce.number().int().min(1).default(1_000),
    MM_GATEWAY_MAX_BUFFERED_BYTES: z.coerce.number().int().min(1_024).default(4_194_304),
    MM_GATEWAY_HANDSHAKE_TIMEOUT_MS: positiveMs.min(100).default(10_000),
    MM_GATEWAY_MAX_PENDING_UPGRADES: z.coerce.number().int().min(1).default(256),
    MM_GATEWAY_DELIVERY_WINDOW: z.coerce.number().int().min(1).default(256),
    MM_DATA_DIR: z.string().min(1).default(".data"),
    MM_COMMAND_SIGNING_KEY_FILE: z.string().min(1).optional(),
    // Below the mitigation workflow's 10-minute activity limit, so expiry is what an engine command meets first.
    MM_COMMAND_TTL_SECONDS: z.coerce.number().int().positive().max(540).default(300),
    MM_PORTAL_IPS: list(z.union([z.ipv4(), z.ipv6()])).default([]),
    MM_PROTECTED_RANGES: list(
      z.string().refine(
        (v) => {
          try {
            parseCidr(v);
            return true;
          } catch {
            return false;
          }
        },
        { message: "must be an IP address or CIDR range" },
      ),
    ).default([]),
    MM_PORTAL_PORTS: list(
      z
        .string()
        .regex(/^[0-9]+$/, "must be a port number")
        .transform(Number)
        .pipe(z.number().int().min(1).max(65535)),
    ).default([]),
    // --- SIEM forwarding (src/siem/) ---
    MM_SIEM_SYSLOG_URL: z
      .string()
      .regex(
        /^(tcp|tls):\/\/[^/:@\s]+:[0-9]{1,5}$/,
        "must look like tcp://host:port or tls://host:port",
      )
      .optional(),
    MM_SIEM_NATS_SUBJECT: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "must be a NATS subject without wildcards")
      .optional(),
    MM_SIEM_QUEUE_MAX: z.coerce.number().int().min(1).default(100_000),
    // --- Operator console (console/, src/api/console.ts, src/api/session.ts) ---
    MM_CONSOLE_DIR: z.string().min(1).optional(),
    MM_CONSOLE_SESSION_TTL_SECONDS: z.coerce.number().int().min(1).max(604_800).default(28_800),
    MM_CONSOLE_SIGNINS_PER_MINUTE: z.coerce.number().int().min(1).default(10),
    MM_TEMPORAL_UI_URL: httpUrl.default("http://127.0.0.1:8233"),
    // --- Operating modes and approval gates (src/domain/approval.ts) ---
    MM_MODE: z.enum(MODES, { error: `must be one of ${MODES.join(", ")}` }).default("act"),
    MM_APPROVAL_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(604_800).default(3_600),
    MM_APPROVAL_ON_TIMEOUT: z
      .enum(["approve", "deny"], { error: "must be approve or deny" })
      .default("deny"),
    MM_APPROVAL_CRITICAL_LABELS: list(
      z
        .string()
        .regex(/^[^=\s]+=[^=\s]+$/, "must be key=value")
        .transform((v) => {
          const [key = "", value = ""] = v.split("=");
          return { key, value };
        }),
    ).default([{ key: "criticality", value: "critical" }]),
    MM_APPROVAL_ISOLATION_LIMIT: z.coerce.number().int().min(0).default(10),
    MM_APPROVAL_ISOLATION_WINDOW_MINUTES: z.coerce.number().int().min(1).max(10_080).default(10),
  })
  .refine(
    (env) => (env.MM_GATEWAY_TLS_CERT === undefined) === (env.MM_GATEWAY_TLS_KEY === undefined),
    {
      message: "MM_GATEWAY_TLS_CERT and MM_GATEWAY_TLS_KEY are set together or not at all",
      path: ["MM_GATEWAY_TLS_CERT"],
    },
  )
  .refine((env) => (env.MM_API_TLS_CERT === undefined) === (env.MM_API_TLS_KEY === undefined), {
    message: "MM_API_TLS_CERT and MM_API_TLS_KEY are set together or not at all",
    path: ["MM_API_TLS_CERT"],
  })
  .refine(
    (env) =>
      env.MM_WORKER_WORKFLOW_POLLERS === undefined ||
      env.MM_WORKER_WORKFLOW_POLLERS <= (env.MM_WORKER_WORKFLOW_TASK_SLOTS ?? 40),
    {
      message: "MM_WORKER_WORKFLOW_POLLERS cannot exceed the workflow task slots (default 40)",
      path: ["MM_WORKER_WORKFLOW_POLLERS"],
    },
  )
  .refine((env) => (env.TEMPORAL_TLS_CERT === undefined) === (env.TEMPORAL_TLS_KEY === undefined), {
    message: "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY are set together or not at all",
    path: ["TEMPORAL_TLS_CERT"],
  });

/** The service's processes connect to NATS as one user per role, each allowed only its subjects. */
export const NATS_USERS = ["api", "worker", "ingest", "gateway"] as const;
export type NatsUser = (typeof NATS_USERS)[number];

export type Config = ReturnType<typeof toConfig>;

function toConfig(env: z.infer<typeof schema>) {
  return {
    host: env.MM_HOST,
    apiPort: env.MM_API_PORT,
    api: {
      /** PEM files: the REST API serves https. */
      tls:
        env.MM_API_TLS_CERT && env.MM_API_TLS_KEY
          ? { certFile: env.MM_API_TLS_CERT, keyFile: env.MM_API_TLS_KEY }
          : undefined,
      maxBodyBytes: env.MM_API_MAX_BODY_BYTES,
      /** Per operator token, and per client address for requests without a valid token. */
      rateLimit: { perSecond: env.MM_API_REQUESTS_PER_SECOND, burst: env.MM_API_REQUEST_BURST },
      headersTimeoutMs: env.MM_API_HEADERS_TIMEOUT_MS,
    },
    console: {
      /** The built console (npm run build): console/dist beside src/, or dist/console/dist. */
      dir: env.MM_CONSOLE_DIR ?? path.resolve(import.meta.dirname, "../console/dist"),
      sessionTtlSeconds: env.MM_CONSOLE_SESSION_TTL_SECONDS,
      /** Sign-in attempts per client address (the burst is as many). */
      signInsPerMinute: env.MM_CONSOLE_SIGNINS_PER_MINUTE,
      /** The Temporal Web UI, where the console links each workflow. */
      temporalUiUrl: env.MM_TEMPORAL_UI_URL.replace(/\/+$/, ""),
    },
    rules: {
      archive: {
        maxArchiveBytes: env.MM_RULE_ARCHIVE_MAX_BYTES,
        maxEntries: env.MM_RULE_ARCHIVE_MAX_ENTRIES,
        maxTotalBytes: env.MM_RULE_ARCHIVE_MAX_TOTAL_BYTES,
        maxFileBytes: env.MM_RULE_ARCHIVE_MAX_FILE_BYTES,
      },
    },
    gatewayPort: env.MM_GATEWAY_PORT,
    /** A listener serving only GET /metrics: for worker- or ingest-only processes. */
    metricsPort: env.MM_METRICS_PORT,
    /** Where the Temporal SDK's own Prometheus endpoint binds (worker role). */
    temporalMetricsAddress: env.MM_TEMPORAL_METRICS_ADDRESS,
    databaseUrl: env.DATABASE_URL ?? localDatabaseUrl(env),
    /** PostgreSQL connections per process: a busy gateway completes more commands with more. */
    databasePoolSize: env.MM_PG_POOL_SIZE,
    nats: {
      url: env.NATS_URL,
      alertSubject: env.MM_ALERT_SUBJECT,
      alertStream: env.MM_ALERT_STREAM,
      alertConsumer: env.MM_ALERT_CONSUMER,
      passwords: {
        api: env.MM_NATS_API_PASSWORD,
        worker: env.MM_NATS_WORKER_PASSWORD,
        ingest: env.MM_NATS_INGEST_PASSWORD,
        gateway: env.MM_NATS_GATEWAY_PASSWORD,
      } satisfies Record<NatsUser, string | undefined>,
    },
    temporal: {
      address: env.TEMPORAL_ADDRESS,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: env.MM_TASK_QUEUE,
      /** Worker options; an absent one is the SDK's default. */
      worker: {
        maxConcurrentWorkflowTaskExecutions: env.MM_WORKER_WORKFLOW_TASK_SLOTS,
        maxConcurrentWorkflowTaskPolls: env.MM_WORKER_WORKFLOW_POLLERS,
        maxConcurrentActivityTaskExecutions: env.MM_WORKER_ACTIVITY_SLOTS,
        maxCachedWorkflows: env.MM_WORKER_CACHED_WORKFLOWS,
        workflowThreadPoolSize: env.MM_WORKER_WORKFLOW_THREADS,
      },
      /** TLS (mTLS with a client certificate) to the frontend; unset: plain, as to the loopback dev server. */
      tls:
        env.TEMPORAL_TLS_CERT || env.TEMPORAL_TLS_CA
          ? {
              certFile: env.TEMPORAL_TLS_CERT,
              keyFile: env.TEMPORAL_TLS_KEY,
              caFile: env.TEMPORAL_TLS_CA,
            }
          : undefined,
    },
    neo4j: {
      uri: env.NEO4J_URI,
      user: env.NEO4J_USER,
      password: env.NEO4J_PASSWORD,
      queryTimeoutMs: env.MM_QUERY_TIMEOUT_MS,
    },
    /** Time one CEL check may take; beyond it the condition does not hold (check-budget.ts). */
    checkBudgetMs: env.MM_CHECK_BUDGET_MS,
    incidentIdleMs: Math.round(env.MM_INCIDENT_IDLE_MINUTES * 60_000),
    webhookTimeoutMs: env.MM_WEBHOOK_TIMEOUT_MS,
    firewallWebhookUrl: env.MM_FIREWALL_WEBHOOK_URL,
    /** Hosts, addresses and CIDR ranges webhooks may go to besides the firewall's (egress.ts). */
    webhookAllow: env.MM_WEBHOOK_ALLOW,
    loadDefaults: env.MM_LOAD_DEFAULTS,
    logLevel: env.MM_LOG_LEVEL,
    /** The first admin's bearer token; further operator tokens are created through the API. */
    adminToken: env.MM_ADMIN_TOKEN,
    gateway: {
      tls:
        env.MM_GATEWAY_TLS_CERT && env.MM_GATEWAY_TLS_KEY
          ? { certFile: env.MM_GATEWAY_TLS_CERT, keyFile: env.MM_GATEWAY_TLS_KEY }
          : undefined,
      heartbeatMs: env.MM_GATEWAY_HEARTBEAT_MS,
      missedHeartbeats: env.MM_GATEWAY_MISSED_HEARTBEATS,
      maxFrameBytes: env.MM_GATEWAY_MAX_FRAME_BYTES,
      maxBadFrames: env.MM_GATEWAY_MAX_BAD_FRAMES,
      /** Token bucket of one session's inbound frames: the sustained rate and the burst above it. */
      framesPerSecond: env.MM_GATEWAY_FRAMES_PER_SECOND,
      frameBurst: env.MM_GATEWAY_FRAME_BURST,
      /** Frames of one session received but not yet handled, alerts and the others each. */
      maxQueuedFrames: env.MM_GATEWAY_MAX_QUEUED_FRAMES,
      /** Bytes waiting in one session's socket above which no more commands are claimed for it. */
      maxBufferedBytes: env.MM_GATEWAY_MAX_BUFFERED_BYTES,
      /** From TCP accept to the request headers, and from the upgrade to hello. */
      handshakeTimeoutMs: env.MM_GATEWAY_HANDSHAKE_TIMEOUT_MS,
      /** Upgrades whose API key is still being checked. */
      maxPendingUpgrades: env.MM_GATEWAY_MAX_PENDING_UPGRADES,
      /** Commands sent and not yet completed, across the gateway's sessions (window.ts). */
      deliveryWindow: env.MM_GATEWAY_DELIVERY_WINDOW,
    },
    /** The service's Ed25519 command signing key (PKCS#8 PEM), created on first start. */
    commandSigningKeyFile: path.resolve(
      env.MM_COMMAND_SIGNING_KEY_FILE ?? path.join(env.MM_DATA_DIR, "secrets/command-signing.pem"),
    ),
    commands: {
      ttlMs: env.MM_COMMAND_TTL_SECONDS * 1_000,
      portalIps: env.MM_PORTAL_IPS,
      portalPorts: env.MM_PORTAL_PORTS,
    },
    siem: {
      /** RFC 5424 syslog over TCP or TLS, octet-counted (RFC 6587), a JSON payload per event. */
      syslogUrl: env.MM_SIEM_SYSLOG_URL,
      /** Events are published on `<subject>.<kind>`. */
      natsSubject: env.MM_SIEM_NATS_SUBJECT,
      /** Unsent events kept per sink; beyond it the oldest are dropped and counted. */
      queueMax: env.MM_SIEM_QUEUE_MAX,
    },
    approvals: {
      /** The global mode until an operator sets one (PUT /api/modes/global). */
      mode: env.MM_MODE,
      /** How long a held mitigation waits for a person, and what happens then. */
      timeoutMs: env.MM_APPROVAL_TIMEOUT_SECONDS * 1_000,
      onTimeout: env.MM_APPROVAL_ON_TIMEOUT,
      policy: {
        criticalLabels: env.MM_APPROVAL_CRITICAL_LABELS,
        isolationLimit: env.MM_APPROVAL_ISOLATION_LIMIT,
        isolationWindowMinutes: env.MM_APPROVAL_ISOLATION_WINDOW_MINUTES,
      } satisfies GatePolicy,
    },
    /** Addresses no mitigation may block: the engine skips such a step, the agent refuses it too. */
    protectedAddresses: [
      ...LOOPBACK,
      ...LINK_LOCAL,
      ...env.MM_PORTAL_IPS.map((ip) => ({ range: ip, reason: "the portal (MM_PORTAL_IPS)" })),
      ...env.MM_PROTECTED_RANGES.map((range) => ({
        range,
        reason: "a protected range (MM_PROTECTED_RANGES)",
      })),
    ],
  };
}

function localDatabaseUrl(env: z.infer<typeof schema>): string {
  const url = new URL(`postgres://${env.MM_PG_HOST}:${env.MM_PG_PORT}`);
  url.username = env.MM_PG_USER;
  url.password = env.MM_PG_PASSWORD ?? "";
  url.pathname = `/${env.MM_PG_DATABASE}`;
  return url.toString();
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads and validates the configuration; every invalid variable is named in one error. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as in most .env files.
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return toConfig(parsed.data);
}
