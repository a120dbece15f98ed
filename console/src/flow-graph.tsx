// An attack flow drawn as a graph: nodes in columns by their distance from a start node, edges as
// arrows, the nodes an incident reached filled. A small layered layout of our own (no graph
// library): flows have tens of nodes, and this keeps the bundle small.

export interface FlowNode {
  id: string;
  techniques?: string[];
  next?: string[];
  preemptive?: boolean;
}

export interface Flow {
  identifier: string | number;
  name?: string;
  nodes: FlowNode[];
  start?: string[];
}

const W = 150;
const H = 46;
const GAP_X = 60;
const GAP_Y = 18;

/** Column of each node: the longest path from a start node (cycles cut at the first revisit). */
export function layout(flow: Flow): Map<string, { x: number; y: number }> {
  const nodes = new Map(flow.nodes.filter((n) => typeof n?.id === "string").map((n) => [n.id, n]));
  const depth = new Map<string, number>();
  const starts = (flow.start ?? []).filter((s) => nodes.has(s));
  const roots = starts.length > 0 ? starts : [...nodes.keys()].slice(0, 1);
  const visit = (id: string, d: number, seen: Set<string>) => {
    if (seen.has(id) || seen.size > nodes.size || (depth.get(id) ?? -1) >= d) return;
    depth.set(id, d);
    seen.add(id);
    for (const next of nodes.get(id)?.next ?? []) if (nodes.has(next)) visit(next, d + 1, seen);
    seen.delete(id);
  };
  for (const root of roots) visit(root, 0, new Set());
  // Nodes no start reaches still get drawn, in a column after the others.
  const last = Math.max(-1, ...depth.values());
  for (const id of nodes.keys()) if (!depth.has(id)) depth.set(id, last + 1);
  const rows = new Map<number, number>();
  const at = new Map<string, { x: number; y: number }>();
  for (const [id, d] of depth) {
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    at.set(id, { x: 10 + d * (W + GAP_X), y: 10 + row * (H + GAP_Y) });
  }
  return at;
}

export function FlowGraph(props: { flow: Flow; reached?: Set<string>; current?: Set<string> }) {
  const at = layout(props.flow);
  const width = Math.max(...[...at.values()].map((p) => p.x + W), 200) + 10;
  const height = Math.max(...[...at.values()].map((p) => p.y + H), 60) + 10;
  const edges = props.flow.nodes.flatMap((n) =>
    (n.next ?? []).filter((m) => at.has(m) && at.has(n.id)).map((m) => [n.id, m] as const),
  );
  return (
    <svg
      className="flow-graph"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`attack flow ${String(props.flow.name ?? props.flow.identifier)}`}
      data-testid="flow-graph"
    >
      <defs>
        <marker
          id="arrow"
          viewBox="0 0 10 10"
          refX="10"
          refY="5"
          markerWidth="7"
          markerHeight="7"
          orient="auto"
        >
          <path d="M0,0 L10,5 L0,10 z" className="edge-head" />
        </marker>
      </defs>
      {edges.map(([from, to]) => {
        const a = at.get(from) as { x: number; y: number };
        const b = at.get(to) as { x: number; y: number };
        return (
          <line
            key={`${from}->${to}`}
            className="edge"
            x1={a.x + W}
            y1={a.y + H / 2}
            x2={b.x}
            y2={b.y + H / 2}
            markerEnd="url(#arrow)"
          />
        );
      })}
      {props.flow.nodes.map((n) => {
        const p = at.get(n.id);
        if (!p) return null;
        const reached = props.reached?.has(n.id) ?? false;
        const current = props.current?.has(n.id) ?? false;
        return (
          <g
            key={n.id}
            className={`node${reached ? " reached" : ""}${current ? " current" : ""}`}
            data-node={n.id}
            data-reached={reached ? "true" : "false"}
          >
            <rect x={p.x} y={p.y} width={W} height={H} rx={6} />
            <text x={p.x + 8} y={p.y + 18}>
              {n.id.length > 20 ? `${n.id.slice(0, 19)}…` : n.id}
            </text>
            <text x={p.x + 8} y={p.y + 36} className="techniques">
              {(n.techniques ?? []).join(", ").slice(0, 24)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
