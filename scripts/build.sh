#!/usr/bin/env bash
# `npm run build`: compiles src/ and migrations/ to dist/ for plain node and bundles the workflow
# code once. bin/mm runs dist/ only while dist/.built is newer than src/, migrations/ and
# package.json; the stamp carries the second the build started, so an edit made during the build
# still counts as newer.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
started=$(date +%s)
rm -rf dist
npx tsc -p tsconfig.build.json
npx tsx scripts/bundle-workflows.ts dist/src/workflows.bundle.js
# The modules read the version from ../../package.json, which from dist/src/ is dist/package.json.
cp package.json dist/
touch -d "@$started" dist/.built
echo "▸ built dist/"
