// Catalog document types and the few constants every layer shares. Nothing here has a runtime
// dependency, so Temporal workflow code may import values from this module (catalog.ts pulls in
// zod and the CEL engine, which workflow code must not bundle).

/** A validation problem, with the path of the offending field (e.g. "rule.mitre.id[1]"). */
export interface FieldError {
  field: string;
  message: string;
}

/** ["nodes", 1, "next", 0] → "nodes[1].next[0]"; the document itself is "(root)". */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out || "(root)";
}

/** Schema issues (zod's, structurally) as field-named errors. */
export function fieldErrors(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): FieldError[] {
  return issues.map((issue) => ({ field: fieldPath(issue.path), message: issue.message }));
}

/** The seed allows `identifier` to be a string or an integer; documents keep it as given. */
export type Identifier = string | number;

/** Condition and mitigation arguments: arg name → path (or first present of several paths) into the alert. */
export type ArgSpec = Record<string, string | string[]>;

export const AGENT_COMMANDS = [
  "isolate-host",
  "release-host",
  "kill-process",
  "delete-file",
  "quarantine-file",
  "block-ip",
  "unblock-ip",
] as const;
export type AgentCommand = (typeof AGENT_COMMANDS)[number];

/** MITRE ATT&CK technique or sub-technique id, e.g. T1222 or T1222.002. */
export const TECHNIQUE_ID = /^T\d{4}(\.\d{3})?$/;

export interface Condition {
  identifier: Identifier;
  name: string;
  description?: string;
  params: Record<string, unknown>;
  args: ArgSpec;
  /** Cypher run in a READ session; null, absent or blank means no query (rows is then empty). */
  query?: string | null;
  /** CEL over params, args, alert and rows; must yield a bool. */
  check: string;
}

/**
 * A mitigation step that pushes detection rules to the alert's host or its group. The agent does
 * not run it as a command: it is delivered as update_rules (capability `update_rules`).
 * details: `{rule_set, version?, target?: "host" | "group"}`, or `{techniques: "alert"}` for the
 * rules whose labels name the alert's techniques (to the host).
 */
export const PUSH_RULES = "push-rules";
export const STEP_KINDS = [...AGENT_COMMANDS, PUSH_RULES] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface MitigationStep {
  agent: StepKind;
  details?: Record<string, unknown>;
}

/** A mitigation; the seed's REST calls it a "workflow". */
export interface Mitigation {
  identifier: Identifier;
  name: string;
  description?: string;
  /** Webhook (the seed's form): params ∪ args are POSTed to it. */
  url?: string;
  effective_attacks: string[];
  cost: number;
  params: Record<string, unknown>;
  args: ArgSpec;
  conditions?: Identifier[];
  steps?: MitigationStep[];
  /** Every run waits for a person's approval (approval gates, src/domain/approval.ts). */
  requires_approval?: boolean;
}

export interface AttackFlowNode {
  id: string;
  techniques: string[];
  conditions?: Identifier[];
  next?: string[];
  /** Run this node's mitigations as soon as a predecessor is reached, before its own alert arrives. */
  preemptive?: boolean;
}

export interface AttackFlow {
  identifier: Identifier;
  name: string;
  description?: string;
  nodes: AttackFlowNode[];
  start: string[];
}

/** The key under which a document is stored and looked up: 999 and "999" are the same document. */
export function identifierKey(id: Identifier): string {
  return String(id);
}
