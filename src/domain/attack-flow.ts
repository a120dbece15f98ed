// The attack-flow engine. Runs inside Temporal workflow code: pure, deterministic, no imports with
// side effects (only types and the dependency-free model module).
//
// One incident workflow per host holds that host's flow instances. Per alert it asks
// candidateNodes() which nodes the alert could reach, evaluates their conditions (activities), and
// passes the candidates whose conditions all held to advance(), which moves, starts, merges and
// finishes instances and says which nodes were reached (their mitigations run).
//
// Rules:
// - An instance advances along `next` to every successor that held: the first in the node's
//   `next` order keeps the instance, each further one forks a new instance (the alert evidences
//   both branches, so both mitigations should run).
// - Instances of one flow that end up on the same node merge into the earliest (existing before
//   new, then input order); preempted sets are united. So a flow has at most one instance per node.
// - A holding start node starts a new instance unless an instance of that flow already sits on
//   that node; then the alert reaches that node again (its mitigations run again: a second ncat
//   connection deserves a second kill) without duplicating the instance.
// - A reached node whose mitigations already ran preemptively (in any instance of the flow) is
//   not reported again; its preemptive successors are reported once per flow, then remembered.
// - An instance on a node without `next` is finished. So is one whose flow or node no longer
//   exists (the flow was deleted or edited), because it can never advance again.
import { type AttackFlow, type AttackFlowNode, identifierKey } from "./model.ts";

/** T1222 covers T1222 and its sub-techniques (T1222.002); T1222.002 covers only itself. */
export function techniqueCovers(listed: string, observed: string): boolean {
  const l = listed.toUpperCase();
  const o = observed.toUpperCase();
  return l === o || (!l.includes(".") && o.startsWith(`${l}.`));
}

export interface FlowInstance {
  id: string;
  /** identifierKey of the flow. */
  flowId: string;
  node: string;
  /** Node ids visited, in order, ending with `node`. */
  path: string[];
  /** Node ids whose mitigations already ran preemptively. */
  preempted: string[];
}

export interface NodeCandidate {
  flowId: string;
  nodeId: string;
  /** The instance that would advance; null = would start a new instance. */
  instanceId: string | null;
  /** The alert's techniques this node covers. */
  techniques: string[];
  /** identifierKeys of the node's conditions; all must hold. */
  conditions: string[];
}

export interface Reached {
  flowId: string;
  instanceId: string;
  nodeId: string;
  techniques: string[];
  /** true = run ahead of its own alert, for a preemptive successor of a node just reached. */
  preemptive: boolean;
}

export interface Advanced {
  instances: FlowInstance[];
  reached: Reached[];
  finished: FlowInstance[];
}

/** Lookup of a flow's nodes, and its position among the flows (for deterministic ordering). */
interface IndexedFlow {
  flow: AttackFlow;
  order: number;
  nodes: Map<string, AttackFlowNode>;
}

function indexFlows(flows: AttackFlow[]): Map<string, IndexedFlow> {
  const index = new Map<string, IndexedFlow>();
  flows.forEach((flow, order) => {
    const key = identifierKey(flow.identifier);
    if (!index.has(key))
      index.set(key, { flow, order, nodes: new Map(flow.nodes.map((n) => [n.id, n])) });
  });
  return index;
}

function covered(node: AttackFlowNode, alertTechniques: string[]): string[] {
  return alertTechniques.filter((t) =>
    node.techniques.some((listed) => techniqueCovers(listed, t)),
  );
}

/** Nodes the alert could reach: successors of each instance's node, then every flow's start nodes. */
export function candidateNodes(
  flows: AttackFlow[],
  instances: FlowInstance[],
  alertTechniques: string[],
): NodeCandidate[] {
  const index = indexFlows(flows);
  const out: NodeCandidate[] = [];
  const seen = new Set<string>();
  const add = (flowId: string, node: AttackFlowNode | undefined, instanceId: string | null) => {
    if (!node) return;
    const techniques = covered(node, alertTechniques);
    const key = `${flowId}\u0000${node.id}\u0000${instanceId ?? ""}`;
    if (techniques.length === 0 || seen.has(key)) return;
    seen.add(key);
    out.push({
      flowId,
      nodeId: node.id,
      instanceId,
      techniques,
      conditions: (node.conditions ?? []).map(identifierKey),
    });
  };
  for (const instance of instances) {
    const f = index.get(instance.flowId);
    for (const next of f?.nodes.get(instance.node)?.next ?? [])
      add(instance.flowId, f?.nodes.get(next), instance.id);
  }
  for (const [flowId, f] of index)
    for (const start of f.flow.start) add(flowId, f.nodes.get(start), null);
  return out;
}

/** The id of the incident's n-th flow instance: the workflow and the batch matcher both name them so. */
export const instanceIdOf = (n: number) => `i${n}`;

interface Position {
  instance: FlowInstance;
  /** Reached by this alert, with the alert techniques that reached it. */
  arrivedWith: string[] | null;
}

/** Applies the candidates whose conditions held; see the rules at the top of this file. */
export function advance(
  flows: AttackFlow[],
  instances: FlowInstance[],
  holding: NodeCandidate[],
  newInstanceId: (n: number) => string,
): Advanced {
  const index = indexFlows(flows);
  const finished: FlowInstance[] = [];
  let positions: Position[] = [];
  let created = 0;
  const spawn = (
    flowId: string,
    node: string,
    path: string[],
    preempted: string[],
    techniques: string[],
  ) => {
    positions.push({
      instance: { id: newInstanceId(created++), flowId, node, path, preempted },
      arrivedWith: techniques,
    });
  };

  // 1. Existing instances move along `next` (forking for further holding successors).
  for (const instance of instances) {
    const current = index.get(instance.flowId)?.nodes.get(instance.node);
    if (!current) {
      finished.push(instance);
      continue;
    }
    const targets = (current.next ?? []).flatMap((nodeId) => {
      const c = holding.find(
        (h) => h.instanceId === instance.id && h.flowId === instance.flowId && h.nodeId === nodeId,
      );
      return c ? [c] : [];
    });
    const [first, ...rest] = targets;
    if (!first) {
      positions.push({ instance, arrivedWith: null });
      continue;
    }
    positions.push({
      instance: { ...instance, node: first.nodeId, path: [...instance.path, first.nodeId] },
      arrivedWith: first.techniques,
    });
    for (const c of rest)
      spawn(
        instance.flowId,
        c.nodeId,
        [...instance.path, c.nodeId],
        [...instance.preempted],
        c.techniques,
      );
  }

  // 2. Holding start nodes start instances, in flow order then node order.
  const starts = holding
    .filter(
      (h) =>
        h.instanceId === null &&
        index.get(h.flowId)?.flow.start.includes(h.nodeId) &&
        index.get(h.flowId)?.nodes.has(h.nodeId),
    )
    .map((h) => ({ h, f: index.get(h.flowId) as IndexedFlow }))
    .sort(
      (a, b) =>
        a.f.order - b.f.order ||
        a.f.flow.nodes.findIndex((n) => n.id === a.h.nodeId) -
          b.f.flow.nodes.findIndex((n) => n.id === b.h.nodeId),
    );
  for (const { h } of starts) {
    const sitting = positions.find(
      (p) => p.instance.flowId === h.flowId && p.instance.node === h.nodeId,
    );
    if (sitting) sitting.arrivedWith = union(sitting.arrivedWith ?? [], h.techniques);
    else spawn(h.flowId, h.nodeId, [h.nodeId], [], h.techniques);
  }

  // 3. Merge instances of one flow on one node into the earliest.
  const merged: Position[] = [];
  for (const p of positions) {
    const into = merged.find(
      (m) => m.instance.flowId === p.instance.flowId && m.instance.node === p.instance.node,
    );
    if (!into) {
      merged.push(p);
      continue;
    }
    into.instance = {
      ...into.instance,
      preempted: union(into.instance.preempted, p.instance.preempted),
    };
    if (p.arrivedWith) into.arrivedWith = union(into.arrivedWith ?? [], p.arrivedWith);
  }
  positions = merged;

  // 4. Report reached nodes and run preemptive successors ahead, once per flow.
  const reached: Reached[] = [];
  const reportedNow = new Set<string>(); // flowId + node, so one round never reports a node twice
  for (const p of positions) {
    if (!p.arrivedWith) continue;
    const { instance } = p;
    const f = index.get(instance.flowId) as IndexedFlow;
    const node = f.nodes.get(instance.node) as AttackFlowNode;
    const ranAhead = new Set(
      positions
        .filter((q) => q.instance.flowId === instance.flowId)
        .flatMap((q) => q.instance.preempted),
    );
    const done = (id: string) =>
      ranAhead.has(id) || reportedNow.has(`${instance.flowId}\u0000${id}`);
    if (!done(node.id)) {
      reached.push({
        flowId: instance.flowId,
        instanceId: instance.id,
        nodeId: node.id,
        techniques: p.arrivedWith,
        preemptive: false,
      });
      reportedNow.add(`${instance.flowId}\u0000${node.id}`);
    }
    const ahead = (node.next ?? []).filter((id) => f.nodes.get(id)?.preemptive && !done(id));
    for (const id of ahead) reportedNow.add(`${instance.flowId}\u0000${id}`);
    for (const id of ahead) {
      const successor = f.nodes.get(id) as AttackFlowNode;
      reached.push({
        flowId: instance.flowId,
        instanceId: instance.id,
        nodeId: id,
        techniques: [...successor.techniques],
        preemptive: true,
      });
    }
    if (ahead.length > 0)
      p.instance = { ...instance, preempted: [...instance.preempted, ...ahead] };
  }

  // 5. Instances on a node without successors are done.
  const active: FlowInstance[] = [];
  for (const { instance } of positions) {
    const node = index.get(instance.flowId)?.nodes.get(instance.node);
    (node?.next?.length ? active : finished).push(instance);
  }
  return { instances: active, reached, finished };
}

function union(a: string[], b: string[]): string[] {
  return [...a, ...b.filter((x) => !a.includes(x))];
}

/** Every technique any node of the flows lists, upper-cased: what an alert must show to matter. */
export function flowTechniques(flows: AttackFlow[]): Set<string> {
  return new Set(
    flows.flatMap((f) => f.nodes.flatMap((n) => n.techniques.map((t) => t.toUpperCase()))),
  );
}

/**
 * Whether an alert with these techniques could reach any node of the flows indexed by
 * flowTechniques (a listed technique covers its sub-techniques, as techniqueCovers says). An alert
 * that reaches none can neither start nor advance an instance: the engine has nothing to do with it.
 */
export function reachesAnyFlow(index: Set<string>, techniques: string[]): boolean {
  return techniques.some((t) => {
    const upper = t.toUpperCase();
    const dot = upper.indexOf(".");
    return index.has(upper) || (dot > 0 && index.has(upper.slice(0, dot)));
  });
}
