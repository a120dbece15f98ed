import { randomBytes } from "node:crypto";
import { SearchAttributeType } from "@temporalio/common";
import { temporal } from "@temporalio/proto";
import { TestWorkflowEnvironment } from "@temporalio/testing";
import { DefaultLogger, Runtime, Worker } from "@temporalio/worker";
import { inject } from "vitest";
import { workerTracing } from "../../src/tracing.ts";
import * as attributes from "../../src/workflows/search-attributes.ts";

// Pure workflow-logic tests: the real workflow bundle (the one the service runs) against stub
// activities, on Temporal's time-skipping test server, where an hour-long timer fires in
// milliseconds. The activities' own behaviour is covered by the integration tests.

export interface TimeSkipping {
  env: TestWorkflowEnvironment;
  /** Runs a worker with these activities on a task queue of its own while `body` runs, then shuts it down. */
  withWorker<T>(activities: object, body: (taskQueue: string) => Promise<T>): Promise<T>;
  teardown(): Promise<void>;
}

/** Starts a test server (one per test file: time is global to it) from the project's tool cache. */
export async function timeSkipping(): Promise<TimeSkipping> {
  // The SDK logs every worker state change at INFO and every failed activity (the stubs fail on
  // purpose) at WARN; the tests assert on outcomes. A runtime is installed once per process: a
  // second file in the same process keeps the first's.
  if (!Runtime._instance) Runtime.install({ logger: new DefaultLogger("ERROR") });
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: "existing-path", path: inject("temporalTestServer") } },
  });
  // Like scripts/stack.sh for the dev server: the workflows' search attributes must be known, or
  // the test server fails every workflow task that sets one.
  const { IndexedValueType } = temporal.api.enums.v1;
  await env.connection.operatorService.addSearchAttributes({
    namespace: "default",
    searchAttributes: Object.fromEntries(
      Object.values(attributes).map((key) => [
        key.name,
        key.type === SearchAttributeType.KEYWORD_LIST
          ? IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
          : IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      ]),
    ),
  });
  let workers = 0;
  return {
    env,
    async withWorker(activities, body) {
      // A queue per worker: a test's workflows never reach another test's stubs.
      const taskQueue = `timeskip-${++workers}-${randomBytes(3).toString("hex")}`;
      const worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        workflowBundle: { codePath: inject("workflowBundlePath") },
        activities,
        // The bundle's tracing interceptors always call this sink; it discards while tracing is off.
        sinks: workerTracing().sinks,
      });
      return worker.runUntil(() => body(taskQueue));
    },
    teardown: () => env.teardown(),
  };
}
