// nftables enforcement (Linux). The agent owns two tables and touches nothing else, so that
// release-host removes exactly what isolate-host added and the host's own firewall stays intact:
//   inet mm_agent_isolation  drop-by-default chains while the host is isolated
//   inet mm_agent_block      sets of blocked IPv4/IPv6 addresses (block-ip / unblock-ip)
// A drop in any base chain is final in nftables, so these tables hold whatever other tables accept.
// Every change is one `nft -f` transaction: a table is replaced atomically, never half-written.
import { spawn } from "node:child_process";
import { connect, isIPv4, isIPv6 } from "node:net";
import { parseCidr } from "../../domain/protected-addresses.ts";
import type { Endpoint } from "../state.ts";

const ISOLATION_TABLE = "mm_agent_isolation";
const BLOCK_TABLE = "mm_agent_block";

export interface IsolationSpec {
  portalIps: string[];
  portalPorts: number[];
  /** The resolvers the host may query (port 53); empty: no DNS at all. */
  dnsServers: string[];
  /** The gateway connection(s): allowed whatever portalIps says, so the agent stays reachable. */
  management: Endpoint[];
  /** Ranges an isolation never cuts the host off from (e.g. the Wazuh manager), any port. */
  protectedRanges: string[];
}

/**
 * One spelling per address, so that equal addresses compare equal: IPv6 in its canonical
 * compressed form, and `::ffff:10.0.0.1` (an IPv4 peer seen through a dual-stack socket) as IPv4.
 */
export function normalizeIp(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  return isIPv6(address) ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address;
}

function family(address: string): "ip" | "ip6" {
  if (isIPv4(address)) return "ip";
  if (isIPv6(address)) return "ip6";
  throw new Error(`not an IP address: ${JSON.stringify(address)}`);
}

/** The isolation table as an nft script, and how many rules it holds. Pure: simulation uses it. */
export function isolationRuleset(spec: IsolationSpec): { script: string; rules: number } {
  const input = new Set<string>([
    'iif "lo" accept',
    // IPv6 reaches no neighbour, the portal included, without neighbour discovery; hop limit 255
    // proves the packet comes from the link itself.
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 accept",
    // ICMP errors about allowed flows (e.g. "packet too big") keep the portal connection working.
    "ct state related meta l4proto { icmp, ipv6-icmp } accept",
    // DHCP renewals keep the host's address, and with it the management channel, during a long isolation.
    "udp sport { 67, 547 } udp dport { 68, 546 } accept",
  ]);
  const output = new Set<string>([
    'oif "lo" accept',
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept",
    "udp sport { 68, 546 } udp dport { 67, 547 } accept",
  ]);
  const ports = spec.portalPorts.length ? ` { ${spec.portalPorts.join(", ")} }` : "";
  for (const ip of spec.portalIps.map(normalizeIp)) {
    const f = family(ip);
    input.add(`${f} saddr ${ip}${ports && ` tcp sport${ports}`} accept`);
    output.add(`${f} daddr ${ip}${ports && ` tcp dport${ports}`} accept`);
  }
  for (const { address, port } of spec.management) {
    const ip = normalizeIp(address);
    input.add(`${family(ip)} saddr ${ip} tcp sport ${port} accept`);
    output.add(`${family(ip)} daddr ${ip} tcp dport ${port} accept`);
  }
  for (const range of spec.protectedRanges.map(parseCidr)) {
    const f = range.family === 4 ? "ip" : "ip6";
    input.add(`${f} saddr ${range.text} accept`);
    output.add(`${f} daddr ${range.text} accept`);
  }
  // DNS to the named resolvers only: port 53 open to any address would be a channel out of the
  // isolation for whatever malware speaks DNS (or anything else) to a server of its own.
  for (const server of spec.dnsServers.map(normalizeIp)) {
    const f = family(server);
    output.add(`${f} daddr ${server} meta l4proto { tcp, udp } th dport 53 accept`);
    // Only answers to the host's own queries: an unsolicited packet from port 53 stays dropped.
    input.add(
      `${f} saddr ${server} meta l4proto { tcp, udp } th sport 53 ct state established accept`,
    );
  }
  const chain = (name: string, rules: Iterable<string>) =>
    [
      `  chain ${name} {`,
      `    type filter hook ${name} priority filter; policy drop;`,
      ...[...rules].map((rule) => `    ${rule}`),
      "  }",
    ].join("\n");
  const script = [
    // Flushed rather than deleted when it exists: the chains' hooks stay registered, which spares
    // the kernel's hook-unregistration wait (10-20 ms) when the portal list changes.
    `table inet ${ISOLATION_TABLE}`,
    `flush table inet ${ISOLATION_TABLE}`,
    `table inet ${ISOLATION_TABLE} {`,
    chain("input", input),
    chain("output", output),
    chain("forward", []),
    "}",
  ].join("\n");
  return { script: `${script}\n`, rules: input.size + output.size };
}

/** Installs (or atomically replaces) the isolation table; returns the rules present afterwards. */
export async function applyIsolation(spec: IsolationSpec): Promise<number> {
  const { script, rules } = isolationRuleset(spec);
  await nft(["-f", "-"], script);
  const present = await countRules(ISOLATION_TABLE);
  if (present !== rules) {
    throw new Error(`isolation table holds ${present} rules after applying ${rules}`);
  }
  return present;
}

/** Deletes the isolation table; returns how many rules it held (0 when it was absent). */
export async function removeIsolation(): Promise<number> {
  const rules = await countRules(ISOLATION_TABLE);
  if (rules === null) return 0;
  await nft(["delete", "table", "inet", ISOLATION_TABLE]);
  return rules;
}

/** Makes the block table drop exactly these addresses, both directions and forwarded. */
export async function applyBlocks(ips: string[]): Promise<void> {
  // Declared, then deleted: the script replaces the table whether or not it exists.
  const lines = [`table inet ${BLOCK_TABLE}`, `delete table inet ${BLOCK_TABLE}`];
  if (ips.length) {
    const set = (name: string, type: string, members: string[]) =>
      `  set ${name} { type ${type};${members.length ? ` elements = { ${members.join(", ")} }` : ""} }`;
    const chain = (hook: string, matches: string[]) =>
      `  chain ${hook} { type filter hook ${hook} priority filter; policy accept; ${matches
        .map((match) => `${match} drop;`)
        .join(" ")} }`;
    const normalized = ips.map(normalizeIp);
    lines.push(
      `table inet ${BLOCK_TABLE} {`,
      set(
        "v4",
        "ipv4_addr",
        normalized.filter((ip) => isIPv4(ip)),
      ),
      set(
        "v6",
        "ipv6_addr",
        normalized.filter((ip) => isIPv6(ip)),
      ),
      chain("input", ["ip saddr @v4", "ip6 saddr @v6"]),
      chain("output", ["ip daddr @v4", "ip6 daddr @v6"]),
      chain("forward", ["ip saddr @v4", "ip daddr @v4", "ip6 saddr @v6", "ip6 daddr @v6"]),
      "}",
    );
  }
  await nft(["-f", "-"], `${lines.join("\n")}\n`);
}

/** True when nft runs here with the privileges to change the ruleset. */
export async function firewallAvailable(): Promise<boolean> {
  try {
    await nft(["list", "tables"]);
    return true;
  } catch {
    return false;
  }
}

/** True as soon as one endpoint accepts a TCP connection. */
export async function canConnect(endpoints: Endpoint[], timeoutMs = 2000): Promise<boolean> {
  const attempt = ({ address, port }: Endpoint) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect({ host: normalizeIp(address), port, timeout: timeoutMs });
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("timeout", () => {
        socket.destroy();
        reject(new Error("timeout"));
      });
      socket.once("error", reject);
    });
  try {
    await Promise.any(endpoints.map(attempt));
    return true;
  } catch {
    return false;
  }
}

async function countRules(table: string): Promise<number | null> {
  let listing: string;
  try {
    listing = await nft(["-j", "list", "table", "inet", table]);
  } catch (error) {
    if (/No such file or directory/.test((error as Error).message)) return null;
    throw error;
  }
  const { nftables } = JSON.parse(listing) as { nftables: Record<string, unknown>[] };
  return nftables.filter((item) => "rule" in item).length;
}

function nft(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("nft", args, { stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`nft ${args.join(" ")} failed: ${stderr.trim() || `exit ${code}`}`));
    });
    // An nft that exits early closes its stdin: its exit status tells why, not the EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
}
