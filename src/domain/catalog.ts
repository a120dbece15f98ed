// REST documents of the catalogue: conditions, mitigations (the seed's "workflow") and attack
// flows. Shapes are checked with zod; then what zod cannot say (the CEL check compiles, the query
// only reads, the flow is a DAG). Errors name the field, e.g. "nodes[1].next[0]".
//
// Workflow code must import only types from here (this module pulls in zod and the CEL engine);
// identifierKey and AGENT_COMMANDS are also importable from model.ts, which has no dependencies.
import * as z from "zod";
import { argSpecIssues } from "./args.ts";
import { compileCheck } from "./cel.ts";
import { checkReadOnlyCypher } from "./cypher.ts";
import {
  type ArgSpec,
  type AttackFlow,
  type Condition,
  type FieldError,
  fieldErrors,
  type Identifier,
  type Mitigation,
  PUSH_RULES,
  STEP_KINDS,
  TECHNIQUE_ID,
} from "./model.ts";
import { pushRulesDetails } from "./push-rules.ts";

export type {
  AgentCommand,
  ArgSpec,
  AttackFlow,
  AttackFlowNode,
  Condition,
  FieldError,
  Identifier,
  Mitigation,
  MitigationStep,
} from "./model.ts";
export { AGENT_COMMANDS, fieldPath, identifierKey, TECHNIQUE_ID } from "./model.ts";

export type Validated<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

// Refinements rather than .trim(): documents are stored exactly as posted.
const nonBlank = (s: string) => s.trim() !== "";
const identifier = z.union([z.string().refine(nonBlank), z.int()], {
  error: "must be a non-empty string or an integer",
});
const identifiers = z.array(identifier);
const text = z.string().refine(nonBlank, "must not be empty");
const object = z.record(z.string(), z.unknown(), { error: "must be an object" });
const technique = z
  .string()
  .regex(TECHNIQUE_ID, "must be a MITRE ATT&CK technique id like T1222 or T1222.002");
// Paths are checked by args.ts so REST and internal callers share one definition.
const argSpec = z.custom<ArgSpec>().superRefine((spec, ctx) => {
  for (const { path, message } of argSpecIssues(spec))
    ctx.addIssue({ code: "custom", path, message });
});

const conditionShape = z.object({
  identifier,
  name: text,
  description: z.string().optional(),
  params: object.default({}),
  args: argSpec.default({}),
  query: z.string().nullable().optional(),
  check: text,
});

// Credentials in a URL would be shown to every viewer of the catalogue and the decision log.
// zod runs the refinement even on a value its URL check refused ("" reached `new URL` and threw, a
// 500 found by API fuzzing): what is no URL is left to that check's own message.
const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).refine((u) => {
  if (!URL.canParse(u)) return true;
  const { username, password } = new URL(u);
  return !username && !password;
}, "must not carry credentials (user:password@)");

const mitigationShape = z.object({
  identifier,
  name: text,
  description: z.string().optional(),
  url: httpUrl.optional(),
  effective_attacks: z.array(technique).min(1, "must list at least one technique"),
  cost: z.number().min(0, "must be >= 0"),
  params: object.default({}),
  args: argSpec.default({}),
  conditions: identifiers.optional(),
  steps: z
    .array(
      z
        .object({
          agent: z.enum(STEP_KINDS, { error: `must be one of ${STEP_KINDS.join(", ")}` }),
          details: object.optional(),
        })
        .superRefine((step, ctx) => {
          if (step.agent !== PUSH_RULES) return;
          const checked = pushRulesDetails.safeParse(step.details ?? {});
          for (const issue of checked.error?.issues ?? [])
            ctx.addIssue({
              code: "custom",
              path: ["details", ...issue.path],
              message: issue.message,
            });
        }),
    )
    .optional(),
  requires_approval: z.boolean({ error: "must be true or false" }).optional(),
});

const attackFlowShape = z.object({
  identifier,
  name: text,
  description: z.string().optional(),
  nodes: z
    .array(
      z.object({
        id: text,
        techniques: z.array(technique).min(1, "must list at least one technique"),
        conditions: identifiers.optional(),
        next: z.array(z.string()).optional(),
        preemptive: z.boolean().optional(),
      }),
    )
    .min(1, "must have at least one node"),
  start: z.array(z.string()).min(1, "must name at least one start node"),
});

// The zod outputs must be exactly the model types the rest of the code works with.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const shapesMatchModel: [
  Same<z.output<typeof conditionShape>, Condition>,
  Same<z.output<typeof mitigationShape>, Mitigation>,
  Same<z.output<typeof attackFlowShape>, AttackFlow>,
] = [true, true, true];
void shapesMatchModel;

function parse<T>(schema: z.ZodType<T>, input: unknown): Validated<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, errors: fieldErrors(result.error.issues) };
}

/** A condition document: shape, then the CEL check compiles and the query only reads. */
export function validateCondition(input: unknown): Validated<Condition> {
  const parsed = parse(conditionShape, input);
  if (!parsed.ok) return parsed;
  const errors: FieldError[] = [];
  const compiled = compileCheck(parsed.value.check);
  if (!compiled.ok) errors.push({ field: "check", message: compiled.error });
  // A blank query means no query, as in the seed's forms.
  const query = parsed.value.query;
  const notReadOnly = query && query.trim() !== "" ? checkReadOnlyCypher(query) : null;
  if (notReadOnly) errors.push({ field: "query", message: notReadOnly });
  return errors.length > 0 ? { ok: false, errors } : parsed;
}

/** A mitigation document: shape, and something to do (a webhook url or agent steps). */
export function validateMitigation(input: unknown): Validated<Mitigation> {
  const parsed = parse(mitigationShape, input);
  if (!parsed.ok) return parsed;
  if (parsed.value.url === undefined && (parsed.value.steps ?? []).length === 0) {
    return {
      ok: false,
      errors: [
        { field: "url", message: "a mitigation needs a url (webhook) or at least one step" },
      ],
    };
  }
  return parsed;
}

/** An attack flow document: shape, unique node ids, references to existing nodes, no cycle. */
export function validateAttackFlow(input: unknown): Validated<AttackFlow> {
  const parsed = parse(attackFlowShape, input);
  if (!parsed.ok) return parsed;
  const flow = parsed.value;
  const errors: FieldError[] = [];
  const ids = new Set<string>();
  flow.nodes.forEach((node, i) => {
    if (ids.has(node.id))
      errors.push({ field: `nodes[${i}].id`, message: `duplicate node id "${node.id}"` });
    ids.add(node.id);
  });
  for (const [i, node] of flow.nodes.entries()) {
    for (const [j, next] of (node.next ?? []).entries()) {
      if (!ids.has(next))
        errors.push({ field: `nodes[${i}].next[${j}]`, message: `no node has id "${next}"` });
    }
  }
  flow.start.forEach((start, i) => {
    if (!ids.has(start))
      errors.push({ field: `start[${i}]`, message: `no node has id "${start}"` });
  });
  if (errors.length > 0) return { ok: false, errors };
  const cycle = findCycle(flow);
  if (cycle)
    return {
      ok: false,
      errors: [{ field: "nodes", message: `attack flows must be acyclic: ${cycle.join(" → ")}` }],
    };
  return parsed;
}

/** The node ids of one cycle, closed (["a", "b", "a"]), or null for a DAG. */
function findCycle(flow: AttackFlow): string[] | null {
  const next = new Map(flow.nodes.map((n) => [n.id, n.next ?? []]));
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    if (state.get(id) === "done") return null;
    if (state.get(id) === "visiting") return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, "visiting");
    stack.push(id);
    for (const n of next.get(id) ?? []) {
      const cycle = visit(n);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(id, "done");
    return null;
  };
  for (const node of flow.nodes) {
    const cycle = visit(node.id);
    if (cycle) return cycle;
  }
  return null;
}

/** Condition identifiers a flow's nodes use (first occurrence order), for the API's existence check. */
export function referencedConditions(flow: AttackFlow): Identifier[] {
  const seen = new Map<string, Identifier>();
  for (const node of flow.nodes)
    for (const c of node.conditions ?? []) if (!seen.has(String(c))) seen.set(String(c), c);
  return [...seen.values()];
}

/** The document shapes, for the OpenAPI document. */
export const catalogSchemas = {
  condition: conditionShape,
  mitigation: mitigationShape,
  attackFlow: attackFlowShape,
};
