import type { ColumnType, Generated, JSONColumnType } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface AlertsTable {
  /** The alert as this service refers to it: unique, unlike the id its source chose. */
  key: string;
  id: string;
  received_at: Timestamp;
  time: ColumnType<Date, Date | string, Date | string>;
  host: string;
  agent_id: string | null;
  host_ip: string | null;
  rule_id: string;
  rule_level: number;
  severity: string;
  techniques: string[];
  tactics: string[];
  format: string;
  source: "rest" | "nats" | "agent";
  raw: JSONColumnType<Record<string, unknown>>;
  incident_id: string;
  handed_off_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export type CatalogKind = "condition" | "mitigation" | "attack_flow";

export interface CatalogTable {
  kind: CatalogKind;
  key: string;
  document: JSONColumnType<Record<string, unknown>>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface DecisionsTable {
  id: Generated<string>;
  at: Timestamp;
  incident_id: string;
  alert_id: string | null;
  workflow_id: string | null;
  flow_id: string | null;
  node_id: string | null;
  mitigation: string | null;
  kind: string;
  reason: string;
  details: JSONColumnType<Record<string, unknown>>;
  dedupe_key: string;
}

/** migrations/0011: which mitigation run of an alert owns each mitigation it chose. */
export interface MitigationClaimsTable {
  alert_key: string;
  mitigation: string;
  workflow_id: string;
  claimed_at: Timestamp;
}

/** A mitigation held for a person (migrations/0012_approvals_and_modes.ts). */
export interface ApprovalsTable {
  id: string;
  status: ColumnType<ApprovalStatus, ApprovalStatus | undefined, ApprovalStatus>;
  incident_id: string;
  workflow_id: string;
  alert_id: string | null;
  host: string;
  agent_id: string | null;
  mitigation: string;
  mitigation_name: string;
  steps: JSONColumnType<unknown[], string, string>;
  reasons: JSONColumnType<string[], string, string>;
  on_timeout: "approve" | "deny";
  requested_at: Timestamp;
  deadline: Timestamp;
  decided_by: string | null;
  decided_at: NullableTimestamp;
  comment: string | null;
}

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired";

/** `global` or `group:<name>`. */
export interface OperatingModesTable {
  scope: string;
  mode: "act" | "approve" | "observe";
  updated_by: string;
  updated_at: Timestamp;
}

export interface IsolationAdmissionsTable {
  attempt: string;
  agent_id: string;
  admitted_at: Timestamp;
}

export interface RejectedAlertsTable {
  id: Generated<string>;
  received_at: Timestamp;
  source: string;
  payload: string;
  errors: JSONColumnType<unknown[]>;
}

export interface MetaTable {
  key: string;
  value: ColumnType<unknown, string, string>;
}

// --- agent gateway (migrations/0002_gateway.ts) ----------------------------------------------

type NullableJson<T extends object> = JSONColumnType<
  T | null,
  string | null | undefined,
  string | null
>;
type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;

export interface EnrollmentTokensTable {
  id: string;
  token_hash: string;
  prefix: string;
  group: string | null;
  description: string | null;
  max_uses: number;
  uses: Generated<number>;
  expires_at: Timestamp;
  created_at: Timestamp;
  created_by: string;
  revoked_at: NullableTimestamp;
}

export interface AgentIsolation {
  isolated: boolean;
  since?: string;
  portal_ips?: string[];
  /** Set by the isolation workflow: why and by whom, and the workflow holding it. */
  reason?: string;
  workflow_id?: string;
}

export interface AgentsTable {
  id: string;
  hostname: string;
  os: NullableJson<{ platform: string; release: string; arch: string }>;
  ips: ColumnType<string[], string[] | undefined, string[]>;
  agent_version: string | null;
  fibratus_version: string | null;
  external_ids: JSONColumnType<Record<string, string>, string | undefined, string>;
  wazuh_agent_id: string | null;
  identity_hostname: string;
  identity_wazuh_agent_id: string | null;
  identity_ips: ColumnType<string[], string[] | undefined, string[]>;
  identity_bound_at: NullableTimestamp;
  identity_mismatch: Generated<boolean>;
  capabilities: ColumnType<string[], string[] | undefined, string[]>;
  groups: ColumnType<string[], string[] | undefined, string[]>;
  labels: JSONColumnType<Record<string, string>, string | undefined, string>;
  isolation: JSONColumnType<AgentIsolation, string | undefined, string>;
  rules: JSONColumnType<unknown[], string | undefined, string>;
  rules_status: NullableJson<Record<string, unknown>>;
  config: NullableJson<Record<string, unknown>>;
  simulation: Generated<boolean>;
  enrolled_at: Timestamp;
  enrollment_token_id: string | null;
  last_seen_at: NullableTimestamp;
  connected_at: NullableTimestamp;
  disconnected_at: NullableTimestamp;
  session_id: string | null;
  gateway_id: string | null;
}

export interface AgentKeysTable {
  id: string;
  agent_id: string;
  key_hash: string;
  prefix: string;
  created_at: Timestamp;
  created_by: string;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

export type OperatorRole = "viewer" | "responder" | "admin" | "ingest";

export interface OperatorTokensTable {
  id: string;
  name: string;
  role: OperatorRole;
  token_hash: string;
  prefix: string;
  created_at: Timestamp;
  created_by: string;
  expires_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

/** Console sessions (migrations/0009_console_sessions.ts); the id itself is only in the cookie. */
export interface OperatorSessionsTable {
  id_hash: string;
  /** The SHA-256 of the operator token (or MM_ADMIN_TOKEN) the session was opened with. */
  token_hash: string;
  actor: string;
  role: OperatorRole;
  created_at: Generated<Date>;
  expires_at: Date;
}

export type CommandStatus =
  | "pending"
  | "delivered"
  | "acknowledged"
  | "completed"
  | "failed"
  | "expired";

export interface CommandOutcome {
  success: boolean;
  message: string;
  details: Record<string, unknown>;
  /** The agent's completion timestamp; absent when the gateway decided (expiry). */
  timestamp?: string;
}

export interface CommandsTable {
  id: string;
  agent_id: string;
  command: string;
  priority: "critical" | "high" | "normal" | "low";
  details: JSONColumnType<Record<string, unknown>>;
  status: CommandStatus;
  origin: "engine" | "operator";
  requested_by: string;
  workflow_id: string | null;
  created_at: Timestamp;
  expires_at: ColumnType<Date, Date | string, Date | string>;
  delivered_at: NullableTimestamp;
  delivery_count: Generated<number>;
  session_id: string | null;
  gateway_id: string | null;
  acknowledged_at: NullableTimestamp;
  completed_at: NullableTimestamp;
  result: NullableJson<CommandOutcome>;
  task_tokens: ColumnType<Buffer[], Buffer[] | undefined, Buffer[]>;
  reported_at: NullableTimestamp;
  /** Set by migrations/0007: the issuing activity's W3C trace context, when tracing is on. */
  traceparent: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface AuditLogTable {
  id: Generated<string>;
  at: Timestamp;
  actor: string;
  action: string;
  agent_id: string | null;
  command_id: string | null;
  details: JSONColumnType<Record<string, unknown>>;
  /** Set by the database (migrations/0004_audit_chain.ts): the previous row's hash, and this one's. */
  prev_hash: Generated<string>;
  hash: Generated<string>;
}

export interface RuleVersionsTable {
  id: string;
  version: string;
  name: string;
  content: string;
  sha256: string;
  document: JSONColumnType<Record<string, unknown>>;
  created_at: Timestamp;
  created_by: string;
}

export interface RulesTable {
  id: string;
  name: string;
  version: string;
  description: ColumnType<string, string | undefined, string>;
  techniques: ColumnType<string[], string[] | undefined, string[]>;
  tactics: ColumnType<string[], string[] | undefined, string[]>;
  updated_at: Timestamp;
}

export interface RuleMacrosTable {
  version: Generated<number>;
  content: string;
  sha256: string;
  names: string[];
  created_at: Timestamp;
  created_by: string;
}

export interface RuleSetsTable {
  name: string;
  version: number;
  rules: JSONColumnType<{ id: string; version: string }[]>;
  macros_version: number | null;
  created_at: Timestamp;
  created_by: string;
}

export interface RuleSetAssignmentsTable {
  group: string;
  rule_set: string;
  version: number;
  assigned_at: Timestamp;
}

export interface Database {
  alerts: AlertsTable;
  catalog: CatalogTable;
  decisions: DecisionsTable;
  mitigation_claims: MitigationClaimsTable;
  approvals: ApprovalsTable;
  operating_modes: OperatingModesTable;
  isolation_admissions: IsolationAdmissionsTable;
  rejected_alerts: RejectedAlertsTable;
  meta: MetaTable;
  enrollment_tokens: EnrollmentTokensTable;
  agents: AgentsTable;
  agent_keys: AgentKeysTable;
  operator_tokens: OperatorTokensTable;
  operator_sessions: OperatorSessionsTable;
  commands: CommandsTable;
  audit_log: AuditLogTable;
  siem_sinks: SiemSinksTable;
  siem_outbox: SiemOutboxTable;
  rule_versions: RuleVersionsTable;
  rules: RulesTable;
  rule_macros: RuleMacrosTable;
  rule_sets: RuleSetsTable;
  rule_set_assignments: RuleSetAssignmentsTable;
}

/** SIEM forwarding (migrations/0007_siem_outbox_and_tracing.ts): one row per configured sink. */
export interface SiemSinksTable {
  name: string;
  registered_at: Timestamp;
  sent: Generated<string>;
  dropped: Generated<string>;
}

/** Events waiting for (or sent to) a sink; written by triggers, never by the service's code. */
export interface SiemOutboxTable {
  id: Generated<string>;
  sink: string;
  host: string;
  kind: string;
  event: JSONColumnType<Record<string, unknown>>;
  created_at: Timestamp;
  sent_at: NullableTimestamp;
  attempts: Generated<number>;
}
