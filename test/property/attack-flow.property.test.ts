// The attack-flow engine's rules (the header of src/domain/attack-flow.ts) stated as properties and
// checked over generated flows, including dangling `next` ids, and over instance states reached by
// running generated alert sequences through candidateNodes → (some conditions hold) → advance, as
// the incident workflow does.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Advanced,
  advance,
  candidateNodes,
  type FlowInstance,
  type NodeCandidate,
  techniqueCovers,
} from "../../src/domain/attack-flow.ts";
import type { AttackFlow, AttackFlowNode } from "../../src/domain/model.ts";

// Few techniques, so that generated alerts hit generated nodes often; parents and sub-techniques
// of one another, so coverage by a parent is exercised.
const TECHNIQUES = ["T1000", "T1000.001", "T1000.002", "T1001", "T1001.001", "T1002"];
const technique = fc.constantFrom(...TECHNIQUES);
const alertTechniques = fc.uniqueArray(technique, { minLength: 1, maxLength: 3 });

/** A flow over nodes n0..n(k-1); `next` may name a node that does not exist (n9: an edited flow). */
const flowArb = (identifier: string): fc.Arbitrary<AttackFlow> =>
  fc.integer({ min: 1, max: 6 }).chain((size) => {
    const ids = Array.from({ length: size }, (_, i) => `n${i}`);
    const target = fc.constantFrom(...ids, "n9");
    const node = (id: string): fc.Arbitrary<AttackFlowNode> =>
      fc.record(
        {
          id: fc.constant(id),
          techniques: fc.uniqueArray(technique, { minLength: 1, maxLength: 2 }),
          conditions: fc.uniqueArray(fc.constantFrom("c1", "c2", 3), { maxLength: 2 }),
          next: fc.uniqueArray(target, { maxLength: 3 }),
          preemptive: fc.boolean(),
        },
        { requiredKeys: ["id", "techniques"] },
      );
    return fc.record({
      identifier: fc.constant(identifier),
      name: fc.constant(identifier),
      nodes: fc.tuple(...ids.map(node)),
      start: fc.uniqueArray(fc.constantFrom(...ids), { minLength: 1, maxLength: 2 }),
    });
  });

const flowsArb = fc
  .integer({ min: 1, max: 3 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => flowArb(`f${i}`))));

/** Which candidates' conditions held: an arbitrary subset, picked by a generated mask. */
const holdMask = fc.array(fc.boolean(), { minLength: 20, maxLength: 20 });
const pick = (candidates: NodeCandidate[], mask: boolean[]) =>
  candidates.filter((_, i) => mask[i % mask.length]);

interface Round {
  instances: FlowInstance[];
  alert: string[];
  candidates: NodeCandidate[];
  holding: NodeCandidate[];
  out: Advanced;
}

/** Runs alerts through the engine from no instances; returns every round. */
function run(flows: AttackFlow[], alerts: { techniques: string[]; mask: boolean[] }[]): Round[] {
  let instances: FlowInstance[] = [];
  return alerts.map(({ techniques, mask }, a) => {
    const candidates = candidateNodes(flows, instances, techniques);
    const holding = pick(candidates, mask);
    const out = advance(flows, instances, holding, (n) => `a${a}/${n}`);
    const round = { instances, alert: techniques, candidates, holding, out };
    instances = out.instances;
    return round;
  });
}

const scenario = fc.record({
  flows: flowsArb,
  alerts: fc.array(fc.record({ techniques: alertTechniques, mask: holdMask }), {
    minLength: 1,
    maxLength: 6,
  }),
});

const nodeOf = (flows: AttackFlow[], flowId: string, nodeId: string) =>
  flows.find((f) => String(f.identifier) === flowId)?.nodes.find((n) => n.id === nodeId);

/** Every round of every generated scenario satisfies `check`. */
const everyRound = (check: (flows: AttackFlow[], round: Round) => void) =>
  fc.assert(
    fc.property(scenario, ({ flows, alerts }) => {
      for (const round of run(flows, alerts)) check(flows, round);
    }),
    { numRuns: 300 },
  );

describe("techniqueCovers", () => {
  const parent = fc.integer({ min: 0, max: 9999 }).map((n) => `T${String(n).padStart(4, "0")}`);
  const sub = fc.integer({ min: 0, max: 999 }).map((n) => String(n).padStart(3, "0"));

  it("a technique covers itself and its sub-techniques, case-insensitively", () => {
    fc.assert(
      fc.property(parent, sub, (p, s) => {
        expect(techniqueCovers(p, p)).toBe(true);
        expect(techniqueCovers(p, `${p}.${s}`)).toBe(true);
        expect(techniqueCovers(p.toLowerCase(), `${p}.${s}`)).toBe(true);
        expect(techniqueCovers(`${p}.${s}`, `${p}.${s}`.toLowerCase())).toBe(true);
      }),
    );
  });

  it("a sub-technique covers neither its parent nor its siblings; no technique covers another", () => {
    fc.assert(
      fc.property(parent, parent, sub, sub, (p, q, s, t) => {
        expect(techniqueCovers(`${p}.${s}`, p)).toBe(false);
        if (s !== t) expect(techniqueCovers(`${p}.${s}`, `${p}.${t}`)).toBe(false);
        if (p !== q) {
          expect(techniqueCovers(p, q)).toBe(false);
          expect(techniqueCovers(p, `${q}.${s}`)).toBe(false);
        }
      }),
    );
  });
});

describe("candidateNodes", () => {
  it("offers only nodes of the flow: an instance's successors, or start nodes for a new instance", () => {
    everyRound((flows, { instances, candidates }) => {
      for (const c of candidates) {
        const node = nodeOf(flows, c.flowId, c.nodeId);
        expect(node, `${c.flowId}/${c.nodeId} is a node`).toBeDefined();
        if (c.instanceId === null) {
          const flow = flows.find((f) => String(f.identifier) === c.flowId);
          expect(flow?.start).toContain(c.nodeId);
        } else {
          const instance = instances.find((i) => i.id === c.instanceId);
          expect(instance?.flowId).toBe(c.flowId);
          const from = nodeOf(flows, c.flowId, instance?.node ?? "");
          expect(from?.next).toContain(c.nodeId);
        }
        expect(c.conditions).toEqual((node?.conditions ?? []).map(String));
      }
    });
  });

  it("names exactly the alert's techniques the node covers (a parent covers its sub-techniques)", () => {
    everyRound((flows, { alert, candidates }) => {
      for (const c of candidates) {
        const node = nodeOf(flows, c.flowId, c.nodeId) as AttackFlowNode;
        expect(c.techniques.length).toBeGreaterThan(0);
        expect(c.techniques).toEqual(
          alert.filter((t) => node.techniques.some((l) => techniqueCovers(l, t))),
        );
      }
    });
  });

  it("is complete: every start node and instance successor covering the alert is offered, once", () => {
    everyRound((flows, { instances, alert, candidates }) => {
      const keys = candidates.map((c) => `${c.flowId}|${c.nodeId}|${c.instanceId}`);
      expect(new Set(keys).size).toBe(keys.length);
      const covers = (node: AttackFlowNode | undefined) =>
        !!node && alert.some((t) => node.techniques.some((l) => techniqueCovers(l, t)));
      for (const f of flows)
        for (const s of f.start)
          if (covers(nodeOf(flows, String(f.identifier), s)))
            expect(keys).toContain(`${f.identifier}|${s}|null`);
      for (const i of instances)
        for (const n of nodeOf(flows, i.flowId, i.node)?.next ?? [])
          if (covers(nodeOf(flows, i.flowId, n)))
            expect(keys).toContain(`${i.flowId}|${n}|${i.id}`);
    });
  });
});

describe("advance", () => {
  it("moves an instance only along `next`, to a successor whose candidate held, extending its path", () => {
    everyRound((flows, { instances, holding, out }) => {
      for (const after of [...out.instances, ...out.finished]) {
        const before = instances.find((i) => i.id === after.id);
        if (!before || before.node === after.node) continue;
        expect(nodeOf(flows, before.flowId, before.node)?.next).toContain(after.node);
        expect(holding).toContainEqual(
          expect.objectContaining({ instanceId: before.id, nodeId: after.node }),
        );
        expect(after.path).toEqual([...before.path, after.node]);
      }
    });
  });

  it("never places an instance on a node that is not in its flow", () => {
    everyRound((flows, { out }) => {
      for (const i of out.instances) expect(nodeOf(flows, i.flowId, i.node)).toBeDefined();
      for (const r of out.reached) expect(nodeOf(flows, r.flowId, r.nodeId)).toBeDefined();
    });
  });

  it("starts new instances only on a holding start node or a holding fork of an instance", () => {
    everyRound((_, { instances, holding, out }) => {
      const old = new Set(instances.map((i) => i.id));
      for (const i of [...out.instances, ...out.finished]) {
        if (old.has(i.id)) continue;
        const start = holding.some(
          (h) => h.instanceId === null && h.flowId === i.flowId && h.nodeId === i.node,
        );
        const fork = holding.some(
          (h) => h.instanceId !== null && h.flowId === i.flowId && h.nodeId === i.node,
        );
        expect(start || fork, `${i.flowId}/${i.node}`).toBe(true);
        expect(i.path.at(-1)).toBe(i.node);
      }
    });
  });

  it("keeps at most one active instance per flow and node, and ids unique", () => {
    everyRound((_, { out }) => {
      const all = [...out.instances, ...out.finished];
      expect(new Set(all.map((i) => i.id)).size).toBe(all.length);
      const places = out.instances.map((i) => `${i.flowId}|${i.node}`);
      expect(new Set(places).size).toBe(places.length);
    });
  });

  it("finishes an instance on a node without successors, keeps the others active", () => {
    everyRound((flows, { out }) => {
      for (const i of out.instances)
        expect(nodeOf(flows, i.flowId, i.node)?.next?.length ?? 0).toBeGreaterThan(0);
      for (const i of out.finished)
        expect(nodeOf(flows, i.flowId, i.node)?.next?.length ?? 0).toBe(0);
    });
  });

  it("reports each node at most once per flow per alert, only holding or preemptive ones", () => {
    everyRound((flows, { holding, out }) => {
      const keys = out.reached.map((r) => `${r.flowId}|${r.nodeId}`);
      expect(new Set(keys).size).toBe(keys.length);
      for (const r of out.reached) {
        if (r.preemptive) expect(nodeOf(flows, r.flowId, r.nodeId)?.preemptive).toBe(true);
        else expect(holding.some((h) => h.flowId === r.flowId && h.nodeId === r.nodeId)).toBe(true);
      }
    });
  });

  it("never reports again a node whose mitigations already ran ahead in an instance of the flow", () => {
    everyRound((flows, { instances, out }) => {
      for (const r of out.reached) {
        const ranAhead = instances.some(
          (i) =>
            i.flowId === r.flowId &&
            !!nodeOf(flows, i.flowId, i.node) &&
            i.preempted.includes(r.nodeId),
        );
        expect(ranAhead, `${r.flowId}/${r.nodeId} ran ahead already`).toBe(false);
      }
    });
  });

  it("with nothing holding, changes nothing and reports nothing", () => {
    everyRound((flows, { instances }) => {
      const out = advance(flows, instances, [], () => "unused");
      expect(out).toEqual({ instances, reached: [], finished: [] });
    });
  });

  it("is idempotent for a repeated start alert: no second instance, no preemption twice", () => {
    everyRound((flows, { out, holding }) => {
      const starts = holding.filter((h) => h.instanceId === null);
      const again = advance(flows, out.instances, starts, (n) => `again/${n}`);
      const where = (i: FlowInstance) => ({
        id: i.id,
        flowId: i.flowId,
        node: i.node,
        path: i.path,
      });
      expect(again.instances.map(where)).toEqual(out.instances.map(where));
      // Preemption is remembered by the flow's live instances (an instance that finished meanwhile
      // takes its memory with it, so a new chain may run it again).
      for (const r of again.reached.filter((x) => x.preemptive))
        expect(
          out.instances.some((i) => i.flowId === r.flowId && i.preempted.includes(r.nodeId)),
        ).toBe(false);
    });
  });

  it("is pure: deterministic and leaves its inputs untouched", () => {
    everyRound((flows, { instances, alert, holding }) => {
      const snapshot = structuredClone({ flows, instances, holding });
      const ids = (n: number) => `x/${n}`;
      const one = advance(flows, instances, holding, ids);
      expect(advance(flows, instances, holding, ids)).toEqual(one);
      expect(candidateNodes(flows, instances, alert)).toEqual(
        candidateNodes(flows, instances, alert),
      );
      expect({ flows, instances, holding }).toEqual(snapshot);
    });
  });

  it("finishes, unchanged, an instance whose flow or node no longer exists", () => {
    fc.assert(
      fc.property(scenario, fc.boolean(), ({ flows, alerts }, dropFlow) => {
        const rounds = run(flows, alerts);
        const { instances } = rounds[rounds.length - 1]?.out ?? { instances: [] };
        const edited = dropFlow
          ? flows.slice(1)
          : flows.map((f) => ({ ...f, nodes: f.nodes.filter((n) => n.id !== "n0") }));
        const stale = instances.filter((i) => !nodeOf(edited, i.flowId, i.node));
        const out = advance(edited, instances, [], () => "unused");
        for (const i of stale) expect(out.finished).toContainEqual(i);
        expect(out.instances.filter((i) => stale.some((s) => s.id === i.id))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});
