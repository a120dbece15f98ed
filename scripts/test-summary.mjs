// Prints each vitest JSON report's failed tests (file, name, first lines of the error), then one
// plain count line over all of them: `tests: N passed, N failed, N skipped`, the closing line CI
// systems read whatever the runner. scripts/test.sh calls it last, so the tail of a long CI log
// names what failed.
import { existsSync, readFileSync } from "node:fs";
import { basename, relative } from "node:path";

const totals = { passed: 0, failed: 0, skipped: 0 };
for (const reportPath of process.argv.slice(2)) {
  if (!existsSync(reportPath)) {
    // A pass that wrote no report ended before its tests did: that is a failure, said as one.
    console.log(`✗ ${basename(reportPath)}: no report (the run ended before its tests finished)`);
    totals.failed++;
    continue;
  }
  const report = JSON.parse(readFileSync(reportPath, "utf8"));
  for (const file of report.testResults ?? []) {
    const name = relative(process.cwd(), file.name);
    const failed = (file.assertionResults ?? []).filter((t) => t.status === "failed");
    if (failed.length === 0 && file.status === "failed") {
      console.log(`✗ ${name}: ${firstLines(file.message)}`);
      totals.failed++;
    }
    for (const test of failed) {
      console.log(
        `✗ ${name} › ${test.fullName}: ${firstLines((test.failureMessages ?? []).join("\n"))}`,
      );
    }
  }
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  console.log(
    `· ${basename(reportPath, ".json")}: ${report.numPassedTests} of ${report.numTotalTests} tests passed`,
  );
  totals.passed += report.numPassedTests ?? 0;
  totals.failed += report.numFailedTests ?? 0;
  totals.skipped += skipped;
}
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);

function firstLines(text) {
  return String(text ?? "")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(0, 4)
    .join(" ⏎ ")
    .slice(0, 600);
}
