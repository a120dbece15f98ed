// Approvals: the actions held for a person (why each is held, what it would run, how long is left
// and what happens then), approved or denied with a comment by responders and admins; the recently
// decided ones; and the operating modes (act / approve / observe), global and per agent group,
// which admins change.
import { useEffect, useState } from "react";
import { ApiError, api, type FieldError, query, type Session, usePoll } from "../api.ts";
import { Cut, FieldErrors, Problem, Table, TextField, when } from "../common.tsx";
import { Link } from "../router.tsx";
import { Steps } from "../steps.tsx";
import { canAct } from "./commands.tsx";

export interface Approval {
  id: string;
  status: "pending" | "approved" | "denied" | "expired";
  incident_id: string;
  workflow_id: string;
  alert_id: string;
  host: string;
  agent_id: string | null;
  mitigation: string;
  mitigation_name: string;
  steps: unknown[];
  reasons: string[];
  requested_at: string;
  deadline: string;
  on_timeout: "approve" | "deny";
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
}

export interface ApprovalPage {
  items: Approval[];
  /** How many match in all (the page is the newest `limit`). */
  total?: number;
}

/** How many are pending, for the nav's badge. */
export const pendingCount = (page: ApprovalPage): number => page.total ?? page.items.length;

/** The page the queue shows, also polled by the nav's badge. */
export const PENDING_PATH = `/api/approvals${query({ status: "pending", limit: 100 })}`;
/** Each decided status is its own page: the recent ones of all three are shown merged. */
const decidedPath = (status: Approval["status"]) => `/api/approvals${query({ status, limit: 20 })}`;
const MODES = ["act", "approve", "observe"] as const;
const COMMENT_MAX = 1000;

/** The current time, ticking every second while shown (the deadlines' countdowns). */
function useNow(): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

export function countdown(deadline: string, now: number): string {
  const left = Math.round((new Date(deadline).getTime() - now) / 1_000);
  if (Number.isNaN(left)) return deadline;
  if (left <= 0) return "due now";
  const h = Math.floor(left / 3600);
  const m = Math.floor((left % 3600) / 60);
  const s = left % 60;
  return `${h > 0 ? `${h}h ` : ""}${h > 0 || m > 0 ? `${m}m ` : ""}${s}s left`;
}

const incidentLink = (a: Approval) => (
  <Link to={`/incidents/${encodeURIComponent(a.host)}`}>{a.host}</Link>
);

export function ApprovalsView(props: { session: Session }) {
  const { session } = props;
  const pending = usePoll<ApprovalPage>(PENDING_PATH, 3_000);
  const decided = [
    usePoll<ApprovalPage>(decidedPath("approved"), 5_000),
    usePoll<ApprovalPage>(decidedPath("denied"), 5_000),
    usePoll<ApprovalPage>(decidedPath("expired"), 5_000),
  ];
  const recent = decided
    .flatMap((d) => d.data?.items ?? [])
    .sort((a, b) => (b.decided_at ?? b.deadline).localeCompare(a.decided_at ?? a.deadline))
    .slice(0, 30);
  const loadedRecent = decided.every((d) => d.data !== undefined) ? recent : undefined;
  const now = useNow();
  const act = canAct(session);
  const changed = () => {
    pending.reload();
    for (const d of decided) d.reload();
  };
  return (
    <section data-testid="approvals-page">
      <h1>Approvals</h1>
      <p className="muted">
        Actions held for a person: by the mitigation's <code>requires_approval</code>, a
        blast-radius policy, or an operating mode of <code>approve</code>. Each runs once approved,
        and on its deadline the configured default applies.
        {act ? "" : " Approving and denying takes a responder's or an admin's token."}
      </p>
      <h2>Pending</h2>
      <Problem error={pending.error} />
      {pending.data && pending.data.items.length === 0 && (
        <p className="muted" data-testid="no-pending">
          nothing is waiting for a decision
        </p>
      )}
      <div data-testid="approvals">
        {pending.data?.items.map((a) => (
          <div key={a.id} className="panel approval" data-testid="approval" data-id={a.id}>
            <h3>
              {a.mitigation_name} on {incidentLink(a)}
              {a.agent_id ? <span className="muted"> (agent {a.agent_id})</span> : null}
            </h3>
            <p>
              Held because: <span data-testid="approval-reasons">{a.reasons.join("; ")}</span>
            </p>
            <Steps steps={a.steps} />
            <p className="meta">
              requested {when(a.requested_at)} · deadline {when(a.deadline)} (
              <strong data-testid="countdown">{countdown(a.deadline, now)}</strong>) · on timeout{" "}
              <strong data-testid="on-timeout">
                {a.on_timeout === "approve" ? "it runs" : "it is denied"}
              </strong>
            </p>
            {act && <DecisionForm approval={a} onDone={changed} />}
          </div>
        ))}
      </div>
      {pending.data && pendingCount(pending.data) > pending.data.items.length && (
        <p className="muted">
          {pendingCount(pending.data)} are waiting; the newest {pending.data.items.length} are shown
        </p>
      )}

      <h2>Recently decided</h2>
      <Table
        rows={loadedRecent}
        testId="decided"
        empty="none decided yet"
        rowKey={(a) => a.id}
        columns={[
          { title: "Host", cell: incidentLink },
          { title: "Mitigation", cell: (a) => a.mitigation_name },
          {
            title: "Status",
            cell: (a) => (
              <span className={`status ${a.status}`} data-testid="decided-status">
                {a.status}
              </span>
            ),
          },
          { title: "By", cell: (a) => a.decided_by ?? (a.status === "expired" ? "timeout" : "") },
          { title: "When", cell: (a) => when(a.decided_at) },
          { title: "Comment", cell: (a) => <Cut value={a.comment} /> },
          { title: "Held because", cell: (a) => <Cut value={a.reasons.join("; ")} /> },
        ]}
      />

      <ModesPanel session={session} />
    </section>
  );
}

function DecisionForm(props: { approval: Approval; onDone: () => void }) {
  const [comment, setComment] = useState("");
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [problem, setProblem] = useState<string>();
  const [busy, setBusy] = useState(false);
  const decide = async (decision: "approve" | "deny") => {
    setErrors([]);
    setProblem(undefined);
    // Said at the field before asking: the API would answer the same 400.
    const trimmed = comment.trim();
    if (!trimmed || trimmed.length > COMMENT_MAX) {
      setErrors([{ field: "comment", message: `say why, in 1 to ${COMMENT_MAX} characters` }]);
      return;
    }
    setBusy(true);
    try {
      await api("POST", `/api/approvals/${encodeURIComponent(props.approval.id)}`, {
        decision,
        comment: trimmed,
      });
      props.onDone();
    } catch (err) {
      if (err instanceof ApiError && err.errors.length > 0) setErrors(err.errors);
      else if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
        // Decided elsewhere (another operator, the timeout): the lists catch up.
        setProblem(`${err.message}; the lists are refreshed`);
        props.onDone();
      } else setProblem((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="decision-form" data-testid="decision-form">
      <label>
        Comment{" "}
        <textarea
          name="comment"
          rows={2}
          maxLength={COMMENT_MAX}
          value={comment}
          onChange={(e) => setComment(e.target.value)}
        />
      </label>
      <button type="button" data-testid="approve" disabled={busy} onClick={() => decide("approve")}>
        Approve
      </button>
      <button type="button" data-testid="deny" disabled={busy} onClick={() => decide("deny")}>
        Deny
      </button>
      <FieldErrors errors={errors} />
      <Problem error={problem} />
    </div>
  );
}

interface Modes {
  global: {
    mode: string;
    source: "config" | "operator";
    updated_by: string | null;
    updated_at: string | null;
  };
  groups: { group: string; mode: string; updated_by: string; updated_at: string }[];
}

function ModesPanel(props: { session: Session }) {
  const modes = usePoll<Modes>("/api/modes", 10_000);
  const admin = props.session.role === "admin";
  const [problem, setProblem] = useState<string>();
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [group, setGroup] = useState("");
  const [groupMode, setGroupMode] = useState<string>("approve");
  const change = async (method: string, path: string, body?: unknown) => {
    setProblem(undefined);
    setErrors([]);
    try {
      await api(method, path, body);
      modes.reload();
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.errors.length > 0) setErrors(err.errors);
      else setProblem((err as Error).message);
      return false;
    }
  };
  const groupPath = (g: string) => `/api/modes/groups/${encodeURIComponent(g)}`;
  const global = modes.data?.global;
  return (
    <div className="panel" data-testid="modes">
      <h2>Operating modes</h2>
      <p className="muted">
        <strong>act</strong>: mitigations run as decided; <strong>approve</strong>: every effect
        waits for a person here; <strong>observe</strong>: decisions are recorded and nothing runs.
        A group's mode applies to its agents' hosts
        {admin ? "." : "; admins change them."}
      </p>
      <Problem error={modes.error ?? problem} />
      <FieldErrors errors={errors} />
      {global && (
        <p data-testid="global-mode">
          Global mode{" "}
          {admin ? (
            <ModeSelect
              name="global-mode"
              value={global.mode}
              onChange={(mode) => change("PUT", "/api/modes/global", { mode })}
            />
          ) : (
            <strong className={`mode ${global.mode}`}>{global.mode}</strong>
          )}{" "}
          <span className="muted">
            {global.source === "config"
              ? "(from the configuration)"
              : `(set by ${global.updated_by ?? "?"} ${when(global.updated_at)})`}
          </span>
        </p>
      )}
      <Table
        rows={modes.data?.groups}
        testId="group-modes"
        empty="no group has a mode of its own: the global mode applies"
        rowKey={(g) => g.group}
        columns={[
          { title: "Group", cell: (g) => g.group },
          {
            title: "Mode",
            cell: (g) =>
              admin ? (
                <ModeSelect
                  name={`group-mode-${g.group}`}
                  value={g.mode}
                  onChange={(mode) => change("PUT", groupPath(g.group), { mode })}
                />
              ) : (
                <strong className={`mode ${g.mode}`}>{g.mode}</strong>
              ),
          },
          { title: "Set by", cell: (g) => `${g.updated_by} ${when(g.updated_at)}` },
          ...(admin
            ? [
                {
                  title: "",
                  cell: (g: Modes["groups"][number]) => (
                    <button
                      type="button"
                      data-testid="group-mode-remove"
                      onClick={() => change("DELETE", groupPath(g.group))}
                    >
                      Use the global mode
                    </button>
                  ),
                },
              ]
            : []),
        ]}
      />
      {admin && (
        <form
          className="command-form"
          data-testid="group-mode-form"
          onSubmit={async (event) => {
            event.preventDefault();
            if (!group.trim()) {
              setErrors([{ field: "group", message: "name the agent group" }]);
              return;
            }
            if (await change("PUT", groupPath(group.trim()), { mode: groupMode })) setGroup("");
          }}
        >
          <TextField label="Group" name="group" value={group} onChange={setGroup} />
          <ModeSelect name="new-group-mode" value={groupMode} onChange={setGroupMode} />
          <button type="submit" data-testid="group-mode-set">
            Set the group's mode
          </button>
        </form>
      )}
    </div>
  );
}

function ModeSelect(props: { name: string; value: string; onChange: (mode: string) => void }) {
  return (
    <select
      name={props.name}
      aria-label={props.name}
      value={props.value}
      onChange={(e) => props.onChange(e.target.value)}
    >
      {MODES.map((m) => (
        <option key={m} value={m}>
          {m}
        </option>
      ))}
    </select>
  );
}
