import { describe, expect, it } from "vitest";
import {
  type Alert,
  normaliseAlert,
  parseTimestamp,
  severityFromLevel,
} from "../../src/domain/alert.ts";
import { canonicalJson } from "../../src/domain/canonical-json.ts";
import { fixture, wazuh } from "./fixtures.ts";

function ok(input: unknown, context?: Parameters<typeof normaliseAlert>[1]): Alert {
  const result = normaliseAlert(input, context);
  if (!result.ok) throw new Error(`expected ok, got ${JSON.stringify(result.errors)}`);
  return result.alert;
}

function errors(input: unknown, context?: Parameters<typeof normaliseAlert>[1]) {
  const result = normaliseAlert(input, context);
  if (result.ok) throw new Error("expected errors");
  return result.errors;
}

function fields(input: unknown): string[] {
  return errors(input).map((e) => e.field);
}

describe("normaliseAlert: Wazuh fixtures", () => {
  it("100002 ncat connection", () => {
    const input = wazuh.ncat();
    const alert = ok(input);
    expect(alert).toEqual({
      id: "1729589475.25117",
      time: "2024-10-22T09:31:15.007Z",
      host: { name: "eeb0036baf28", agentId: "001", ip: "192.168.200.200" },
      rule: {
        id: "100002",
        level: 14,
        description: "Connection via ncat from source port 11234 to 192.168.200.1:36210. PID: 3613",
      },
      techniques: ["T1041", "T1219"],
      tactics: ["Exfiltration", "Command and Control"],
      severity: "high",
      format: "wazuh",
      raw: input,
    });
    expect(alert.raw).toBe(input);
  });

  it("100003 execute permission added", () => {
    const alert = ok(wazuh.execPermission());
    expect(alert).toMatchObject({
      id: "1729588726.22091",
      time: "2024-10-22T09:18:46.153Z",
      rule: { id: "100003", level: 8 },
      techniques: ["T1222.002"],
      tactics: ["Defense Evasion"],
      severity: "medium",
    });
  });

  it("100004 executable file added", () => {
    const alert = ok(wazuh.executableFile());
    expect(alert).toMatchObject({
      id: "1729589139.24598",
      time: "2024-10-22T09:25:39.991Z",
      host: { name: "eeb0036baf28", agentId: "001", ip: "192.168.200.200" },
      rule: { id: "100004", level: 8, description: "Executable file added to filesystem" },
      techniques: ["T1204.002"],
      tactics: ["Execution"],
      severity: "medium",
    });
  });

  it("100100 flow processor: string data, no tactics, manager host without ip", () => {
    const alert = ok(wazuh.flowProcessor());
    expect(alert).toMatchObject({
      id: "1757331811.18627989",
      time: "2025-09-08T11:43:31.955Z",
      host: { name: "wazuh.manager", agentId: "000" },
      rule: { id: "100100", level: 12 },
      techniques: ["T1110", "T1499"],
      tactics: [],
      severity: "high",
    });
    expect(alert.host).not.toHaveProperty("ip");
  });
});

describe("normaliseAlert: lenient where forwarders differ", () => {
  it("accepts numeric id, rule id and agent id, a numeric-string level and lowercase techniques", () => {
    const input = wazuh.ncat();
    input.id = 42;
    Object.assign(input.rule as object, {
      id: 100002,
      level: "3",
      mitre: { id: ["t1041", "T1041"] },
    });
    Object.assign(input.agent as object, { id: 7, ip: "" });
    const alert = ok(input);
    expect(alert.id).toBe("42");
    expect(alert.rule).toMatchObject({ id: "100002", level: 3 });
    expect(alert.host).toEqual({ name: "eeb0036baf28", agentId: "7" });
    expect(alert.techniques).toEqual(["T1041"]);
    expect(alert.severity).toBe("low");
  });

  it("stores an alert without ATT&CK mapping with no techniques", () => {
    const input = wazuh.ncat();
    delete (input.rule as Record<string, unknown>).mitre;
    expect(ok(input)).toMatchObject({ techniques: [], tactics: [] });
  });
});

describe("normaliseAlert: agent alerts", () => {
  const agentAlert = () => fixture("agent-protocol/agent-alert.json");
  const host = { name: "win-desk-7", agentId: "agent-7", ip: "10.0.0.7" };

  it("normalises the fixture with the host from the gateway's context", () => {
    const input = agentAlert();
    const alert = ok(input, { host });
    expect(alert).toEqual({
      id: expect.stringMatching(/^agent-[0-9a-f]{64}$/),
      time: "2025-03-22T14:25:32.561Z",
      host,
      rule: { id: "credential_dumping_vaultcmd", level: 12 },
      techniques: ["T1003.005"],
      tactics: ["credential-access"],
      severity: "high",
      format: "agent",
      raw: {
        ...(input.alert as object),
        host: { name: "win-desk-7", agent_id: "agent-7", ip: "10.0.0.7" },
      },
    });
  });

  it("gives a re-forwarded identical alert the same id, whatever the key order", () => {
    const a = ok(agentAlert(), { host });
    const inner = agentAlert().alert as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(inner).reverse());
    expect(ok({ alert: reordered }, { host }).id).toBe(a.id);
    expect(ok(agentAlert(), { host: { ...host, name: "other" } }).id).not.toBe(a.id);
    const changed = agentAlert();
    (changed.alert as Record<string, unknown>).timestamp = "2025-03-22T14:25:33.561Z";
    expect(ok(changed, { host }).id).not.toBe(a.id);
  });

  it("takes the host from the body for REST clients; the gateway's context wins", () => {
    const body = { ...agentAlert(), host: { name: "rest-host", agent_id: 12, ip: "10.1.1.1" } };
    expect(ok(body).host).toEqual({ name: "rest-host", agentId: "12", ip: "10.1.1.1" });
    expect(ok(body, { host }).host).toEqual(host);
  });

  it("maps every severity to a level inside its Wazuh band", () => {
    for (const [severity, level] of [
      ["low", 3],
      ["medium", 7],
      ["high", 12],
      ["critical", 15],
    ] as const) {
      const input = agentAlert();
      (input.alert as Record<string, unknown>).severity = severity;
      const alert = ok(input, { host });
      expect(alert.rule.level).toBe(level);
      expect(severityFromLevel(level)).toBe(severity);
    }
  });

  it("names every wrong field", () => {
    expect(errors(agentAlert())).toEqual([
      { field: "host", message: expect.stringContaining("required") },
    ]);
    const bad = {
      alert: {
        rule_name: "",
        severity: "severe",
        timestamp: "yesterday",
        details: { technique_id: "X1", tactic: 3 },
      },
    };
    expect(errors(bad, { host }).map((e) => e.field)).toEqual([
      "alert.rule_name",
      "alert.severity",
      "alert.timestamp",
      "alert.details.technique_id",
      "alert.details.tactic",
    ]);
    expect(
      errors({
        alert: { rule_name: "r", severity: "low", timestamp: "2025-01-01T00:00:00Z" },
        host: { ip: 1 },
      }).map((e) => e.field),
    ).toEqual(["host.name", "host.ip", "alert.details"]);
  });
});

describe("normaliseAlert: bad input gives field-named errors and never throws", () => {
  it("reports every problem of a Wazuh alert with its path", () => {
    const input = wazuh.ncat();
    delete input.id;
    input.timestamp = "2024-13-22T09:31:15.007+0000";
    (input.agent as Record<string, unknown>).name = ["x"];
    Object.assign(input.rule as object, {
      level: -1,
      mitre: { id: ["T1041", "1041", 5], tactic: "Exfiltration" },
    });
    expect(errors(input)).toEqual([
      { field: "id", message: "is required" },
      { field: "timestamp", message: expect.stringContaining("ISO 8601") },
      { field: "agent.name", message: "must be a string, got array" },
      { field: "rule.level", message: "must be a non-negative integer, got -1" },
      { field: "rule.mitre.id[1]", message: expect.stringContaining('got "1041"') },
      { field: "rule.mitre.id[2]", message: expect.stringContaining("got 5") },
      { field: "rule.mitre.tactic", message: "must be a list of strings, got string" },
    ]);
  });

  const hostile: Array<[string, unknown, string[]]> = [
    ["null", null, ["(root)"]],
    ["undefined", undefined, ["(root)"]],
    ["a number", 42, ["(root)"]],
    ["a string", "alert", ["(root)"]],
    ["an array", [wazuh.ncat()], ["(root)"]],
    ["an empty object", {}, ["id", "timestamp", "agent", "rule"]],
    [
      "wrong types everywhere",
      { id: {}, timestamp: 1, agent: "a", rule: [] },
      ["id", "timestamp", "agent", "rule"],
    ],
    [
      "nested wrong types",
      {
        id: "1",
        timestamp: "2024-10-22T09:31:15Z",
        agent: { name: 1, id: {}, ip: [] },
        rule: { id: null, level: "high", mitre: "T1041" },
      },
      ["agent.name", "agent.id", "agent.ip", "rule.id", "rule.level", "rule.mitre"],
    ],
    [
      "mitre.id not a list",
      { ...wazuh.ncat(), rule: { id: "1", level: 3, mitre: { id: { 0: "T1041" } } } },
      ["rule.mitre.id"],
    ],
    ["alert that is not an object", { alert: "x" }, ["id", "timestamp", "agent", "rule"]],
    [
      "agent alert with everything wrong",
      { alert: { details: [] }, host: "h" },
      ["host", "alert.rule_name", "alert.severity", "alert.timestamp", "alert.details"],
    ],
    [
      "prototype keys",
      JSON.parse('{"__proto__": {"id": "x"}, "constructor": 1}'),
      ["id", "timestamp", "agent", "rule"],
    ],
  ];
  it.each(hostile)("%s", (_name, input, expected) => {
    expect(() => normaliseAlert(input)).not.toThrow();
    expect(fields(input)).toEqual(expected);
  });

  it("survives inputs no JSON parser produces", () => {
    const cyclic: Record<string, unknown> = {
      rule_name: "r",
      severity: "low",
      timestamp: "2025-01-01T00:00:00Z",
      details: { technique_id: "T1003" },
    };
    cyclic.self = cyclic;
    expect(errors({ alert: cyclic, host: { name: "h" } })).toEqual([
      { field: "(root)", message: expect.stringContaining("unreadable alert") },
    ]);
    const big = {
      alert: {
        rule_name: "r",
        severity: "low",
        timestamp: "2025-01-01T00:00:00Z",
        details: { technique_id: "T1003" },
        n: 1n,
      },
      host: { name: "h" },
    };
    expect(errors(big)[0]?.field).toBe("(root)");
  });
});

describe("parseTimestamp", () => {
  it.each([
    ["2024-10-22T09:31:15.007+0000", "2024-10-22T09:31:15.007Z"],
    ["2024-10-22T09:31:15.007+02:00", "2024-10-22T07:31:15.007Z"],
    ["2024-10-22T01:31:15-0330", "2024-10-22T05:01:15.000Z"],
    ["2024-12-31T23:59:59.9999Z", "2024-12-31T23:59:59.999Z"],
    ["2024-02-29 12:00:00", "2024-02-29T12:00:00.000Z"],
    ["2025-03-22T14:25:32.561z", "2025-03-22T14:25:32.561Z"],
  ])("%s → %s", (input, expected) => {
    expect(parseTimestamp(input)).toBe(expected);
  });

  it.each([
    "",
    "2024-10-22",
    "2023-02-29T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2024-10-22T24:00:00Z",
    "2024-10-22T09:31:15+2500",
    "0099-01-01T00:00:00Z",
    "1729589475",
  ])("refuses %j", (input) => {
    expect(parseTimestamp(input)).toBeNull();
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every level and keeps array order", () => {
    expect(canonicalJson({ b: [2, { d: 1, c: null }], a: "x", u: undefined })).toBe(
      '{"a":"x","b":[2,{"c":null,"d":1}]}',
    );
  });
});
