#!/usr/bin/env bash
# `build-console.sh [--if-stale] [<dir>]`: builds the operator console (console/, React + Vite)
# into <dir> (default console/dist, which the API serves at /console unless MM_CONSOLE_DIR says
# otherwise). With --if-stale (npm start, the tests), only when console/dist is missing or older
# than a file of console/ or the lock file: an edit is never served stale, an unchanged tree costs
# nothing. npm run build builds into its own dist/, never over the console a running test serves.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if_stale=0
if [ "${1:-}" = --if-stale ]; then if_stale=1; shift; fi
OUT=$(realpath -m "${1:-$ROOT/console/dist}")
if [ $if_stale = 1 ] && [ -f "$OUT/index.html" ] &&
  [ -z "$(find console package-lock.json -path console/dist -prune -o -type f -newer "$OUT/index.html" -print -quit)" ]; then
  exit 0
fi
npx tsc -p console
# Built beside the target and moved in place, so a server never reads a half-written console.
tmp="$OUT.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
# Always the production build: a NODE_ENV inherited from a test runner would bundle React's
# development build (twice the size, and not what operators get).
NODE_ENV=production npx vite build console --logLevel warn --outDir "$tmp" --emptyOutDir
rm -rf "$OUT.old.$$"
[ ! -e "$OUT" ] || mv "$OUT" "$OUT.old.$$"
mv "$tmp" "$OUT"
rm -rf "$OUT.old.$$"
echo "▸ built the console into $OUT"
