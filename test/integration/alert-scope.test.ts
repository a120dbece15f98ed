import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normaliseAlert } from "../../src/domain/alert.ts";
import type { Service } from "../../src/service.ts";
import { storeAlert } from "../../src/store/alerts.ts";
import { createDb, type Db } from "../../src/store/db.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { eventually } from "../support/wait.ts";

// Attack 8, alert shadowing: alert ids are chosen by whoever sends the alert, so an id submitted
// first for one host (or by one source) must not make another host's real alert a duplicate.
let ctx: TestContext;
let service: Service;
let db: Db;
const agents = recordingAgents();

beforeAll(async () => {
  ctx = await createTestContext("alert_scope");
  service = await ctx.start({ agents: agents.gateway });
  db = createDb(ctx.config.databaseUrl, 2);
});
afterAll(async () => {
  await db?.destroy();
  await ctx?.cleanup();
});

const rest = restClient(() => service.apiUrl);
const commandsFor = (host: string) => agents.commands.filter((c) => c.agentId === `agent-${host}`);

describe("alert ids scoped to their source and host", () => {
  it("stores and mitigates a host's alert whose id another host used first; its redelivery stays a duplicate", async () => {
    const victim = ctx.host("victim");
    const shadow = ctx.host("shadow");
    const id = `shadowed-${ctx.suffix}`;

    const first = await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", shadow, id));
    expect(first.body).toMatchObject({ id, duplicate: false });
    const real = await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", victim, id));
    expect(real.status).toBe(202);
    expect(real.body).toEqual({ id, incident: `incident/${victim}`, duplicate: false });

    await eventually("the victim's close_conn", () => commandsFor(victim).length === 2);
    expect(commandsFor(victim).map((c) => c.command)).toEqual(["kill-process", "block-ip"]);
    const stored = await db
      .selectFrom("alerts")
      .select(["key", "host", "handed_off_at"])
      .where("id", "=", id)
      .orderBy("host")
      .execute();
    expect(stored.map((a) => a.host)).toEqual([shadow, victim].sort());
    expect(stored.every((a) => a.handed_off_at !== null)).toBe(true);
    expect(new Set(stored.map((a) => a.key)).size).toBe(2);
    const victimKey = stored.find((a) => a.host === victim)?.key;
    expect(commandsFor(victim)[0]?.commandId).toContain(`mitigation/${victim}/${victimKey}/`);

    const again = await rest.post("/api/alert", wazuhAlert("100002-ncat-connection", victim, id));
    expect(again.body).toEqual({ id, incident: `incident/${victim}`, duplicate: true });
    expect(await db.selectFrom("alerts").select("key").where("id", "=", id).execute()).toHaveLength(
      2,
    );
  });

  it("keeps the same id from another source apart; a redelivery finds its own source's alert again", async () => {
    const host = ctx.host("sources");
    const normalised = normaliseAlert(wazuhAlert("100002-ncat-connection", host));
    if (!normalised.ok) throw new Error(JSON.stringify(normalised.errors));
    const viaRest = await storeAlert(db, normalised.alert, "rest");
    const viaNats = await storeAlert(db, normalised.alert, "nats");
    expect(viaRest.handOff).toBe(true);
    expect(viaNats.handOff).toBe(true);
    expect(viaNats.key).not.toBe(viaRest.key);
    expect(await storeAlert(db, normalised.alert, "nats")).toEqual(viaNats);
  });
});
