import { Client, Connection } from "@temporalio/client";
import { NativeConnection, Worker } from "@temporalio/worker";
import { inject } from "vitest";
import { createScratch, type Scratch } from "./scratch.ts";

/**
 * The project's real workflows on a scratch task queue of their own, run by a worker whose
 * activities answer from memory (workflow tests where the engine's I/O is not what is tested),
 * and a client to drive them.
 */
export async function memoryWorker(name: string, activities: object) {
  const scratch: Scratch = await createScratch(name);
  const { address, namespace, taskQueue } = scratch.config.temporal;
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address }),
    namespace,
    taskQueue,
    workflowBundle: { codePath: inject("workflowBundlePath") },
    activities,
  });
  const running = worker.run();
  const client = new Client({ connection: await Connection.connect({ address }), namespace });
  return {
    scratch,
    client,
    async close(): Promise<void> {
      worker.shutdown();
      await running;
      await scratch.drop();
    },
  };
}
