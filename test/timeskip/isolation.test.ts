import { randomBytes } from "node:crypto";
import { ApplicationFailure } from "@temporalio/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentCommandResult } from "../../src/activities/agent-commands.ts";
import type { IsolationRelease } from "../../src/activities/audit.ts";
import type { AgentCommandRequest } from "../../src/workflows/agent-command.ts";
import { isolationWorkflowId } from "../../src/workflows/ids.ts";
import {
  type IsolateRequest,
  type IsolationState,
  isolateSignal,
  isolationStateQuery,
  isolationWorkflow,
} from "../../src/workflows/isolation.ts";
import { type TimeSkipping, timeSkipping } from "./support.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// Temporal warns about a workflow's history from 10,240 events on, and ends it at 51,200.
const HISTORY_WARNING = 10_240;

let ts: TimeSkipping;
beforeAll(async () => {
  ts = await timeSkipping();
});
afterAll(async () => {
  await ts?.teardown();
});

/** What the agent (stubbed) was asked, with the test server's time at which it was asked. */
interface Issued {
  command: string;
  commandId: string;
  at: number;
}

/**
 * A stub agent: isolate-host succeeds with a full isolation; release-host fails `releaseFailures`
 * times, then succeeds. `onRelease` runs before each release attempt answers.
 */
function stubAgent(releaseFailures = 0, onRelease?: (attempt: number) => Promise<void>) {
  const issued: Issued[] = [];
  const audited: IsolationRelease[] = [];
  let releases = 0;
  const activities = {
    async runAgentCommand(input: AgentCommandRequest): Promise<AgentCommandResult> {
      issued.push({
        command: input.command,
        commandId: input.commandId,
        at: await ts.env.currentTimeMs(),
      });
      if (input.command === "isolate-host")
        return {
          success: true,
          message: "isolated",
          details: { isolation_level: "full", firewall_rules_added: 4 },
        };
      const attempt = ++releases;
      await onRelease?.(attempt);
      if (attempt <= releaseFailures)
        throw ApplicationFailure.nonRetryable(`agent offline (attempt ${attempt})`, "Expired");
      return { success: true, message: "released", details: {} };
    },
    async recordIsolationRelease(release: IsolationRelease): Promise<void> {
      audited.push(release);
    },
  };
  return { activities, issued, audited };
}

async function isolate(taskQueue: string, request: Partial<IsolateRequest> = {}) {
  const agentId = `agent-${randomBytes(4).toString("hex")}`;
  return ts.env.client.workflow.signalWithStart(isolationWorkflow, {
    workflowId: isolationWorkflowId(agentId),
    taskQueue,
    args: [{ agentId }],
    signal: isolateSignal,
    signalArgs: [
      {
        details: { reason: "time-skipping test", allow_dns: true },
        requestedBy: "operator:test",
        ttlMs: 5 * MINUTE,
        ...request,
      },
    ],
  });
}

describe("isolation workflow in skipped time", () => {
  it("holds the host until releaseAfterMs, then issues the release and reports it released", async () => {
    const agent = stubAgent();
    await ts.withWorker(agent.activities, async (taskQueue) => {
      const handle = await isolate(taskQueue, { releaseAfterMs: 2 * HOUR });
      const started = await ts.env.currentTimeMs();

      // An hour and a half of skipped time: still held, nothing but the isolation was issued.
      await ts.env.sleep(90 * MINUTE);
      const held = await handle.query(isolationStateQuery);
      expect(held.status).toBe("isolated");
      expect(agent.issued.map((c) => c.command)).toEqual(["isolate-host"]);
      expect(Date.parse(held.releaseAt ?? "")).toBe(Date.parse(held.isolatedAt ?? "") + 2 * HOUR);

      const final: IsolationState = await handle.result();
      expect(final.status).toBe("released");
      expect(final.releaseRequestedBy).toBe("time limit");
      expect(agent.issued.map((c) => c.command)).toEqual(["isolate-host", "release-host"]);
      const release = agent.issued[1] as Issued;
      // Issued at the limit (after the skipped time), not before it and not long after.
      expect(release.at - started).toBeGreaterThanOrEqual(2 * HOUR);
      expect(release.at - started).toBeLessThan(2 * HOUR + MINUTE);
      expect(Date.parse(final.releasedAt ?? "")).toBeGreaterThanOrEqual(
        Date.parse(final.releaseAt ?? ""),
      );
      expect(agent.audited).toEqual([
        { agentId: final.agentId, releasedBy: "time limit", reason: null },
      ]);
    });
  });

  it("retries a failing release with growing backoff, capped at 10 minutes, until it succeeds", async () => {
    const failures = 7;
    const snapshots: IsolationState[] = [];
    let handle: Awaited<ReturnType<typeof isolate>> | undefined;
    // Before the 5th attempt answers, the state says how the 4th went.
    const agent = stubAgent(failures, async (attempt) => {
      if (attempt === 5 && handle) snapshots.push(await handle.query(isolationStateQuery));
    });
    await ts.withWorker(agent.activities, async (taskQueue) => {
      handle = await isolate(taskQueue, { releaseAfterMs: HOUR });
      const final = await handle.result();

      const releases = agent.issued.filter((c) => c.command === "release-host");
      expect(releases).toHaveLength(failures + 1);
      const gaps = releases.slice(1).map((r, i) => (r.at - (releases[i] as Issued).at) / 1000);
      // 30 s, doubled after every failure, never more than 10 minutes. The test server's clock
      // jumps to each timer but runs in real time in between, so a busy machine adds seconds to a
      // gap: below half a step more still tells 30 s from 60 s, and the cap from a doubling.
      const expected = [30, 60, 120, 240, 480, 600, 600];
      expect(gaps).toHaveLength(expected.length);
      gaps.forEach((gap, i) => {
        expect(gap).toBeGreaterThanOrEqual(expected[i] as number);
        expect(gap).toBeLessThan((expected[i] as number) * 1.5);
      });
      // Every attempt has a command id of its own, so the agent runs each once.
      expect(new Set(releases.map((r) => r.commandId)).size).toBe(releases.length);
      expect(final.commands).toEqual([
        agent.issued[0]?.commandId,
        ...releases.map((r) => r.commandId),
      ]);
      expect(final.commands.slice(1).map((id) => id.split("/").slice(-2).join("/"))).toEqual(
        releases.map((_, i) => `release/${i + 1}`),
      );

      expect(snapshots).toHaveLength(1);
      expect(snapshots[0]?.status).toBe("releasing");
      expect(snapshots[0]?.error).toMatch(/^release attempt 4 failed: agent offline \(attempt 4\)/);
      expect(final.status).toBe("released");
      expect(final.error).toBeNull();
    });
  });

  // Issue 10, "The isolation release loop retries forever with no continue-as-new and growing
  // state": a week of an offline agent, ~1,000 attempts at the 10-minute cap, was one run of some
  // 11,000 events; it now continues as new every 50 attempts.
  it("keeps its history bounded through a week of failing releases, without reusing a command id", async () => {
    const failures = 7 * 24 * 6;
    const agent = stubAgent(failures);
    await ts.withWorker(agent.activities, async (taskQueue) => {
      const handle = await isolate(taskQueue, { releaseAfterMs: MINUTE });
      const { runId: firstRunId } = await handle.describe();
      const final = await handle.result();
      expect(final.status).toBe("released");
      const releases = agent.issued.filter((c) => c.command === "release-host");
      expect(releases).toHaveLength(failures + 1);
      // A command id issued again would get the earlier attempt's (failed) outcome from the gateway.
      expect(new Set(releases.map((r) => r.commandId)).size).toBe(releases.length);
      const first = await ts.env.client.workflow
        .getHandle(handle.workflowId, firstRunId)
        .fetchHistory();
      expect(first.events?.length).toBeLessThan(HISTORY_WARNING);
      expect(final.commands.length).toBeLessThan(failures);
    });
  }, 300_000);
});
