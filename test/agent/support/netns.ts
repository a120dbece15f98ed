// Network namespaces for enforcement tests (needs root): a bridge in the root namespace (the
// "portal" side, .1) joins a "host" namespace (.2, where the agent runs) and an "attacker"
// namespace (.3), over IPv4 10.213.<x>.0/24 and IPv6 fd00:213:<x>::/64.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

export interface Addresses {
  v4: string;
  v6: string;
}

export interface Topology {
  hostNs: string;
  attackerNs: string;
  portal: Addresses;
  host: Addresses;
  attacker: Addresses;
  destroy(): void;
}

const sh = (command: string, args: string[]) => execFileSync(command, args, { stdio: "pipe" });

export function createTopology(): Topology {
  const id = randomBytes(3).toString("hex");
  const x = randomInt(1, 255);
  const bridge = `mmtb${id}`;
  const hostNs = `mmt-host-${id}`;
  const attackerNs = `mmt-attacker-${id}`;
  const address = (n: number): Addresses => ({ v4: `10.213.${x}.${n}`, v6: `fd00:213:${x}::${n}` });
  const topology: Topology = {
    hostNs,
    attackerNs,
    portal: address(1),
    host: address(2),
    attacker: address(3),
    destroy() {
      // The veths go explicitly: a namespace outlives its deletion while a socket in it lingers
      // (e.g. a FIN retransmitted into a dropped path), and would keep its veth in the root.
      for (const args of [
        ["link", "del", `mmtv2${id}`],
        ["link", "del", `mmtv3${id}`],
        ["link", "del", bridge],
        ["netns", "del", hostNs],
        ["netns", "del", attackerNs],
      ]) {
        try {
          sh("ip", args);
        } catch {
          // already gone (or never made): cleanup goes on with the rest
        }
      }
    },
  };
  try {
    sh("ip", ["link", "add", bridge, "type", "bridge"]);
    sh("ip", ["link", "set", bridge, "up"]);
    sh("ip", ["addr", "add", `${topology.portal.v4}/24`, "dev", bridge]);
    sh("ip", ["-6", "addr", "add", `${topology.portal.v6}/64`, "dev", bridge, "nodad"]);
    for (const [ns, n] of [
      [hostNs, 2],
      [attackerNs, 3],
    ] as const) {
      const veth = `mmtv${n}${id}`;
      sh("ip", ["netns", "add", ns]);
      sh("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"]);
      sh("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      sh("ip", ["link", "set", veth, "master", bridge, "up"]);
      sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
      sh("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      sh("ip", ["-n", ns, "addr", "add", `${address(n).v4}/24`, "dev", "eth0"]);
      sh("ip", ["-n", ns, "-6", "addr", "add", `${address(n).v6}/64`, "dev", "eth0", "nodad"]);
    }
  } catch (error) {
    topology.destroy();
    throw error;
  }
  return topology;
}

/** Runs a command in a namespace (null: the root namespace). */
export function inNs(ns: string | null, command: string, args: string[]): string {
  return (ns ? sh("ip", ["netns", "exec", ns, command, ...args]) : sh(command, args)).toString();
}

export function spawnInNs(ns: string, command: string, args: string[]): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, command, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Whether a TCP connection from `ns` to address:port completes within a second. */
export function tcpReachable(ns: string, address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(
      "ip",
      ["netns", "exec", ns, "ncat", "-z", "-w", "1", address, String(port)],
      {
        stdio: "ignore",
      },
    );
    child.once("close", (code) => resolve(code === 0));
  });
}

/** A TCP listener (IPv4 and IPv6, any address) in a namespace, accepting until killed. */
export async function listenInNs(ns: string, port: number): Promise<ChildProcess> {
  const child = spawnInNs(ns, "ncat", ["-l", "-k", String(port)]);
  for (let i = 0; i < 50; i++) {
    if (inNs(ns, "ss", ["-Htln", `sport = :${port}`]).trim()) return child;
    await sleep(20);
  }
  child.kill();
  throw new Error(`ncat did not listen on ${port} in ${ns}`);
}
