import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundleOption,
} from "@temporalio/worker";
import type { Config } from "./config.ts";
import { temporalConnection } from "./connections.ts";
import { workerTracing, workflowInterceptorModule } from "./tracing.ts";

export const workflowsPath = fileURLToPath(new URL("./workflows/index.ts", import.meta.url));
/** Where `npm run build` writes the bundle: beside the compiled worker, so src/ never has one. */
const builtBundlePath = fileURLToPath(new URL("./workflows.bundle.js", import.meta.url));

/** The project's workflow code as one bundle; built once, it spares every worker start the bundling. */
export async function bundleWorkflows(): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    // Always in the bundle (built once for any configuration); inert while tracing is off.
    workflowInterceptorModules: [workflowInterceptorModule],
    logger: quietLogger,
  });
  return code;
}

const quietLogger = {
  trace() {},
  debug() {},
  info() {},
  log() {},
  warn: console.warn,
  error: console.error,
};

let runtimeInstalled = false;

/**
 * The SDK's own logging follows MM_LOG_LEVEL, and its metrics (task slots, poll latencies, sticky
 * cache) go to a Prometheus endpoint of their own at MM_TEMPORAL_METRICS_ADDRESS when set. The
 * runtime can be set up once per process.
 */
function installRuntime(config: Config): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = config.logLevel;
  Runtime.install({
    logger: new DefaultLogger(
      level === "debug" ? "DEBUG" : level === "info" ? "INFO" : level === "warn" ? "WARN" : "ERROR",
    ),
    ...(config.temporalMetricsAddress && {
      telemetryOptions: {
        metrics: {
          prometheus: {
            bindAddress: config.temporalMetricsAddress,
            countersTotalSuffix: true,
            useSecondsForDurations: true,
          },
        },
      },
    }),
  });
}

/** A Temporal worker on the configured task queue, running the project's workflows and the given activities. */
export async function startWorker(opts: {
  config: Config;
  activities: object;
  /** Prebuilt workflow code (tests build it once); otherwise the build's, or bundled at start from src/. */
  workflowBundle?: WorkflowBundleOption;
}) {
  installRuntime(opts.config);
  const workflowBundle =
    opts.workflowBundle ??
    (existsSync(builtBundlePath) ? { codePath: builtBundlePath } : undefined);
  const connection = await NativeConnection.connect(temporalConnection(opts.config.temporal));
  const tracing = workerTracing();
  const worker = await Worker.create({
    connection,
    namespace: opts.config.temporal.namespace,
    taskQueue: opts.config.temporal.taskQueue,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath }),
    activities: opts.activities,
    // The tuning configured (MM_WORKER_*); the SDK's defaults for the rest.
    ...Object.fromEntries(
      Object.entries(opts.config.temporal.worker).filter(([, v]) => v !== undefined),
    ),
    interceptors: {
      activity: tracing.activityInterceptors,
      // A prebuilt bundle has them already (bundleWorkflows); bundling here adds them.
      ...(workflowBundle ? {} : { workflowModules: [workflowInterceptorModule] }),
    },
    sinks: tracing.sinks,
  });
  const running = worker.run();
  return {
    running,
    async stop(): Promise<void> {
      if (worker.getState() === "RUNNING") worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
