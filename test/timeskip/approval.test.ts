import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApprovalAnswerInput, GateResult } from "../../src/activities/approvals.ts";
import type { NextMitigation } from "../../src/activities/engine.ts";
import { approvalSignal, mitigationWorkflow } from "../../src/workflows/mitigation.ts";
import { eventually } from "../support/wait.ts";
import { type TimeSkipping, timeSkipping } from "./support.ts";

const HOUR = 3_600_000;

let ts: TimeSkipping;
beforeAll(async () => {
  ts = await timeSkipping();
});
afterAll(async () => {
  await ts?.teardown();
});

/**
 * The engine's activities, stubbed: one webhook mitigation chosen, held by its gate for an hour
 * with the given default; answers and webhook calls recorded.
 */
function heldMitigation(onTimeout: "approve" | "deny") {
  const answers: ApprovalAnswerInput[] = [];
  const webhooks: string[] = [];
  let gated = false;
  const activities = {
    async planNextMitigation(input: { tried: string[] }): Promise<NextMitigation> {
      if (input.tried.length) return { found: false, candidates: 1 };
      return {
        found: true,
        candidate: { key: "soar", name: "SOAR playbook", cost: 1 },
        steps: [{ kind: "webhook", url: "http://127.0.0.1:9/hook", body: {} }],
        passedOver: [],
      };
    },
    async gateMitigation(): Promise<GateResult> {
      gated = true;
      return {
        gate: "approve",
        approvalId: "apr_1",
        timeoutMs: HOUR,
        onTimeout,
        isolatingAgentId: null,
      };
    },
    async answerApproval(input: ApprovalAnswerInput) {
      answers.push(input);
    },
    async recordDecision() {},
    async callWebhook(input: { url: string }) {
      webhooks.push(input.url);
      return { status: 200 };
    },
  };
  return { activities, answers, webhooks, isGated: () => gated };
}

const input = (host: string) => ({
  incidentId: `incident/${host}`,
  host,
  alertId: `alert-${host}`,
  flowId: "flow",
  nodeId: "node",
  techniques: ["T1566"],
  preemptive: false,
});

describe("a mitigation held for approval, in skipped time", () => {
  it("runs nothing when no one answers within the hour and the default is deny", async () => {
    const stub = heldMitigation("deny");
    const outcome = await ts.withWorker(stub.activities, (taskQueue) =>
      ts.env.client.workflow.execute(mitigationWorkflow, {
        taskQueue,
        workflowId: `mitigation/${randomBytes(4).toString("hex")}`,
        args: [input("deny-default")],
      }),
    );
    expect(outcome).toEqual({ outcome: "none", mitigation: "soar" });
    expect(stub.answers).toMatchObject([
      { approvalId: "apr_1", outcome: "expired", runs: false, by: "timeout", comment: null },
    ]);
    expect(stub.webhooks).toEqual([]);
  });

  it("runs the mitigation when no one answers and the default is approve", async () => {
    const stub = heldMitigation("approve");
    const outcome = await ts.withWorker(stub.activities, (taskQueue) =>
      ts.env.client.workflow.execute(mitigationWorkflow, {
        taskQueue,
        workflowId: `mitigation/${randomBytes(4).toString("hex")}`,
        args: [input("approve-default")],
      }),
    );
    expect(outcome).toEqual({ outcome: "succeeded", mitigation: "soar" });
    expect(stub.answers).toMatchObject([{ outcome: "expired", runs: true }]);
    expect(stub.webhooks).toEqual(["http://127.0.0.1:9/hook"]);
  });

  it("ignores malformed answers and answers to another approval, then takes a person's approval", async () => {
    const stub = heldMitigation("deny");
    const outcome = await ts.withWorker(stub.activities, async (taskQueue) => {
      // Time is skipped only while a result is awaited: until then the hour runs at wall speed.
      const handle = await ts.env.client.workflow.start(mitigationWorkflow, {
        taskQueue,
        workflowId: `mitigation/${randomBytes(4).toString("hex")}`,
        args: [input("answered")],
      });
      await eventually("the run to reach its gate", async () => stub.isGated());
      // Anyone with Temporal access can signal: none of these is an answer.
      for (const hostile of [
        "approve",
        null,
        { decision: "maybe" },
        { decision: ["approve"] },
        { decision: "deny", approval_id: "apr_other" },
      ])
        await handle.signal(approvalSignal, hostile as never);
      await handle.signal(approvalSignal, {
        decision: "approve",
        by: "operator:alice",
        comment: "x".repeat(5_000),
        approval_id: "apr_1",
      });
      // A second answer to the same approval does not count.
      await handle.signal(approvalSignal, { decision: "deny", approval_id: "apr_1" });
      return handle.result();
    });
    expect(outcome).toEqual({ outcome: "succeeded", mitigation: "soar" });
    expect(stub.answers).toHaveLength(1);
    expect(stub.answers[0]).toMatchObject({
      outcome: "approved",
      runs: true,
      by: "operator:alice",
    });
    expect(stub.answers[0]?.comment).toHaveLength(1_000);
    expect(stub.webhooks).toHaveLength(1);
  });
});
