// Agent commands: each one's life (issued → delivered → acknowledged → completed, with the agent's
// result), and the form that issues one with a reason (responders and admins only).
import { useState } from "react";
import { ApiError, api, type FieldError, type Session } from "../api.ts";
import { Cut, FieldErrors, Problem, Table, TextField, when } from "../common.tsx";
import { workflowLink } from "./incidents.tsx";

export interface CommandRow {
  id: string;
  agent_id: string;
  command: string;
  status: string;
  origin: string;
  requested_by: string;
  workflow_id: string | null;
  details: Record<string, unknown>;
  created_at: string;
  delivered_at: string | null;
  acknowledged_at: string | null;
  completed_at: string | null;
  result: unknown;
}

export function canAct(session: Session): boolean {
  return session.role === "responder" || session.role === "admin";
}

function Step(props: { label: string; at: string | null }) {
  return (
    <span
      className={`step${props.at ? " done" : ""}`}
      title={props.at ? when(props.at) : "not yet"}
    >
      {props.label}
    </span>
  );
}

export function CommandLife(props: { rows: CommandRow[] | undefined; session: Session }) {
  return (
    <Table
      rows={props.rows}
      testId="commands"
      empty="no commands"
      rowKey={(c) => c.id}
      columns={[
        { title: "Command", cell: (c) => c.command },
        {
          title: "Life",
          cell: (c) => (
            <span className="life" data-testid="command-life" data-status={c.status}>
              <Step label="issued" at={c.created_at} /> →{" "}
              <Step label="delivered" at={c.delivered_at} /> →{" "}
              <Step label="acknowledged" at={c.acknowledged_at} /> →{" "}
              <Step
                label={c.status === "failed" || c.status === "expired" ? c.status : "completed"}
                at={c.completed_at}
              />
            </span>
          ),
        },
        { title: "Status", cell: (c) => <span className={`status ${c.status}`}>{c.status}</span> },
        { title: "By", cell: (c) => `${c.origin}: ${c.requested_by}` },
        { title: "Reason", cell: (c) => <Cut value={c.details?.reason} /> },
        { title: "Result", cell: (c) => <Cut value={c.result} /> },
        {
          title: "Workflow",
          cell: (c) =>
            c.workflow_id ? (
              <a
                href={workflowLink(props.session, c.workflow_id)}
                target="_blank"
                rel="noreferrer noopener"
              >
                Temporal
              </a>
            ) : (
              ""
            ),
        },
      ]}
    />
  );
}

/** Issues a command to one agent; the reason travels in the details (the agent and audit log keep it). */
export function CommandForm(props: {
  agentId: string;
  hostname: string;
  /** What the agent said it can do (hello); rule updates are the rollouts' business, not a form's. */
  capabilities: string[];
  onIssued: () => void;
}) {
  const commands = props.capabilities.filter((c) => c !== "update_rules");
  const [command, setCommand] = useState<string>(commands[0] ?? "");
  const [reason, setReason] = useState("");
  const [details, setDetails] = useState("{}");
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [problem, setProblem] = useState<string>();
  const [done, setDone] = useState<string>();
  const issue = async (which: string) => {
    setErrors([]);
    setProblem(undefined);
    setDone(undefined);
    let extra: Record<string, unknown> = {};
    if (which === command && details.trim()) {
      try {
        extra = JSON.parse(details) as Record<string, unknown>;
      } catch {
        setErrors([{ field: "details", message: "must be a JSON object" }]);
        return;
      }
    }
    if (!reason.trim()) {
      setErrors([
        { field: "reason", message: "say why: it is kept with the command and in the audit log" },
      ]);
      return;
    }
    try {
      const answer = await api<{ workflow_id: string }>("POST", "/api/commands", {
        agent_id: props.agentId,
        command: which,
        details: { ...extra, reason: reason.trim() },
      });
      setDone(`${which} issued (${answer.workflow_id})`);
      props.onIssued();
    } catch (err) {
      if (err instanceof ApiError && err.errors.length > 0) setErrors(err.errors);
      else setProblem((err as Error).message);
    }
  };
  return (
    <form className="command-form" data-testid="command-form" onSubmit={(e) => e.preventDefault()}>
      <TextField
        label="Reason"
        name="reason"
        value={reason}
        onChange={setReason}
        placeholder={`why act on ${props.hostname}`}
      />
      <button type="button" data-testid="isolate" onClick={() => issue("isolate-host")}>
        Isolate
      </button>
      <button type="button" data-testid="release" onClick={() => issue("release-host")}>
        Release
      </button>
      <label>
        Command{" "}
        <select
          name="command"
          value={command}
          onChange={(e) => setCommand(e.target.value as string)}
        >
          {commands.map((c) => (
            <option key={c}>{c}</option>
          ))}
        </select>
      </label>
      <TextField label="Details (JSON)" name="details" value={details} onChange={setDetails} />
      <button type="button" data-testid="issue" onClick={() => issue(command)}>
        Issue
      </button>
      <FieldErrors errors={errors} />
      <Problem error={problem} />
      {done && <p className="ok">{done}</p>}
    </form>
  );
}
