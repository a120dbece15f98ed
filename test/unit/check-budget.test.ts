import { afterAll, describe, expect, it } from "vitest";
import type { CheckVars } from "../../src/domain/cel.ts";
import { checkRunner } from "../../src/domain/check-budget.ts";

const budgetMs = 100;
const runner = checkRunner({ budgetMs });
afterAll(() => runner.close());

const vars = (v: Partial<CheckVars>): CheckVars => ({
  params: {},
  args: {},
  alert: {},
  rows: [],
  ...v,
});

/** Runs `work` while a 10 ms interval counts ticks: the largest gap between ticks is how long the loop froze. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 10);
  try {
    const result = await work();
    stallMs = Math.max(stallMs, performance.now() - last);
    return { result, stallMs };
  } finally {
    clearInterval(ticker);
  }
}

describe("checkRunner", () => {
  it("evaluates a check like evaluateCheck", async () => {
    expect(await runner.evaluate("args.level > 10", vars({ args: { level: 12 } }))).toEqual({
      ok: true,
      value: true,
    });
    expect(await runner.evaluate("args.x == 1", vars({}))).toMatchObject({ ok: false });
  });

  it("answers the backtracking attack (22 KB of alert text) correctly, and at once", async () => {
    const alert = { full_log: `${"powershell -enc ".repeat(1_375)}`.slice(0, 22_000) };
    expect(alert.full_log.length).toBe(22_000);
    const check = 'alert.full_log.matches(".*powershell.*-enc.*z")';
    // A budget the shared test machine's load cannot exceed: what is asserted is the answer.
    const patient = checkRunner({ budgetMs: 5_000 });
    try {
      await patient.evaluate("true", vars({})); // the thread's start-up is not what is measured
      const { result, stallMs } = await longestStall(() =>
        patient.evaluate(check, vars({ alert })),
      );
      expect(result).toEqual({ ok: true, value: false });
      expect(stallMs).toBeLessThan(budgetMs);
      const hit = { alert: { full_log: `${alert.full_log}z` } };
      expect(await patient.evaluate(check, vars(hit))).toEqual({ ok: true, value: true });
    } finally {
      await patient.close();
    }
  });

  it("cuts off a check over its budget, keeps the loop ticking, and evaluates the next one", async () => {
    const rows = Array.from({ length: 500 }, (_, i) => ({ i }));
    const cubic = "rows.all(a, rows.all(b, rows.all(c, a.i + b.i + c.i >= 0)))";
    await runner.evaluate("true", vars({}));
    const started = performance.now();
    const { result, stallMs } = await longestStall(() => runner.evaluate(cubic, vars({ rows })));
    expect(result).toEqual({
      ok: false,
      error: `check exceeded its budget of ${budgetMs} ms`,
      overBudget: true,
    });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(stallMs).toBeLessThan(budgetMs);
    expect(await runner.evaluate("rows.size() == 500", vars({ rows }))).toEqual({
      ok: true,
      value: true,
    });
  });

  it("fails a check that exhausts the thread's memory, not the service", async () => {
    const rows = Array.from({ length: 300 }, (_, i) => ({ i }));
    const patient = checkRunner({ budgetMs: 30_000 });
    try {
      const result = await patient.evaluate(
        "rows.map(a, rows.map(b, rows.map(c, [a.i, b.i, c.i]))).size() > 0",
        vars({ rows }),
      );
      expect(result).toMatchObject({ ok: false, error: expect.stringContaining("evaluation") });
      expect(await patient.evaluate("rows.size() == 300", vars({ rows }))).toEqual({
        ok: true,
        value: true,
      });
    } finally {
      await patient.close();
    }
  });
});
