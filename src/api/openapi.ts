import * as z from "zod";
import { catalogSchemas } from "../domain/catalog.ts";

const json = (schema: object) => ({ "application/json": { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string) => ({ description, content: json(ref("Error")) });
const idQuery = (required: boolean) => ({
  name: "id",
  in: "query",
  required,
  schema: { type: "string" },
});
const query = (name: string, description: string, schema: object = { type: "string" }) => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});

/** GET ?id= / GET list / POST / PUT ?id= / DELETE ?id= for one kind of catalog document. */
function catalogPath(schema: string, noun: string) {
  return {
    get: {
      summary: `Read one ${noun} (?id=) or list them all`,
      parameters: [idQuery(false)],
      responses: {
        200: {
          description: `the ${noun}, or an array of them without id`,
          content: json(ref(schema)),
        },
        404: error("unknown id"),
      },
    },
    post: {
      summary: `Create a ${noun}`,
      requestBody: { required: true, content: json(ref(schema)) },
      responses: {
        201: { description: "created, as stored", content: json(ref(schema)) },
        400: error("invalid document; the field is named"),
        409: error("the identifier exists"),
      },
    },
    put: {
      summary: `Replace a ${noun}`,
      parameters: [idQuery(true)],
      requestBody: { required: true, content: json(ref(schema)) },
      responses: {
        200: { description: "replaced", content: json(ref(schema)) },
        400: error("invalid document"),
        404: error("unknown id"),
      },
    },
    delete: {
      summary: `Delete a ${noun}`,
      parameters: [idQuery(true)],
      responses: {
        204: { description: "deleted" },
        404: error("unknown id"),
        409: error("still referenced"),
      },
    },
  };
}

const paging = [
  query("limit", "page size (at most 500)", { type: "integer" }),
  query("offset", "rows to skip", { type: "integer" }),
];

export function openApiDocument(version: string) {
  return {
    openapi: "3.1.0",
    info: {
      title: "Mitigation Manager",
      version,
      description:
        "Turns security alerts into automated, durable responses walking attack flows of MITRE ATT&CK techniques.",
    },
    paths: {
      "/api/version": {
        get: {
          summary: "Service version",
          responses: { 200: { description: "version", content: json(ref("Version")) } },
        },
      },
      "/health": {
        get: {
          summary: "Temporal, PostgreSQL, NATS and Neo4j, each up or down with a reason",
          responses: {
            200: { description: "all dependencies up" },
            503: { description: "a dependency is down" },
          },
        },
      },
      "/api/alert": {
        post: {
          summary: "Submit an alert (Wazuh alert, or the agent alert shape with a top-level host)",
          requestBody: { required: true, content: json({ type: "object" }) },
          responses: {
            202: {
              description: "stored and handed to the host's incident",
              content: json(ref("AlertAccepted")),
            },
            400: error("malformed alert; the field is named"),
          },
        },
      },
      "/api/alerts": {
        get: {
          summary: "Stored alerts, newest first",
          parameters: [
            query("host", "host name"),
            query("technique", "MITRE technique id"),
            query("rule", "rule id"),
            query("since", "ISO 8601, inclusive", { type: "string", format: "date-time" }),
            query("until", "ISO 8601, exclusive", { type: "string", format: "date-time" }),
            ...paging,
          ],
          responses: {
            200: { description: "a page of alerts with the total" },
            400: error("bad filter"),
          },
        },
      },
      "/api/condition": catalogPath("Condition", "condition"),
      "/api/workflow": catalogPath("Mitigation", "mitigation"),
      "/api/attack-flow": catalogPath("AttackFlow", "attack flow"),
      "/api/incidents": {
        get: {
          summary: "Incidents from Temporal visibility",
          parameters: [
            query("host", "host name"),
            query("status", "open or closed"),
            query("limit", "at most 500", { type: "integer" }),
          ],
          responses: { 200: { description: "incidents" }, 400: error("bad filter") },
        },
      },
      "/api/incidents/{host}": {
        get: {
          summary:
            "The state of a host's latest incident (flow instances, mitigations), through the workflow query",
          parameters: [{ name: "host", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            200: { description: "incident state" },
            404: error("no incident for that host"),
          },
        },
      },
      "/api/decisions": {
        get: {
          summary:
            "Every node match, condition verdict, mitigation choice, skip and result with its reason",
          parameters: [
            query("incident", "incident id, e.g. incident/web-1"),
            query("alert", "alert id"),
            ...paging,
          ],
          responses: { 200: { description: "decisions in the order they were taken" } },
        },
      },
    },
    components: {
      schemas: {
        Condition: z.toJSONSchema(catalogSchemas.condition, {
          io: "input",
          unrepresentable: "any",
        }),
        Mitigation: z.toJSONSchema(catalogSchemas.mitigation, {
          io: "input",
          unrepresentable: "any",
        }),
        AttackFlow: z.toJSONSchema(catalogSchemas.attackFlow, {
          io: "input",
          unrepresentable: "any",
        }),
        Version: {
          type: "object",
          properties: {
            version: { type: "string", example: "v0.1.0" },
            major: { type: "integer" },
            minor: { type: "integer" },
          },
          required: ["version", "major", "minor"],
        },
        AlertAccepted: {
          type: "object",
          properties: {
            id: { type: "string" },
            incident: { type: "string" },
            duplicate: { type: "boolean" },
          },
          required: ["id", "incident", "duplicate"],
        },
        Error: {
          type: "object",
          properties: {
            error: { type: "string" },
            errors: {
              type: "array",
              items: {
                type: "object",
                properties: { field: { type: "string" }, message: { type: "string" } },
              },
            },
          },
          required: ["error"],
        },
      },
    },
  };
}

/** A self-contained API page (no CDN: these deployments are often air-gapped) rendered from /openapi.json. */
export function docsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mitigation Manager API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2329}
h2{margin-top:2rem;border-bottom:1px solid #ddd}.op{margin:.6rem 0;padding:.5rem .8rem;border-left:4px solid #4a7}
.m{font-weight:700;text-transform:uppercase;margin-right:.5rem}code{background:#f3f4f6;padding:0 .25rem}
details pre{background:#f6f8fa;padding:.6rem;overflow:auto}
</style></head>
<body><h1>Mitigation Manager API</h1><p>Machine-readable: <a href="/openapi.json"><code>/openapi.json</code></a></p>
<div id="api">Loading…</div>
<script>
fetch("/openapi.json").then(r => r.json()).then(doc => {
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
  let html = "<p>" + esc(doc.info.description) + " Version " + esc(doc.info.version) + ".</p>";
  for (const [path, ops] of Object.entries(doc.paths)) {
    html += "<h2><code>" + esc(path) + "</code></h2>";
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map(p => "<code>" + esc(p.name) + "</code>").join(", ");
      const responses = Object.entries(op.responses).map(([s, r]) => esc(s) + " " + esc(r.description)).join("; ");
      html += '<div class="op"><span class="m">' + esc(method) + "</span>" + esc(op.summary) +
        (params ? "<br>Parameters: " + params : "") + "<br>Responses: " + responses + "</div>";
    }
  }
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    html += "<details><summary>Schema <code>" + esc(name) + "</code></summary><pre>" + esc(JSON.stringify(schema, null, 2)) + "</pre></details>";
  }
  document.getElementById("api").innerHTML = html;
});
</script></body></html>`;
}
