// The console's shell: sign-in with an operator token (exchanged for a session cookie), then the
// views, each following the session's role.
import { type FormEvent, type ReactElement, useCallback, useEffect, useState } from "react";
import { ApiError, api, type Session, setSession, usePoll } from "./api.ts";
import { Problem } from "./common.tsx";
import { Link, usePath } from "./router.tsx";
import {
  type ApprovalPage,
  ApprovalsView,
  PENDING_PATH,
  pendingCount,
} from "./views/approvals.tsx";
import { AuditView } from "./views/audit.tsx";
import { CatalogView } from "./views/catalog.tsx";
import { DryRunView } from "./views/dry-run.tsx";
import { FleetView } from "./views/fleet.tsx";
import { IncidentsView, IncidentView } from "./views/incidents.tsx";
import { RulesView } from "./views/rules.tsx";

export function App() {
  const [session, setCurrent] = useState<Session | null | undefined>(undefined);
  const signedOut = useCallback(() => {
    setSession(null);
    setCurrent(null);
  }, []);
  const signedIn = useCallback(
    (s: Session) => {
      setSession(s, signedOut);
      setCurrent(s);
    },
    [signedOut],
  );
  useEffect(() => {
    api<Session>("GET", "/api/session").then(signedIn, () => setCurrent(null));
  }, [signedIn]);

  if (session === undefined) return <p className="muted">loading…</p>;
  if (session === null) return <SignIn onSignedIn={signedIn} />;
  return <Shell session={session} onSignOut={signedOut} />;
}

function SignIn(props: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      props.onSignedIn(await api<Session>("POST", "/api/session", { token: token.trim() }));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <main className="sign-in">
      <h1>Mitigation Manager</h1>
      <form onSubmit={submit} data-testid="sign-in">
        <label>
          Operator token{" "}
          <input
            name="token"
            type="password"
            autoComplete="off"
            value={token}
            onChange={(e) => setToken(e.target.value)}
          />
        </label>
        <button type="submit">Sign in</button>
        <Problem error={error} />
      </form>
      <p className="muted">
        An admin's token is MM_ADMIN_TOKEN in the service's .env; admins create others with POST
        /api/tokens.
      </p>
    </main>
  );
}

function Shell(props: { session: Session; onSignOut: () => void }) {
  const path = usePath();
  const { session } = props;
  const signOut = async () => {
    await api("DELETE", "/api/session").catch(() => {});
    props.onSignOut();
  };
  const incident = /^\/incidents\/(.+)$/.exec(path);
  let view: ReactElement;
  if (incident?.[1])
    view = <IncidentView key={incident[1]} host={decoded(incident[1])} session={session} />;
  else if (path.startsWith("/fleet")) view = <FleetView session={session} />;
  else if (path.startsWith("/catalog")) view = <CatalogView session={session} />;
  else if (path.startsWith("/rules")) view = <RulesView />;
  else if (path.startsWith("/audit")) view = <AuditView />;
  else if (path.startsWith("/dry-run")) view = <DryRunView session={session} />;
  else if (path.startsWith("/approvals")) view = <ApprovalsView session={session} />;
  else view = <IncidentsView />;
  // The queue's length on every page: a held action waits for someone to notice it.
  const pending = usePoll<ApprovalPage>(PENDING_PATH, 5_000).data;
  const waiting = pending ? String(pendingCount(pending)) : "";
  const tab = (to: string, label: string, badge?: string) => (
    <Link
      to={to}
      className={
        (to === "/" ? path === "/" || path.startsWith("/incidents") : path.startsWith(to))
          ? "active"
          : undefined
      }
    >
      {label}
      {badge && badge !== "0" && (
        <span className="badge" data-testid="pending-badge">
          {badge}
        </span>
      )}
    </Link>
  );
  return (
    <>
      <header>
        <strong>Mitigation Manager</strong>
        <nav>
          {tab("/", "Incidents")}
          {tab("/fleet", "Fleet")}
          {tab("/catalog", "Catalog")}
          {tab("/rules", "Rules")}
          {tab("/audit", "Audit")}
          {tab("/approvals", "Approvals", waiting)}
          {tab("/dry-run", "Dry-run")}
        </nav>
        <span className="who" data-testid="who">
          {session.actor} ({session.role})
        </span>
        <button type="button" onClick={signOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <main>{view}</main>
    </>
  );
}

/** A path segment as text; a malformed escape (a hand-typed link) is shown as it is. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
