// What an anonymous or flooding client can get from the REST API: a liveness answer without detail,
// 413 for oversized bodies, 429 past its rate, 408 for headers that never end, and never the process.
import { readFileSync } from "node:fs";
import { get as httpsGet } from "node:https";
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { type ApiDeps, createApi } from "../../src/api/app.ts";
import type { HealthReport } from "../../src/api/health.ts";
import { loadConfig } from "../../src/config.ts";
import { KeyedRateLimiter } from "../../src/domain/rate-limit.ts";
import { type Listening, listen } from "../../src/listen.ts";
import { createLogger } from "../../src/log.ts";
import { selfSignedCertificate } from "../support/tls.ts";

const ADMIN = "limits-test-admin-token";
let probes = 0;
const report: HealthReport = {
  status: "down",
  dependencies: {
    temporal: { status: "up" },
    postgres: { status: "down", reason: "connect ECONNREFUSED 10.1.2.3:5432" },
    nats: { status: "up" },
    neo4j: { status: "up" },
  },
};

// A database in which no operator token exists: every query chain ends in no row.
const noRows: unknown = new Proxy(() => noRows, {
  get: (_, prop) =>
    prop === "then" ? undefined : prop === "executeTakeFirst" ? async () => undefined : noRows,
  apply: () => noRows,
});

function app(overrides: Record<string, string> = {}) {
  const config = loadConfig({ MM_ADMIN_TOKEN: ADMIN, ...overrides });
  // The admin token is checked without the database; any other token finds no row.
  return createApi({
    config,
    db: noRows,
    health: async () => {
      probes++;
      return report;
    },
  } as unknown as ApiDeps);
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("GET /health", () => {
  const api = app();

  it("tells an anonymous client only that the service answers, and probes nothing", async () => {
    const before = probes;
    const res = await api.request("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "up" });
    // A wrong token is anonymous too: no detail, no 401 that would confirm a guess.
    const guessed = await api.request("/health", { headers: bearer("not-a-token") });
    expect(await guessed.json()).toEqual({ status: "up" });
    expect(probes).toBe(before);
  });

  it("gives an operator every dependency with its reason", async () => {
    const res = await api.request("/health", { headers: bearer(ADMIN) });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual(report);
  });
});

describe("request bodies", () => {
  it("refuses a body over MM_API_MAX_BODY_BYTES with 413 before reading it", async () => {
    const api = app({ MM_API_MAX_BODY_BYTES: "2048" });
    const res = await api.request("/api/alert", {
      method: "POST",
      headers: { ...bearer(ADMIN), "content-type": "application/json" },
      body: JSON.stringify({ pad: "x".repeat(10_000) }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /over 2048 bytes \(MM_API_MAX_BODY_BYTES\)/,
    );
  });
});

describe("rate limits", () => {
  it("answers 429 with Retry-After past a token's burst", async () => {
    const api = app({ MM_API_REQUESTS_PER_SECOND: "0.5", MM_API_REQUEST_BURST: "3" });
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await api.request("/api/version", { headers: bearer(ADMIN) })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await api.request("/api/version", { headers: bearer(ADMIN) });
    expect(limited.headers.get("retry-after")).toBe("2");
    expect(((await limited.json()) as { error: string }).error).toMatch(/too many requests/);
  });

  it("limits guessed tokens by the client's address, whatever token each guess carries", async () => {
    const api = app({ MM_API_REQUESTS_PER_SECOND: "0.5", MM_API_REQUEST_BURST: "3" });
    const statuses = [];
    for (let i = 0; i < 5; i++)
      statuses.push((await api.request("/api/agents", { headers: bearer(`guess-${i}`) })).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });

  it("keeps at most maxKeys buckets, forgetting the least recently used", () => {
    const limiter = new KeyedRateLimiter({ perSecond: 1, burst: 1 }, 3);
    for (const key of ["a", "b", "c", "d"]) expect(limiter.take(key, 0)).toBeNull();
    expect(limiter.size).toBe(3);
    expect(limiter.take("d", 0)).toBe(1_000);
    // "a" was forgotten: it starts again with a full bucket.
    expect(limiter.take("a", 0)).toBeNull();
  });
});

describe("the listening socket", () => {
  const log = createLogger("error");
  const servers: Listening[] = [];
  afterAll(async () => {
    for (const { server } of servers) server.close();
  });

  it("cuts headers that never end with 408 and outlives resets mid-request", async () => {
    const listening = await listen({
      fetch: () => new Response("ok"),
      host: "127.0.0.1",
      port: 0,
      headersTimeoutMs: 300,
      log,
      name: "test",
    });
    servers.push(listening);
    const { port } = new URL(listening.url);
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), "127.0.0.1", () =>
        socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "),
      );
      let data = "";
      socket.on("data", (chunk) => {
        data += chunk;
      });
      socket.on("close", () => resolve(data));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    for (let i = 0; i < 50; i++) {
      const socket = net.connect(Number(port), "127.0.0.1", () => {
        socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
        socket.resetAndDestroy();
      });
      socket.on("error", () => {});
    }
    expect(await (await fetch(listening.url)).text()).toBe("ok");
  });

  it("serves https with the configured certificate", async () => {
    const { certFile, keyFile } = await selfSignedCertificate("mm-api");
    const listening = await listen({
      fetch: () => new Response("secure"),
      host: "127.0.0.1",
      port: 0,
      tls: { certFile, keyFile },
      headersTimeoutMs: 1_000,
      log,
      name: "test",
    });
    servers.push(listening);
    expect(listening.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      httpsGet(listening.url, { ca: readFileSync(certFile) }, (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () => resolve(text));
      }).on("error", reject);
    });
    expect(body).toBe("secure");
  });
});
