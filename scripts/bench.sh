#!/usr/bin/env bash
# `npm run bench:<name> -- [args]`: runs bench/<name>.ts with the stack's settings (scripts/env.sh
# reads .env and fills in the defaults), as the service itself would see them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
name=$1; shift
cd "$ROOT"
if [ "$name" = gateway ] || [ "$name" = rollout ]; then
  # 20,000 agents are 20,000 sockets in the gateway and as many in the fleets: each process (they
  # inherit this) gets room for 65,536 descriptors, or the most this user may have.
  ulimit -Hn 65536 2>/dev/null || true
  ulimit -n "$(ulimit -Hn)"
fi
exec npx tsx "bench/$name.ts" "$@"
