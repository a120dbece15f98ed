#!/usr/bin/env bash
# `npm run build [-- <dir>]`: compiles src/ and migrations/ to dist/ (or <dir>) for plain node and
# bundles the workflow code once, and builds the operator console (scripts/build-console.sh). bin/mm runs dist/ only while dist/.built is newer than src/,
# migrations/ and package.json; the stamp carries the second the build started, so an edit made
# during the build still counts as newer.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/dist}")
cd "$ROOT"
started=$(date +%s)
rm -rf "$OUT"
npx tsc -p tsconfig.build.json --outDir "$OUT"
# src/worker.ts loads the bundle from beside itself.
npx tsx scripts/bundle-workflows.ts "$OUT/src/workflows.bundle.js"
# The console, served from dist/console/dist by the compiled service (MM_CONSOLE_DIR overrides).
bash scripts/build-console.sh "$OUT/console/dist"
# The modules read the version from ../../package.json, which from dist/src/ is dist/package.json.
cp package.json "$OUT/"
touch -d "@$started" "$OUT/.built"
echo "▸ built $OUT"
