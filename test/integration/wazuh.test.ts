import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { SHARED, wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { recordingAgents } from "../support/recording-agents.ts";
import { webhookReceiver } from "../support/webhook-receiver.ts";

// The packaged Wazuh integration (integrations/custom-mitigation-manager) run as integratord runs
// it, against the running service and against a hook that fails, with the recorded Wazuh alerts.
const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const WRAPPER = path.join(ROOT, "integrations/custom-mitigation-manager");
const tmp = mkdtempSync(path.join(tmpdir(), "mm-wazuh-"));
const FIXTURES = readdirSync(path.join(SHARED, "fixtures/wazuh"))
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.replace(/\.json$/, "") as Parameters<typeof wazuhAlert>[0]);

let ctx: TestContext;
let service: Service;
let ingestToken: string;
const rest = restClient(() => service.apiUrl);

beforeAll(async () => {
  ctx = await createTestContext("wazuh");
  // Delivery is what is tested here: no catalog, so no mitigation runs for these alerts.
  service = await ctx.start({ agents: recordingAgents().gateway, config: { loadDefaults: false } });
  const res = await rest.post("/api/tokens", { name: "wazuh-manager", role: "ingest" });
  expect(res.status).toBe(201);
  ingestToken = res.body.token;
});
afterAll(async () => {
  await ctx?.cleanup();
});

/** Runs the integration as integratord does; it must always exit 0. */
async function integration(alert: unknown, token: string, hookUrl: string, options?: object) {
  const file = path.join(tmp, `${Math.random().toString(36).slice(2)}.alert`);
  writeFileSync(file, JSON.stringify(alert));
  const args = [file, token, hookUrl];
  if (options) {
    const optionsFile = `${file}.options`;
    writeFileSync(optionsFile, JSON.stringify(options));
    args.push(optionsFile);
  }
  const started = performance.now();
  // execFile rejects on a non-zero exit: the assertion is that it does not.
  const { stderr } = await run(WRAPPER, args, {
    timeout: 60_000,
    env: { ...process.env, MM_INTEGRATION_LOG: path.join(tmp, "integrations.log") },
  });
  return { stderr, seconds: (performance.now() - started) / 1_000 };
}

describe("the Wazuh integratord script", () => {
  it("delivers every recorded Wazuh alert to POST /api/alert, where it is stored", async () => {
    expect(FIXTURES.length).toBeGreaterThanOrEqual(4);
    const host = ctx.host("wazuh");
    for (const name of FIXTURES) {
      const { stderr } = await integration(
        wazuhAlert(name, host),
        ingestToken,
        `${service.apiUrl}/api/alert`,
      );
      expect(stderr).toContain('"alert delivered"');
    }
    const stored = (await rest.get(`/api/alerts?host=${host}&limit=50`)).body;
    expect(stored.items.map((a: { id: string }) => a.id).sort()).toEqual(
      FIXTURES.map((name) => wazuhAlert(name, host).id).sort(),
    );
    expect(stored.items.every((a: { source: string; host: string }) => a.source === "rest")).toBe(
      true,
    );
  });

  it("gives up at once on a refused token, exiting 0 with the reason logged", async () => {
    const host = ctx.host("refused");
    const { stderr } = await integration(
      wazuhAlert("100002-ncat-connection", host),
      "not-a-token",
      `${service.apiUrl}/api/alert`,
    );
    expect(stderr).toContain('"alert refused; not retried"');
    expect(stderr).toContain('"status": 401');
    expect((await rest.get(`/api/alerts?host=${host}`)).body.items).toEqual([]);
  });

  it("retries 503 and 429 with backoff until the hook takes the alert", async () => {
    const hook = await webhookReceiver((_, attempt) =>
      attempt === 1 ? 503 : attempt === 2 ? 429 : 202,
    );
    try {
      const alert = wazuhAlert("100003-exec-permission-added", "retry-host");
      const { stderr } = await integration(alert, "token", hook.url("/api/alert"));
      expect(hook.received.map((r) => r.body)).toEqual([alert, alert, alert]);
      expect(stderr.match(/retrying/g)).toHaveLength(2);
      expect(stderr).toContain('"attempt": 3');
    } finally {
      await hook.close();
    }
  });

  it("gives up within its time budget when the service stays down, exiting 0", async () => {
    const hook = await webhookReceiver(() => 503);
    try {
      const { stderr, seconds } = await integration(
        wazuhAlert("100004-executable-file-added", "down-host"),
        "token",
        hook.url("/api/alert"),
        { timeout_seconds: 2 },
      );
      expect(stderr).toContain('"alert not delivered; giving up"');
      expect(hook.received.length).toBeGreaterThanOrEqual(2);
      expect(seconds).toBeLessThan(5);
    } finally {
      await hook.close();
    }
  });

  it("gives up on a connection refused, and on an unreadable alert file, exiting 0", async () => {
    // A port nothing listens on: the hook server was closed.
    const hook = await webhookReceiver();
    const url = hook.url("/api/alert");
    await hook.close();
    const refused = await integration({ id: "1" }, "token", url, { timeout_seconds: 1 });
    expect(refused.stderr).toContain('"alert not delivered; giving up"');

    const file = path.join(tmp, "broken.alert");
    writeFileSync(file, "{not json");
    const { stderr } = await run(WRAPPER, [file, "token", url], {
      env: { ...process.env, MM_INTEGRATION_LOG: path.join(tmp, "integrations.log") },
    });
    expect(stderr).toContain('"alert file unreadable; nothing sent"');
  });
});
