// Median isolate-host execution_time_ms (as the agent reports it) over 20 runs, with the real agent
// enforcing inside a network namespace. Needs root, nft, ncat. Run: npx tsx bench/isolation.ts
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentMessage } from "../src/protocol/messages.ts";
import {
  ENROLL_TOKEN,
  FakeGateway,
  isCompletion,
  isHello,
} from "../test/agent/support/fake-gateway.ts";
import { createTopology, spawnInNs } from "../test/agent/support/netns.ts";

const RUNS = 20;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

const net = createTopology();
const stateDir = await mkdtemp(join(tmpdir(), "mm-bench-"));
const gateway = await FakeGateway.start(net.portal.v4);
const portal = createServer((socket) => socket.end());
await new Promise<void>((resolve) => portal.listen(0, net.portal.v4, resolve));
const portalPort = (portal.address() as { port: number }).port;
const agent = spawnInNs(net.hostNs, process.execPath, [
  "--import",
  "tsx",
  join(import.meta.dirname, "../test/agent/support/run-agent.ts"),
  "--gateway",
  gateway.url,
  "--enroll",
  ENROLL_TOKEN,
  "--state-dir",
  stateDir,
  "--insecure", // the fake gateway speaks plain http
]);
try {
  await gateway.waitFor(isHello, () => true, 20_000);
  let n = 0;
  const run = async (command: string, details: Record<string, unknown>) => {
    const id = `bench-${++n}`;
    const sent = performance.now();
    gateway.send({ command, priority: "critical", id, details });
    const of = (m: AgentMessage): m is Extract<AgentMessage, { status: "completed" | "failed" }> =>
      isCompletion(m) && m.command_id === id;
    const done = await gateway.waitFor(of, () => true, 20_000);
    if (!done.success) throw new Error(`${command} failed: ${done.message}`);
    return {
      reported: done.details.execution_time_ms as number,
      roundTrip: performance.now() - sent,
    };
  };
  const isolate: number[] = [];
  const release: number[] = [];
  const roundTrip: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const isolated = await run("isolate-host", {
      reason: "bench",
      allow_dns: true,
      portal_ips: [net.portal.v4, net.portal.v6],
      portal_ports: [portalPort, 443],
    });
    isolate.push(isolated.reported);
    roundTrip.push(isolated.roundTrip);
    release.push((await run("release-host", {})).reported);
  }
  console.log(
    `isolate-host execution_time_ms over ${RUNS} runs: median ${median(isolate)} (min ${Math.min(...isolate)}, max ${Math.max(...isolate)})`,
  );
  console.log(
    `isolate-host command→completion round trip: median ${median(roundTrip).toFixed(1)} ms`,
  );
  console.log(`release-host execution_time_ms: median ${median(release)}`);
} finally {
  agent.kill("SIGKILL");
  await gateway.stop();
  portal.close();
  net.destroy();
  await rm(stateDir, { recursive: true, force: true });
}
