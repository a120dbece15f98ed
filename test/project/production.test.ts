import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratch } from "../support/scratch.ts";
import { eventually } from "../support/wait.ts";

const root = path.resolve(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  version: string;
  dependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8")) as {
  packages: Record<string, LockedPackage>;
};
const run = promisify(execFile);

interface LockedPackage {
  dev?: boolean;
  optionalDependencies?: Record<string, string>;
}

/** Node's lookup: the package's own node_modules, then each enclosing one up to the project's. */
function resolvable(packages: Record<string, LockedPackage>, from: string, name: string): boolean {
  let dir = from;
  for (;;) {
    if (`${dir ? `${dir}/` : ""}node_modules/${name}` in packages) return true;
    if (!dir) return false;
    dir = dir.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, "");
  }
}

describe("package-lock.json", () => {
  // npm 11's `npm ci` refuses a lock without them, and `npm install` rewrites it to add them.
  it("lists every platform's optional packages", () => {
    const { packages } = lock;
    const missing = Object.entries(packages).flatMap(([where, entry]) =>
      Object.keys(entry.optionalDependencies ?? {})
        .filter((name) => !resolvable(packages, where, name))
        .map((name) => `${name} (optional dependency of ${where || "the project"})`),
    );
    expect(Object.keys(packages).length).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });
});

// What the Dockerfile does, without a Docker engine: the build, then a tree holding only bin/,
// dist/ and the production dependencies.
describe("the production image", () => {
  const app = mkdtempSync(path.join(tmpdir(), "mm-image-"));
  const mm = path.join(app, "bin/mm");
  // No loader of the test run (vitest, tsx) may leak into what runs on plain node.
  const { NODE_OPTIONS: _, ...env } = process.env;

  beforeAll(async () => {
    for (const file of ["package.json", "package-lock.json", "bin"])
      cpSync(path.join(root, file), path.join(app, file), { recursive: true });
    await Promise.all([
      run("bash", [path.join(root, "scripts/build.sh"), path.join(app, "dist")], { env }),
      run(
        "npm",
        ["ci", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
        { cwd: app, env },
      ),
    ]);
  }, 600_000);
  afterAll(() => rmSync(app, { recursive: true, force: true }));

  it("holds the production dependencies and none of the development ones", () => {
    for (const name of Object.keys(pkg.dependencies))
      expect(existsSync(path.join(app, "node_modules", name)), name).toBe(true);
    // Some are both (@types/node comes with a production dependency): the lock knows which are dev only.
    const devOnly = Object.entries(lock.packages).filter(([, entry]) => entry.dev);
    expect(devOnly.map(([where]) => where)).toContain("node_modules/tsx");
    for (const [where] of devOnly) expect(existsSync(path.join(app, where)), where).toBe(false);
  });

  it("prints the service's usage with `mm all --help`", async () => {
    const { stdout } = await run(mm, ["all", "--help"], { env });
    expect(stdout).toMatch(/^usage: mm <command>/);
    expect(stdout).toContain("migrate");
  });

  it("prints the agent's usage with `mm agent --help`", async () => {
    const { stdout } = await run(mm, ["agent", "--help"], { env });
    expect(stdout).toMatch(/^usage: mm agent --gateway <url>/);
  });

  it("runs every role, the worker on the bundle built once", async () => {
    const scratch = await createScratch("production");
    const { config } = scratch;
    const service = spawn(mm, ["all"], {
      env: {
        ...env,
        DATABASE_URL: config.databaseUrl,
        MM_TASK_QUEUE: config.temporal.taskQueue,
        MM_ALERT_SUBJECT: config.nats.alertSubject,
        MM_ALERT_STREAM: config.nats.alertStream,
        MM_ALERT_CONSUMER: config.nats.alertConsumer,
        MM_API_PORT: "0",
        MM_GATEWAY_PORT: "0",
        MM_ADMIN_TOKEN: config.adminToken,
        MM_LOG_LEVEL: "info",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => service.on("exit", resolve));
    let log = "";
    service.stderr.on("data", (chunk) => {
      log += chunk;
    });
    try {
      // The service logs JSON lines; the Temporal SDK's own lines are plain text.
      const line = (message: string) =>
        log
          .split("\n")
          .flatMap((l): { message?: string; url?: string }[] => {
            try {
              return [JSON.parse(l)];
            } catch {
              return [];
            }
          })
          .find((entry) => entry.message === message);
      // Without tsx the image cannot bundle src/ at start: a polling worker loaded the build's bundle.
      await eventually("the worker to poll", () => line("worker polling"), 120_000);
      const api = await eventually("the REST API", () => line("REST API listening")?.url, 60_000);
      const res = await fetch(`${api}/api/version`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ version: `v${pkg.version}` });
      // The console built into dist/ is what the image serves (npm run build, no vite at run time).
      const page = await fetch(`${api}/console/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("/console/assets/");
      service.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      service.kill("SIGKILL");
      await scratch.drop();
    }
  }, 180_000);
});
