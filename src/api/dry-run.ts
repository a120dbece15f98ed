// POST /alert/dry-run: what an alert would do now, with no effect and nothing stored. The alert is
// normalised as the intake would, matched against the host's open incident (its flow instances),
// and every condition and candidate is evaluated by the engine's own code (engineDryRun).
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Client } from "@temporalio/client";
import { ApplicationFailure } from "@temporalio/common";
import type { gatePreview } from "../activities/approvals.ts";
import type { engineDryRun } from "../activities/engine.ts";
import { normaliseAlert } from "../domain/alert.ts";
import { incidentWorkflowId } from "../workflows/ids.ts";
import { stateQuery } from "../workflows/incident.ts";
import { errorResponse, invalid, json, Row, readJson } from "./http.ts";
import { queryWorkflow } from "./workflow-query.ts";

const rehearse = createRoute({
  method: "post",
  path: "/alert/dry-run",
  tags: ["alerts"],
  summary:
    "What this alert would do now: flows and nodes reached given the host's open incident, every condition's verdict, candidates in cost order with their resolved steps (no effect, nothing stored) (responder)",
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: {
            oneOf: [
              { $ref: "#/components/schemas/WazuhAlert" },
              { $ref: "#/components/schemas/AgentAlert" },
            ],
          },
        },
      },
    },
  },
  responses: {
    200: { description: "the rehearsal", content: json(Row) },
    400: errorResponse("malformed alert; the field is named"),
    503: errorResponse("a dependency (Neo4j, the incident's worker) did not answer"),
  },
});

export function dryRunApi(deps: {
  temporal: Client;
  dryRun: ReturnType<typeof engineDryRun>;
  gatePreview: ReturnType<typeof gatePreview>;
}) {
  const app = new OpenAPIHono();
  app.openapi(rehearse, async (c) => {
    const body = await readJson(c);
    if (!body.ok) return body.response;
    const normalised = normaliseAlert(body.value);
    if (!normalised.ok) return invalid(c, normalised.errors);
    const { alert } = normalised;
    const incidentId = incidentWorkflowId(alert.host.name);
    const incident = await queryWorkflow(
      deps.temporal,
      incidentId,
      stateQuery,
      `incident ${incidentId}`,
    );
    if (!incident.ok && incident.status === 503) return c.json(incident.body, 503);
    // An alert for a host without an open incident would open a new one, with no instances.
    const open = incident.ok && incident.state.status === "open" ? incident.state : null;
    try {
      const host = {
        name: alert.host.name,
        agentId: alert.host.agentId ?? null,
        ip: alert.host.ip ?? null,
      };
      const rehearsal = await deps.dryRun({
        alert: {
          raw: alert.raw,
          host: host.name,
          agent_id: host.agentId,
          host_ip: host.ip,
          techniques: alert.techniques,
        },
        instances: open?.instances ?? [],
        instanceCounter: open?.instanceCounter ?? 0,
      });
      // Whether each chosen mitigation would run now, wait for a person or only be recorded.
      const reached = [];
      for (const r of rehearsal.reached) {
        const chosen = r.candidates.find((c) => c.key === r.chosen);
        reached.push(
          chosen && "steps" in chosen
            ? {
                ...r,
                gate: await deps.gatePreview({ mitigation: chosen.key, steps: chosen.steps, host }),
              }
            : r,
        );
      }
      return c.json(
        {
          dryRun: true,
          alert: {
            id: alert.id,
            host: alert.host.name,
            techniques: alert.techniques,
            severity: alert.severity,
          },
          incident: { id: incidentId, open: open !== null, instances: open?.instances ?? [] },
          ...rehearsal,
          reached,
        },
        200,
      );
    } catch (err) {
      // Neo4j unreachable: the engine would wait; a rehearsal says so instead of guessing.
      if (err instanceof ApplicationFailure && !err.nonRetryable)
        return c.json({ error: err.message }, 503);
      throw err;
    }
  });
  return app;
}
