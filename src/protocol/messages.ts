// The agent protocol: every WebSocket frame between an endpoint agent and the gateway.
// The seed's frames (command, ack, completion, update_rules, alert) keep the seed's exact shapes and
// are told apart by their keys; frames the seed does not show carry a `type`.
// Objects are parsed leniently (unknown keys are dropped, not rejected) so either side can add
// fields without breaking the other.
import { z } from "zod";
import { AGENT_COMMANDS, type AgentCommand } from "../domain/model.ts";

// The commands are the engine's (mitigation steps name them); the protocol carries them.
export { AGENT_COMMANDS };
export type AgentCommandName = AgentCommand;

const timestamp = z.iso.datetime({ offset: true });
const sha256Hex = z.string().regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex digits");
const ip = z.union([z.ipv4(), z.ipv6()]);
const port = z.number().int().min(1).max(65535);
const pid = z.union([z.number().int().positive(), z.string().regex(/^[1-9][0-9]*$/)]);
const record = z.record(z.string(), z.unknown());

// --- gateway → agent -------------------------------------------------------------------------

export const Priority = z.enum(["critical", "high", "normal", "low"]);
export type Priority = z.infer<typeof Priority>;

// `command` stays an open string: a command this agent does not know (e.g. a Windows registry
// operation) must still reach it, so that it can answer with a failed completion.
export const Command = z.object({
  command: z.string().min(1),
  priority: Priority,
  id: z.string().min(1).describe("command id; an agent runs an id at most once"),
  details: record,
  expires_at: timestamp.optional().describe("the agent refuses the command after this time"),
  signature: z
    .string()
    .optional()
    .describe(
      "base64 Ed25519 signature by the service over the canonical JSON of agent_id, id, command, priority, details and expires_at",
    ),
  // Not signed: it decides nothing, it only lets the agent's own spans join the alert's trace.
  traceparent: z
    .string()
    .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/)
    .optional()
    .describe("W3C trace context of the gateway's send, when the service traces"),
});
export type Command = z.infer<typeof Command>;

// Rule checksums are only checked for the `sha256:` prefix here: the agent verifies the digest
// against the content and reports a mismatch per rule in `rules_status`, instead of rejecting the
// whole frame (the seed's own example carries an abbreviated digest).
export const RuleFile = z.object({
  name: z.string().min(1),
  content: z.string(),
  version: z.number().int().nonnegative(),
  checksum: z.string().regex(/^sha256:/, 'expected "sha256:<hex>"'),
});
export type RuleFile = z.infer<typeof RuleFile>;
export const RuleSetRef = z.object({
  name: z.string().min(1),
  version: z.number().int().nonnegative(),
});
export type RuleSetRef = z.infer<typeof RuleSetRef>;
// The seed's shape (operation + rules) stays valid; the service adds the rest. `complete` makes
// the files the agent's whole rule set (rules it holds that are not named are removed); without
// it the files are added to what the agent runs. The signature makes the frame the service's:
// checksums bind every file's content, issued_at orders frames (no replayed downgrade) and
// expires_at bounds how long a captured frame is worth anything.
export const UpdateRules = z.object({
  operation: z.literal("update_rules"),
  rules: z.array(RuleFile),
  rule_set: RuleSetRef.optional().describe("the rule set (and its version) these files make up"),
  complete: z
    .boolean()
    .optional()
    .describe("true: these files are the whole set; rules the agent holds beyond them are removed"),
  issued_at: timestamp.optional().describe("when the service issued the frame"),
  expires_at: timestamp.optional().describe("the agent refuses the frame after this time"),
  signature: z
    .string()
    .optional()
    .describe(
      "base64 Ed25519 signature by the service over the canonical JSON of agent_id, rule_set, complete, every file's name, version and checksum, issued_at and expires_at",
    ),
});
export type UpdateRules = z.infer<typeof UpdateRules>;

export const Welcome = z.object({
  type: z.literal("welcome"),
  agent_id: z.string().min(1),
  heartbeat_interval_ms: z.number().int().positive(),
  command_signing_key: z
    .string()
    .optional()
    .describe(
      "the service's public key (SPKI PEM); trust it only when enrollment gave none (first use)",
    ),
});
export type Welcome = z.infer<typeof Welcome>;

export const ErrorFrame = z.object({
  type: z.literal("error"),
  code: z.string(),
  message: z.string(),
  ref: z.string().optional().describe("the command id or message the error is about"),
});
export type ErrorFrame = z.infer<typeof ErrorFrame>;

export const AlertAck = z.object({
  type: z.literal("alert_ack"),
  seq: z.number().int().nonnegative(),
});
export type AlertAck = z.infer<typeof AlertAck>;

// --- agent → gateway -------------------------------------------------------------------------

export const Ack = z.object({
  command_id: z.string().min(1),
  status: z.literal("received"),
  timestamp,
});
export type Ack = z.infer<typeof Ack>;

const completionFields = {
  command_id: z.string().min(1),
  message: z.string(),
  details: record,
  timestamp,
};
// `status` and `success` always agree; the union makes a contradicting pair invalid.
export const Completion = z.discriminatedUnion("status", [
  z.object({ ...completionFields, status: z.literal("completed"), success: z.literal(true) }),
  z.object({ ...completionFields, status: z.literal("failed"), success: z.literal(false) }),
]);
export type Completion = z.infer<typeof Completion>;

export const AlertForward = z.object({
  alert: record,
  seq: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe("at-least-once delivery: the gateway answers alert_ack with this seq once stored"),
});
export type AlertForward = z.infer<typeof AlertForward>;

export const Hello = z.object({
  type: z.literal("hello"),
  hostname: z.string(),
  os: z.object({ platform: z.string(), release: z.string(), arch: z.string() }),
  ips: z.array(z.string()),
  agent_version: z.string(),
  fibratus_version: z.string().nullable(),
  external_ids: z.object({ wazuh_agent_id: z.string().optional() }),
  capabilities: z.array(z.string()),
  isolation: z.object({
    isolated: z.boolean(),
    since: timestamp.optional(),
    portal_ips: z.array(z.string()).optional(),
  }),
  rules: z.array(z.object({ name: z.string(), version: z.number().int(), checksum: z.string() })),
  simulation: z.boolean(),
  config: record.optional(),
});
export type Hello = z.infer<typeof Hello>;

export const Heartbeat = z.object({ type: z.literal("heartbeat"), timestamp });
export type Heartbeat = z.infer<typeof Heartbeat>;

export const RuleStatus = z.object({
  name: z.string(),
  version: z.number().int(),
  checksum: z.string(),
  status: z.enum(["applied", "failed"]),
  error: z.string().optional(),
});
export type RuleStatus = z.infer<typeof RuleStatus>;
export const RulesStatus = z.object({
  type: z.literal("rules_status"),
  rules: z.array(RuleStatus),
  rule_set: RuleSetRef.optional().describe("the rule set of the frame this answers"),
  complete: z
    .boolean()
    .optional()
    .describe("true when the applied rules are now the agent's whole set (others were removed)"),
  error: z
    .string()
    .optional()
    .describe("why the whole frame was refused (signature, expiry, replay) or not applied"),
  simulated: z.boolean().optional().describe("true when the agent runs in simulation mode"),
});
export type RulesStatus = z.infer<typeof RulesStatus>;

export type AgentMessage = Ack | Completion | AlertForward | Hello | Heartbeat | RulesStatus;
export type GatewayMessage = Command | UpdateRules | Welcome | ErrorFrame | AlertAck;

// --- command details (inside Command.details) and results (inside Completion.details) ----------

// An enforcement that ends by itself: the agent lifts it at that time, even while disconnected.
const expiry = {
  expires_at: timestamp.optional().describe("when the agent lifts this enforcement by itself"),
  duration_seconds: z
    .number()
    .int()
    .positive()
    .optional()
    .describe("how long the enforcement lasts (ignored when expires_at is given)"),
};

export const CommandDetails = {
  "isolate-host": z.object({
    reason: z.string().optional(),
    allow_portal_communication: z.boolean().default(true),
    allow_dns: z.boolean().default(false),
    dns_servers: z
      .array(ip)
      .optional()
      .describe(
        "with allow_dns, the only resolvers the host may reach (default: the agent's configured resolvers)",
      ),
    portal_ips: z.array(ip).default([]),
    portal_ports: z.array(port).default([]),
    ...expiry,
  }),
  "release-host": z.object({}),
  // A pid alone could name any process (pid reuse, a forged alert): the agent kills only a process
  // that also has the expected name or executable.
  "kill-process": z
    .object({
      pid,
      process_name: z.string().min(1).optional(),
      executable_sha256: sha256Hex
        .optional()
        .describe("sha256 of the process's executable (/proc/<pid>/exe)"),
    })
    .refine((d) => d.process_name !== undefined || d.executable_sha256 !== undefined, {
      path: ["process_name"],
      message: "required unless executable_sha256 is given",
    })
    .meta({ anyOf: [{ required: ["process_name"] }, { required: ["executable_sha256"] }] }),
  "delete-file": z.object({ path: z.string().min(1), sha256: sha256Hex.optional() }),
  "quarantine-file": z.object({ path: z.string().min(1), sha256: sha256Hex.optional() }),
  "block-ip": z.object({ ip, ...expiry }),
  "unblock-ip": z.object({ ip }),
} satisfies Record<AgentCommandName, z.ZodType>;
export type CommandDetails<C extends AgentCommandName> = z.output<(typeof CommandDetails)[C]>;

// Every result may also carry `simulated: true` (simulation mode).
export const CommandResults = {
  "isolate-host": z.object({
    firewall_rules_added: z.number().int(),
    execution_time_ms: z.number().int(),
    isolation_level: z.literal("full"),
    dns_servers: z.array(z.string()).optional(),
    expires_at: timestamp.optional(),
  }),
  "release-host": z.object({
    firewall_rules_removed: z.number().int(),
    execution_time_ms: z.number().int(),
  }),
  "kill-process": z.object({ pid: z.number().int(), killed: z.literal(true) }),
  "delete-file": z.object({ path: z.string(), sha256: sha256Hex, deleted: z.literal(true) }),
  "quarantine-file": z.object({ quarantine_path: z.string(), sha256: sha256Hex }),
  "block-ip": z.object({
    ip: z.string(),
    blocked: z.literal(true),
    expires_at: timestamp.optional(),
  }),
  "unblock-ip": z.object({ ip: z.string(), blocked: z.literal(false) }),
} satisfies Record<AgentCommandName, z.ZodType>;
export type CommandResult<C extends AgentCommandName> = z.output<(typeof CommandResults)[C]>;

// --- parsing ---------------------------------------------------------------------------------

export type ParseResult<M> =
  | { ok: true; message: M }
  | { ok: false; code: "invalid_json" | "unknown_message" | "invalid_message"; message: string };

/** Why a value does not match a schema, naming each offending field by its path. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "(root)"}: ${issue.message}`)
    .join("; ");
}

function parseWith<M>(
  text: string,
  pick: (frame: Record<string, unknown>) => { name: string; schema: z.ZodType<M> } | string,
): ParseResult<M> {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch (error) {
    return { ok: false, code: "invalid_json", message: (error as Error).message };
  }
  if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
    return { ok: false, code: "invalid_message", message: "(root): expected a JSON object" };
  }
  const picked = pick(frame as Record<string, unknown>);
  if (typeof picked === "string") return { ok: false, code: "unknown_message", message: picked };
  const result = picked.schema.safeParse(frame);
  if (result.success) return { ok: true, message: result.data };
  return {
    ok: false,
    code: "invalid_message",
    message: `${picked.name}: ${describeIssues(result.error)}`,
  };
}

const agentTyped = { hello: Hello, heartbeat: Heartbeat, rules_status: RulesStatus } as const;
const gatewayTyped = { welcome: Welcome, error: ErrorFrame, alert_ack: AlertAck } as const;

function byType<T extends Record<string, z.ZodType>>(table: T, type: unknown) {
  return typeof type === "string" && Object.hasOwn(table, type)
    ? { name: type, schema: table[type] as T[keyof T] }
    : `unknown message type ${JSON.stringify(type)}`;
}

/** Parses a frame sent by an agent (what the gateway receives). Never throws. */
export function parseAgentMessage(text: string): ParseResult<AgentMessage> {
  return parseWith<AgentMessage>(text, (frame) => {
    if ("type" in frame) return byType(agentTyped, frame.type);
    if ("command_id" in frame) {
      return frame.status === "received"
        ? { name: "ack", schema: Ack }
        : { name: "completion", schema: Completion };
    }
    if ("alert" in frame) return { name: "alert", schema: AlertForward };
    return "expected a frame with type, command_id or alert";
  });
}

/** Parses a frame sent by the gateway (what the agent receives). Never throws. */
export function parseGatewayMessage(text: string): ParseResult<GatewayMessage> {
  return parseWith<GatewayMessage>(text, (frame) => {
    if ("type" in frame) return byType(gatewayTyped, frame.type);
    if ("operation" in frame) {
      return frame.operation === "update_rules"
        ? { name: "update_rules", schema: UpdateRules }
        : `unknown operation ${JSON.stringify(frame.operation)}`;
    }
    if ("command" in frame) return { name: "command", schema: Command };
    return "expected a frame with type, operation or command";
  });
}
