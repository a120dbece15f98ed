import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Worker } from "@temporalio/worker";
import { describe, expect, inject, it } from "vitest";

// Histories recorded by test/replay/record.ts from real runs: today's workflow code must replay
// them command for command, or running workflows would break on deployment.
const folder = path.join(import.meta.dirname, "histories");
const files = readdirSync(folder).filter((f) => f.endsWith(".json"));

describe("workflow determinism", () => {
  it("has recorded histories to replay", () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });

  it.each(files)("replays %s", async (file) => {
    const history: unknown = JSON.parse(readFileSync(path.join(folder, file), "utf8"));
    await Worker.runReplayHistory(
      { workflowBundle: { codePath: inject("workflowBundlePath") } },
      history,
      file,
    );
  });
});
