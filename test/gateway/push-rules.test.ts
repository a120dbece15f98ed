// The push-rules mitigation step end to end: an alert reaches an attack-flow node whose cheapest
// mitigation pushes detection rules; the reference agent (real, writing its rules folder) applies
// them and the step succeeds; a rule set its agent rejects fails the step and the engine falls
// back to the next candidate (here the same set rolled out to the host's group, rejected too).
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type RunningAgent, startAgent } from "../../src/agent/index.ts";
import { corpusRules, postCatalogue } from "../support/fibratus-rules.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import type { Json } from "../support/http.ts";
import { eventually } from "../support/wait.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";
import { type FleetAgent, fleet } from "./support/rules-fleet.ts";

let g: GatewayTestContext;
let dir: string;
let agent: RunningAgent;
const yaml = { "content-type": "application/yaml" };
/** Corpus rules by id, with their ATT&CK technique labels. */
const corpus = corpusRules().map(([, text]) => {
  const doc = parse(text);
  const techniques = (doc.labels?.["technique.id"] ?? "") as string;
  return { id: doc.id as string, version: doc.version as string, technique: techniques };
});
const execution = corpus.filter((r) => r.technique.startsWith("T1204")).slice(0, 2);
const credentialStores = corpus.filter((r) => r.technique.startsWith("T1555"));

const decisions = async (host: string) =>
  (await g.rest.get(`/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}&limit=500`))
    .body.items as Json[];

const alertFor = (host: string, technique: string, id: string) => {
  const alert = wazuhAlert("100002-ncat-connection", host, id);
  alert.agent.id = "999"; // no agent carries this Wazuh id: the host is found by its name
  (alert.rule as { mitre: { id: string[] } }).mitre.id = [technique];
  return alert;
};

beforeAll(async () => {
  g = await gatewayTestContext("push_rules");
  dir = await mkdtemp(join(tmpdir(), "mm-push-rules-"));
  await postCatalogue(g.rest);
  const set = await g.rest.post("/api/rule-set", {
    name: "execution",
    rules: execution.map(({ id, version }) => ({ id, version })),
    macros_version: 1,
  });
  expect(set.status, JSON.stringify(set.body)).toBe(201);
  const flow = (id: string, technique: string) => ({
    identifier: id,
    name: id,
    nodes: [{ id: "seen", techniques: [technique] }],
    start: ["seen"],
  });
  const mitigation = (id: string, technique: string, cost: number, details: Json) => ({
    identifier: id,
    name: id,
    effective_attacks: [technique],
    cost,
    params: {},
    args: {},
    steps: [{ agent: "push-rules", details }],
  });
  for (const [path, body] of [
    ["/api/attack-flow", flow("user-execution", "T1204")],
    ["/api/attack-flow", flow("credential-stores", "T1555")],
    ["/api/workflow", mitigation("push_execution", "T1204", 1, { rule_set: "execution" })],
    [
      "/api/workflow",
      mitigation("roll_execution", "T1204", 2, { rule_set: "execution", target: "group" }),
    ],
    ["/api/workflow", mitigation("push_by_technique", "T1555", 1, { techniques: "alert" })],
  ] as const) {
    const res = await g.rest.post(path, body);
    expect(res.status, `${path} ${JSON.stringify(res.body)}`).toBe(201);
  }
  // The reference agent itself, on this machine (so the alert names this machine's host name).
  agent = await startAgent({
    gateway: g.gatewayUrl,
    enrollToken: await g.enrollmentToken({ group: "workstations" }),
    stateDir: join(dir, "state"),
    rulesDir: join(dir, "rules"),
    insecure: true, // plain http in the test; rule frames are still verified with the service's key
    backoff: { initialMs: 50, maxMs: 500 },
    log: { debug() {}, info() {}, warn() {}, error() {} },
  });
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await g?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a push-rules mitigation", () => {
  it("pushes the rule set to the alert's host, whose agent applies it, and records the step", async () => {
    const host = hostname();
    expect((await g.rest.post("/api/alert", alertFor(host, "T1204.002", "push-1"))).status).toBe(
      202,
    );
    const done = await eventually("the push succeeded", async () =>
      (await decisions(host)).find((d) => d.kind === "mitigation_succeeded"),
    );
    expect(done.mitigation).toBe("push_execution");
    const chosen = (await decisions(host)).find((d) => d.kind === "mitigation_chosen");
    expect(chosen?.details.steps).toEqual([
      {
        push_rules: {
          agent: agent.agentId,
          target: "host",
          rule_set: "execution",
          version: 1,
        },
      },
    ]);
    // The agent wrote exactly the set's files, and reported them applied.
    expect((await readdir(join(dir, "rules"))).sort()).toEqual(
      execution.map((r) => `${r.id}.yml`).sort(),
    );
    const row = await g.db
      .selectFrom("agents")
      .select(["rules", "rules_status"])
      .where("id", "=", agent.agentId)
      .executeTakeFirstOrThrow();
    expect((row.rules as Json[]).map((r) => r.name).sort()).toEqual(
      execution.map((r) => r.id).sort(),
    );
    expect(row.rules_status).toMatchObject({ rule_set: { name: "execution", version: 1 } });
  }, 120_000);

  it("pushes the rules naming the alert's technique (a sub-technique counting for its parent)", async () => {
    const host = hostname();
    expect(credentialStores.length).toBeGreaterThan(1);
    expect((await g.rest.post("/api/alert", alertFor(host, "T1555.004", "push-2"))).status).toBe(
      202,
    );
    await eventually("the push by technique succeeded", async () =>
      (await decisions(host)).some(
        (d) => d.kind === "mitigation_succeeded" && d.mitigation === "push_by_technique",
      ),
    );
    const chosen = (await decisions(host)).find(
      (d) => d.kind === "mitigation_chosen" && d.mitigation === "push_by_technique",
    );
    const pushed = chosen?.details.steps[0].push_rules;
    expect(pushed).toMatchObject({ target: "host", rule_set: "techniques:T1555.004" });
    // Every rule labelled T1555 or T1555.x: T1555.004's rules and the parent's.
    expect([...pushed.rules].sort()).toEqual(
      credentialStores.map((r) => `${r.id}@${r.version}`).sort(),
    );
    // Added to what the host runs: the execution set is still there.
    expect((await readdir(join(dir, "rules"))).sort()).toEqual(
      [...execution, ...credentialStores].map((r) => `${r.id}.yml`).sort(),
    );
  }, 120_000);

  it("fails when the agent rejects the rules, and falls back to the next candidate", async () => {
    const token = await g.enrollmentToken({ group: "kiosks" });
    const [kiosk] = (await fleet(g.gatewayUrl, token, `kiosk-${g.ctx.suffix}`, 1)) as [FleetAgent];
    try {
      kiosk.failWith = "simulated: the rule engine refused the set";
      const host = kiosk.hostname;
      await g.rest.post("/api/alert", alertFor(host, "T1204.002", "push-3"));
      await eventually("both candidates failed", async () =>
        (await decisions(host)).some((d) => d.kind === "no_mitigation"),
      );
      const failed = (await decisions(host)).filter((d) => d.kind === "mitigation_failed");
      expect(failed.map((d) => d.mitigation)).toEqual(["push_execution", "roll_execution"]);
      for (const d of failed)
        expect(d.reason).toMatch(/rejected rule set execution version 1: .*refused the set/);
      // The fallback rolled the set out to the kiosk's group (the rollout workflow did).
      // The rollout settles its wave on its own schedule: wait for it, do not race it.
      const rollout = await eventually("the rollout to record the rejection", async () => {
        const r = (await g.rest.get("/api/rule-set/rollout?name=execution&version=1")).body;
        return r.agents?.[kiosk.agentId]?.status === "rejected" && r;
      });
      expect(rollout.groups).toEqual(["kiosks"]);
      expect(kiosk.refused).toEqual([]); // refused by its rule engine, not for the signature
    } finally {
      await kiosk.close();
    }
  }, 120_000);
});
