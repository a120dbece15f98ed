// A mitigation's resolved steps, read the same whether they come from a rehearsal (the engine's
// planned steps, `kind` tagged) or from a decision or an approval (the mitigation_chosen decision's
// record: `{command, details}`, `{webhook, body}`, `{push_rules}`): what runs, where, with what.
import { Cut, text } from "./common.tsx";

type Loose = Record<string, unknown>;

interface StepView {
  what: "command" | "webhook" | "push rules" | "step";
  /** The command, the URL or the rule set: the step's headline. */
  name: string;
  /** What it carries (details, body, the push's target): shown as JSON. */
  payload: unknown;
  /** Facts beside it (the agent, a priority, a hold): shown as text. */
  notes: string[];
}

const object = (value: unknown): Loose =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Loose) : {};

export function stepView(raw: unknown): StepView {
  const s = object(raw);
  if (s.kind === "webhook" || typeof s.webhook === "string")
    return { what: "webhook", name: text(s.url ?? s.webhook), payload: s.body, notes: [] };
  if (s.kind === "rules" || "push_rules" in s) {
    const r = s.kind === "rules" ? s : object(s.push_rules);
    const version = r.version === 0 ? "" : ` v${text(r.version)}`;
    return {
      what: "push rules",
      name: `${text(r.ruleSet ?? r.rule_set)}${version}`,
      payload: r.rules ?? r.groups,
      notes: [`to ${text(r.target)}`, `agent ${text(r.agentId ?? r.agent)}`],
    };
  }
  if (s.kind === "agent" || typeof s.command === "string") {
    const notes = [
      s.agentId !== undefined ? `agent ${text(s.agentId)}` : "",
      s.priority !== undefined ? `priority ${text(s.priority)}` : "",
      typeof s.releaseAfterMs === "number" ? `released after ${s.releaseAfterMs / 1000} s` : "",
    ].filter(Boolean);
    return { what: "command", name: text(s.command), payload: s.details, notes };
  }
  return { what: "step", name: "", payload: raw, notes: [] };
}

/** The steps as a numbered list; whatever a step holds is shown as text. */
export function Steps(props: { steps: unknown }) {
  const steps = Array.isArray(props.steps) ? props.steps : [];
  if (steps.length === 0) return <span className="muted">no steps</span>;
  return (
    <ol className="steps" data-testid="steps">
      {steps.map((raw, i) => {
        const step = stepView(raw);
        const payload = step.payload === undefined ? "" : JSON.stringify(step.payload);
        return (
          // biome-ignore lint/suspicious/noArrayIndexKey: steps are a fixed list, in their order
          <li key={i} data-testid="step">
            <span className="step-kind">{step.what}</span> <code>{step.name}</code>
            {step.notes.length > 0 && <span className="muted"> ({step.notes.join(", ")})</span>}
            {payload && payload !== "{}" && (
              <code className="payload">
                <Cut value={payload} max={600} />
              </code>
            )}
          </li>
        );
      })}
    </ol>
  );
}
