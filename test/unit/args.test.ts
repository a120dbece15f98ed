import { describe, expect, it } from "vitest";
import { argPathKeys, resolveArgs, validateArgSpec } from "../../src/domain/args.ts";
import { wazuh } from "./fixtures.ts";

describe("resolveArgs", () => {
  it("resolves the seed's paths on the fixtures", () => {
    expect(
      resolveArgs(
        { path: "alert.syscheck.path", perm: "alert.syscheck.perm_after" },
        wazuh.execPermission(),
      ),
    ).toEqual({
      ok: true,
      values: { path: "/tmp/zerologon_tester.py", perm: "rwxr-xr-x" },
    });
    expect(
      resolveArgs(
        { attacker_ip: "alert.data.attack_flow_alert.destination_ip" },
        wazuh.flowProcessor(),
      ),
    ).toEqual({
      ok: true,
      values: { attacker_ip: "10.185.2.97" },
    });
  });

  it("keeps non-string values as they are and indexes arrays by number", () => {
    const raw = wazuh.execPermission();
    expect(
      resolveArgs(
        {
          inode: "alert.syscheck.inode_after",
          first: "alert.rule.mitre.id.0",
          mitre: "alert.rule.mitre",
        },
        raw,
      ),
    ).toEqual({
      ok: true,
      values: {
        inode: 151477998,
        first: "T1222.002",
        mitre: (raw.rule as Record<string, unknown>).mitre,
      },
    });
  });

  it("takes the first present path of a list", () => {
    const raw = { data: { srcip: "10.0.0.1", dstip: null }, agent: { ip: "10.0.0.2" } };
    expect(
      resolveArgs(
        { ip: ["alert.data.dstip", "alert.data.missing", "alert.data.srcip", "alert.agent.ip"] },
        raw,
      ),
    ).toEqual({
      ok: true,
      values: { ip: "10.0.0.1" },
    });
  });

  it("reports every missing arg by name, in spec order", () => {
    const raw = { a: { b: null, c: 0, d: false, e: "" }, list: [1] };
    expect(
      resolveArgs(
        {
          nullValue: "alert.a.b",
          zero: "alert.a.c",
          absent: "alert.a.zz",
          noneOfList: ["alert.x", "alert.y"],
          notAnAlertPath: "data.a.c",
          emptyKey: "alert.a..c",
          pastALeaf: "alert.a.c.d",
          badIndex: "alert.list.first",
          outOfRange: "alert.list.1",
          prototype: "alert.a.constructor",
        },
        raw,
      ),
    ).toEqual({
      ok: false,
      missing: [
        "nullValue",
        "absent",
        "noneOfList",
        "notAnAlertPath",
        "emptyKey",
        "pastALeaf",
        "badIndex",
        "outOfRange",
        "prototype",
      ],
    });
  });

  it("treats falsy present values (0, false, empty string) as present", () => {
    expect(
      resolveArgs({ zero: "alert.c", no: "alert.d", empty: "alert.e" }, { c: 0, d: false, e: "" }),
    ).toEqual({
      ok: true,
      values: { zero: 0, no: false, empty: "" },
    });
  });

  it("resolves nothing from a non-object alert and keeps a __proto__ arg as data", () => {
    expect(resolveArgs({ a: "alert.a" }, null)).toEqual({ ok: false, missing: ["a"] });
    const result = resolveArgs(JSON.parse('{"__proto__": "alert.a"}'), { a: { polluted: true } });
    expect(result.ok && Object.getPrototypeOf(result.values)).toBe(Object.prototype);
    expect(result.ok && Object.keys(result.values)).toEqual(["__proto__"]);
  });

  it("an empty spec resolves to no values", () => {
    expect(resolveArgs({}, wazuh.ncat())).toEqual({ ok: true, values: {} });
  });
});

describe("argPathKeys", () => {
  it.each([
    ["alert.a", ["a"]],
    ["alert.a.b.0", ["a", "b", "0"]],
    ["alert", null],
    ["alert.", null],
    ["alerts.a", null],
    ["alert.a.", null],
    ["a.b", null],
  ])("%j → %j", (path, keys) => {
    expect(argPathKeys(path)).toEqual(keys);
  });
});

describe("validateArgSpec", () => {
  it("accepts the seed's args and lists", () => {
    expect(
      validateArgSpec({ b: "alert.b", ip: ["alert.data.srcip", "alert.agent.ip"] }, "args"),
    ).toEqual([]);
    expect(validateArgSpec({}, "args")).toEqual([]);
  });

  it("names each bad entry", () => {
    expect(
      validateArgSpec({ a: "b.c", l: ["alert.x", 3], e: [], n: 1, "": "alert.x" }, "args"),
    ).toEqual([
      { field: "args.a", message: expect.stringContaining('"alert."') },
      { field: "args.l[1]", message: expect.stringContaining('"alert."') },
      { field: "args.e", message: "must list at least one path" },
      { field: "args.n", message: expect.stringContaining('"alert."') },
      { field: "args.", message: "arg names must not be empty" },
    ]);
  });

  it.each([null, [], "alert.a", 5])("refuses %j as a whole", (spec) => {
    expect(validateArgSpec(spec, "args")).toEqual([
      { field: "args", message: expect.stringContaining("must be an object") },
    ]);
  });
});
