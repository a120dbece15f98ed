#!/usr/bin/env bash
# `npm test`: the whole suite. Types and lint first (seconds), then vitest, whose global setup
# brings the local stack up (installing what is missing) exactly as `npm start` does.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
ensure_node_modules
cd "$ROOT"
export MM_LOG_LEVEL=${MM_LOG_LEVEL:-warn}
echo "▸ type-checking"
npx tsc --noEmit -p .
echo "▸ linting"
npx biome check --diagnostic-level=error .
echo "▸ running tests"
npx vitest run "$@"
