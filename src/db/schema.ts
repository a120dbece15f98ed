import type { ColumnType, Generated, JSONColumnType } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface AlertsTable {
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
  run_id: string | null;
  flow_id: string | null;
  node_id: string | null;
  mitigation: string | null;
  kind: string;
  reason: string;
  details: JSONColumnType<Record<string, unknown>>;
  dedupe_key: string;
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

export interface Database {
  alerts: AlertsTable;
  catalog: CatalogTable;
  decisions: DecisionsTable;
  rejected_alerts: RejectedAlertsTable;
  meta: MetaTable;
}
