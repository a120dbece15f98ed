#!/usr/bin/env bash
# `npm start`: installs what is missing, brings the local stack up and runs the whole service
# (REST API, Temporal worker, NATS ingest) in the foreground. Ctrl-C stops the service; the
# stack keeps running for the next start (`npm run stack -- down` stops it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
ensure_node_modules
bash "$ROOT/scripts/stack.sh" up
bash "$ROOT/scripts/build-console.sh" --if-stale
echo "▸ starting Mitigation Manager: REST API on http://${MM_HOST:-127.0.0.1}:${MM_API_PORT:-8333}, Temporal UI on http://127.0.0.1:$TEMPORAL_UI_PORT"
scheme=http; [ -z "${MM_API_TLS_CERT:-}" ] || scheme=https
echo "▸ console: $scheme://${MM_HOST:-127.0.0.1}:${MM_API_PORT:-8333}/console/ (sign in with a token; README \"Console\")"
echo "  the REST API's admin token is MM_ADMIN_TOKEN in $ROOT/.env"
exec "$ROOT/bin/mm" all
