// Facts about the endpoint for the hello message.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { arch, hostname, networkInterfaces, platform, release } from "node:os";
import { promisify } from "node:util";
import { LOOPBACK, parseIp, protectionOf } from "../domain/protected-addresses.ts";

export interface HostFacts {
  hostname: string;
  os: { platform: string; release: string; arch: string };
  ips: string[];
  fibratus_version: string | null;
  external_ids: { wazuh_agent_id?: string };
}

export async function hostFacts(): Promise<HostFacts> {
  const ips = Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .filter((address) => !address.internal)
    .map((address) => address.address);
  const wazuhAgentId = await wazuhAgentIdOf("/var/ossec/etc/client.keys");
  return {
    hostname: hostname(),
    os: { platform: platform(), release: release(), arch: arch() },
    ips,
    fibratus_version: await fibratusVersion(),
    external_ids: wazuhAgentId ? { wazuh_agent_id: wazuhAgentId } : {},
  };
}

/** `fibratus version` prints the version among other lines; null when Fibratus is not installed. */
async function fibratusVersion(): Promise<string | null> {
  try {
    const { stdout } = await promisify(execFile)("fibratus", ["version"], { timeout: 3000 });
    return /\d+\.\d+\.\d+[\w.+-]*/.exec(stdout)?.[0] ?? null;
  } catch {
    return null;
  }
}

/** A Wazuh agent's client.keys holds one line "<id> <name> <ip> <key>" for the agent itself. */
async function wazuhAgentIdOf(clientKeys: string): Promise<string | null> {
  const text = await readFile(clientKeys, "utf8").catch(() => "");
  return /^(\d+)\s/.exec(text.trim())?.[1] ?? null;
}

/**
 * The host's DNS resolvers: the nameservers of /etc/resolv.conf, or, when those are only a local
 * stub (systemd-resolved's 127.0.0.53), the upstream servers the stub forwards to. Loopback needs
 * no rule (isolation lets loopback through), so only the servers off the host are returned.
 */
export async function systemResolvers(): Promise<string[]> {
  const nameservers = async (file: string) =>
    (await readFile(file, "utf8").catch(() => ""))
      .split("\n")
      .map((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1])
      .filter((address): address is string => address !== undefined && parseIp(address) !== null);
  const offHost = (addresses: string[]) =>
    addresses.filter((address) => !protectionOf(address, LOOPBACK));
  const configured = await nameservers("/etc/resolv.conf");
  const servers = offHost(configured);
  if (servers.length || !configured.length) return servers;
  return offHost(await nameservers("/run/systemd/resolve/resolv.conf"));
}
