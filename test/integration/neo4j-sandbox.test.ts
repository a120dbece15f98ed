import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import neo4j, { type Driver } from "neo4j-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { openNeo4j } from "../../src/connections.ts";

// Condition queries pass a static check, but the Neo4j server itself must not fetch URLs or files
// for a query that got past it (stack/neo4j configures this).
const { neo4j: settings } = loadConfig();
let driver: Driver;
const requests: string[] = [];
const server = createServer((req, res) => {
  requests.push(req.url ?? "/");
  res.end("a,b\n1,2\n");
});

beforeAll(async () => {
  driver = openNeo4j(settings);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
afterAll(async () => {
  await driver.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Runs `query` as the engine runs a condition's query: in a READ session. */
async function read(query: string, params: Record<string, unknown> = {}) {
  const session = driver.session({ defaultAccessMode: neo4j.session.READ });
  try {
    return await session.executeRead((tx) => tx.run(query, params));
  } finally {
    await session.close();
  }
}

describe("Neo4j for condition queries", () => {
  it("runs an ordinary read", async () => {
    const result = await read("RETURN 1 AS one");
    expect(result.records[0]?.get("one").toNumber()).toBe(1);
  });

  it("refuses LOAD CSV from a loopback HTTP server, which sees no request", async () => {
    const { port } = server.address() as AddressInfo;
    for (const url of [`http://127.0.0.1:${port}/x.csv`, `http://localhost:${port}/x.csv`]) {
      await expect(read("LOAD CSV FROM $url AS row RETURN row", { url }), url).rejects.toThrow();
    }
    expect(requests).toEqual([]);
  });

  it("refuses LOAD CSV from a file URL", async () => {
    await expect(read("LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row")).rejects.toThrow(
      /file/i,
    );
  });
});
