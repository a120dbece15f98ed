import { describe, expect, it } from "vitest";
import {
  incidentWorkflowId,
  isolationCommandId,
  isolationWorkflowId,
  mitigationAttemptId,
  mitigationCommandId,
  mitigationWorkflowId,
  operatorCommandIds,
  rolloutWorkflowId,
} from "../../src/workflows/ids.ts";

// These ids are stored (alerts.incident_id, commands.id, decisions.workflow_id) and shown to
// operators; a change of shape would split one entity across two ids.
describe("workflow ids", () => {
  it("name each entity as operators and stored rows know it", () => {
    expect(incidentWorkflowId("web-1")).toBe("incident/web-1");
    expect(
      mitigationWorkflowId({ host: "web-1", alertId: "a1", flowId: "flow", nodeId: "n2" }),
    ).toBe("mitigation/web-1/a1/flow.n2");
    expect(isolationWorkflowId("agt_1")).toBe("isolation/agt_1");
    expect(rolloutWorkflowId("linux", 3)).toBe("rollout/linux/3");
  });

  it("derive a mitigation's webhook key and step commands from its workflow id", () => {
    const attempt = mitigationAttemptId("mitigation/web-1/a1/flow.n2", "kill-proc");
    expect(attempt).toBe("mitigation/web-1/a1/flow.n2/kill-proc");
    expect(mitigationCommandId(attempt, 1)).toBe("mitigation/web-1/a1/flow.n2/kill-proc/1");
  });

  it("give each isolation run its own command ids", () => {
    const run = { workflowId: "isolation/agt_1", firstExecutionRunId: "r1" };
    expect(isolationCommandId(run, "isolate")).toBe("isolation/agt_1/r1/isolate");
    expect(isolationCommandId(run, "release/2")).toBe("isolation/agt_1/r1/release/2");
  });

  it("keep operators' command ids in their own namespace: the workflow id, from the idempotency id or a random one", () => {
    expect(operatorCommandIds("agt_1", "op-7", "ff00")).toEqual({
      workflowId: "command/agt_1/op-7",
      commandId: "command/agt_1/op-7",
    });
    expect(operatorCommandIds("agt_1", undefined, "ff00")).toEqual({
      workflowId: "command/agt_1/ff00",
      commandId: "command/agt_1/ff00",
    });
  });
});
