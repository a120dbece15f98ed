// Dry-run: an alert rehearsed against the catalog and the host's open incident (POST
// /api/alert/dry-run): the nodes it could reach with each condition's verdict, the nodes it would
// reach, and per node the candidates in cost order with the chosen one, why the others do not
// apply and what the applying ones would run. The API executes and stores nothing.
import { useState } from "react";
import { ApiError, api, type FieldError, type Session, usePoll } from "../api.ts";
import { FieldErrors, Problem, text } from "../common.tsx";
import { type Flow, FlowGraph } from "../flow-graph.tsx";
import { Steps } from "../steps.tsx";
import { canAct } from "./commands.tsx";

interface Verdict {
  condition: unknown;
  holds: boolean;
  error?: boolean;
  reason?: string;
}

interface NodeTried {
  flow: string;
  node: string;
  instance?: string | null;
  holds: boolean;
  conditions: Verdict[];
}

interface Candidate {
  key: string;
  name: string;
  cost: number;
  applies: boolean;
  reason?: string;
  steps?: unknown[];
}

interface NodeReached {
  flow: string;
  node: string;
  preemptive: boolean;
  techniques: string[];
  chosen: string | null;
  candidates: Candidate[];
  /** What the approval gate would do with the chosen mitigation now (absent when none applies). */
  gate?: { gate: "act" | "approve" | "observe"; reason?: string; reasons?: string[] };
}

export interface Rehearsal {
  alert: { id: string; host: string; techniques: string[]; severity: string };
  incident: { id: string; open: boolean };
  nodes: NodeTried[];
  reached: NodeReached[];
}

/** The seed's first alert (Wazuh, ncat to a remote port), the usual first rehearsal. */
const EXAMPLE = {
  timestamp: "2024-10-22T09:31:15.007+0000",
  rule: {
    level: 14,
    description: "Connection via ncat from source port 11234 to 192.168.200.1:36210. PID: 3613",
    id: "100002",
    mitre: {
      id: ["T1041", "T1219"],
      tactic: ["Exfiltration", "Command and Control"],
      technique: ["Exfiltration Over C2 Channel", "Remote Access Software"],
    },
    groups: ["established_conn"],
  },
  agent: { id: "001", name: "eeb0036baf28", ip: "192.168.200.200" },
  manager: { name: "wazuh.manager" },
  id: "1729589475.25117",
  full_log: "ncat 3613 848a20e98d52:11234->192.168.200.1:36210",
  decoder: { name: "lsof_ncat_decoder" },
  data: { pid: "3613", src_port: "11234", dst_ip: "192.168.200.1", dst_port: "36210" },
  location: "command_ncat_conn",
};

export function DryRunView(props: { session: Session }) {
  const [source, setSource] = useState(() => JSON.stringify(EXAMPLE, null, 2));
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [problem, setProblem] = useState<string>();
  const [result, setResult] = useState<Rehearsal>();
  const [busy, setBusy] = useState(false);
  const allowed = canAct(props.session);
  const rehearse = async () => {
    setErrors([]);
    setProblem(undefined);
    let alert: unknown;
    try {
      alert = JSON.parse(source);
    } catch (err) {
      setErrors([{ field: "(body)", message: `not valid JSON: ${(err as Error).message}` }]);
      return;
    }
    setBusy(true);
    try {
      setResult(await api<Rehearsal>("POST", "/api/alert/dry-run", alert));
    } catch (err) {
      setResult(undefined);
      if (err instanceof ApiError && err.errors.length > 0) setErrors(err.errors);
      else setProblem((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section data-testid="dry-run">
      <h1>Dry-run</h1>
      <p className="muted">
        What an alert would do now, given the catalog and its host's open incident. A rehearsal
        executes nothing and stores nothing: no incident, decision or command comes of it.
      </p>
      <div className="editor">
        <textarea
          name="alert"
          aria-label="alert (JSON)"
          value={source}
          spellCheck={false}
          onChange={(e) => setSource(e.target.value)}
          rows={18}
        />
        <FieldErrors errors={errors} />
        <Problem error={problem} />
        {allowed ? (
          <p>
            <button type="button" data-testid="rehearse" onClick={rehearse} disabled={busy}>
              {busy ? "Rehearsing…" : "Rehearse"}
            </button>
          </p>
        ) : (
          <p className="muted" data-testid="rehearse-denied">
            Rehearsing runs the catalog's queries and checks on the alert, so it takes a responder's
            or an admin's token; you are signed in as a {props.session.role}.
          </p>
        )}
      </div>
      {result && <RehearsalView result={result} />}
    </section>
  );
}

function RehearsalView(props: { result: Rehearsal }) {
  const { result } = props;
  // Drawn once: the flows only give the rehearsal's nodes their place.
  const flows = usePoll<Flow[]>("/api/attack-flow", 0);
  const flowIds = [...new Set([...result.nodes, ...result.reached].map((n) => n.flow))];
  return (
    <div data-testid="rehearsal">
      <p className="ok" data-testid="nothing-executed">
        Rehearsal only: nothing was executed or stored.
      </p>
      <p>
        Alert <code>{result.alert.id}</code> on host <strong>{result.alert.host}</strong> (
        {result.alert.severity}; {result.alert.techniques.join(", ") || "no techniques"}):{" "}
        {result.incident.open
          ? `joins the open incident ${result.incident.id}`
          : `would open incident ${result.incident.id}`}
        .
      </p>

      <h2>Nodes it could reach</h2>
      {result.nodes.length === 0 && (
        <p className="muted">
          no attack flow node takes these techniques from where the incident is
        </p>
      )}
      <ul className="verdicts" data-testid="nodes-tried">
        {result.nodes.map((n) => (
          <li key={`${n.flow}/${n.node}/${n.instance ?? ""}`} data-node={n.node}>
            <strong>
              {n.flow} / {n.node}
            </strong>{" "}
            {n.instance ? `(instance ${n.instance})` : "(new instance)"}{" "}
            <span className={n.holds ? "verdict holds" : "verdict false"}>
              {n.holds ? "reached" : "not reached"}
            </span>
            {n.conditions.length === 0 && <span className="muted"> · no conditions</span>}
            <ul>
              {n.conditions.map((v) => (
                <li key={text(v.condition)} data-testid="verdict">
                  <code>{text(v.condition)}</code> <VerdictBadge verdict={v} />
                  {v.reason && <span className="muted"> {v.reason}</span>}
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
      {flowIds.map((flowId) => {
        const flow = flows.data?.find((f) => String(f.identifier) === flowId);
        const reached = new Set(result.reached.filter((r) => r.flow === flowId).map((r) => r.node));
        return flow ? (
          <div key={flowId} className="flow">
            <h3>
              {flow.name ? `${text(flow.name)} ` : ""}({flowId})
            </h3>
            <FlowGraph flow={flow} reached={reached} />
          </div>
        ) : null;
      })}

      <h2>Nodes reached and their mitigations</h2>
      {result.reached.length === 0 && <p className="muted">no node would be reached</p>}
      {result.reached.map((r) => (
        <div key={`${r.flow}/${r.node}`} className="panel" data-testid="reached" data-node={r.node}>
          <h3>
            {r.flow} / {r.node}
            {r.preemptive ? " (preemptive)" : ""} · {r.techniques.join(", ")}
          </h3>
          {r.chosen === null && <p className="problem">no candidate applies: nothing would run</p>}
          {r.gate && <GateLine gate={r.gate} />}
          <ol className="candidates">
            {r.candidates.map((c) => (
              <li
                key={c.key}
                data-testid="candidate"
                data-key={c.key}
                data-chosen={c.key === r.chosen ? "true" : "false"}
                className={c.key === r.chosen ? "chosen" : c.applies ? "applies" : "skipped"}
              >
                <strong>{c.name}</strong> <span className="muted">cost {c.cost}</span>{" "}
                {c.key === r.chosen ? (
                  <span className="verdict holds">chosen</span>
                ) : c.applies ? (
                  <span className="verdict">applies (fallback)</span>
                ) : (
                  <span className="verdict false">skipped</span>
                )}
                {!c.applies && (
                  <div className="reason" data-testid="candidate-reason">
                    {c.reason}
                  </div>
                )}
                {c.applies && <Steps steps={c.steps} />}
              </li>
            ))}
          </ol>
        </div>
      ))}
    </div>
  );
}

function VerdictBadge(props: { verdict: Verdict }) {
  const { verdict } = props;
  if (verdict.holds) return <span className="verdict holds">holds</span>;
  return verdict.error ? (
    <span className="verdict error">error</span>
  ) : (
    <span className="verdict false">false</span>
  );
}

/** Whether the chosen mitigation would run now, wait for a person, or only be recorded. */
function GateLine(props: { gate: NonNullable<NodeReached["gate"]> }) {
  const { gate } = props;
  const [label, why] =
    gate.gate === "act"
      ? ["would run at once", ""]
      : gate.gate === "approve"
        ? ["would wait for a person's approval", (gate.reasons ?? []).join("; ")]
        : ["would only be recorded (observe)", gate.reason ?? ""];
  return (
    <p data-testid="gate" data-gate={gate.gate}>
      The chosen mitigation <span className={`decision gate-${gate.gate}`}>{label}</span>
      {why && <span className="muted"> — {why}</span>}
    </p>
  );
}
