// The thread check-budget.ts evaluates CEL checks in: one check at a time, answered in order.
import { parentPort } from "node:worker_threads";
import { type CheckVars, evaluateCheck } from "./cel.ts";

const port = parentPort;
if (!port) throw new Error("cel-worker.ts runs as a worker thread");
port.on("message", ({ expr, vars }: { expr: string; vars: CheckVars }) => {
  port.postMessage(evaluateCheck(expr, vars));
});
port.postMessage("ready");
