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

/**
 * Column of each node: the longest path from a start node, once the edges that close a cycle are
 * set aside. Linear in nodes and edges, whatever the document (an edited flow may be anything).
 */
export function layout(flow: Flow): Map<string, { x: number; y: number }> {
  const nodes = new Map(flow.nodes.filter((n) => typeof n?.id === "string").map((n) => [n.id, n]));
  const nextOf = (id: string): string[] => {
    const next: unknown = nodes.get(id)?.next;
    return Array.isArray(next)
      ? next.filter((m): m is string => typeof m === "string" && nodes.has(m))
      : [];
  };
  const starts = (flow.start ?? []).filter((s) => nodes.has(s));
  const roots = starts.length > 0 ? starts : [...nodes.keys()].slice(0, 1);
  // Depth-first from the roots (iteratively): the post-order reversed is a topological order of
  // the edges that do not lead back to a node still on the path.
  const state = new Map<string, "open" | "done">();
  const order: string[] = [];
  const forward = new Map<string, string[]>();
  for (const root of roots) {
    if (state.has(root)) continue;
    const stack: [string, number][] = [[root, 0]];
    state.set(root, "open");
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [string, number];
      const [id, i] = top;
      const next = nextOf(id);
      if (i < next.length) {
        top[1] = i + 1;
        const m = next[i] as string;
        if (state.get(m) === "open") continue; // closes a cycle: not a forward edge
        forward.set(id, [...(forward.get(id) ?? []), m]);
        if (!state.has(m)) {
          state.set(m, "open");
          stack.push([m, 0]);
        }
      } else {
        state.set(id, "done");
        order.push(id);
        stack.pop();
      }
    }
  }
  const depth = new Map<string, number>(roots.map((r) => [r, 0]));
  for (const id of order.reverse()) {
    const d = depth.get(id) ?? 0;
    for (const m of forward.get(id) ?? []) depth.set(m, Math.max(depth.get(m) ?? 0, d + 1));
  }
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

/** Past this many nodes a drawing is unreadable, and laying it out costs the page. */
const MAX_DRAWN_NODES = 200;

export function FlowGraph(props: { flow: Flow; reached?: Set<string>; current?: Set<string> }) {
  if (props.flow.nodes.length > MAX_DRAWN_NODES) {
    return <p className="muted">{props.flow.nodes.length} nodes: too many to draw</p>;
  }
  const at = layout(props.flow);
  const width = Math.max(...[...at.values()].map((p) => p.x + W), 200) + 10;
  const height = Math.max(...[...at.values()].map((p) => p.y + H), 60) + 10;
  // Only what layout placed is drawn: a document being edited may hold anything.
  const edges = props.flow.nodes.flatMap((n) =>
    (at.has(n?.id) && Array.isArray(n.next) ? n.next : [])
      .filter((m) => typeof m === "string" && at.has(m))
      .map((m) => [n.id, m] as const),
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
        const x1 = a.x + W;
        const y1 = a.y + H / 2;
        const x2 = b.x;
        const y2 = b.y + H / 2;
        // An edge back to an earlier column (a cycle) loops below the nodes instead of crossing them.
        const d =
          x2 > x1
            ? `M${x1},${y1} L${x2},${y2}`
            : `M${x1},${y1} C${x1 + 40},${y1 + H} ${x2 - 40},${y2 + H} ${x2},${y2}`;
        return (
          <path
            key={`${from}->${to}`}
            className={x2 > x1 ? "edge" : "edge back"}
            d={d}
            markerEnd="url(#arrow)"
          />
        );
      })}
      {props.flow.nodes.map((n) => {
        const p = at.get(n?.id);
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
              {(Array.isArray(n.techniques) ? n.techniques.map(String) : [])
                .join(", ")
                .slice(0, 24)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
