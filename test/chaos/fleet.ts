// One process running several reference agents in simulation mode, each with its own state dir
// (identity, command ledger) under <dir>/<host>/, for the chaos run (harness.ts):
//
//   CHAOS_ENROLL_TOKEN=… tsx test/chaos/fleet.ts <dir> <gateway url> <host>…
//
// A host enrolls under its own name on its first start (one machine runs them all, so the OS
// hostname cannot tell them apart). Every event an agent logs is appended to <dir>/<host>.events,
// one JSON line each, written synchronously: `command_completed` is the agent's record of one
// execution, which the harness counts, and it survives a SIGKILL of this process.
import { appendFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { startAgent } from "../../src/agent/index.ts";
import { enroll } from "../../src/agent/session.ts";
import { StateStore } from "../../src/agent/state.ts";
import type { Logger } from "../../src/log.ts";

function eventLog(file: string): Logger {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    appendFileSync(
      file,
      `${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields })}\n`,
    );
  return {
    debug: () => undefined,
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
  };
}

async function main() {
  const [dir, gateway, ...hosts] = process.argv.slice(2);
  if (!dir || !gateway || !hosts.length) throw new Error("usage: fleet.ts <dir> <gateway> <host>…");
  const agents = await Promise.all(
    hosts.map(async (host) => {
      const stateDir = path.join(dir, host);
      mkdirSync(stateDir, { recursive: true });
      const state = await StateStore.open(stateDir);
      if (!(await state.identity())) {
        const token = process.env.CHAOS_ENROLL_TOKEN;
        if (!token) throw new Error(`${host} is not enrolled and CHAOS_ENROLL_TOKEN is not set`);
        await state.saveIdentity({ ...(await enroll(gateway, token, host)), gateway });
      }
      return startAgent({
        gateway,
        stateDir,
        rulesDir: path.join(stateDir, "rules"),
        simulate: true,
        insecure: true,
        // Reconnects quickly, so a restarted gateway's recovery is not the agents' backoff.
        backoff: { initialMs: 200, maxMs: 2_000 },
        log: eventLog(path.join(dir, `${host}.events`)),
      });
    }),
  );
  console.log(`fleet ready: ${agents.map((a) => a.agentId).join(" ")}`);
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  console.log(`${signal}: stopping`);
  await Promise.all(agents.map((a) => a.stop()));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
