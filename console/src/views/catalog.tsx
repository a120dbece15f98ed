// Catalog: conditions, mitigations and attack flows. Admins edit a document as JSON; the API's
// validation messages are shown at their fields, and an attack flow is drawn as it is typed.
import { useState } from "react";
import { ApiError, api, type FieldError, query, type Session, usePoll } from "../api.ts";
import { Cut, FieldErrors, Problem, Table, text } from "../common.tsx";
import { type Flow, FlowGraph } from "../flow-graph.tsx";

const KINDS = [
  { path: "condition", title: "Conditions" },
  { path: "workflow", title: "Mitigations" },
  { path: "attack-flow", title: "Attack flows" },
] as const;
type Kind = (typeof KINDS)[number]["path"];

type Doc = Record<string, unknown> & { identifier: string | number; name?: string };

export function CatalogView(props: { session: Session }) {
  const [kind, setKind] = useState<Kind>("attack-flow");
  const { data, error, reload } = usePoll<Doc[]>(`/api/${kind}`, 10_000);
  const [editing, setEditing] = useState<{ id: string | null; text: string } | null>(null);
  const admin = props.session.role === "admin";
  return (
    <section>
      <h1>Catalog</h1>
      <nav className="tabs">
        {KINDS.map((k) => (
          <button
            type="button"
            key={k.path}
            className={k.path === kind ? "active" : undefined}
            onClick={() => {
              setKind(k.path);
              setEditing(null);
            }}
          >
            {k.title}
          </button>
        ))}
        {admin && (
          <button
            type="button"
            data-testid="catalog-new"
            onClick={() => setEditing({ id: null, text: template(kind) })}
          >
            New
          </button>
        )}
      </nav>
      <Problem error={error} />
      {editing && (
        <Editor
          kind={kind}
          id={editing.id}
          initial={editing.text}
          onDone={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
      <Table
        rows={data}
        testId="catalog"
        rowKey={(d) => String(d.identifier)}
        columns={[
          { title: "Id", cell: (d) => text(d.identifier) },
          { title: "Name", cell: (d) => text(d.name) },
          { title: "Document", cell: (d) => <Cut value={d} max={200} /> },
          ...(admin
            ? [
                {
                  title: "",
                  cell: (d: Doc) => (
                    <button
                      type="button"
                      data-testid="catalog-edit"
                      onClick={() =>
                        setEditing({ id: String(d.identifier), text: JSON.stringify(d, null, 2) })
                      }
                    >
                      Edit
                    </button>
                  ),
                },
              ]
            : []),
        ]}
      />
    </section>
  );
}

function template(kind: Kind): string {
  const docs: Record<Kind, unknown> = {
    condition: { identifier: "new-condition", name: "", query: "", params: {} },
    workflow: {
      identifier: "new-mitigation",
      name: "",
      effective_attacks: [],
      cost: 1,
      params: {},
      args: {},
    },
    "attack-flow": {
      identifier: "new-flow",
      name: "",
      start: ["a"],
      nodes: [
        { id: "a", techniques: ["T1059"], next: ["b"] },
        { id: "b", techniques: ["T1041"] },
      ],
    },
  };
  return JSON.stringify(docs[kind], null, 2);
}

function Editor(props: { kind: Kind; id: string | null; initial: string; onDone: () => void }) {
  const [source, setSource] = useState(props.initial);
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [problem, setProblem] = useState<string>();
  let parsed: unknown;
  let parseError: string | undefined;
  try {
    parsed = JSON.parse(source);
  } catch (err) {
    parseError = (err as Error).message;
  }
  const flow = props.kind === "attack-flow" && isFlow(parsed) ? parsed : null;
  const save = async () => {
    setErrors([]);
    setProblem(undefined);
    if (parseError) {
      setErrors([{ field: "(body)", message: `not valid JSON: ${parseError}` }]);
      return;
    }
    try {
      if (props.id === null) await api("POST", `/api/${props.kind}`, parsed);
      else await api("PUT", `/api/${props.kind}${query({ id: props.id })}`, parsed);
      props.onDone();
    } catch (err) {
      if (err instanceof ApiError && err.errors.length > 0) setErrors(err.errors);
      else setProblem((err as Error).message);
    }
  };
  const remove = async () => {
    if (props.id === null) return;
    try {
      await api("DELETE", `/api/${props.kind}${query({ id: props.id })}`);
      props.onDone();
    } catch (err) {
      setProblem((err as Error).message);
    }
  };
  return (
    <div className="editor" data-testid="catalog-editor">
      <h2>{props.id === null ? `New ${props.kind}` : `Edit ${props.kind} ${props.id}`}</h2>
      <div className="editor-body">
        <textarea
          name="document"
          value={source}
          spellCheck={false}
          onChange={(e) => setSource(e.target.value)}
          rows={20}
        />
        {flow && <FlowGraph flow={flow} />}
      </div>
      {parseError && <p className="muted">{parseError}</p>}
      <FieldErrors errors={errors} />
      <Problem error={problem} />
      <button type="button" data-testid="catalog-save" onClick={save}>
        Save
      </button>{" "}
      {props.id !== null && (
        <button type="button" onClick={remove}>
          Delete
        </button>
      )}{" "}
      <button type="button" onClick={props.onDone}>
        Cancel
      </button>
    </div>
  );
}

function isFlow(value: unknown): value is Flow {
  const v = value as Flow | null;
  return (
    typeof v === "object" &&
    v !== null &&
    Array.isArray(v.nodes) &&
    v.nodes.every(
      (n) =>
        typeof n === "object" &&
        n !== null &&
        typeof n.id === "string" &&
        (n.next === undefined || Array.isArray(n.next)),
    )
  );
}
