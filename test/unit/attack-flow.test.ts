import { describe, expect, it } from "vitest";
import { normaliseAlert } from "../../src/domain/alert.ts";
import { resolveArgs } from "../../src/domain/args.ts";
import {
  advance,
  candidateNodes,
  type FlowInstance,
  flowTechniques,
  type NodeCandidate,
  reachesAnyFlow,
  techniqueCovers,
} from "../../src/domain/attack-flow.ts";
import { evaluateCheck } from "../../src/domain/cel.ts";
import { defaultCatalog } from "../../src/domain/defaults.ts";
import type { AttackFlow, AttackFlowNode } from "../../src/domain/model.ts";
import { wazuh } from "./fixtures.ts";

const ids = (n: number) => `new-${n}`;

describe("techniqueCovers", () => {
  it.each([
    ["T1222", "T1222", true],
    ["T1222", "T1222.002", true],
    ["T1222.002", "T1222.002", true],
    ["T1222.002", "T1222", false],
    ["T1222.002", "T1222.001", false],
    ["T1222", "T12220", false],
    ["T122", "T1222", false],
    ["t1222", "T1222.002", true],
  ])("%s covers %s: %s", (listed, observed, expected) => {
    expect(techniqueCovers(listed, observed)).toBe(expected);
  });
});

/** One alert through the pure pipeline, as the incident workflow and its activities do it. */
function onAlert(instances: FlowInstance[], alertInput: unknown) {
  const catalog = defaultCatalog({ firewallWebhookUrl: "http://firewall.test/drop" });
  const normalised = normaliseAlert(alertInput);
  if (!normalised.ok) throw new Error(JSON.stringify(normalised.errors));
  const { alert } = normalised;
  const candidates = candidateNodes(catalog.attackFlows, instances, alert.techniques);
  const holds = (key: string) => {
    const condition = catalog.conditions.find((c) => c.identifier === key);
    if (!condition) return false;
    const args = resolveArgs(condition.args, alert.raw);
    if (!args.ok) return false;
    const result = evaluateCheck(condition.check, {
      params: condition.params,
      args: args.values,
      alert: alert.raw,
      rows: [],
    });
    return result.ok && result.value;
  };
  const holding = candidates.filter((c) => c.conditions.every(holds));
  return {
    candidates,
    holding,
    ...advance(catalog.attackFlows, instances, holding, (n) => `${alert.id}/${n}`),
  };
}

describe("the seed scenario: ncat → execute permission → ransomware file", () => {
  it("reaches the three nodes in order and finishes", () => {
    const first = onAlert([], wazuh.ncat());
    expect(first.candidates).toEqual([
      {
        flowId: "ncat_to_ransomware",
        nodeId: "ncat_connection",
        instanceId: null,
        techniques: ["T1041", "T1219"],
        conditions: [],
      },
    ]);
    const instanceId = "1729589475.25117/0";
    expect(first.reached).toEqual([
      {
        flowId: "ncat_to_ransomware",
        instanceId,
        nodeId: "ncat_connection",
        techniques: ["T1041", "T1219"],
        preemptive: false,
      },
    ]);
    expect(first.instances).toEqual([
      {
        id: instanceId,
        flowId: "ncat_to_ransomware",
        node: "ncat_connection",
        path: ["ncat_connection"],
        preempted: [],
      },
    ]);
    expect(first.finished).toEqual([]);

    const second = onAlert(first.instances, wazuh.execPermission());
    expect(second.candidates).toEqual([
      {
        flowId: "ncat_to_ransomware",
        nodeId: "exec_permission",
        instanceId,
        techniques: ["T1222.002"],
        conditions: ["python_script", "executable_permission"],
      },
    ]);
    expect(second.reached).toEqual([
      {
        flowId: "ncat_to_ransomware",
        instanceId,
        nodeId: "exec_permission",
        techniques: ["T1222.002"],
        preemptive: false,
      },
    ]);
    expect(second.instances[0]?.path).toEqual(["ncat_connection", "exec_permission"]);

    const third = onAlert(second.instances, wazuh.executableFile());
    expect(third.reached).toEqual([
      {
        flowId: "ncat_to_ransomware",
        instanceId,
        nodeId: "ransomware_file",
        techniques: ["T1204.002"],
        preemptive: false,
      },
    ]);
    expect(third.instances).toEqual([]);
    expect(third.finished).toEqual([
      {
        id: instanceId,
        flowId: "ncat_to_ransomware",
        node: "ransomware_file",
        path: ["ncat_connection", "exec_permission", "ransomware_file"],
        preempted: [],
      },
    ]);
  });

  it("100003 alone reaches nothing: exec_permission is not a start node", () => {
    const result = onAlert([], wazuh.execPermission());
    expect(result.candidates).toEqual([]);
    expect(result).toMatchObject({ instances: [], reached: [], finished: [] });
  });

  it("an instance waits while the successor's conditions fail", () => {
    const { instances } = onAlert([], wazuh.ncat());
    const notPython = wazuh.execPermission();
    (notPython.syscheck as Record<string, unknown>).path = "/tmp/notes.txt";
    const result = onAlert(instances, notPython);
    expect(result.candidates).toHaveLength(1);
    expect(result.holding).toEqual([]);
    expect(result).toMatchObject({ instances, reached: [], finished: [] });
  });

  it("the flow processor's Slowloris alert reaches dos_slowloris only, which finishes at once", () => {
    const result = onAlert([], wazuh.flowProcessor());
    expect(result.candidates.map((c) => [c.flowId, c.nodeId, c.conditions])).toEqual([
      ["dos_slowloris", "slowloris", ["attack_type_slowloris"]],
      ["brute_force", "bruteforce", ["attack_type_bruteforce"]],
    ]);
    expect(result.reached).toEqual([
      {
        flowId: "dos_slowloris",
        instanceId: "1757331811.18627989/0",
        nodeId: "slowloris",
        techniques: ["T1499"],
        preemptive: false,
      },
    ]);
    expect(result.instances).toEqual([]);
    expect(result.finished.map((i) => i.flowId)).toEqual(["dos_slowloris"]);
  });
});

// Small flows to pin the engine's rules.
const node = (
  id: string,
  techniques: string[],
  next: string[] = [],
  extra: Partial<AttackFlowNode> = {},
): AttackFlowNode => ({
  id,
  techniques,
  next,
  ...extra,
});
const flow = (
  identifier: string | number,
  nodes: AttackFlowNode[],
  start: string[],
): AttackFlow => ({ identifier, name: String(identifier), nodes, start });
const inst = (
  id: string,
  flowId: string,
  path: string[],
  preempted: string[] = [],
): FlowInstance => ({
  id,
  flowId,
  node: path[path.length - 1] as string,
  path,
  preempted,
});
/** Every candidate holds. */
const step = (flows: AttackFlow[], instances: FlowInstance[], techniques: string[]) =>
  advance(flows, instances, candidateNodes(flows, instances, techniques), ids);

describe("candidateNodes", () => {
  const f = flow(
    "f",
    [
      node("a", ["T1041"], ["b", "c"]),
      node("b", ["T1222"], [], { conditions: ["x", 7] }),
      node("c", ["T1222.002"]),
    ],
    ["a"],
  );

  it("matches successors by technique, sub-techniques included, and start nodes", () => {
    const i = inst("i1", "f", ["a"]);
    expect(candidateNodes([f], [i], ["T1222.002", "T1041"])).toEqual([
      {
        flowId: "f",
        nodeId: "b",
        instanceId: "i1",
        techniques: ["T1222.002"],
        conditions: ["x", "7"],
      },
      { flowId: "f", nodeId: "c", instanceId: "i1", techniques: ["T1222.002"], conditions: [] },
      { flowId: "f", nodeId: "a", instanceId: null, techniques: ["T1041"], conditions: [] },
    ]);
    expect(candidateNodes([f], [i], ["T1222.001"])).toEqual([
      {
        flowId: "f",
        nodeId: "b",
        instanceId: "i1",
        techniques: ["T1222.001"],
        conditions: ["x", "7"],
      },
    ]);
  });

  it("deduplicates and ignores instances of unknown flows or nodes", () => {
    expect(
      candidateNodes(
        [f, f],
        [
          inst("i1", "f", ["a"]),
          inst("i1", "f", ["a"]),
          inst("i2", "gone", ["a"]),
          inst("i3", "f", ["zz"]),
        ],
        ["T1222"],
      ),
    ).toEqual([
      { flowId: "f", nodeId: "b", instanceId: "i1", techniques: ["T1222"], conditions: ["x", "7"] },
    ]);
  });

  it("keys integer flow identifiers as strings", () => {
    expect(
      candidateNodes([flow(42, [node("a", ["T1041"])], ["a"])], [], ["T1041"])[0]?.flowId,
    ).toBe("42");
  });
});

describe("advance", () => {
  it("runs a preemptive successor once, ahead of its own alert, and not again when reached", () => {
    const f = flow(
      "f",
      [
        node("a", ["T1041"], ["b"]),
        node("b", ["T1222"], ["c"], { preemptive: true }),
        node("c", ["T1204"]),
      ],
      ["a"],
    );
    const first = step([f], [], ["T1041"]);
    expect(first.reached).toEqual([
      { flowId: "f", instanceId: "new-0", nodeId: "a", techniques: ["T1041"], preemptive: false },
      { flowId: "f", instanceId: "new-0", nodeId: "b", techniques: ["T1222"], preemptive: true },
    ]);
    expect(first.instances).toEqual([inst("new-0", "f", ["a"], ["b"])]);

    // The same start technique again: the instance on "a" is reached again, b is not re-run.
    const again = step([f], first.instances, ["T1041"]);
    expect(again.reached).toEqual([
      { flowId: "f", instanceId: "new-0", nodeId: "a", techniques: ["T1041"], preemptive: false },
    ]);
    expect(again.instances).toEqual(first.instances);

    const second = step([f], first.instances, ["T1222.002"]);
    expect(second.reached).toEqual([]);
    expect(second.instances).toEqual([inst("new-0", "f", ["a", "b"], ["b"])]);

    const third = step([f], second.instances, ["T1204"]);
    expect(third.reached).toEqual([
      { flowId: "f", instanceId: "new-0", nodeId: "c", techniques: ["T1204"], preemptive: false },
    ]);
    expect(third.finished).toEqual([inst("new-0", "f", ["a", "b", "c"], ["b"])]);
  });

  it("reports a preemptive successor once per flow, even when two reached nodes share it", () => {
    const f = flow(
      "f",
      [
        node("x1", ["T1001"], ["y"]),
        node("x2", ["T1002"], ["y"]),
        node("y", ["T1003"], [], { preemptive: true }),
      ],
      ["x1", "x2"],
    );
    const first = step([f], [], ["T1001", "T1002"]);
    expect(first.reached).toEqual([
      { flowId: "f", instanceId: "new-0", nodeId: "x1", techniques: ["T1001"], preemptive: false },
      { flowId: "f", instanceId: "new-0", nodeId: "y", techniques: ["T1003"], preemptive: true },
      { flowId: "f", instanceId: "new-1", nodeId: "x2", techniques: ["T1002"], preemptive: false },
    ]);
    expect(first.instances).toEqual([
      inst("new-0", "f", ["x1"], ["y"]),
      inst("new-1", "f", ["x2"]),
    ]);
    // A later instance reaching x2 again does not re-run y either: another instance ran it ahead.
    expect(step([f], first.instances, ["T1002"]).reached.map((r) => r.nodeId)).toEqual(["x2"]);
    // Both move to y: merged, and y is not reported since it already ran.
    const last = step([f], first.instances, ["T1003"]);
    expect(last).toEqual({
      instances: [],
      reached: [],
      finished: [inst("new-0", "f", ["x1", "y"], ["y"])],
    });
  });

  it("merges instances of one flow that land on the same node into the earliest", () => {
    const f = flow(
      "f",
      [
        node("a1", ["T1001"], ["m"]),
        node("a2", ["T1002"], ["m"]),
        node("m", ["T1003"], ["z"], {}),
        node("z", ["T1004"]),
      ],
      ["a1", "a2"],
    );
    const i1 = inst("i1", "f", ["a1"]);
    const i2 = inst("i2", "f", ["a2"], ["x"]);
    const result = step([f], [i1, i2], ["T1003"]);
    expect(result.instances).toEqual([inst("i1", "f", ["a1", "m"], ["x"])]);
    expect(result.reached).toEqual([
      { flowId: "f", instanceId: "i1", nodeId: "m", techniques: ["T1003"], preemptive: false },
    ]);
    expect(result.finished).toEqual([]);
  });

  it("a start node also reachable as a successor does not get a second instance", () => {
    const f = flow(
      "f",
      [node("a", ["T1001"], ["b"]), node("b", ["T1002"], ["c"]), node("c", ["T1003"])],
      ["a", "b"],
    );
    const result = step([f], [inst("i1", "f", ["a"])], ["T1002"]);
    expect(result.instances).toEqual([inst("i1", "f", ["a", "b"])]);
    expect(result.reached).toEqual([
      { flowId: "f", instanceId: "i1", nodeId: "b", techniques: ["T1002"], preemptive: false },
    ]);
  });

  it("forks an instance when several successors hold, first in next order keeping its id", () => {
    const f = flow(
      "f",
      [
        node("a", ["T1001"], ["c", "b"]),
        node("b", ["T1002"], ["d"]),
        node("c", ["T1002"], ["d"]),
        node("d", ["T1003"]),
      ],
      ["a"],
    );
    const result = step([f], [inst("i1", "f", ["a"])], ["T1002"]);
    expect(result.instances).toEqual([inst("i1", "f", ["a", "c"]), inst("new-0", "f", ["a", "b"])]);
    expect(result.reached.map((r) => [r.instanceId, r.nodeId])).toEqual([
      ["i1", "c"],
      ["new-0", "b"],
    ]);
    // Both branches converge on d: one instance, one reached entry.
    const joined = step([f], result.instances, ["T1003"]);
    expect(joined.reached).toEqual([
      { flowId: "f", instanceId: "i1", nodeId: "d", techniques: ["T1003"], preemptive: false },
    ]);
    expect(joined.finished).toEqual([inst("i1", "f", ["a", "c", "d"])]);
  });

  it("advances two flows at once, in flow order", () => {
    const f1 = flow("f1", [node("a", ["T1001"], ["b"]), node("b", ["T1002"])], ["a"]);
    const f2 = flow("f2", [node("x", ["T1002"], ["y"]), node("y", ["T1001"])], ["x"]);
    const first = step([f1, f2], [], ["T1001"]);
    expect(first.instances).toEqual([inst("new-0", "f1", ["a"])]);
    const second = step([f1, f2], first.instances, ["T1002"]);
    expect(second.reached.map((r) => [r.flowId, r.instanceId, r.nodeId])).toEqual([
      ["f1", "new-0", "b"],
      ["f2", "new-0", "x"],
    ]);
    expect(second.finished).toEqual([inst("new-0", "f1", ["a", "b"])]);
    expect(second.instances).toEqual([inst("new-0", "f2", ["x"])]);
    const third = step([f1, f2], second.instances, ["T1001"]);
    expect(third.reached.map((r) => [r.flowId, r.nodeId])).toEqual([
      ["f2", "y"],
      ["f1", "a"],
    ]);
    expect(third.finished.map((i) => i.flowId)).toEqual(["f2"]);
    expect(third.instances).toEqual([inst("new-0", "f1", ["a"])]);
  });

  it("ignores holding candidates that do not follow from an instance's node", () => {
    const f = flow(
      "f",
      [node("a", ["T1001"], ["b"]), node("b", ["T1002"], ["c"]), node("c", ["T1003"])],
      ["a"],
    );
    const i1 = inst("i1", "f", ["a"]);
    const bogus: NodeCandidate[] = [
      { flowId: "f", nodeId: "c", instanceId: "i1", techniques: ["T1003"], conditions: [] },
      { flowId: "f", nodeId: "b", instanceId: null, techniques: ["T1002"], conditions: [] },
      { flowId: "g", nodeId: "a", instanceId: null, techniques: ["T1001"], conditions: [] },
    ];
    expect(advance([f], [i1], bogus, ids)).toEqual({ instances: [i1], reached: [], finished: [] });
  });

  it("finishes instances whose flow or node no longer exists", () => {
    const f = flow("f", [node("a", ["T1001"], ["b"]), node("b", ["T1002"])], ["a"]);
    const orphaned = [inst("i1", "deleted", ["a"]), inst("i2", "f", ["renamed"])];
    expect(advance([f], orphaned, [], ids)).toEqual({
      instances: [],
      reached: [],
      finished: orphaned,
    });
  });

  it("is deterministic: the same input gives the same output", () => {
    const flows = defaultCatalog({ firewallWebhookUrl: "http://x" }).attackFlows;
    const run = () =>
      step(
        flows,
        [inst("i1", "ncat_to_ransomware", ["ncat_connection"])],
        ["T1222.002", "T1041", "T1499", "T1110"],
      );
    expect(run()).toEqual(run());
    expect(run().reached.map((r) => r.nodeId)).toEqual([
      "exec_permission",
      "ncat_connection",
      "slowloris",
      "bruteforce",
    ]);
  });
});

describe("reachesAnyFlow", () => {
  const index = flowTechniques([
    {
      identifier: "f",
      name: "f",
      start: ["a"],
      nodes: [
        { id: "a", techniques: ["T1041"], next: ["b"] },
        { id: "b", techniques: ["t1222.002"] },
      ],
    } as unknown as AttackFlow,
  ]);
  it.each([
    [["T1041"], true],
    [["T1041.001"], true], // a listed technique covers its sub-techniques
    [["T1222.002"], true], // listed on a later node: it may advance an instance
    [["T1222"], false], // a sub-technique listed does not cover its parent
    [["T1222.001"], false],
    [["T9999", "t1041"], true],
    [[], false],
  ])("%j → %s", (techniques, expected) => {
    expect(reachesAnyFlow(index, techniques)).toBe(expected);
  });
});
