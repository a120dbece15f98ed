#!/usr/bin/env bash
# `npm start`: installs what is missing, brings the local stack up and runs the whole service
# (REST API, Temporal worker, NATS ingest) in the foreground. Ctrl-C stops the service; the
# stack keeps running for the next start (`npm run stack -- down` stops it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
ensure_node_modules
if [ -z "${MM_ADMIN_TOKEN:-}" ]; then
  # The REST API accepts no request without a token: give this installation an admin of its own.
  MM_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export MM_ADMIN_TOKEN
  (umask 077 && echo "MM_ADMIN_TOKEN=$MM_ADMIN_TOKEN" >>"$ROOT/.env")
  echo "▸ generated an admin token for the REST API, saved in .env: $MM_ADMIN_TOKEN"
fi
bash "$ROOT/scripts/stack.sh" up
echo "▸ starting Mitigation Manager: REST API on http://${MM_HOST:-127.0.0.1}:${MM_API_PORT:-8333}, Temporal UI on http://127.0.0.1:$TEMPORAL_UI_PORT"
exec "$ROOT/bin/mm" all
