#!/usr/bin/env bash
# `npm run bench:<name> -- [args]`: runs bench/<name>.ts with the stack's settings (scripts/env.sh
# reads .env and fills in the defaults), as the service itself would see them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
name=$1; shift
cd "$ROOT"
exec npx tsx "bench/$name.ts" "$@"
