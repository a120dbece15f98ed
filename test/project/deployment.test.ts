import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { migrations } from "../../migrations/index.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";

// No Docker engine runs here: docker-compose.yaml is checked for structure, and the configuration
// it references against .env.example.
const root = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(root, file), "utf8");
const documented = new Set([...read(".env.example").matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]));

interface ComposeService {
  image?: string;
  build?: unknown;
  ports?: string[];
  networks?: string[];
  profiles?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
}

describe("docker-compose.yaml", () => {
  const compose = parse(read("docker-compose.yaml"), { merge: true }) as {
    services: Record<string, ComposeService>;
    networks: Record<string, { external?: boolean }>;
  };

  it("gives every service an image or a build", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.image ?? service.build, name).toBeDefined();
    }
  });

  it("runs the service's roles from one image beside PostgreSQL, NATS, Neo4j and Temporal", () => {
    expect(Object.keys(compose.services)).toEqual(
      expect.arrayContaining([
        "postgres",
        "nats",
        "neo4j",
        "temporal",
        "temporal-ui",
        "api",
        "worker",
        "ingest",
      ]),
    );
    for (const role of ["api", "worker", "ingest"])
      expect(compose.services[role]?.image).toBe("mitigation-manager:latest");
  });

  it("joins the external resilmesh_network", () => {
    expect(compose.networks.resilmesh_network?.external).toBe(true);
    for (const [name, service] of Object.entries(compose.services))
      expect(service.networks, name).toContain("resilmesh_network");
  });

  it("documents every variable it references in .env.example", () => {
    const referenced = [...read("docker-compose.yaml").matchAll(/(?<!\$)\$\{([A-Z0-9_]+)/g)].map(
      (m) => m[1],
    );
    expect(referenced.length).toBeGreaterThan(0);
    for (const name of referenced)
      expect(documented, `${name} is not in .env.example`).toContain(name);
  });

  it("has no default password: compose stops unless .env holds every secret", () => {
    const text = read("docker-compose.yaml");
    const secrets = [...text.matchAll(/\$\{([A-Z0-9_]*(?:PASSWORD|TOKEN)[A-Z0-9_]*)([^}]*)\}/g)];
    expect(secrets.length).toBeGreaterThan(5);
    for (const [, name, rest] of secrets) expect(rest, name).toBe(`:?set ${name} in .env`);
    expect(text).not.toMatch(/mitigation-manager@|:mm@|NEO4J_AUTH: none/);
  });

  it("runs Prometheus and Grafana only in the monitoring profile, from files of the repository", () => {
    for (const name of ["prometheus", "grafana"]) {
      const service = compose.services[name];
      expect(service?.profiles, name).toEqual(["monitoring"]);
      for (const volume of service?.volumes ?? []) {
        const source = volume.split(":")[0] as string;
        if (source.startsWith("./") && source !== "./certs")
          expect(existsSync(path.join(root, source)), `${name}: ${source}`).toBe(true);
      }
    }
    // Without the profile nothing changes: every other service runs as before.
    const profiled = Object.entries(compose.services).filter(([, s]) => s.profiles);
    expect(profiled.map(([n]) => n).sort()).toEqual(["grafana", "prometheus"]);
  });

  it("has Prometheus scrape every role's /metrics with the viewer token file", () => {
    const prometheus = parse(read("monitoring/prometheus.yml")) as {
      scrape_configs: {
        job_name: string;
        authorization?: { type: string; credentials_file: string };
        static_configs: { targets: string[] }[];
      }[];
    };
    const jobs = prometheus.scrape_configs.filter((j) =>
      j.job_name.startsWith("mitigation-manager"),
    );
    const targets = jobs.flatMap((j) => j.static_configs.flatMap((s) => s.targets));
    const apiPort = 8333;
    const gatewayPort = 8334;
    const metricsPort = (role: string) => compose.services[role]?.environment?.MM_METRICS_PORT;
    expect(targets.sort()).toEqual(
      [
        `api:${apiPort}`,
        `gateway:${gatewayPort}`,
        `ingest:${metricsPort("ingest")}`,
        `worker:${metricsPort("worker")}`,
      ].sort(),
    );
    for (const job of jobs) {
      expect(job.authorization?.type, job.job_name).toBe("Bearer");
      // The token file is in the folder compose mounts at /etc/prometheus/secrets.
      expect(job.authorization?.credentials_file, job.job_name).toMatch(
        /^\/etc\/prometheus\/secrets\//,
      );
    }
    expect(compose.services.prometheus?.volumes).toContain(
      "./monitoring/secrets:/etc/prometheus/secrets:ro",
    );
  });

  it("ships a Grafana dashboard and alert rules over metrics the service defines", () => {
    const defined = new Set(
      [...read("src/metrics.ts").matchAll(/name: "(mm_[a-z_]+)"/g)].map((m) => m[1]),
    );
    const dashboard = JSON.parse(read("docs/grafana/mitigation-manager.json")) as {
      panels: { targets: { expr: string }[] }[];
    };
    const rules = parse(read("monitoring/alerts.yml")) as {
      groups: { rules: { expr: string }[] }[];
    };
    const shown = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const exprs = [...shown, ...rules.groups.flatMap((g) => g.rules.map((r) => String(r.expr)))];
    const names = (texts: string[]) =>
      texts.flatMap((e) =>
        // Histograms' series carry _bucket/_count/_sum.
        [...e.matchAll(/\b(mm_[a-z_]+)/g)].map((m) =>
          (m[1] as string).replace(/_(bucket|count|sum)$/, ""),
        ),
      );
    // The process's own series (mm_process_…, mm_nodejs_…) are prom-client's defaults.
    for (const name of names(exprs).filter((n) => !/^mm_(process|nodejs)_/.test(n)))
      expect(defined, `${name} is not defined in src/metrics.ts`).toContain(name);
    // And the dashboard shows every metric the service defines.
    for (const name of defined) expect(names(shown), `${name} is on no panel`).toContain(name);
  });

  it("publishes no host port twice", () => {
    const hostPorts = Object.values(compose.services)
      .flatMap((s) => s.ports ?? [])
      .map((p) => p.replace(/\$\{[A-Z0-9_]+:-(\d+)\}/g, "$1").split(":")[0]);
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });
});

describe("configuration", () => {
  it("documents every variable the service reads in .env.example", () => {
    const source = readdirSync(path.join(root, "src"), { recursive: true })
      .filter((f) => String(f).endsWith(".ts"))
      .map((f) => read(path.join("src", String(f))))
      .join("\n");
    const used = [
      ...source.matchAll(
        /\b(MM_[A-Z0-9_]+|DATABASE_URL|NATS_URL|TEMPORAL_[A-Z_]+|NEO4J_[A-Z_]+)\s*:/g,
      ),
    ].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(10);
    for (const name of used) expect(documented, `${name} is not in .env.example`).toContain(name);
  });

  it("runs with no variable set, on the local stack's defaults", () => {
    const config = loadConfig({});
    expect(config.apiPort).toBe(8333);
    expect(config.host).toBe("127.0.0.1");
    expect(config.databaseUrl).toBe("postgres://mm@127.0.0.1:5433/mm");
  });

  it("reaches the local cluster with the password of .env when DATABASE_URL is unset", () => {
    const config = loadConfig({ MM_PG_PASSWORD: "s3cret/pw@x", MM_PG_PORT: "15433" });
    expect(config.databaseUrl).toBe("postgres://mm:s3cret%2Fpw%40x@127.0.0.1:15433/mm");
    expect(loadConfig({ DATABASE_URL: "postgres://a:b@db:5432/c" }).databaseUrl).toBe(
      "postgres://a:b@db:5432/c",
    );
  });

  it("ships no secret in .env.example: each is generated per installation", () => {
    const secrets = [...read(".env.example").matchAll(/^([A-Z0-9_]*(?:PASSWORD|TOKEN))=(.*)$/gm)];
    expect(secrets.length).toBeGreaterThan(5);
    for (const [, name, value] of secrets) expect(value, name).toBe("");
  });

  it("names every invalid variable in one error", () => {
    const attempt = () =>
      loadConfig({ MM_API_PORT: "99999", NATS_URL: "http://x", MM_LOAD_DEFAULTS: "maybe" });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/MM_API_PORT[\s\S]*NATS_URL[\s\S]*MM_LOAD_DEFAULTS/);
  });

  it("treats empty variables as unset, as .env files write them", () => {
    expect(loadConfig({ DATABASE_URL: "", MM_API_PORT: "" }).apiPort).toBe(8333);
  });
});

describe("migrations", () => {
  it("lists every file of migrations/ in order", () => {
    const files = readdirSync(path.join(root, "migrations"))
      .filter((f) => /^\d{4}_.+\.ts$/.test(f))
      .map((f) => f.replace(/\.ts$/, ""))
      .sort();
    expect(Object.keys(migrations)).toEqual(files);
  });
});
