import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { bundleWorkflows } from "../src/worker.ts";

declare module "vitest" {
  export interface ProvidedContext {
    workflowBundlePath: string;
    /** The time-skipping test server's executable (scripts/test-server.sh), for test/timeskip. */
    temporalTestServer: string;
  }
}

/** Brings the local stack up (installing what is missing) and bundles the workflows once for every test file. */
export default async function setup(project: TestProject): Promise<void> {
  const root = path.resolve(import.meta.dirname, "..");
  execFileSync("bash", [path.join(root, "scripts/stack.sh"), "up"], { stdio: "inherit" });
  // The stack's passwords, generated into .env on a fresh clone; what is already set wins. The
  // test files' processes inherit them.
  if (existsSync(path.join(root, ".env"))) process.loadEnvFile(path.join(root, ".env"));
  // The console's browser tests load what the API serves: the build of this tree.
  execFileSync("bash", [path.join(root, "scripts/build-console.sh"), "--if-stale"], {
    stdio: "inherit",
  });
  const file = path.join(mkdtempSync(path.join(tmpdir(), "mm-workflows-")), "bundle.js");
  writeFileSync(file, await bundleWorkflows());
  project.provide("workflowBundlePath", file);
  // Installed here rather than downloaded by the SDK: a clean clone needs only Maven Central.
  const testServer = execFileSync("bash", [path.join(root, "scripts/test-server.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  project.provide("temporalTestServer", testServer.trim().split("\n").at(-1) ?? "");
}
