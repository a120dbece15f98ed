// What the chaos run feeds the service: a catalog of three one-node attack flows whose mitigations
// are agent commands, one with a Cypher condition on the mitigation and one on the node (so a Neo4j
// fault matters on both paths), the graph those conditions read, and the alerts. Each alert reaches
// exactly one node and targets a pid, path or IP of its own, so every executed command names the
// alert it belongs to and a second execution of the same action is visible as such.
import type { Driver } from "neo4j-driver";
import type { AttackFlow, Condition, Mitigation } from "../../src/domain/model.ts";

export const GRAPH_CONDITION = "chaos_host_in_graph";

export const CATALOG: { conditions: Condition[]; mitigations: Mitigation[]; flows: AttackFlow[] } =
  {
    conditions: [
      {
        identifier: GRAPH_CONDITION,
        name: "Host known to the network graph",
        description: "Chaos run: reads Neo4j, so an outage of the graph is on the alert's path.",
        params: {},
        args: { host: "alert.agent.name" },
        query: "MATCH (h:ChaosHost {name: $host}) RETURN h.name AS name",
        check: "size(rows) == 1",
      },
    ],
    mitigations: [
      {
        identifier: "chaos_kill",
        name: "chaos_kill",
        effective_attacks: ["T1059"],
        cost: 5,
        params: {},
        args: { pid: "alert.data.pid" },
        steps: [{ agent: "kill-process", details: { process_name: "payload" } }],
      },
      {
        identifier: "chaos_delete",
        name: "chaos_delete",
        effective_attacks: ["T1105"],
        cost: 5,
        params: {},
        args: { path: "alert.data.path" },
        conditions: [GRAPH_CONDITION],
        steps: [{ agent: "delete-file" }],
      },
      {
        identifier: "chaos_block",
        name: "chaos_block",
        effective_attacks: ["T1046"],
        cost: 5,
        params: {},
        args: { ip: "alert.data.src_ip" },
        steps: [{ agent: "block-ip" }],
      },
    ],
    flows: [
      {
        identifier: "chaos_exec",
        name: "chaos: execution",
        nodes: [{ id: "exec", techniques: ["T1059"] }],
        start: ["exec"],
      },
      {
        identifier: "chaos_drop",
        name: "chaos: tool transfer",
        nodes: [{ id: "drop", techniques: ["T1105"] }],
        start: ["drop"],
      },
      {
        identifier: "chaos_scan",
        name: "chaos: network scan",
        nodes: [{ id: "scan", techniques: ["T1046"], conditions: [GRAPH_CONDITION] }],
        start: ["scan"],
      },
    ],
  };

type Kind = "exec" | "drop" | "scan";
const KINDS: Kind[] = ["exec", "drop", "scan"];
const TECHNIQUE: Record<Kind, string> = { exec: "T1059", drop: "T1105", scan: "T1046" };

export interface PlannedAlert {
  id: string;
  host: string;
  /** The (flow, node) it reaches. */
  node: string;
  /** The one action its mitigation takes: "<command> <target>", as the agent receives it. */
  action: string;
  body: Record<string, unknown>;
}

export const hostName = (run: string, i: number) => `chaos-${run}-h${String(i).padStart(2, "0")}`;

/** Alert number `n` of the run: hosts in turn, kinds in turn. */
export function planAlert(run: string, n: number, hosts: string[]): PlannedAlert {
  const host = hosts[n % hosts.length] as string;
  const kind = KINDS[Math.floor(n / hosts.length) % KINDS.length] as Kind;
  const id = `chaos-${run}-a${n}`;
  const pid = 10_000 + n;
  const path = `/tmp/chaos/${run}/${n}.bin`;
  // One address per alert (never a protected one), so each block names its alert.
  const ip = `10.99.${Math.floor(n / 250)}.${1 + (n % 250)}`;
  const data = { exec: { pid: String(pid) }, drop: { path }, scan: { src_ip: ip } }[kind];
  const action = {
    exec: `kill-process ${pid}`,
    drop: `delete-file ${path}`,
    scan: `block-ip ${ip}`,
  }[kind];
  return {
    id,
    host,
    node: `chaos_${kind}.${kind}`,
    action,
    body: {
      timestamp: new Date().toISOString(),
      rule: {
        level: 12,
        description: `chaos ${kind} on ${host}`,
        id: `99000${KINDS.indexOf(kind)}`,
        mitre: { id: [TECHNIQUE[kind]], tactic: ["Execution"], technique: [kind] },
      },
      agent: { id: `c${n % hosts.length}`, name: host, ip: `10.77.0.${1 + (n % hosts.length)}` },
      manager: { name: "chaos" },
      id,
      full_log: `chaos ${kind} ${JSON.stringify(data)}`,
      decoder: { name: "chaos" },
      data,
      location: "chaos",
    },
  };
}

/** Puts the hosts into the graph the Cypher condition reads. */
export async function seedGraph(graph: Driver, hosts: string[]): Promise<void> {
  await graph.executeQuery("UNWIND $hosts AS name MERGE (:ChaosHost {name: name})", { hosts });
}

/** The action an agent command takes, in the form of PlannedAlert.action. */
export function actionOf(command: string, details: Record<string, unknown>): string {
  return `${command} ${details.pid ?? details.path ?? details.ip ?? JSON.stringify(details)}`;
}
