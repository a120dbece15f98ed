// Shared pieces. Everything shown here may come from an attacker (alert fields, host names, rule
// names): it is only ever rendered as React text children, never as markup.
import type { ReactNode } from "react";
import type { FieldError } from "./api.ts";

/** Any value as one line of text: strings as they are, the rest as JSON. */
export function text(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function when(value: unknown): string {
  if (typeof value !== "string" || !value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

export function Problem(props: { error: string | undefined }) {
  return props.error ? (
    <p className="problem" role="alert">
      {props.error}
    </p>
  ) : null;
}

/** The API's validation messages, each at its field. */
export function FieldErrors(props: { errors: FieldError[] }) {
  if (props.errors.length === 0) return null;
  return (
    <ul className="field-errors" data-testid="field-errors">
      {props.errors.map((e) => (
        <li key={`${e.field}:${e.message}`}>
          <code>{e.field}</code> {e.message}
        </li>
      ))}
    </ul>
  );
}

export interface Column<T> {
  title: string;
  cell: (row: T) => ReactNode;
}

export function Table<T>(props: {
  rows: T[] | undefined;
  columns: Column<T>[];
  rowKey: (row: T, index: number) => string;
  testId?: string;
  empty?: string;
}) {
  if (!props.rows) return <p className="muted">loading…</p>;
  if (props.rows.length === 0) return <p className="muted">{props.empty ?? "nothing yet"}</p>;
  return (
    <table data-testid={props.testId}>
      <thead>
        <tr>
          {props.columns.map((c) => (
            <th key={c.title}>{c.title}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((row, i) => (
          <tr key={props.rowKey(row, i)}>
            {props.columns.map((c) => (
              <td key={c.title}>{c.cell(row)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A table of whatever columns the rows have (rule sets, drift, audit details). */
export function RowsTable(props: {
  rows: Record<string, unknown>[] | undefined;
  testId?: string;
  empty?: string;
}) {
  const keys = [...new Set((props.rows ?? []).slice(0, 50).flatMap((r) => Object.keys(r)))];
  return (
    <Table<Record<string, unknown>>
      rows={props.rows}
      testId={props.testId}
      empty={props.empty}
      rowKey={(_, i) => String(i)}
      columns={keys.map((key) => ({ title: key, cell: (row) => <Cut value={row[key]} /> }))}
    />
  );
}

/** Long values are cut in the table; the whole is in the title. */
export function Cut(props: { value: unknown; max?: number }) {
  const full = text(props.value);
  const max = props.max ?? 160;
  return (
    <span title={full.length > max ? full : undefined}>
      {full.length > max ? `${full.slice(0, max)}…` : full}
    </span>
  );
}

/** A labelled one-line text input: the filters and forms of every view. */
export function TextField(props: {
  label: string;
  name: string;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
}) {
  return (
    <label>
      {props.label}{" "}
      <input
        name={props.name}
        value={props.value}
        placeholder={props.placeholder}
        onChange={(e) => props.onChange(e.target.value)}
      />
    </label>
  );
}

/** A labelled filter among `options`; the empty value is "any". */
export function Choice(props: {
  label: string;
  name: string;
  value: string;
  options: readonly string[];
  onChange: (value: string) => void;
}) {
  return (
    <label>
      {props.label}{" "}
      <select
        name={props.name}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
      >
        <option value="">any</option>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}
