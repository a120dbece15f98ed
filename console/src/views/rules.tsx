// Rules: rule sets (newest versions), their assignment to groups, a rollout's per-agent status, and
// drift (agents not running every rule of their assignment).
import { useState } from "react";
import { query, usePoll } from "../api.ts";
import { Problem, RowsTable, TextField } from "../common.tsx";

type Rows = Record<string, unknown>[];

/** List routes answer an array or {items}: both are rows. */
function rowsOf(data: unknown): Rows | undefined {
  if (data === undefined) return undefined;
  if (Array.isArray(data)) return data as Rows;
  const items = (data as { items?: unknown }).items;
  return Array.isArray(items) ? (items as Rows) : [data as Record<string, unknown>];
}

export function RulesView() {
  const sets = usePoll<unknown>("/api/rule-set", 10_000);
  const assignments = usePoll<unknown>("/api/rule-set/assignment", 10_000);
  const drift = usePoll<unknown>("/api/rule-drift", 10_000);
  const [name, setName] = useState("");
  const [version, setVersion] = useState("");
  const ready = name.trim() !== "" && /^[1-9][0-9]*$/.test(version.trim());
  const rollout = usePoll<Record<string, unknown>>(
    ready ? `/api/rule-set/rollout${query({ name: name.trim(), version: version.trim() })}` : null,
  );
  const agents = rollout.data?.agents;
  return (
    <section>
      <h1>Rules</h1>
      <h2>Rule sets</h2>
      <Problem error={sets.error} />
      <RowsTable rows={rowsOf(sets.data)} testId="rule-sets" empty="no rule sets" />
      <h2>Assignments</h2>
      <Problem error={assignments.error} />
      <RowsTable rows={rowsOf(assignments.data)} empty="no group has a rule set" />
      <h2>Rollout</h2>
      <div className="filters">
        <TextField label="Rule set" name="rollout-name" value={name} onChange={setName} />
        <TextField label="Version" name="rollout-version" value={version} onChange={setVersion} />
      </div>
      <Problem error={rollout.error} />
      {rollout.data && (
        <>
          <RowsTable
            rows={[
              Object.fromEntries(Object.entries(rollout.data).filter(([k]) => k !== "agents")),
            ]}
          />
          <h3>Agents</h3>
          <RowsTable
            rows={
              Array.isArray(agents)
                ? (agents as Rows)
                : agents && typeof agents === "object"
                  ? Object.entries(agents).map(([agent, s]) => ({ agent, ...(s as object) }))
                  : []
            }
            testId="rollout-agents"
          />
        </>
      )}
      <h2>Drift</h2>
      <Problem error={drift.error} />
      <RowsTable rows={rowsOf(drift.data)} testId="drift" empty="no assigned agents" />
    </section>
  );
}
