// What the chaos run counts, from the records themselves: the alerts table, the decisions table,
// the commands table and the agents' own event logs (fleet.ts), never from the service's view of
// itself.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { sql } from "kysely";
import type { Db } from "../../src/store/db.ts";
import { actionOf } from "./scenario.ts";

/** The decisions that end a mitigation run: one per reached node, ever. */
const FINAL = ["mitigation_succeeded", "no_mitigation"];

export interface Snapshot {
  /** Alert id → rows stored under it. */
  stored: Map<string, number>;
  /** Alert ids whose stored row was never handed to its incident workflow. */
  notHandedOff: Set<string>;
  /** "<alert id> <flow>.<node>" → its final decisions. */
  finals: Map<string, { kind: string; at: Date; workflowId: string | null }[]>;
  /** Alert id → its (mitigation run, candidate) pairs recorded both as skipped and as chosen. */
  contradictions: Map<string, number>;
  /** Alert id → its condition_error decisions (a node judged while its dependency was down). */
  conditionErrors: Map<string, number>;
  /** When each of the run's commands not yet completed, failed or expired was issued. */
  openCommands: Date[];
  /** Alert id → its latest decision, "kind: reason" (evidence for what is undecided). */
  latest: Map<string, string>;
  /** Command id → the action it takes. */
  actions: Map<string, string>;
}

export async function snapshot(db: Db, run: string, since: Date): Promise<Snapshot> {
  const prefix = `chaos-${run}-a%`;
  const alerts = await sql<{ id: string; n: number; pending: number }>`
    SELECT id, count(*)::int AS n, count(*) FILTER (WHERE handed_off_at IS NULL)::int AS pending
    FROM alerts WHERE id LIKE ${prefix} GROUP BY id`.execute(db);
  const decisions = await sql<{
    alert: string;
    flow_id: string | null;
    node_id: string | null;
    kind: string;
    reason: string;
    mitigation: string | null;
    workflow_id: string | null;
    at: Date;
  }>`
    SELECT al.id AS alert, d.flow_id, d.node_id, d.kind, d.reason, d.mitigation, d.workflow_id, d.at
    FROM decisions d JOIN alerts al ON al.key = d.alert_id
    WHERE al.id LIKE ${prefix} ORDER BY d.id`.execute(db);
  const commands = await sql<{
    id: string;
    command: string;
    details: unknown;
    status: string;
    created_at: Date;
  }>`
    SELECT id, command, details, status, created_at FROM commands WHERE created_at >= ${since}`.execute(
    db,
  );

  const finals: Snapshot["finals"] = new Map();
  const chosen = new Set<string>();
  const skipped = new Set<string>();
  const conditionErrors = new Map<string, number>();
  const latest = new Map<string, string>();
  for (const d of decisions.rows) {
    latest.set(d.alert, `${d.kind}: ${d.reason}`.slice(0, 200));
    if (d.kind === "condition_error")
      conditionErrors.set(d.alert, (conditionErrors.get(d.alert) ?? 0) + 1);
    const candidate = `${d.alert}\n${d.workflow_id} ${d.mitigation}`;
    if (d.kind === "mitigation_chosen") chosen.add(candidate);
    if (d.kind === "mitigation_skipped") skipped.add(candidate);
    if (!FINAL.includes(d.kind)) continue;
    const key = `${d.alert} ${d.flow_id}.${d.node_id}`;
    const list = finals.get(key) ?? [];
    list.push({ kind: d.kind, at: new Date(d.at), workflowId: d.workflow_id });
    finals.set(key, list);
  }
  const actions = new Map<string, string>();
  const openCommands: Date[] = [];
  for (const c of commands.rows) {
    const details = (typeof c.details === "string" ? JSON.parse(c.details) : c.details) as Record<
      string,
      unknown
    >;
    actions.set(c.id, actionOf(c.command, details));
    if (["pending", "delivered", "acknowledged"].includes(c.status))
      openCommands.push(new Date(c.created_at));
  }
  return {
    stored: new Map(alerts.rows.map((r) => [r.id, r.n])),
    notHandedOff: new Set(alerts.rows.filter((r) => r.pending > 0).map((r) => r.id)),
    finals,
    contradictions: [...chosen]
      .filter((c) => skipped.has(c))
      .map((c) => c.split("\n")[0] as string)
      .reduce((m, alert) => m.set(alert, (m.get(alert) ?? 0) + 1), new Map<string, number>()),
    conditionErrors,
    openCommands,
    latest,
    actions,
  };
}

export interface Execution {
  host: string;
  commandId: string;
  at: Date;
}

/** Every command an agent executed, from the `command_completed` lines of the fleets' event logs. */
export function executions(agentsDir: string): Execution[] {
  const out: Execution[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(agentsDir).filter((f) => f.endsWith(".events"));
  } catch {
    return out;
  }
  for (const file of files) {
    const host = file.slice(0, -".events".length);
    for (const line of readFileSync(path.join(agentsDir, file), "utf8").split("\n")) {
      if (!line.includes('"command_completed"')) continue;
      try {
        const event = JSON.parse(line) as { message: string; id: string; time: string };
        if (event.message === "command_completed")
          out.push({ host, commandId: event.id, at: new Date(event.time) });
      } catch {
        // a line cut short by a SIGKILL: the execution it would report is not counted
      }
    }
  }
  return out;
}
