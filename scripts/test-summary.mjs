// Prints a vitest JSON report's failed tests (file, name, first lines of the error) and one count
// line. scripts/test.sh calls it last so that the tail of a long CI log names what failed.
import { readFileSync } from "node:fs";
import { relative } from "node:path";

const [reportPath, label] = process.argv.slice(2);
const report = JSON.parse(readFileSync(reportPath, "utf8"));
for (const file of report.testResults ?? []) {
  const name = relative(process.cwd(), file.name);
  const failed = (file.assertionResults ?? []).filter((t) => t.status === "failed");
  if (failed.length === 0 && file.status === "failed") {
    console.log(`✗ ${name}: ${firstLines(file.message)}`);
  }
  for (const test of failed) {
    console.log(
      `✗ ${name} › ${test.fullName}: ${firstLines((test.failureMessages ?? []).join("\n"))}`,
    );
  }
}
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(
  `${label}: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`,
);

function firstLines(text) {
  return String(text ?? "")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(0, 4)
    .join(" ⏎ ")
    .slice(0, 600);
}
