// API fuzzing from the service's own /openapi.json with schemathesis (PyPI): requests generated from
// every documented operation, valid and invalid, against a service on a scratch database, failing
// on any response >= 500 (bad input must be a 400 naming the field, never a 500).
//
// The fuzzer can only hurt the scratch service: it holds the scratch context's admin token (never
// the stack's); the service runs the api and worker roles on the scratch database and task queue
// (the worker answers incident queries; the context's cleanup terminates its workflows); commands
// to agents that never enrolled are refused; webhook egress allows no address at all.
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Service } from "../../src/service.ts";
import { createTestContext, type TestContext } from "../support/context.ts";
import { TEST_ADMIN_TOKEN } from "../support/http.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
/** Per operation; the document has dozens of operations, so one run is well over 1,000 requests. */
const EXAMPLES_PER_OPERATION = Number(process.env.MM_FUZZ_EXAMPLES ?? 40);
const MIN_CASES = 1000;
/** The whole run's budget (2 shared cores); schemathesis stops generating when it is spent. */
const MAX_SECONDS = 75;

let ctx: TestContext;
let service: Service;
let schemathesis: string;
let reports: string;

beforeAll(async () => {
  // The first run on a machine installs schemathesis into the per-user cache (progress on stderr).
  const setup = await promisify(execFile)("bash", [join(ROOT, "scripts/fuzz-setup.sh")], {
    timeout: 300_000,
  });
  process.stderr.write(setup.stderr);
  schemathesis = setup.stdout.trim().split("\n").at(-1) as string;
  ctx = await createTestContext("fuzz", {
    webhookAllow: [],
    // The default catalog posts to the firewall; .invalid never resolves (RFC 6761).
    firewallWebhookUrl: "http://firewall.invalid/drop",
    // The fuzzer is one client sending as fast as it can: the limiter would answer most with 429.
    api: { ...(await baseApi()), rateLimit: { perSecond: 10_000, burst: 10_000 } },
  });
  service = await ctx.start({ roles: ["api", "worker"] });
  reports = await mkdtemp(join(tmpdir(), "mm-fuzz-"));
}, 360_000);

afterAll(async () => {
  await ctx?.cleanup();
  if (reports) await rm(reports, { recursive: true, force: true });
});

async function baseApi() {
  const { loadConfig } = await import("../../src/config.ts");
  return loadConfig().api;
}

/** Runs schemathesis, streaming its output; resolves with its exit code and output. */
function fuzz(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(schemathesis, args, {
      env: { ...process.env, NO_COLOR: "1", SCHEMATHESIS_TELEMETRY: "false", COLUMNS: "120" },
      // Its crash database (.schemathesis/) goes to the run's scratch folder, not the work tree.
      cwd: reports,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk;
      process.stdout.write(chunk);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
  });
}

describe("the REST API under schemathesis", () => {
  it(`answers ${MIN_CASES}+ generated requests without a single 5xx`, async () => {
    const started = Date.now();
    const run = await fuzz([
      "run",
      `${service.apiUrl}/openapi.json`,
      "--checks",
      "not_a_server_error",
      "--header",
      `Authorization: Bearer ${TEST_ADMIN_TOKEN}`,
      "--max-examples",
      String(EXAMPLES_PER_OPERATION),
      "--phases",
      "examples,coverage,fuzzing",
      "--workers",
      "2",
      "--max-time",
      String(MAX_SECONDS),
      "--request-timeout",
      "10",
      "--seed",
      process.env.MM_FUZZ_SEED ?? String(Date.now() % 1_000_000),
      "--no-shrink",
      "--continue-on-failure",
      ...(process.env.MM_FUZZ_ONLY ? ["--include-path-regex", process.env.MM_FUZZ_ONLY] : []),
    ]);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const cases = Number(/(\d+) generated/.exec(run.output)?.[1] ?? 0);
    // Each failing case is printed with its status line; the summary counts them ("Server error: n").
    const serverErrors = Math.max(
      (run.output.match(/^\[5\d\d\] /gm) ?? []).length,
      Number(/Server error: (\d+)/.exec(run.output)?.[1] ?? 0),
    );
    // A request that timed out stalled the service: as much a failure as a 5xx.
    const stalls = Number(/Network Error: (\d+)/.exec(run.output)?.[1] ?? 0);
    console.log(
      `▸ fuzz: ${cases} cases, ${serverErrors} responses >= 500, ${stalls} timed out, ${seconds}s`,
    );
    expect(cases, "generated cases").toBeGreaterThanOrEqual(MIN_CASES);
    expect(serverErrors, "responses >= 500 (see schemathesis' output above)").toBe(0);
    expect(stalls, "requests that timed out").toBe(0);
    // Not its exit status: that also counts internal errors of the generator (a Hypothesis bug was
    // seen once), which say nothing about the service.
  }, 300_000);
});
