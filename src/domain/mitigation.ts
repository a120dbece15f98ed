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

/**
 * What on its host an agent command touches, as the keys per-host ordering compares: mitigations
 * of one host touching the same file, process or the host's network run in alert order (a
 * delete_file and a handle_ransomware of back-to-back alerts on one path must not race). The
 * network covers blocking, isolating and releasing alike: they all rewrite the host's firewall.
 */
export function touchedObjects(
  steps: readonly { command: string; details: Record<string, unknown> }[],
): string[] {
  const objects = steps.flatMap((s): string[] => {
    switch (s.command) {
      case "kill-process":
        return [`process:${String(s.details.pid ?? s.details.process_name ?? "*")}`];
      case "delete-file":
      case "quarantine-file":
        return [`file:${String(s.details.path ?? "*")}`];
      case "block-ip":
      case "unblock-ip":
      case "isolate-host":
      case "release-host":
        return ["network"];
      default:
        return [];
    }
  });
  return [...new Set(objects)].sort();
}

/** Whether two runs' touched objects meet (`process:*` and `file:*` stand for any of their kind). */
export function objectsOverlap(a: readonly string[], b: readonly string[]): boolean {
  const kind = (o: string) => o.slice(0, o.indexOf(":") + 1);
  return a.some((x) =>
    b.some((y) => x === y || ((x.endsWith(":*") || y.endsWith(":*")) && kind(x) === kind(y))),
  );
}
