// Candidate ranking (src/domain/mitigation.ts) stated as properties: what is kept, in which order,
// and that every worker ranks alike whatever order the catalog came in.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { techniqueCovers } from "../../src/domain/attack-flow.ts";
import { rankMitigations } from "../../src/domain/mitigation.ts";
import type { Mitigation } from "../../src/domain/model.ts";

const TECHNIQUES = ["T1000", "T1000.001", "T1000.002", "T1001", "T1001.001", "T1002"];
const technique = fc.constantFrom(...TECHNIQUES);

const mitigationArb: fc.Arbitrary<Mitigation> = fc.record({
  // Strings and integers, with "7" and 7 naming the same document (identifierKey).
  identifier: fc.oneof(fc.string({ maxLength: 3 }), fc.integer({ min: 0, max: 20 })),
  name: fc.string({ maxLength: 5 }),
  effective_attacks: fc.uniqueArray(technique, { maxLength: 3 }),
  // The catalog schema allows any finite cost >= 0; small integers make ties frequent.
  cost: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 1e6, noNaN: true })),
  params: fc.constant({}),
  args: fc.constant({}),
});

/** Catalogs as the store holds them: identifiers unique by key. */
const catalog = fc.uniqueArray(mitigationArb, {
  maxLength: 12,
  selector: (m) => String(m.identifier),
});
const techniques = fc.uniqueArray(technique, { maxLength: 3 });

const covers = (m: Mitigation, ts: string[]) =>
  m.effective_attacks.some((l) => ts.some((t) => techniqueCovers(l, t)));

describe("rankMitigations", () => {
  it("keeps exactly the candidates covering one of the techniques (parents cover sub-techniques)", () => {
    fc.assert(
      fc.property(catalog, techniques, (ms, ts) => {
        const ranked = rankMitigations(ms, ts);
        expect(new Set(ranked)).toEqual(new Set(ms.filter((m) => covers(m, ts))));
        expect(ranked.length).toBe(ms.filter((m) => covers(m, ts)).length);
      }),
    );
  });

  it("orders by ascending cost, equal costs by identifier in code-unit order", () => {
    fc.assert(
      fc.property(catalog, techniques, (ms, ts) => {
        const ranked = rankMitigations(ms, ts);
        for (let i = 1; i < ranked.length; i++) {
          const [a, b] = [ranked[i - 1] as Mitigation, ranked[i] as Mitigation];
          expect(a.cost).toBeLessThanOrEqual(b.cost);
          if (a.cost === b.cost) expect(String(a.identifier) <= String(b.identifier)).toBe(true);
        }
      }),
    );
  });

  it("ranks alike whatever the order of the catalog and of the techniques", () => {
    fc.assert(
      fc.property(
        catalog.chain((ms) =>
          fc.tuple(fc.constant(ms), fc.shuffledSubarray(ms, { minLength: ms.length })),
        ),
        techniques,
        ([ms, shuffled], ts) => {
          expect(rankMitigations(shuffled, [...ts].reverse())).toEqual(rankMitigations(ms, ts));
        },
      ),
    );
  });

  it("is stable: entries equal in cost and identifier keep their catalog order", () => {
    fc.assert(
      fc.property(fc.array(mitigationArb, { maxLength: 12 }), techniques, (ms, ts) => {
        const ranked = rankMitigations(ms, ts);
        for (let i = 1; i < ranked.length; i++) {
          const [a, b] = [ranked[i - 1] as Mitigation, ranked[i] as Mitigation];
          if (a.cost === b.cost && String(a.identifier) === String(b.identifier))
            expect(ms.indexOf(a)).toBeLessThan(ms.indexOf(b));
        }
      }),
    );
  });

  it("is idempotent and leaves its input untouched", () => {
    fc.assert(
      fc.property(catalog, techniques, (ms, ts) => {
        const before = structuredClone(ms);
        const ranked = rankMitigations(ms, ts);
        expect(ms).toEqual(before);
        expect(rankMitigations(ranked, ts)).toEqual(ranked);
      }),
    );
  });

  it("keeps nothing for an alert without techniques", () => {
    fc.assert(
      fc.property(catalog, (ms) => {
        expect(rankMitigations(ms, [])).toEqual([]);
      }),
    );
  });
});
