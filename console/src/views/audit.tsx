// Audit: the append-only log, filtered by action (or family, e.g. "command."), actor and agent.
import { useState } from "react";
import { query, usePoll } from "../api.ts";
import { Cut, Problem, Table, TextField, when } from "../common.tsx";

interface AuditRow {
  id: string;
  at: string;
  actor: string;
  action: string;
  agent_id: string | null;
  command_id: string | null;
  details: unknown;
}

const PAGE = 100;

export function AuditView() {
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  const [agent, setAgent] = useState("");
  const [offset, setOffset] = useState(0);
  const { data, error } = usePoll<{ items: AuditRow[]; total?: number }>(
    `/api/audit${query({ action: action.trim(), actor: actor.trim(), agent: agent.trim(), limit: PAGE, offset })}`,
    5_000,
  );
  const total = data?.total ?? 0;
  const filter = (set: (v: string) => void) => (value: string) => {
    set(value);
    setOffset(0);
  };
  return (
    <section>
      <h1>Audit log</h1>
      <div className="filters">
        <TextField
          label="Action"
          name="action"
          value={action}
          onChange={filter(setAction)}
          placeholder="e.g. command."
        />
        <TextField
          label="Actor"
          name="actor"
          value={actor}
          onChange={filter(setActor)}
          placeholder="operator:alice"
        />
        <TextField label="Agent" name="agent" value={agent} onChange={filter(setAgent)} />
      </div>
      <Problem error={error} />
      <p className="muted">
        {total} entries · {offset + 1}–{Math.min(offset + PAGE, total)}{" "}
        <button
          type="button"
          disabled={offset === 0}
          onClick={() => setOffset(Math.max(0, offset - PAGE))}
        >
          ←
        </button>{" "}
        <button
          type="button"
          disabled={offset + PAGE >= total}
          onClick={() => setOffset(offset + PAGE)}
        >
          →
        </button>
      </p>
      <Table
        rows={data?.items}
        testId="audit"
        rowKey={(r) => r.id}
        columns={[
          { title: "At", cell: (r) => when(r.at) },
          { title: "Actor", cell: (r) => r.actor },
          { title: "Action", cell: (r) => r.action },
          { title: "Agent", cell: (r) => r.agent_id ?? "" },
          { title: "Command", cell: (r) => r.command_id ?? "" },
          { title: "Details", cell: (r) => <Cut value={r.details} /> },
        ]}
      />
    </section>
  );
}
