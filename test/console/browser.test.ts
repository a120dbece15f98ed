// The console in a real browser (Debian's chromium driven by playwright-core; no browser is
// downloaded) against the whole service and the reference agent in simulation mode: viewers and
// responders sign in, follow an alert to its incident, timeline and decisions, a responder isolates
// a host and watches the command complete, an admin meets the API's validation at the field, and
// alert text carrying markup stays text. Screenshots go to $MM_DATA_DIR/artifacts/console.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningAgent, startAgent } from "../../src/agent/index.ts";
import { createLogger } from "../../src/log.ts";
import type { Service } from "../../src/service.ts";
import { enrolled, succeed, TestAgent } from "../gateway/support/agent.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { wazuhAlert } from "../support/fixtures.ts";
import { restClient } from "../support/http.ts";
import { eventually } from "../support/wait.ts";

const CHROMIUM = process.env.MM_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = path.resolve(process.env.MM_DATA_DIR ?? ".data", "artifacts/console");
/** What the page may take to show what the API already has (lists poll every 2 s). */
const SEEN = 30_000;

let ctx: TestContext;
let service: Service;
let agent: RunningAgent;
/** The simulated agents of the alerts' hosts (simulatedAgent). */
const hostAgents: TestAgent[] = [];
let browser: Browser;
let work: string;
const admin = restClient(() => service.apiUrl);
const tokens: Record<"viewer" | "responder", string> = { viewer: "", responder: "" };
const pages: Page[] = [];
/** Script errors of every page: a console that throws is a failing console. */
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  work = mkdtempSync(path.join(tmpdir(), "mm-console-"));
  ctx = await createTestContext("console_browser");
  service = await ctx.start({});
  for (const role of ["viewer", "responder"] as const) {
    const res = await admin.post("/api/tokens", { name: `console-${role}`, role });
    expect(res.status).toBe(201);
    tokens[role] = res.body.token;
  }
  const enrollment = await admin.post("/api/enrollment-tokens", {});
  expect(enrollment.status).toBe(201);
  agent = await startAgent({
    gateway: service.gatewayUrl,
    enrollToken: enrollment.body.token,
    stateDir: path.join(work, "agent"),
    rulesDir: path.join(work, "agent/rules"),
    simulate: true,
    insecure: true,
    backoff: { initialMs: 50, maxMs: 500 },
    log: createLogger("warn", "agent"),
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright-core gives every launch a fresh --user-data-dir of its own.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  for (const a of hostAgents) await a.close();
  await ctx?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A browser of its own (cookies and all) signed in with `token` through the sign-in page. */
async function signedIn(token: string, role: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  pages.push(page);
  await page.goto(`${service.apiUrl}/console/`);
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await expect
    .poll(() => page.getByTestId("who").textContent(), { timeout: SEEN })
    .toContain(`(${role})`);
  return page;
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

/** The test ids of action buttons: none of them may be shown to a viewer. */
const ACTIONS = [
  "isolate",
  "release",
  "issue",
  "command-form",
  "catalog-new",
  "catalog-edit",
  "rehearse",
  "approve",
  "deny",
  "decision-form",
  "group-mode-form",
  "group-mode-remove",
];

/** A page of the console through the header's navigation (pages link to each other too). */
const openTab = (page: Page, name: string) =>
  page.locator("header nav").getByRole("link", { name }).click();

/** A simulated agent, connected and answering every command with success, for `host`. */
async function simulatedAgent(host: string): Promise<string> {
  const token = (await admin.post("/api/enrollment-tokens", {})).body.token;
  const enrollment = await enrolled(service.gatewayUrl as string, token, host);
  hostAgents.push(
    await TestAgent.connect(service.gatewayUrl as string, enrollment.apiKey, host, {
      autoAnswer: succeed,
    }),
  );
  return enrollment.agentId;
}

describe("the console in a browser", () => {
  it("a viewer sees an alert's incident appear, its timeline and a decision's reason, and no action buttons", async () => {
    const page = await signedIn(tokens.viewer, "viewer");
    const host = ctx.host("console");
    // The alert's host runs a simulated agent that answers every command at once, as the seed's does.
    await simulatedAgent(host);
    expect(
      (await admin.post("/api/alert", wazuhAlert("100002-ncat-connection", host))).status,
    ).toBe(202);

    const link = page.getByTestId("incidents").getByRole("link", { name: host });
    await link.waitFor({ timeout: SEEN });
    await link.click();
    await expect.poll(() => page.url()).toContain(`/console/incidents/${host}`);

    const alert = page.getByTestId("timeline-alert").first();
    await alert.waitFor({ timeout: SEEN });
    expect(await alert.textContent()).toContain("rule 100002");
    expect(await alert.textContent()).toContain("Connection via ncat");

    // The engine's decisions, each with its reason one click away.
    const decisions = await eventually("decisions", async () => {
      const res = await admin.get(
        `/api/decisions?incident=${encodeURIComponent(`incident/${host}`)}`,
      );
      return res.body.items.length > 0 ? res.body.items : undefined;
    });
    const toggle = page.getByTestId("decision-reason-toggle").first();
    await toggle.waitFor({ timeout: SEEN });
    await toggle.click();
    const reason = page.getByTestId("decision-reason");
    await reason.waitFor();
    const shown = await reason.textContent();
    expect(decisions.map((d: { reason: string }) => d.reason)).toContain(
      decisions.find((d: { reason: string }) => shown?.includes(d.reason))?.reason,
    );
    // The attack flow the alert reached, drawn with the node marked.
    await page
      .locator("[data-testid=flow-graph] [data-reached=true]")
      .first()
      .waitFor({ timeout: SEEN });
    expect(await page.getByTestId("temporal-link").getAttribute("href")).toContain(
      `/workflows/${encodeURIComponent(`incident/${host}`)}`,
    );
    // The engine's command on the host, through to the agent's result.
    const life = page.getByTestId("command-life").first();
    await expect.poll(() => life.getAttribute("data-status"), { timeout: SEEN }).toBe("completed");
    await shot(page, "incident");

    // No action anywhere: the fleet (with an agent open) and the catalog.
    await page.getByRole("link", { name: "Fleet" }).click();
    await page.getByTestId("agent-open").first().click();
    await page.getByTestId("agent-panel").waitFor();
    await page.getByRole("link", { name: "Catalog" }).click();
    await page.getByTestId("catalog").waitFor({ timeout: SEEN });
    for (const id of ACTIONS) expect(await page.getByTestId(id).count(), id).toBe(0);
    await page.getByRole("link", { name: "Fleet" }).click();
    await page.getByTestId("agent-open").first().click();
    await page.getByTestId("agent-panel").waitFor();
    for (const id of ACTIONS) expect(await page.getByTestId(id).count(), id).toBe(0);
    await shot(page, "fleet-viewer");
  });

  it("a responder isolates the simulated agent's host and watches the command complete", async () => {
    const page = await signedIn(tokens.responder, "responder");
    await page.getByRole("link", { name: "Fleet" }).click();
    // The reference agent names its host as the machine does.
    const row = page
      .getByTestId("agents")
      .getByRole("row")
      .filter({ has: page.getByRole("button", { name: hostname(), exact: true }) });
    await row.getByTestId("agent-open").click();
    const panel = page.getByTestId("agent-panel");
    await panel.waitFor();
    // A command needs a reason: the form says so at the field, and nothing is sent.
    await panel.getByTestId("isolate").click();
    await expect.poll(() => panel.getByTestId("field-errors").textContent()).toContain("reason");
    await panel.locator("input[name=reason]").fill("console test: suspicious ncat");
    await panel.getByTestId("isolate").click();
    const life = panel.getByTestId("command-life").first();
    await expect.poll(() => life.getAttribute("data-status"), { timeout: SEEN }).toBe("completed");
    expect(await panel.getByTestId("commands").textContent()).toContain(
      "console test: suspicious ncat",
    );
    await expect
      .poll(() => row.getByTestId("isolation").textContent(), { timeout: SEEN })
      .toMatch(/^isolated/);
    await expect
      .poll(() => panel.getByTestId("isolation-state").textContent(), { timeout: SEEN })
      .toBe(
        "isolation isolated, requested by operator:console-responder: console test: suspicious ncat",
      );
    await shot(page, "fleet-responder-isolated");

    const commands = await admin.get(`/api/commands?agent=${agent.agentId}`);
    expect(commands.body.items[0]).toMatchObject({
      command: "isolate-host",
      status: "completed",
      requested_by: "operator:console-responder",
      details: { reason: "console test: suspicious ncat" },
      result: { success: true, details: { simulated: true } },
    });
  });

  it("an admin edits an attack flow, drawn as typed, and sees the API's validation at the field", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    pages.push(page);
    page.on("pageerror", (err) => pageErrors.push(err.message));
    await page.goto(`${service.apiUrl}/console/catalog`);
    await page.fill("input[name=token]", ctx.config.adminToken as string);
    await page.click("button[type=submit]");
    await page.getByTestId("catalog-new").click();
    const editor = page.getByTestId("catalog-editor");
    const doc = {
      identifier: "console-flow",
      name: "Console flow",
      start: ["a"],
      nodes: [
        { id: "a", techniques: ["T1059"], next: ["b", "c"] },
        { id: "b", techniques: ["T1041"] },
        // A cycle back to the start: drawn all the same (the layout sets the closing edge aside).
        { id: "c", techniques: ["not-a-technique"], next: ["a"] },
      ],
    };
    await editor.locator("textarea").fill(JSON.stringify(doc, null, 2));
    await expect.poll(() => editor.locator("[data-node]").count()).toBe(3);
    expect(await editor.locator("path.edge").count()).toBe(3);
    expect(await editor.locator("path.edge.back").count()).toBe(1);
    await editor.getByTestId("catalog-save").click();
    const errors = editor.getByTestId("field-errors");
    await errors.waitFor({ timeout: SEEN });
    expect(await errors.textContent()).toContain("nodes[2].techniques[0]");
    await shot(page, "catalog-validation");
    // Fixed, it is saved and listed.
    doc.nodes[2] = { id: "c", techniques: ["T1486"] };
    await editor.locator("textarea").fill(JSON.stringify(doc));
    await editor.getByTestId("catalog-save").click();
    await page
      .getByTestId("catalog")
      .getByRole("cell", { name: "Console flow", exact: true })
      .waitFor({ timeout: SEEN });
    expect((await admin.get("/api/attack-flow?id=console-flow")).status).toBe(200);
  });

  it("renders an alert's markup as text and runs none of it", async () => {
    const page = await signedIn(tokens.viewer, "viewer");
    const host = ctx.host("xss");
    const payload = `<img src=x onerror="document.title='pwned';window.__pwned=1">`;
    const alert = wazuhAlert("100002-ncat-connection", host);
    alert.rule = { ...(alert.rule as object), description: payload };
    alert.full_log = `<script>window.__pwned=2</script>${payload}`;
    expect((await admin.post("/api/alert", alert)).status).toBe(202);
    await page.goto(`${service.apiUrl}/console/incidents/${host}`);
    const shown = page.getByTestId("timeline-alert").first();
    await shown.waitFor({ timeout: SEEN });
    expect(await shown.textContent()).toContain(payload);
    expect(await shown.textContent()).toContain("<script>window.__pwned=2</script>");
    expect(
      await page.locator("[data-testid=timeline] img, [data-testid=timeline] script").count(),
    ).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.title()).toBe("Mitigation Manager console");
    await shot(page, "incident-hostile-alert");

    // The audit log, filtered to sign-ins, names this viewer's; the rules view loads empty.
    await page.getByRole("link", { name: "Audit" }).click();
    await page.fill("input[name=action]", "operator_session.");
    const column = (n: number) =>
      page.getByTestId("audit").locator(`tbody td:nth-child(${n})`).allTextContents();
    await expect
      .poll(async () => [...new Set(await column(3))], { timeout: SEEN })
      .toEqual(["operator_session.opened"]);
    expect(await column(2)).toContain("operator:console-viewer");
    await page.getByRole("link", { name: "Rules" }).click();
    await page.getByText("no rule sets").waitFor({ timeout: SEEN });
    expect(pageErrors).toEqual([]);
  });

  it("a responder rehearses an alert: the chosen mitigation, a skipped one's reason, nothing stored", async () => {
    const host = ctx.host("dryrun");
    const agentId = await simulatedAgent(host);
    // A cheaper candidate than the seed's close_conn that cannot apply: its argument is not in the alert.
    const probe = {
      identifier: "console_probe",
      name: "console_probe",
      effective_attacks: ["T1041"],
      cost: 1,
      params: {},
      args: { probe: "alert.data.no_such_field" },
      steps: [{ agent: "kill-process" }],
    };
    expect((await admin.post("/api/workflow", probe)).status).toBe(201);
    try {
      const page = await signedIn(tokens.responder, "responder");
      await openTab(page, "Dry-run");
      const editor = page.locator("textarea[name=alert]");
      // Not JSON, then not an alert: each said at the editor, and nothing is drawn.
      await editor.fill("{ not json");
      await page.getByTestId("rehearse").click();
      await expect
        .poll(() => page.getByTestId("field-errors").textContent())
        .toContain("not valid JSON");
      await editor.fill(JSON.stringify({ rule: { id: 7 }, agent: "nobody" }));
      await page.getByTestId("rehearse").click();
      await expect
        .poll(() => page.getByTestId("field-errors").textContent(), { timeout: SEEN })
        .toMatch(/rule|agent/);
      expect(await page.getByTestId("rehearsal").count()).toBe(0);

      await editor.fill(JSON.stringify(wazuhAlert("100002-ncat-connection", host), null, 2));
      await page.getByTestId("rehearse").click();
      const chosen = page.locator("[data-testid=candidate][data-chosen=true]");
      await chosen.waitFor({ timeout: SEEN });
      expect(await chosen.getAttribute("data-key")).toBe("close_conn");
      expect(await chosen.getByTestId("step").allTextContents()).toEqual([
        expect.stringContaining("kill-process"),
        expect.stringContaining("block-ip"),
      ]);
      const skipped = page.locator("[data-testid=candidate][data-key=console_probe]");
      expect(await skipped.getByTestId("candidate-reason").textContent()).toBe(
        "missing args probe",
      );
      // Cost order: the skipped cheaper one first.
      expect(
        await page.getByTestId("candidate").evaluateAll((els) => els.map((e) => e.dataset.key)),
      ).toEqual(["console_probe", "close_conn"]);
      expect(await page.getByTestId("nodes-tried").textContent()).toContain("ncat_connection");
      // In act mode, with nothing asking for a person, the chosen one would run at once.
      expect(await page.getByTestId("gate").getAttribute("data-gate")).toBe("act");
      await page
        .locator("[data-testid=rehearsal] [data-testid=flow-graph] [data-reached=true]")
        .first()
        .waitFor({ timeout: SEEN });
      expect(await page.getByTestId("nothing-executed").textContent()).toContain(
        "nothing was executed or stored",
      );
      await shot(page, "dry-run");

      // Nothing came of it: no alert, incident or command for the host.
      expect((await admin.get(`/api/alerts?host=${host}`)).body.items).toEqual([]);
      expect((await admin.get(`/api/incidents?host=${host}`)).body.items).toEqual([]);
      expect((await admin.get(`/api/commands?agent=${agentId}`)).body.items).toEqual([]);
    } finally {
      await admin.delete("/api/workflow?id=console_probe");
    }
  });

  it("a rehearsal shows each condition's verdict: holds, false, or an error with its reason", async () => {
    const condition = (identifier: string, check: string) => ({
      identifier,
      name: identifier,
      params: {},
      args: { pid: "alert.data.pid" },
      check,
    });
    const conditions = [
      condition("console_holds", 'args.pid == "3613"'),
      condition("console_false", 'args.pid == "1"'),
      // Valid CEL that fails on this alert: a pid with a letter is no integer.
      condition("console_error", 'int(args.pid + "x") > 0'),
    ];
    for (const c of conditions) expect((await admin.post("/api/condition", c)).status).toBe(201);
    // A technique of its own (T1490), so no other test's alert meets these conditions.
    const flow = {
      identifier: "console_verdicts",
      name: "Console verdicts",
      start: ["gate"],
      nodes: [
        { id: "gate", techniques: ["T1490"], conditions: conditions.map((c) => c.identifier) },
      ],
    };
    expect((await admin.post("/api/attack-flow", flow)).status).toBe(201);
    try {
      const page = await signedIn(tokens.responder, "responder");
      await openTab(page, "Dry-run");
      const alert = wazuhAlert("100002-ncat-connection", ctx.host("verdicts"));
      alert.rule = { ...(alert.rule as object), mitre: { id: ["T1490"] } };
      await page.locator("textarea[name=alert]").fill(JSON.stringify(alert));
      await page.getByTestId("rehearse").click();
      const node = page.locator("[data-testid=nodes-tried] > li[data-node=gate]");
      await node.waitFor({ timeout: SEEN });
      expect(await node.textContent()).toContain("not reached");
      const verdicts = await node.getByTestId("verdict").allTextContents();
      expect(verdicts).toHaveLength(3);
      expect(verdicts[0]).toBe("console_holds holds");
      expect(verdicts[1]).toBe("console_false false condition console_false is false");
      expect(verdicts[2]).toMatch(/^console_error error condition console_error: check failed: /);
      expect(await page.getByTestId("reached").count()).toBe(0);
      await shot(page, "dry-run-verdicts");
    } finally {
      await admin.delete("/api/attack-flow?id=console_verdicts");
      for (const c of conditions) await admin.delete(`/api/condition?id=${c.identifier}`);
    }
  });

  it("a viewer sees the dry-run page and the approvals and modes without any button", async () => {
    const page = await signedIn(tokens.viewer, "viewer");
    await openTab(page, "Dry-run");
    expect(await page.getByTestId("rehearse-denied").textContent()).toContain("responder");
    await openTab(page, "Approvals");
    await page.getByTestId("global-mode").waitFor({ timeout: SEEN });
    expect(await page.locator("select").count()).toBe(0);
    for (const id of ACTIONS) expect(await page.getByTestId(id).count(), id).toBe(0);
  });

  it("a responder approves a held isolation and watches it complete on the simulated agent", async () => {
    const host = ctx.host("approval");
    const agentId = await simulatedAgent(host);
    // A flow and an isolating mitigation of their own (technique T1486), held by its catalog field.
    const flow = {
      identifier: "console_approval",
      name: "Console approval",
      start: ["encrypt"],
      nodes: [{ id: "encrypt", techniques: ["T1486"] }],
    };
    const isolate = {
      identifier: "console_isolate",
      name: "console_isolate",
      effective_attacks: ["T1486"],
      cost: 1,
      params: {},
      args: {},
      steps: [{ agent: "isolate-host", details: { reason: "console approval test" } }],
      requires_approval: true,
    };
    expect((await admin.post("/api/attack-flow", flow)).status).toBe(201);
    expect((await admin.post("/api/workflow", isolate)).status).toBe(201);
    try {
      const responder = await signedIn(tokens.responder, "responder");
      const viewer = await signedIn(tokens.viewer, "viewer");
      const encryption = (on: string) => {
        const alert = wazuhAlert("100002-ncat-connection", on);
        alert.rule = { ...(alert.rule as object), mitre: { id: ["T1486"] } };
        return alert;
      };
      /** The host's row among the recently decided. */
      const decidedRow = (on: string) =>
        responder
          .getByTestId("decided")
          .getByRole("row")
          .filter({ has: responder.getByRole("link", { name: on, exact: true }) });
      expect((await admin.post("/api/alert", encryption(host))).status).toBe(202);

      await openTab(responder, "Approvals");
      const held = responder.getByTestId("approval").filter({ hasText: host });
      await held.waitFor({ timeout: SEEN });
      await expect
        .poll(() => responder.getByTestId("pending-badge").textContent(), { timeout: SEEN })
        .toBe("1");
      expect(await held.getByTestId("step").allTextContents()).toEqual([
        expect.stringContaining("isolate-host"),
      ]);
      expect(await held.getByTestId("approval-reasons").textContent()).not.toBe("");
      expect(await held.getByTestId("countdown").textContent()).toMatch(/left$|due now/);
      await shot(responder, "approvals");

      // The viewer sees the same queue and nothing to press.
      await openTab(viewer, "Approvals");
      await viewer.getByTestId("approval").filter({ hasText: host }).waitFor({ timeout: SEEN });
      for (const id of ACTIONS) expect(await viewer.getByTestId(id).count(), id).toBe(0);

      // A decision needs a comment: said at the field, nothing sent.
      await held.getByTestId("approve").click();
      await expect.poll(() => held.getByTestId("field-errors").textContent()).toContain("comment");
      expect((await admin.get("/api/approvals?status=pending")).body.items).toHaveLength(1);
      await held.locator("textarea[name=comment]").fill("console test: isolate it");
      await held.getByTestId("approve").click();

      const decided = decidedRow(host);
      await expect
        .poll(() => decided.getByTestId("decided-status").textContent(), { timeout: SEEN })
        .toBe("approved");
      expect(await decided.textContent()).toContain("operator:console-responder");
      expect(await decided.textContent()).toContain("console test: isolate it");
      expect(await responder.getByTestId("approval").filter({ hasText: host }).count()).toBe(0);

      // On the incident page: the approval among the decisions, and the isolation completed.
      await decided.getByRole("link", { name: host }).click();
      const life = responder.getByTestId("command-life").first();
      await expect
        .poll(() => life.getAttribute("data-status"), { timeout: SEEN })
        .toBe("completed");
      await expect
        .poll(() => responder.getByTestId("decision-kind").allTextContents(), { timeout: SEEN })
        .toEqual(expect.arrayContaining(["approval_requested", "approval_granted"]));
      await shot(responder, "incident-approved");
      const commands = await admin.get(`/api/commands?agent=${agentId}`);
      expect(commands.body.items).toEqual([
        expect.objectContaining({ command: "isolate-host", status: "completed" }),
      ]);

      // Denied: listed with its comment, recorded as the incident's decision, and nothing reaches
      // the host's agent.
      const other = ctx.host("denied");
      const otherAgent = await simulatedAgent(other);
      expect((await admin.post("/api/alert", encryption(other))).status).toBe(202);
      await openTab(responder, "Approvals");
      const second = responder.getByTestId("approval").filter({ hasText: other });
      await second.waitFor({ timeout: SEEN });
      await second.locator("textarea[name=comment]").fill("console test: a false positive");
      await second.getByTestId("deny").click();
      await expect
        .poll(() => decidedRow(other).getByTestId("decided-status").textContent(), {
          timeout: SEEN,
        })
        .toBe("denied");
      expect(await decidedRow(other).textContent()).toContain("console test: a false positive");
      const denial = await eventually("the denial's decision", async () => {
        const res = await admin.get(
          `/api/decisions?incident=${encodeURIComponent(`incident/${other}`)}`,
        );
        return res.body.items.find((d: { kind: string }) => d.kind === "approval_denied");
      });
      expect(denial.details).toMatchObject({
        by: "operator:console-responder",
        comment: "console test: a false positive",
      });
      expect((await admin.get(`/api/commands?agent=${otherAgent}`)).body.items).toEqual([]);
    } finally {
      await admin.delete("/api/workflow?id=console_isolate");
      await admin.delete("/api/attack-flow?id=console_approval");
    }
  });

  it("an admin sets, changes and removes an agent group's operating mode", async () => {
    const page = await signedIn(ctx.config.adminToken as string, "admin");
    await openTab(page, "Approvals");
    const modes = page.getByTestId("modes");
    await modes.getByTestId("global-mode").waitFor({ timeout: SEEN });
    const group = "console-group";
    const groupMode = async () =>
      (await admin.get("/api/modes")).body.groups.find((g: { group: string }) => g.group === group)
        ?.mode;
    await modes.locator("input[name=group]").fill(group);
    await modes.locator("select[name=new-group-mode]").selectOption("observe");
    await modes.getByTestId("group-mode-set").click();
    await expect.poll(groupMode, { timeout: SEEN }).toBe("observe");
    const row = modes.getByTestId("group-modes").getByRole("row").filter({ hasText: group });
    await row.locator("select").selectOption("approve");
    await expect.poll(groupMode, { timeout: SEEN }).toBe("approve");
    await shot(page, "modes");
    await row.getByTestId("group-mode-remove").click();
    await expect.poll(groupMode, { timeout: SEEN }).toBeUndefined();
    expect(pageErrors).toEqual([]);
  });
});
