// The default catalogue loaded on first start: the seed's scenarios (DESIGN.md, "Default
// configuration"). Plain data, so every call returns fresh documents the caller may mutate.
import type { AttackFlow, Condition, Mitigation } from "./model.ts";

export interface DefaultCatalog {
  conditions: Condition[];
  mitigations: Mitigation[];
  attackFlows: AttackFlow[];
}

const FILE_ARGS = { path: "alert.syscheck.path", sha256: "alert.syscheck.sha256_after" };

/**
 * The flow processor's alert (rule 100100) says "Slowloris from 10.185.2.97 to 127.0.0.1" in its
 * description and full_log, yet its decoded data.attack_flow_alert has source_ip 127.0.0.1 and
 * destination_ip 10.185.2.97: the decoded fields are swapped. The attacker is therefore read from
 * destination_ip, and public_attacker refuses loopback so the firewall never drops 127.0.0.1.
 */
const ATTACKER_IP = "alert.data.attack_flow_alert.destination_ip";
const ATTACK_TYPE = "alert.data.attack_flow_alert.attack_type";

export function defaultCatalog(opts: { firewallWebhookUrl: string }): DefaultCatalog {
  const conditions: Condition[] = [
    {
      identifier: "python_script",
      name: "Python script",
      description: "The file is a Python script (path ends in .py).",
      params: {},
      args: { path: "alert.syscheck.path" },
      check: 'args.path.endsWith(".py")',
    },
    {
      identifier: "executable_permission",
      name: "Executable permission",
      description: "The file's new permissions include execute (x).",
      params: {},
      args: { perm: "alert.syscheck.perm_after" },
      check: 'args.perm.contains("x")',
    },
    {
      identifier: "zerologon_script",
      name: "Zerologon script",
      description: "The file is a Python script whose path mentions zerologon.",
      params: {},
      args: { path: "alert.syscheck.path" },
      check: 'args.path.endsWith(".py") && args.path.contains("zerologon")',
    },
    {
      identifier: "attack_type_slowloris",
      name: "Slowloris attack",
      description: "The flow processor classified the flow as Slowloris (DoS).",
      params: {},
      args: { attack_type: ATTACK_TYPE },
      check: 'args.attack_type.lowerAscii() == "slowloris"',
    },
    {
      identifier: "attack_type_bruteforce",
      name: "Brute-force attack",
      description: "The flow processor classified the flow as brute force.",
      params: {},
      args: { attack_type: ATTACK_TYPE },
      check: 'args.attack_type.lowerAscii() == "bruteforce"',
    },
    {
      identifier: "public_attacker",
      name: "Attacker is not loopback",
      description: "Never block a loopback address: that would cut the host off from itself.",
      params: {},
      args: { attacker_ip: ATTACKER_IP },
      // isLoopbackIp fails on a non-address, so garbage never passes as "not loopback".
      check: "!isLoopbackIp(args.attacker_ip)",
    },
  ];

  const mitigations: Mitigation[] = [
    {
      identifier: "close_conn",
      name: "close_conn",
      description: "Kill the ncat process and block the remote IP.",
      effective_attacks: ["T1041", "T1219"],
      cost: 10,
      params: {},
      args: { pid: "alert.data.pid", ip: "alert.data.dst_ip" },
      steps: [{ agent: "kill-process", details: { process_name: "ncat" } }, { agent: "block-ip" }],
    },
    {
      identifier: "delete_file",
      name: "delete_file",
      description: "Delete the file whose permissions were changed.",
      effective_attacks: ["T1222.002"],
      cost: 1,
      params: {},
      args: { ...FILE_ARGS },
      steps: [{ agent: "delete-file" }],
    },
    {
      identifier: "handle_ransomware",
      name: "handle_ransomware",
      description: "Quarantine the malicious file and isolate the host.",
      effective_attacks: ["T1204.002"],
      cost: 5,
      params: {},
      args: { ...FILE_ARGS },
      steps: [
        { agent: "quarantine-file" },
        {
          agent: "isolate-host",
          details: {
            reason: "Ransomware detection",
            allow_portal_communication: true,
            allow_dns: true,
          },
        },
      ],
    },
    {
      identifier: "filter_packets",
      name: "filter_packets",
      description: "Ask the firewall to drop traffic from the attacker's IP.",
      url: opts.firewallWebhookUrl,
      effective_attacks: ["T1499", "T1110"],
      cost: 5,
      params: {},
      args: { attacker_ip: ATTACKER_IP },
      conditions: ["public_attacker"],
    },
  ];

  const attackFlows: AttackFlow[] = [
    {
      identifier: "ncat_to_ransomware",
      name: "ncat to ransomware",
      description:
        "Remote access via ncat, then an executable Python script, then the ransomware file.",
      nodes: [
        { id: "ncat_connection", techniques: ["T1041", "T1219"], next: ["exec_permission"] },
        {
          id: "exec_permission",
          techniques: ["T1222.002"],
          conditions: ["python_script", "executable_permission"],
          next: ["ransomware_file"],
        },
        { id: "ransomware_file", techniques: ["T1204.002"], conditions: ["zerologon_script"] },
      ],
      start: ["ncat_connection"],
    },
    {
      identifier: "dos_slowloris",
      name: "DoS (Slowloris)",
      description: "Flow processor detected a Slowloris denial of service.",
      nodes: [{ id: "slowloris", techniques: ["T1499"], conditions: ["attack_type_slowloris"] }],
      start: ["slowloris"],
    },
    {
      identifier: "brute_force",
      name: "Brute force",
      description: "Flow processor detected a brute-force attack.",
      nodes: [{ id: "bruteforce", techniques: ["T1110"], conditions: ["attack_type_bruteforce"] }],
      start: ["bruteforce"],
    },
  ];

  return { conditions, mitigations, attackFlows };
}
