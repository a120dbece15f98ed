#!/usr/bin/env bash
# `npm test`: the whole suite. Types and lint first (seconds), then vitest, whose global setup
# brings the local stack up (installing what is missing) exactly as `npm start` does.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
ensure_node_modules
# The reference agent's tests enforce for real in network namespaces.
missing=()
# The console's browser tests drive Debian's chromium (playwright-core downloads no browser).
for tool in nft:nftables ncat:ncat openssl:openssl ip:iproute2 chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
[ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
cd "$ROOT"
export MM_LOG_LEVEL=${MM_LOG_LEVEL:-warn}
echo "▸ type-checking"
npx tsc --noEmit -p .
npx tsc -p console
echo "▸ linting"
npx biome check --diagnostic-level=error .
echo "▸ running tests"
report="$MM_DATA_DIR/vitest-report.json"
rm -f "$report"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# The workflow tests a second time against the full Temporal server (what docker-compose deploys),
# beside the dev server on the next port block, sharing PostgreSQL, NATS and Neo4j. Only for the
# whole suite (a run of chosen files is someone's fast loop); MM_TEST_TEMPORAL_SERVER=0 skips it.
SERVER_PASS=(test/integration/engine.test.ts test/integration/mitigation.test.ts
  test/integration/intake-batch.test.ts test/integration/alert-scope.test.ts
  test/integration/approvals.test.ts
  test/gateway/engine-path.test.ts test/gateway/isolation.test.ts test/gateway/commands.test.ts)
reports=("$report")
if [ $# = 0 ] && [ "${MM_TEST_TEMPORAL_SERVER:-1}" = 1 ]; then
  echo "▸ running the workflow tests against the full Temporal server"
  port=${TEMPORAL_ADDRESS##*:}
  server_report="$MM_DATA_DIR/vitest-report-temporal-server.json"
  rm -f "$server_report"
  reports+=("$server_report")
  MM_TEMPORAL_MODE=server TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS%:*}:$((port + 100))" \
    npx vitest run --reporter=default --reporter=json --outputFile.json="$server_report" \
    "${SERVER_PASS[@]}" || status=$?
fi
# Closing lines: each failed test with its first error lines, a line per pass, then one plain
# count over both passes, the form CI systems read whatever the runner (and what survives when
# only a log's tail is kept).
node scripts/test-summary.mjs "${reports[@]}"
exit $status
