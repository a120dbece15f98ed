import { readFileSync } from "node:fs";
import path from "node:path";
import { Worker } from "@temporalio/worker";
import { describe, expect, inject, it } from "vitest";
import * as workflows from "../../src/workflows/index.ts";
import { HISTORIES, historyFiles, workflowTypeOf } from "./histories.ts";

// Histories recorded from real runs by the recorders beside this file, one folder per release
// (histories.ts): today's workflow code must replay every one of them command for command, or
// workflows of that release still running would break on deployment.
const files = historyFiles();

describe("workflow determinism", () => {
  it.each(Object.keys(workflows))("has a recorded history of %s", (type) => {
    expect(files.filter((f) => workflowTypeOf(f) === type)).not.toEqual([]);
  });

  it.each(files)("replays %s", async (file) => {
    const history: unknown = JSON.parse(readFileSync(path.join(HISTORIES, file), "utf8"));
    await Worker.runReplayHistory(
      { workflowBundle: { codePath: inject("workflowBundlePath") } },
      history,
      file,
    );
  });
});
