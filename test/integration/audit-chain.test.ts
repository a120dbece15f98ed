import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { Migrator, sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { migrations } from "../../migrations/index.ts";
import { appendAudit, verifyAuditChain } from "../../src/store/audit.ts";
import { catalogStore, loadDefaultCatalog } from "../../src/store/catalog.ts";
import { createDb, type Db, migrate } from "../../src/store/db.ts";
import { createScratch, type Scratch } from "../support/scratch.ts";

// The audit log's hash chain (migrations/0004_audit_chain.ts) on a database of each test's own:
// the service's role owns the table, so it can switch off the append-only triggers and rewrite
// history. It cannot do so unseen.
let scratch: Scratch;
let db: Db;
const pools: Db[] = [];
beforeEach(async () => {
  scratch = await createScratch("audit_chain");
  db = createDb(scratch.config.databaseUrl, 4);
  pools.push(db);
});
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.destroy();
  await scratch.drop();
});

const append = (target: Db, n: number, actor = "operator:alice") =>
  appendAudit(target, { actor, action: "agent.updated", agentId: "agt_1", details: { n } });

/** What the attack does as the table's owner: the append-only trigger off, a row changed, back on. */
async function tamper(statement: ReturnType<typeof sql>) {
  await db.transaction().execute(async (tx) => {
    await sql`ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update`.execute(tx);
    await statement.execute(tx);
    await sql`ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update`.execute(tx);
  });
}

const cli = path.join(import.meta.dirname, "../../src/cli.ts");
async function mmAuditVerify(): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)("npx", ["tsx", cli, "audit", "verify"], {
      env: { ...process.env, DATABASE_URL: scratch.config.databaseUrl },
    });
    return { code: 0, stdout };
  } catch (err) {
    const failed = err as { code: number; stdout: string };
    return { code: failed.code, stdout: failed.stdout };
  }
}

describe("the audit log's hash chain", () => {
  it("links every row to the previous one, and `mm audit verify` reports it intact", async () => {
    await migrate(db);
    for (let n = 0; n < 5; n++) await append(db, n);
    const rows = await db.selectFrom("audit_log").selectAll().orderBy("id").execute();
    expect(rows[0]?.prev_hash).toBe("0".repeat(64));
    for (let i = 1; i < rows.length; i++) expect(rows[i]?.prev_hash).toBe(rows[i - 1]?.hash);
    expect(await verifyAuditChain(db)).toEqual({
      intact: true,
      rows: 5,
      head: rows[4]?.hash,
    });
    const { code, stdout } = await mmAuditVerify();
    expect(stdout).toContain("5 rows, chain intact");
    expect(code).toBe(0);
  });

  it("detects a row rewritten by the table's owner, naming the row (exit 1)", async () => {
    await migrate(db);
    for (let n = 0; n < 6; n++) await append(db, n);
    const victim = await db
      .selectFrom("audit_log")
      .select("id")
      .where(sql`details->>'n'`, "=", "3")
      .executeTakeFirstOrThrow();
    await tamper(sql`UPDATE audit_log SET actor = 'operator:nobody' WHERE id = ${victim.id}`);
    expect(await verifyAuditChain(db)).toMatchObject({
      intact: false,
      brokenId: Number(victim.id),
      reason: "its content does not match its hash",
    });
    const { code, stdout } = await mmAuditVerify();
    expect(stdout).toContain(`audit log row ${victim.id} is broken`);
    expect(code).toBe(1);
  });

  it("detects a rewrite that recomputes the row's own hash, or a removed row, at the next row", async () => {
    await migrate(db);
    for (let n = 0; n < 6; n++) await append(db, n);
    const ids = (await db.selectFrom("audit_log").select("id").orderBy("id").execute()).map((r) =>
      Number(r.id),
    );
    const [, second, third, fourth, fifth] = ids as [number, number, number, number, number];
    await tamper(sql`UPDATE audit_log SET details = '{"n": 99}' WHERE id = ${second}`);
    await tamper(sql`UPDATE audit_log SET hash = audit_log_hash(prev_hash, audit_log)
      WHERE id = ${second}`);
    expect(await verifyAuditChain(db)).toMatchObject({ intact: false, brokenId: third });

    await tamper(sql`DELETE FROM audit_log WHERE id <= ${third}`);
    expect(await verifyAuditChain(db)).toMatchObject({ intact: false, brokenId: fourth });
    await tamper(sql`DELETE FROM audit_log WHERE id = ${fourth}`);
    expect(await verifyAuditChain(db)).toMatchObject({ intact: false, brokenId: fifth });
  });

  it("forms one chain from concurrent appends of several connection pools (processes)", async () => {
    await migrate(db);
    const writers = [0, 1, 2].map(() => createDb(scratch.config.databaseUrl, 4));
    pools.push(...writers);
    await Promise.all(
      writers.flatMap((w, i) =>
        Array.from({ length: 40 }, (_, n) =>
          // Some in a transaction that does more after appending, as stores do.
          n % 2
            ? append(w, n, `writer:${i}`)
            : w.transaction().execute(async (tx) => {
                await append(tx, n, `writer:${i}`);
                await sql`SELECT pg_sleep(0.005)`.execute(tx);
              }),
        ),
      ),
    );
    expect(await verifyAuditChain(db)).toMatchObject({ intact: true, rows: 120 });
  });

  it("chains the rows written before the chain existed, in their order", async () => {
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    const before = await migrator.migrateTo("0003_decisions_workflow_id");
    expect(before.error).toBeUndefined();
    for (let n = 0; n < 3; n++)
      await sql`INSERT INTO audit_log (actor, action, details)
        VALUES ('operator:old', 'agent.updated', ${JSON.stringify({ n })}::jsonb)`.execute(db);
    await migrate(db);
    await append(db, 3);
    expect(await verifyAuditChain(db)).toMatchObject({ intact: true, rows: 4 });
  });
});

describe("the catalog's audit entries", () => {
  it("records each change with its actor in the change's transaction, and the default load as system", async () => {
    await migrate(db);
    const store = catalogStore(db);
    const condition = {
      identifier: "py",
      name: "py",
      description: "",
      params: {},
      args: {},
      check: "(true)",
    };
    await loadDefaultCatalog(db, { condition: [condition], mitigation: [], attack_flow: [] });
    expect(await store.create("condition", { ...condition, identifier: "x" }, "operator:bob")).toBe(
      true,
    );
    expect(await store.create("condition", { ...condition, identifier: "x" }, "operator:bob")).toBe(
      false,
    );
    expect(
      await store.update(
        "condition",
        "x",
        { ...condition, identifier: "x", name: "X" },
        "operator:eve",
      ),
    ).toBe(true);
    expect(await store.remove("condition", "nope", "operator:eve")).toBe(false);
    expect(await store.remove("condition", "x", "operator:eve")).toBe(true);
    const entries = await db
      .selectFrom("audit_log")
      .select(["actor", "action", "details"])
      .orderBy("id")
      .execute();
    expect(entries).toEqual([
      {
        actor: "system",
        action: "catalog.created",
        details: { kind: "condition", key: "py", document: condition },
      },
      {
        actor: "operator:bob",
        action: "catalog.created",
        details: { kind: "condition", key: "x", document: { ...condition, identifier: "x" } },
      },
      {
        actor: "operator:eve",
        action: "catalog.updated",
        details: {
          kind: "condition",
          key: "x",
          document: { ...condition, identifier: "x", name: "X" },
        },
      },
      {
        actor: "operator:eve",
        action: "catalog.deleted",
        details: { kind: "condition", key: "x" },
      },
    ]);
    expect(await verifyAuditChain(db)).toMatchObject({ intact: true, rows: 4 });
  });
});
