// Incidents: the live list, and one incident's page (alerts, attack flows reached, decisions with
// their reasons, the commands on its host, a link to the workflow in the Temporal UI).
import { useState } from "react";
import { query, type Session, usePoll } from "../api.ts";
import { Choice, Cut, Problem, Table, TextField, text, when } from "../common.tsx";
import { type Flow, FlowGraph } from "../flow-graph.tsx";
import { Link } from "../router.tsx";
import { Steps } from "../steps.tsx";
import { CommandLife, type CommandRow } from "./commands.tsx";

export interface IncidentRow {
  id: string;
  runId: string;
  host: unknown;
  status: unknown;
  severity: unknown;
  techniques: unknown[];
  startTime: string;
  closeTime: string | null;
}

export function workflowLink(session: Session, workflowId: string, runId?: string): string {
  const ns = encodeURIComponent(session.namespace);
  const run = runId ? `/${encodeURIComponent(runId)}` : "";
  return `${session.temporal_ui_url}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}${run}`;
}

export function IncidentsView() {
  const [host, setHost] = useState("");
  const [status, setStatus] = useState("");
  const { data, error } = usePoll<{ items: IncidentRow[] }>(
    `/api/incidents${query({ host: host.trim(), status, limit: 200 })}`,
  );
  const [severity, setSeverity] = useState("");
  const [technique, setTechnique] = useState("");
  const rows = data?.items.filter(
    (i) =>
      (!severity || text(i.severity) === severity) &&
      (!technique || i.techniques.some((t) => text(t).startsWith(technique.trim().toUpperCase()))),
  );
  return (
    <section>
      <h1>Incidents</h1>
      <div className="filters">
        <TextField label="Host" name="host" value={host} onChange={setHost} />
        <Choice
          label="Status"
          name="status"
          value={status}
          options={["open", "closed"]}
          onChange={setStatus}
        />
        <Choice
          label="Severity"
          name="severity"
          value={severity}
          options={["low", "medium", "high", "critical"]}
          onChange={setSeverity}
        />
        <TextField label="Technique" name="technique" value={technique} onChange={setTechnique} />
      </div>
      <Problem error={error} />
      <Table
        rows={rows}
        testId="incidents"
        empty="no incidents"
        rowKey={(i) => i.runId}
        columns={[
          {
            title: "Host",
            cell: (i) => (
              <Link to={`/incidents/${encodeURIComponent(text(i.host))}`}>{text(i.host)}</Link>
            ),
          },
          {
            title: "Status",
            cell: (i) => <span className={`status ${text(i.status)}`}>{text(i.status)}</span>,
          },
          { title: "Severity", cell: (i) => text(i.severity) },
          { title: "Techniques", cell: (i) => i.techniques.map(text).join(", ") },
          { title: "Opened", cell: (i) => when(i.startTime) },
          { title: "Closed", cell: (i) => when(i.closeTime) },
        ]}
      />
    </section>
  );
}

interface IncidentState {
  host: string;
  status: string;
  severity: string | null;
  techniques: string[];
  instances: { id: string; flowId: string; node: string; path: string[] }[];
  finished: { id: string; flowId: string; node: string; path: string[] }[];
  mitigations: {
    workflowId: string;
    flowId: string;
    nodeId: string;
    outcome: string;
    mitigation?: string;
  }[];
}

interface AlertRow {
  key: string;
  time: string;
  rule_id: string;
  rule_level: number;
  severity: string;
  techniques: string[];
  raw: { rule?: { description?: unknown }; full_log?: unknown; alert?: { description?: unknown } };
}

interface DecisionRow {
  id: string;
  at: string;
  kind: string;
  reason: string;
  flow_id: string | null;
  node_id: string | null;
  mitigation: string | null;
  alert_id: string | null;
  workflow_id: string | null;
  details: Record<string, unknown>;
}

export function IncidentView(props: { host: string; session: Session }) {
  const { host, session } = props;
  const h = encodeURIComponent(host);
  const listed = usePoll<{ items: IncidentRow[] }>(
    `/api/incidents${query({ host, limit: 1 })}`,
    5_000,
  );
  const state = usePoll<IncidentState>(`/api/incidents/${h}`);
  const alerts = usePoll<{ items: AlertRow[] }>(`/api/alerts${query({ host, limit: 200 })}`);
  const incident = listed.data?.items[0];
  const decisions = usePoll<{ items: DecisionRow[] }>(
    incident ? `/api/decisions${query({ incident: incident.id, limit: 500 })}` : null,
  );
  const flows = usePoll<Flow[]>("/api/attack-flow", 30_000);
  const agents = usePoll<{ items: { id: string }[] }>(
    `/api/agents${query({ hostname: host, limit: 1 })}`,
    10_000,
  );
  const agentId = agents.data?.items[0]?.id;
  const commands = usePoll<{ items: CommandRow[] }>(
    agentId ? `/api/commands${query({ agent: agentId, limit: 100 })}` : null,
  );
  const [open, setOpen] = useState<string | null>(null);

  const instances = [...(state.data?.instances ?? []), ...(state.data?.finished ?? [])];
  const flowIds = [...new Set(instances.map((i) => i.flowId))];
  return (
    <section data-testid="incident">
      <p>
        <Link to="/">← incidents</Link>
      </p>
      <h1>
        Incident on <span data-testid="incident-host">{host}</span>
      </h1>
      {incident && (
        <p className="meta">
          <span className={`status ${text(incident.status)}`}>{text(incident.status)}</span> ·
          severity {text(incident.severity)} · opened {when(incident.startTime)} ·{" "}
          <a
            href={workflowLink(session, incident.id, incident.runId)}
            target="_blank"
            rel="noreferrer noopener"
            data-testid="temporal-link"
          >
            workflow {incident.id} in the Temporal UI
          </a>
        </p>
      )}
      <Problem error={state.error} />

      <h2>Alerts</h2>
      <Problem error={alerts.error} />
      <ol className="timeline" data-testid="timeline">
        {(alerts.data?.items ?? [])
          .slice()
          .reverse()
          .map((a) => (
            <li key={a.key} data-testid="timeline-alert">
              <time>{when(a.time)}</time> <strong>rule {a.rule_id}</strong> (level {a.rule_level},{" "}
              {a.severity}) <span className="techniques">{a.techniques.join(", ")}</span>
              <div className="description">
                <Cut value={a.raw?.rule?.description ?? a.raw?.alert?.description} max={400} />
              </div>
              {a.raw?.full_log !== undefined && (
                <div className="log">
                  <Cut value={a.raw.full_log} max={400} />
                </div>
              )}
            </li>
          ))}
      </ol>

      <h2>Attack flows</h2>
      {flowIds.length === 0 && <p className="muted">no attack flow matched yet</p>}
      {flowIds.map((flowId) => {
        const flow = flows.data?.find((f) => String(f.identifier) === flowId);
        const mine = instances.filter((i) => i.flowId === flowId);
        const reached = new Set(mine.flatMap((i) => i.path));
        const current = new Set(
          state.data?.instances.filter((i) => i.flowId === flowId).map((i) => i.node),
        );
        return (
          <div key={flowId} className="flow">
            <h3>
              {flow?.name ? `${text(flow.name)} ` : ""}({flowId}) · reached{" "}
              {[...reached].join(" → ")}
            </h3>
            {flow ? (
              <FlowGraph flow={flow} reached={reached} current={current} />
            ) : (
              <p className="muted">flow {flowId} is no longer in the catalog</p>
            )}
          </div>
        );
      })}

      <h2>Decisions</h2>
      <Problem error={decisions.error} />
      <Table
        rows={decisions.data?.items}
        testId="decisions"
        empty="no decisions yet"
        rowKey={(d) => d.id}
        columns={[
          { title: "At", cell: (d) => when(d.at) },
          {
            title: "Decision",
            cell: (d) => (
              <>
                <span className={`decision ${d.kind}`} data-testid="decision-kind">
                  {d.kind}
                </span>
                {d.kind === "approval_requested" && (
                  <>
                    {" "}
                    <Link to="/approvals">approvals</Link>
                  </>
                )}
              </>
            ),
          },
          { title: "Flow / node", cell: (d) => [d.flow_id, d.node_id].filter(Boolean).join(" / ") },
          { title: "Mitigation", cell: (d) => d.mitigation ?? "" },
          {
            title: "Why",
            cell: (d) => (
              <div>
                <button
                  type="button"
                  className="link"
                  data-testid="decision-reason-toggle"
                  onClick={() => setOpen(open === d.id ? null : d.id)}
                >
                  <Cut value={d.reason} max={80} />
                </button>
                {open === d.id && (
                  <div className="reason" data-testid="decision-reason">
                    <p>{d.reason}</p>
                    {d.workflow_id && (
                      <p>
                        {/* Since 0.4.0 a mitigation run is part of its incident's workflow: the
                            incident's history shows its activities (older runs are its children). */}
                        run {d.workflow_id} in{" "}
                        <a
                          href={workflowLink(session, `incident/${host}`)}
                          target="_blank"
                          rel="noreferrer noopener"
                        >
                          incident/{host}
                        </a>
                      </p>
                    )}
                    {Array.isArray(d.details?.steps) && <Steps steps={d.details.steps} />}
                    <pre>{JSON.stringify(d.details, null, 2)}</pre>
                  </div>
                )}
              </div>
            ),
          },
        ]}
      />

      <h2>Commands on this host</h2>
      {!agentId && <p className="muted">no agent enrolled with this host name</p>}
      <Problem error={commands.error} />
      {agentId && <CommandLife rows={commands.data?.items} session={session} />}
    </section>
  );
}
