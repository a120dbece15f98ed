// Rule rollouts end to end: the whole Fibratus catalogue as a rule set, rolled out by the rollout
// workflow through the real gateway to simulated agents in two groups (200 by default, to spare
// the shared test machine; MM_TEST_ROLLOUT_AGENTS=1000 measures the fleet), with per-agent
// status, a failing canary that stops a rollout, a rollback that restores the previous checksums,
// and reconciliation of an offline agent.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { BASE_RULE, corpusFile, postCatalogue } from "../support/fibratus-rules.ts";
import type { Json } from "../support/http.ts";
import { eventually } from "../support/wait.ts";
import { type GatewayTestContext, gatewayTestContext } from "./support/gateway-context.ts";
import { type FleetAgent, fleet } from "./support/rules-fleet.ts";

const AGENTS = Number(process.env.MM_TEST_ROLLOUT_AGENTS ?? 200);
let g: GatewayTestContext;
let groupA: FleetAgent[];
let groupB: FleetAgent[];
const yaml = { "content-type": "application/yaml" };
const ruleIds: string[] = [];
const baseId = parse(corpusFile(BASE_RULE)).id as string;

const rollout = async (name: string, version: number, extra: Record<string, unknown> = {}) => {
  const started = await g.rest.post("/api/rule-set/rollout", {
    name,
    version,
    agent_timeout_seconds: 20,
    ...extra,
  });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  const state = await eventually(
    `rollout ${name}/${version} finishes`,
    async () => {
      const state = (await g.rest.get(`/api/rule-set/rollout?name=${name}&version=${version}`))
        .body;
      return ["completed", "failed", "cancelled"].includes(state.status)
        ? (state as Json)
        : undefined;
    },
    // A thousand agents on a shared test machine take minutes; the test's own timeout is 10.
    Math.max(120_000, AGENTS * 400),
  );
  // The state says "completed" as the workflow returns; its execution closes a moment later, and
  // only then may the same version (a rollback) be rolled out again.
  await g.temporal.workflow.getHandle(started.body.workflow_id).result();
  return state;
};

beforeAll(async () => {
  g = await gatewayTestContext("rollout");
  const posted = await postCatalogue(g.rest);
  for (const r of posted.rules) ruleIds.push(r.id);
  const base = corpusFile(BASE_RULE);
  const bumped = base
    .replace("version: 1.0.5", "version: 1.0.6")
    .replace("severity: high", "severity: critical");
  expect((await g.rest.call("POST", "/api/rule", bumped, yaml)).status).toBe(201);
  const tokenA = await g.enrollmentToken({ group: "windows-a", max_uses: AGENTS });
  const tokenB = await g.enrollmentToken({ group: "windows-b", max_uses: AGENTS });
  const half = Math.floor(AGENTS / 2);
  groupA = await fleet(g.gatewayUrl, tokenA, `a-${g.ctx.suffix}`, half);
  groupB = await fleet(g.gatewayUrl, tokenB, `b-${g.ctx.suffix}`, AGENTS - half);
}, 600_000);

afterAll(async () => {
  for (const a of [...(groupA ?? []), ...(groupB ?? [])]) await a.close();
  await g?.cleanup();
});

describe("rolling out the catalogue", () => {
  let v1Checksums: Map<string, string>;

  it(`reaches ${AGENTS} agents in two groups, a canary first, with per-agent status`, async () => {
    // Version 2 of the set: every rule's newest version (the bumped rule at 1.0.6); version 1:
    // the catalogue as posted (the bumped rule at its first version).
    const rules = (await g.rest.get("/api/rule?limit=500")).body.items.map((r: Json) => ({
      id: r.id,
      version: r.version,
    }));
    const first = rules.map((r: { id: string; version: string }) =>
      r.id === baseId ? { ...r, version: "1.0.5" } : r,
    );
    const created = await g.rest.post("/api/rule-set", {
      name: "catalogue",
      rules: first,
      macros_version: 1,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(
      (await g.rest.post("/api/rule-set", { name: "catalogue", rules, macros_version: 1 })).status,
    ).toBe(201);
    for (const group of ["windows-a", "windows-b"])
      expect(
        (await g.rest.put("/api/rule-set/assignment", { group, name: "catalogue", version: 1 }))
          .status,
      ).toBe(200);

    const started = performance.now();
    const state = await rollout("catalogue", 1);
    const seconds = (performance.now() - started) / 1000;
    console.log(`rollout of ${first.length} rules to ${AGENTS} agents: ${seconds.toFixed(1)} s`);
    expect(state.status, state.error).toBe("completed");
    expect(state.groups.sort()).toEqual(["windows-a", "windows-b"]);
    expect(state.counts).toEqual({ pending: 0, applied: AGENTS, rejected: 0, offline: 0 });
    expect(Object.keys(state.agents)).toHaveLength(AGENTS);
    for (const a of [...groupA, ...groupB]) expect(a.rules.size).toBe(first.length);
    v1Checksums = new Map(
      groupA[0]?.rules && [...groupA[0].rules].map(([n, r]) => [n, r.checksum]),
    );
    const drift = (await g.rest.get("/api/rule-drift")).body;
    expect(drift).toHaveLength(AGENTS);
    expect(drift.every((d: Json) => d.in_sync)).toBe(true);
  }, 600_000);

  it("rolls version 2 out, and a rollback restores the previous checksums", async () => {
    const v2 = await rollout("catalogue", 2);
    expect(v2.counts.applied).toBe(AGENTS);
    const changed = [...(groupB[0]?.rules ?? [])].filter(
      ([n, r]) => v1Checksums.get(n) !== r.checksum,
    );
    expect(changed).toHaveLength(1);
    const back = await rollout("catalogue", 1);
    expect(back.status).toBe("completed");
    expect(back.counts.applied).toBe(AGENTS);
    // Exactly version 1's rules, each with its version 1 checksum.
    for (const a of [...groupA, ...groupB]) {
      expect(a.rules.size).toBe(v1Checksums.size);
      for (const [name, r] of a.rules) expect(r.checksum).toBe(v1Checksums.get(name));
    }
    expect((await g.rest.get("/api/rule-set/assignment")).body.map((a: Json) => a.version)).toEqual(
      [1, 1],
    );
  }, 600_000);
});

describe("a failing canary", () => {
  it("stops the rollout before the other waves are sent", async () => {
    const token = await g.enrollmentToken({ group: "broken", max_uses: 10 });
    const broken = await fleet(g.gatewayUrl, token, `broken-${g.ctx.suffix}`, 10);
    try {
      for (const a of broken) a.failWith = "simulated: rule engine refused the rules";
      const rules = [{ id: ruleIds[0], version: "1.0.0" }];
      const set = await g.rest.get(`/api/rule?id=${ruleIds[0]}`);
      rules[0] = { id: ruleIds[0] as string, version: set.body.version };
      expect((await g.rest.post("/api/rule-set", { name: "small", rules })).status).toBe(201);
      const state = await rollout("small", 1, {
        groups: ["broken"],
        canary_share: 0.2,
        wave_size: 4,
      });
      expect(state.status).toBe("failed");
      expect(state.error).toMatch(/canary wave failed: 2 of 2 agents rejected/);
      expect(state.counts).toEqual({ pending: 8, applied: 0, rejected: 2, offline: 0 });
      const rejected = Object.values(state.agents).filter(
        (a: Json) => a.status === "rejected",
      ) as Json[];
      expect(rejected[0].error).toMatch(/simulated: rule engine refused/);
      expect(broken.reduce((n, a) => n + a.updates, 0)).toBe(2);
    } finally {
      for (const a of broken) await a.close();
    }
  }, 120_000);
});

describe("an offline agent", () => {
  it("is reported offline, and gets what it lacks when it reconnects", async () => {
    const token = await g.enrollmentToken({ group: "laptops", max_uses: 2 });
    const [present, away] = (await fleet(g.gatewayUrl, token, `laptop-${g.ctx.suffix}`, 2)) as [
      FleetAgent,
      FleetAgent,
    ];
    await away.close();
    const rules = [
      {
        id: ruleIds[1] as string,
        version: (await g.rest.get(`/api/rule?id=${ruleIds[1]}`)).body.version,
      },
    ];
    expect((await g.rest.post("/api/rule-set", { name: "laptop-set", rules })).status).toBe(201);
    const state = await rollout("laptop-set", 1, { groups: ["laptops"], canary_share: 0.5 });
    expect(state.status).toBe("completed");
    expect(state.agents[away.agentId].status).toBe("offline");
    expect(state.agents[present.agentId].status).toBe("applied");
    await away.connect();
    await eventually("the reconnected agent runs the set", () =>
      away.rules.has(ruleIds[1] as string),
    );
    const drift = await eventually("drift shows it in sync", async () => {
      const rows = (await g.rest.get("/api/rule-drift")).body.filter(
        (d: Json) => d.group === "laptops",
      );
      return rows.every((d: Json) => d.in_sync) ? rows : undefined;
    });
    expect(drift).toHaveLength(2);

    // Version 2 of the set drops that rule for another while the agent is away again: on its
    // return it is sent the whole set, and the dropped rule is gone from what it runs.
    await away.close();
    const other = ruleIds[4] as string;
    const v2 = [{ id: other, version: (await g.rest.get(`/api/rule?id=${other}`)).body.version }];
    expect((await g.rest.post("/api/rule-set", { name: "laptop-set", rules: v2 })).status).toBe(
      201,
    );
    const second = await rollout("laptop-set", 2, { groups: ["laptops"], canary_share: 0.5 });
    expect(second.agents[away.agentId].status).toBe("offline");
    expect([...present.rules.keys()]).toEqual([other]);
    await away.connect();
    await eventually("the returning agent runs exactly version 2", () =>
      away.rules.size === 1 && away.rules.has(other) ? true : undefined,
    );
    expect(away.refused).toEqual([]);
    const synced = await eventually("drift shows it in sync with version 2", async () => {
      const rows = (await g.rest.get("/api/rule-drift")).body.filter(
        (d: Json) => d.group === "laptops" && d.agent_id === away.agentId,
      );
      return rows.length === 1 && rows[0].in_sync ? rows : undefined;
    });
    expect(synced[0].version).toBe(2);
    await present.close();
    await away.close();
  }, 120_000);
});

describe("operators", () => {
  it("pause a rollout between waves, resume it, and cancel another", async () => {
    const token = await g.enrollmentToken({ group: "paused", max_uses: 3 });
    const agents = await fleet(g.gatewayUrl, token, `paused-${g.ctx.suffix}`, 3);
    try {
      const sorted = [...agents].sort((a, b) => (a.agentId < b.agentId ? -1 : 1));
      const canary = sorted[0] as FleetAgent;
      let release = () => {};
      canary.hold = new Promise((r) => {
        release = r;
      });
      const id = ruleIds[2] as string;
      const rules = [{ id, version: (await g.rest.get(`/api/rule?id=${id}`)).body.version }];
      expect((await g.rest.post("/api/rule-set", { name: "paused-set", rules })).status).toBe(201);
      const body = {
        name: "paused-set",
        version: 1,
        groups: ["paused"],
        canary_share: 0.1,
        wave_size: 1,
      };
      expect((await g.rest.post("/api/rule-set/rollout", body)).status).toBe(202);
      await eventually("the canary is sent the rules", () => canary.updates === 1);
      const q = "name=paused-set&version=1";
      expect((await g.rest.post(`/api/rule-set/rollout/pause?${q}`, {})).status).toBe(202);
      release();
      const paused = await eventually("the rollout pauses after the canary", async () => {
        const state = (await g.rest.get(`/api/rule-set/rollout?${q}`)).body;
        return state.status === "paused" && state.wavesDone === 1 ? state : undefined;
      });
      expect(paused.counts).toMatchObject({ applied: 1, pending: 2 });
      expect(sorted.slice(1).map((a) => a.updates)).toEqual([0, 0]);
      expect((await g.rest.post(`/api/rule-set/rollout/resume?${q}`, {})).status).toBe(202);
      const done = await eventually("the rollout completes", async () => {
        const state = (await g.rest.get(`/api/rule-set/rollout?${q}`)).body;
        return state.status === "completed" ? state : undefined;
      });
      expect(done.counts.applied).toBe(3);

      // Version 2 of the set, cancelled while its canary is held: no other agent is sent it.
      const other = ruleIds[3] as string;
      const more = [
        ...rules,
        { id: other, version: (await g.rest.get(`/api/rule?id=${other}`)).body.version },
      ];
      expect((await g.rest.post("/api/rule-set", { name: "paused-set", rules: more })).status).toBe(
        201,
      );
      canary.hold = new Promise((r) => {
        release = r;
      });
      expect((await g.rest.post("/api/rule-set/rollout", { ...body, version: 2 })).status).toBe(
        202,
      );
      await eventually("the canary is sent version 2", () => canary.updates === 2);
      const q2 = "name=paused-set&version=2";
      expect((await g.rest.post(`/api/rule-set/rollout/cancel?${q2}`, {})).status).toBe(202);
      release();
      const cancelled = await eventually("the rollout is cancelled", async () => {
        const state = (await g.rest.get(`/api/rule-set/rollout?${q2}`)).body;
        return state.status === "cancelled" ? state : undefined;
      });
      expect(cancelled.wavesDone).toBe(1);
      expect(sorted.slice(1).map((a) => a.updates)).toEqual([1, 1]);
    } finally {
      for (const a of agents) await a.close();
    }
  }, 120_000);
});
