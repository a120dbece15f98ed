import { describe, expect, it } from "vitest";
import { defaultCatalog } from "../../src/domain/defaults.ts";
import {
  objectsOverlap,
  rankMitigations,
  stepDetails,
  touchedObjects,
} from "../../src/domain/mitigation.ts";
import type { Mitigation } from "../../src/domain/model.ts";

const m = (identifier: string | number, cost: number, effective_attacks: string[]): Mitigation => ({
  identifier,
  name: String(identifier),
  effective_attacks,
  cost,
  params: {},
  args: {},
  url: "http://soar.test/hook",
});

describe("rankMitigations", () => {
  it("keeps those covering a technique, cheapest first, equal costs by identifier", () => {
    const all = [
      m("zeta", 5, ["T1499"]),
      m(10, 5, ["T1499"]),
      m("alpha", 5, ["T1110"]),
      m("costly", 9, ["T1499"]),
      m("cheap", 1, ["T1499"]),
      m("other", 0, ["T1041"]),
    ];
    expect(rankMitigations(all, ["T1499"]).map((x) => x.identifier)).toEqual([
      "cheap",
      10,
      "zeta",
      "costly",
    ]);
    expect(rankMitigations(all, ["T1499", "T1110"]).map((x) => x.identifier)).toEqual([
      "cheap",
      10,
      "alpha",
      "zeta",
      "costly",
    ]);
  });

  it("a mitigation for a technique covers its sub-techniques, not the other way round", () => {
    const all = [
      m("parent", 2, ["T1222"]),
      m("sub", 1, ["T1222.002"]),
      m("sibling", 0, ["T1222.001"]),
    ];
    expect(rankMitigations(all, ["T1222.002"]).map((x) => x.identifier)).toEqual(["sub", "parent"]);
    expect(rankMitigations(all, ["T1222"]).map((x) => x.identifier)).toEqual(["parent"]);
  });

  it("orders ties by code units, not locale, and leaves its input alone", () => {
    const all = [
      m("b", 1, ["T1041"]),
      m("B", 1, ["T1041"]),
      m("a", 1, ["T1041"]),
      m("2", 1, ["T1041"]),
      m(10, 1, ["T1041"]),
    ];
    expect(rankMitigations(all, ["T1041"]).map((x) => x.identifier)).toEqual([
      10,
      "2",
      "B",
      "a",
      "b",
    ]);
    expect(all.map((x) => x.identifier)).toEqual(["b", "B", "a", "2", 10]);
  });

  it("ranks the defaults for the seed's techniques", () => {
    const { mitigations } = defaultCatalog({ firewallWebhookUrl: "http://fw.test" });
    expect(rankMitigations(mitigations, ["T1041", "T1219"]).map((x) => x.identifier)).toEqual([
      "close_conn",
    ]);
    expect(rankMitigations(mitigations, ["T1222.002"]).map((x) => x.identifier)).toEqual([
      "delete_file",
    ]);
    expect(rankMitigations(mitigations, ["T1204.002"]).map((x) => x.identifier)).toEqual([
      "handle_ransomware",
    ]);
    expect(rankMitigations(mitigations, ["T1499"]).map((x) => x.identifier)).toEqual([
      "filter_packets",
    ]);
    expect(rankMitigations(mitigations, ["T1003.005"])).toEqual([]);
  });
});

describe("stepDetails", () => {
  it("is params ∪ args ∪ details, later winning", () => {
    const mitigation = { ...m("x", 1, ["T1041"]), params: { a: 1, b: 1, c: 1 } };
    expect(stepDetails(mitigation, { b: 2, c: 2 }, { details: { c: 3, d: 3 } })).toEqual({
      a: 1,
      b: 2,
      c: 3,
      d: 3,
    });
    expect(stepDetails(mitigation, {}, {})).toEqual({ a: 1, b: 1, c: 1 });
  });

  it("builds the seed's isolate-host details", () => {
    const handle = defaultCatalog({ firewallWebhookUrl: "http://fw.test" }).mitigations.find(
      (x) => x.identifier === "handle_ransomware",
    ) as Mitigation;
    const args = { path: "/tmp/zerologon_tester.py", sha256: "b8ae" };
    expect(stepDetails(handle, args, handle.steps?.[1] ?? {})).toEqual({
      path: "/tmp/zerologon_tester.py",
      sha256: "b8ae",
      reason: "Ransomware detection",
      allow_portal_communication: true,
      allow_dns: true,
    });
  });
});

describe("per-host ordering keys", () => {
  it("names the file, process or network each agent command touches", () => {
    expect(
      touchedObjects([
        { command: "quarantine-file", details: { path: "/tmp/x" } },
        { command: "isolate-host", details: {} },
        { command: "delete-file", details: { path: "/tmp/x" } },
        { command: "kill-process", details: { pid: 42 } },
        { command: "block-ip", details: { ip: "10.0.0.1" } },
      ]),
    ).toEqual(["file:/tmp/x", "network", "process:42"]);
    expect(touchedObjects([{ command: "kill-process", details: {} }])).toEqual(["process:*"]);
    expect(touchedObjects([])).toEqual([]);
  });

  it("meets on the same object, or on a wildcard of its kind only", () => {
    expect(objectsOverlap(["file:/a"], ["file:/a", "network"])).toBe(true);
    expect(objectsOverlap(["file:/a"], ["file:/b"])).toBe(false);
    expect(objectsOverlap(["process:*"], ["process:7"])).toBe(true);
    expect(objectsOverlap(["process:*"], ["file:/a"])).toBe(false);
    expect(objectsOverlap(["network"], ["network"])).toBe(true);
    expect(objectsOverlap([], ["network"])).toBe(false);
  });
});
