import { describe, expect, it } from "vitest";
import { normaliseAlert } from "../../src/domain/alert.ts";
import { resolveArgs } from "../../src/domain/args.ts";
import {
  referencedConditions,
  validateAttackFlow,
  validateCondition,
  validateMitigation,
} from "../../src/domain/catalog.ts";
import { evaluateCheck } from "../../src/domain/cel.ts";
import { defaultCatalog } from "../../src/domain/defaults.ts";
import { wazuh } from "./fixtures.ts";

const catalog = () => defaultCatalog({ firewallWebhookUrl: "https://firewall.test/api/drop" });

/** Whether a default condition holds for an alert: null when an arg is missing. */
function holds(identifier: string, raw: Record<string, unknown>): boolean | null {
  const condition = catalog().conditions.find((c) => c.identifier === identifier);
  if (!condition) throw new Error(`no condition ${identifier}`);
  const args = resolveArgs(condition.args, raw);
  if (!args.ok) return null;
  const result = evaluateCheck(condition.check, {
    params: condition.params,
    args: args.values,
    alert: raw,
    rows: [],
  });
  if (!result.ok) throw new Error(result.error);
  return result.value;
}

describe("defaultCatalog", () => {
  it("every document passes its validator unchanged", () => {
    const { conditions, mitigations, attackFlows } = catalog();
    for (const c of conditions) expect(validateCondition(c)).toEqual({ ok: true, value: c });
    for (const m of mitigations) expect(validateMitigation(m)).toEqual({ ok: true, value: m });
    for (const f of attackFlows) expect(validateAttackFlow(f)).toEqual({ ok: true, value: f });
  });

  it("references only conditions it defines, and identifiers are unique", () => {
    const { conditions, mitigations, attackFlows } = catalog();
    const defined = conditions.map((c) => c.identifier);
    const used = [
      ...attackFlows.flatMap(referencedConditions),
      ...mitigations.flatMap((m) => m.conditions ?? []),
    ];
    expect(used.filter((c) => !defined.includes(c))).toEqual([]);
    for (const ids of [
      defined,
      mitigations.map((m) => m.identifier),
      attackFlows.map((f) => f.identifier),
    ]) {
      expect(new Set(ids).size).toBe(ids.length);
    }
    expect(attackFlows.map((f) => f.identifier)).toEqual([
      "ncat_to_ransomware",
      "dos_slowloris",
      "brute_force",
    ]);
    expect(mitigations.map((m) => [m.identifier, m.cost])).toEqual([
      ["close_conn", 10],
      ["delete_file", 1],
      ["handle_ransomware", 5],
      ["filter_packets", 5],
    ]);
  });

  it("uses the given firewall webhook and returns fresh documents", () => {
    const a = catalog();
    expect(a.mitigations.find((m) => m.identifier === "filter_packets")?.url).toBe(
      "https://firewall.test/api/drop",
    );
    for (const c of a.conditions) c.check = "false";
    expect(catalog().conditions[0]?.check).toBe('args.path.endsWith(".py")');
  });

  it("conditions hold on the seed's alerts", () => {
    expect(holds("python_script", wazuh.execPermission())).toBe(true);
    expect(holds("executable_permission", wazuh.execPermission())).toBe(true);
    expect(holds("zerologon_script", wazuh.executableFile())).toBe(true);
    expect(holds("executable_permission", wazuh.executableFile())).toBe(false); // rw-r--r--
    expect(holds("attack_type_slowloris", wazuh.flowProcessor())).toBe(true);
    expect(holds("attack_type_bruteforce", wazuh.flowProcessor())).toBe(false);
    expect(holds("public_attacker", wazuh.flowProcessor())).toBe(true);
    expect(holds("python_script", wazuh.ncat())).toBeNull();
  });

  it("filter_packets targets the attacker 10.185.2.97 and never loopback", () => {
    const raw = wazuh.flowProcessor();
    const filter = catalog().mitigations.find((m) => m.identifier === "filter_packets");
    expect(resolveArgs(filter?.args ?? {}, raw)).toEqual({
      ok: true,
      values: { attacker_ip: "10.185.2.97" },
    });
    const flow = raw.data as { attack_flow_alert: Record<string, unknown> };
    for (const loopback of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
      flow.attack_flow_alert.destination_ip = loopback;
      expect(holds("public_attacker", raw)).toBe(false);
    }
    flow.attack_flow_alert.destination_ip = "not-an-ip";
    expect(() => holds("public_attacker", raw)).toThrow("not an IP address");
  });

  it("mitigation args resolve on the alerts they are meant for", () => {
    const { mitigations } = catalog();
    const args = (id: string, raw: Record<string, unknown>) =>
      resolveArgs(mitigations.find((m) => m.identifier === id)?.args ?? {}, raw);
    expect(args("close_conn", wazuh.ncat())).toEqual({
      ok: true,
      values: { pid: "3613", ip: "192.168.200.1" },
    });
    const sha256 = "b8ae48c2e46c28f1004e006348af557c7d912036b9ead88be67bca2bafde01d3";
    expect(args("delete_file", wazuh.execPermission())).toEqual({
      ok: true,
      values: { path: "/tmp/zerologon_tester.py", sha256 },
    });
    expect(args("handle_ransomware", wazuh.executableFile())).toEqual({
      ok: true,
      values: { path: "/tmp/zerologon_tester.py", sha256 },
    });
  });

  it("alert techniques line up with the flows' nodes", () => {
    const techniques = (raw: Record<string, unknown>) => {
      const n = normaliseAlert(raw);
      return n.ok ? n.alert.techniques : [];
    };
    const [ncat] = catalog().attackFlows;
    expect(ncat?.nodes.map((n) => n.techniques)).toEqual([
      techniques(wazuh.ncat()),
      techniques(wazuh.execPermission()),
      techniques(wazuh.executableFile()),
    ]);
  });
});
