// Mitigation choice. Pure and dependency-free: the mitigation workflow ranks its candidates itself.
import { techniqueCovers } from "./attack-flow.ts";
import { identifierKey, type Mitigation } from "./model.ts";

/** Mitigations effective against any of the techniques, cheapest first; equal costs by identifier
 * (code-unit order, not locale order, so every worker ranks alike). */
export function rankMitigations(mitigations: Mitigation[], techniques: string[]): Mitigation[] {
  return mitigations
    .filter((m) =>
      m.effective_attacks.some((listed) => techniques.some((t) => techniqueCovers(listed, t))),
    )
    .sort(
      (a, b) =>
        a.cost - b.cost || compare(identifierKey(a.identifier), identifierKey(b.identifier)),
    );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What an agent command or webhook receives: params ∪ args ∪ step details, later sources winning. */
export function stepDetails(
  m: Mitigation,
  args: Record<string, unknown>,
  step: { details?: object },
): Record<string, unknown> {
  return { ...m.params, ...args, ...(step.details ?? {}) };
}
