// Fleet: every agent with its status, last contact, isolation, groups, labels and versions, and the
// identity it reports beside the one it enrolled with; commands for responders and admins.
import { useState } from "react";
import { query, type Session, usePoll } from "../api.ts";
import { Choice, Problem, Table, TextField, text, when } from "../common.tsx";
import { CommandForm, CommandLife, type CommandRow, canAct } from "./commands.tsx";

interface AgentRow {
  id: string;
  hostname: string;
  identity_hostname: string;
  ips: string[];
  identity_ips: string[];
  identity_mismatch: boolean;
  status: string;
  last_seen_at: string | null;
  isolation: { isolated: boolean; reason?: string; since?: string };
  groups: string[];
  capabilities: string[];
  labels: Record<string, string>;
  agent_version: string | null;
  fibratus_version: string | null;
}

export function FleetView(props: { session: Session }) {
  const [hostname, setHostname] = useState("");
  const [status, setStatus] = useState("");
  const [group, setGroup] = useState("");
  const { data, error, reload } = usePoll<{ items: AgentRow[]; total?: number }>(
    `/api/agents${query({ hostname: hostname.trim(), status, group: group.trim(), limit: 500 })}`,
  );
  const [selected, setSelected] = useState<string | null>(null);
  const agent = data?.items.find((a) => a.id === selected);
  return (
    <section>
      <h1>Fleet</h1>
      <div className="filters">
        <TextField label="Host name" name="hostname" value={hostname} onChange={setHostname} />
        <Choice
          label="Status"
          name="status"
          value={status}
          options={["online", "offline", "revoked"]}
          onChange={setStatus}
        />
        <TextField label="Group" name="group" value={group} onChange={setGroup} />
      </div>
      <Problem error={error} />
      <Table
        rows={data?.items}
        testId="agents"
        empty="no agents"
        rowKey={(a) => a.id}
        columns={[
          {
            title: "Host",
            cell: (a) => (
              <button
                type="button"
                className="link"
                data-testid="agent-open"
                onClick={() => setSelected(a.id)}
              >
                {a.hostname}
              </button>
            ),
          },
          {
            title: "Status",
            cell: (a) => <span className={`status ${a.status}`}>{a.status}</span>,
          },
          { title: "Last seen", cell: (a) => when(a.last_seen_at) },
          {
            title: "Isolation",
            cell: (a) => (
              <span data-testid="isolation">
                {a.isolation?.isolated
                  ? `isolated${a.isolation.reason ? `: ${a.isolation.reason}` : ""}`
                  : "no"}
              </span>
            ),
          },
          { title: "Groups", cell: (a) => a.groups.join(", ") },
          {
            title: "Labels",
            cell: (a) =>
              Object.entries(a.labels ?? {})
                .map(([k, v]) => `${k}=${v}`)
                .join(", "),
          },
          {
            title: "Versions",
            cell: (a) =>
              [a.agent_version, a.fibratus_version && `fibratus ${a.fibratus_version}`]
                .filter(Boolean)
                .join(", "),
          },
          {
            title: "Identity (reported / enrolled)",
            cell: (a) => (
              <span className={a.identity_mismatch ? "mismatch" : undefined}>
                {a.hostname} {text(a.ips)} / {a.identity_hostname} {text(a.identity_ips)}
                {a.identity_mismatch ? " — mismatch" : ""}
              </span>
            ),
          },
        ]}
      />
      {agent && <AgentPanel agent={agent} session={props.session} onChange={reload} />}
    </section>
  );
}

function AgentPanel(props: { agent: AgentRow; session: Session; onChange: () => void }) {
  const { agent, session } = props;
  const commands = usePoll<{ items: CommandRow[] }>(
    `/api/commands${query({ agent: agent.id, limit: 50 })}`,
  );
  // The isolation workflow's own view: who asked, why, until when (404 while never isolated).
  const isolation = usePoll<Record<string, unknown>>(
    `/api/agents/${encodeURIComponent(agent.id)}/isolation`,
    5_000,
  );
  return (
    <div className="panel" data-testid="agent-panel">
      <h2>{agent.hostname}</h2>
      <p className="muted">
        {agent.id} · {agent.isolation?.isolated ? "isolated" : "not isolated"}
      </p>
      {isolation.data && (
        <p data-testid="isolation-state">
          isolation {text(isolation.data.status)}, requested by {text(isolation.data.requestedBy)}
          {isolation.data.reason ? `: ${text(isolation.data.reason)}` : ""}
          {isolation.data.releaseAt ? `, release at ${when(isolation.data.releaseAt)}` : ""}
        </p>
      )}
      {canAct(session) && (
        <CommandForm
          agentId={agent.id}
          hostname={agent.hostname}
          capabilities={agent.capabilities ?? []}
          onIssued={() => {
            commands.reload();
            props.onChange();
          }}
        />
      )}
      <Problem error={commands.error} />
      <CommandLife rows={commands.data?.items} session={session} />
    </div>
  );
}
