// A hard budget for CEL checks. A check sees attacker-controlled alert text, and nested
// comprehensions cost n^k, so evaluation runs in a worker thread: the event loop stays free, and a
// check over its time budget (or memory) is cut off by terminating the thread. Over budget is a
// verdict, not an exception: the condition does not hold and its reason is recorded, so a retry or
// a restart never evaluates the same check again.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { CheckVars } from "./cel.ts";

export type CheckResult =
  | { ok: true; value: boolean }
  | {
      ok: false;
      error: string /** cut off by the budget (not a failure of the check itself) */;
      overBudget?: true;
    };

export interface CheckRunner {
  /** Evaluates a check within the budget; never throws. Calls queue and run one at a time. */
  evaluate(expr: string, vars: CheckVars): Promise<CheckResult>;
  close(): Promise<void>;
}

/** Heap of the evaluating thread: a check building huge lists fails instead of the service. */
const MAX_HEAP_MB = 64;

export function checkRunner(opts: { budgetMs: number }): CheckRunner {
  let worker: Promise<Worker> | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  async function run(expr: string, vars: CheckVars): Promise<CheckResult> {
    worker ??= startWorker();
    let w: Worker;
    try {
      w = await worker;
    } catch (err) {
      worker = undefined;
      return { ok: false, error: `the check could not be evaluated: ${(err as Error).message}` };
    }
    return new Promise<CheckResult>((resolve) => {
      const finish = (result: CheckResult, broken: boolean) => {
        clearTimeout(timer);
        w.off("message", answered).off("error", failed).off("exit", exited);
        if (broken) {
          worker = undefined;
          void w.terminate();
        }
        resolve(result);
      };
      const answered = (result: CheckResult) => finish(result, false);
      const failed = (err: Error) =>
        finish({ ok: false, error: `the check failed its evaluation: ${err.message}` }, true);
      const exited = () => failed(new Error("the evaluating thread exited"));
      const timer = setTimeout(
        () =>
          finish(
            {
              ok: false,
              error: `check exceeded its budget of ${opts.budgetMs} ms`,
              overBudget: true,
            },
            true,
          ),
        opts.budgetMs,
      );
      w.on("message", answered).on("error", failed).on("exit", exited);
      w.postMessage({ expr, vars });
    });
  }

  return {
    evaluate(expr, vars) {
      const next = queue.then(() => run(expr, vars));
      queue = next;
      return next;
    },
    async close() {
      const w = await worker?.catch(() => undefined);
      worker = undefined;
      await w?.terminate();
    },
  };
}

/** Resolves once the thread has loaded the CEL engine, so start-up never counts against a budget. */
function startWorker(): Promise<Worker> {
  // From source (tsx, vitest) the thread registers tsx's loader first; the built service runs .js.
  const fromSource = import.meta.url.endsWith(".ts");
  const entry = new URL(fromSource ? "./cel-worker.ts" : "./cel-worker.js", import.meta.url);
  const options = { resourceLimits: { maxOldGenerationSizeMb: MAX_HEAP_MB } };
  const w = fromSource
    ? new Worker(
        `import(${JSON.stringify(tsxApi())})
          .then((tsx) => tsx.register() && import(${JSON.stringify(entry.href)}));`,
        { ...options, eval: true },
      )
    : new Worker(entry, options);
  w.unref(); // an idle evaluator never keeps the process alive
  return new Promise((resolve, reject) => {
    w.once("message", () => {
      w.off("error", reject);
      resolve(w);
    });
    w.once("error", reject);
  });
}

/** tsx's ESM register(): its CommonJS build (what require.resolve finds) fails in a thread. */
function tsxApi(): string {
  return new URL(
    "dist/esm/api/index.mjs",
    pathToFileURL(createRequire(import.meta.url).resolve("tsx/package.json")),
  ).href;
}
