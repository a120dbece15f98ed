// Keeps command outcomes moving when no agent does: expires commands past their deadline (their
// activities fail with the reason, and they are never delivered late), and reports outcomes whose
// first report was lost to a crash or an outage. Runs in every worker and gateway process; the
// database arbitrates (SKIP LOCKED), so running it several times over is safe.
import type { Client } from "@temporalio/client";
import { reportOutcome } from "../activities/agent-commands.ts";
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import { expireOverdue, unreportedOutcomes } from "../store/commands.ts";
import type { Db } from "../store/db.ts";

const TICK_MS = 1_000;
/** An outcome this old and still unreported lost its first report (which takes milliseconds). */
const REPORT_RETRY_AFTER_MS = 5_000;

export function startCommandSupervisor(deps: { db: Db; temporal: Client; log: Logger }) {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const tick = async () => {
    for (const expired of await expireOverdue(deps.db)) {
      metrics.command("expired");
      deps.log.info("command expired", { command: expired.id, message: expired.result?.message });
      await reportOutcome(deps, expired);
    }
    for (const outcome of await unreportedOutcomes(deps.db, REPORT_RETRY_AFTER_MS))
      await reportOutcome(deps, outcome);
  };
  const loop = () => {
    if (stopped) return;
    running = tick()
      .catch((err: Error) =>
        deps.log.warn("command supervisor tick failed", { error: err.message }),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, TICK_MS);
      });
  };
  loop();

  return {
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
