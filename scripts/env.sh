# Shared by the project's scripts: reads .env (if any) and fills in the defaults of the local stack.
# The service reads the same variables (src/config.ts), so what the stack starts is what it uses.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
load_env_file() { if [ -f "$ROOT/.env" ]; then set -a; source "$ROOT/.env"; set +a; fi; }
load_env_file

export MM_DATA_DIR=${MM_DATA_DIR:-$ROOT/.data}

# Every internal server needs credentials, and no installation shares them with another: the ones
# missing are generated into .env, readable by its owner only. They are never printed.
SECRETS=(MM_PG_PASSWORD NEO4J_PASSWORD MM_NATS_API_PASSWORD MM_NATS_WORKER_PASSWORD
  MM_NATS_INGEST_PASSWORD MM_NATS_GATEWAY_PASSWORD MM_NATS_PUBLISHER_PASSWORD MM_ADMIN_TOKEN
  MM_TEMPORAL_PG_PASSWORD)
ensure_secrets() {
  local missing=() name
  for name in "${SECRETS[@]}"; do [ -n "${!name:-}" ] || missing+=("$name"); done
  if [ ${#missing[@]} -gt 0 ]; then
    mkdir -p "$MM_DATA_DIR"
    # npm start and npm test may both start on a fresh clone: one of them writes the secrets.
    exec 8>"$MM_DATA_DIR/.secrets.lock"; flock 8
    load_env_file
    missing=()
    for name in "${SECRETS[@]}"; do [ -n "${!name:-}" ] || missing+=("$name"); done
    if [ ${#missing[@]} -gt 0 ]; then
      (
        umask 077
        [ ! -s "$ROOT/.env" ] || [ -z "$(tail -c1 "$ROOT/.env")" ] || echo >>"$ROOT/.env"
        for name in "${missing[@]}"; do
          echo "$name=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$ROOT/.env"
        done
      )
      load_env_file
      echo "▸ generated ${missing[*]}, stored in $ROOT/.env (mode 0600)"
    fi
    exec 8>&-
  fi
  [ ! -f "$ROOT/.env" ] || chmod 600 "$ROOT/.env"
  export "${SECRETS[@]}"
}
ensure_secrets
export MM_CACHE_DIR=${MM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mitigation-manager}

# PostgreSQL: the stack's own cluster unless the user's DATABASE_URL names an existing server
# (decided once: nested scripts see the DATABASE_URL this file exported, not the user's).
if [ -z "${MM_PG_EXTERNAL:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then MM_PG_EXTERNAL=1; else MM_PG_EXTERNAL=0; fi
fi
export MM_PG_EXTERNAL
export MM_PG_HOST=${MM_PG_HOST:-127.0.0.1} MM_PG_PORT=${MM_PG_PORT:-5433}
export MM_PG_USER=${MM_PG_USER:-mm} MM_PG_DATABASE=${MM_PG_DATABASE:-mm}
export DATABASE_URL=${DATABASE_URL:-postgres://$MM_PG_USER:$MM_PG_PASSWORD@$MM_PG_HOST:$MM_PG_PORT/$MM_PG_DATABASE}

export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
MM_NATS_HOST=${NATS_URL#*://}; MM_NATS_HOST=${MM_NATS_HOST%%:*}
MM_NATS_PORT=${NATS_URL##*:}; MM_NATS_PORT=${MM_NATS_PORT%%/*}
MM_NATS_MONITOR_PORT=${MM_NATS_MONITOR_PORT:-8222}
MM_ALERT_SUBJECT=${MM_ALERT_SUBJECT:-alerts}

export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export TEMPORAL_NAMESPACE=${TEMPORAL_NAMESPACE:-default}
export TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}

export NEO4J_URI=${NEO4J_URI:-bolt://127.0.0.1:7687}
export NEO4J_USER=${NEO4J_USER:-neo4j}
MM_NEO4J_BOLT_ADDRESS=${NEO4J_URI#*://}

# Installs node modules when they are missing or older than the lock file. `npm ci` installs the
# lock exactly and never rewrites it; the lock lists every platform's optional packages (biome,
# swc, esbuild), which npm 11 requires (a lock made on one platform without them is refused).
ensure_node_modules() {
  if [ ! -f "$ROOT/node_modules/.package-lock.json" ] ||
    [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    echo "▸ installing node modules (npm ci, from package-lock.json)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || { echo "✗ npm ci failed" >&2; exit 1; }
  fi
}

# Installs Debian packages the project needs when they are missing (root; apt-get update once).
apt_install() {
  echo "▸ installing Debian packages: $* (apt-get)"
  if [ "$(id -u)" != 0 ]; then echo "✗ installing $* needs root; install them with apt-get and run again" >&2; exit 1; fi
  mkdir -p "$MM_DATA_DIR/logs"
  if [ ! -f "$MM_DATA_DIR/.apt-updated" ]; then
    apt-get update -qq >"$MM_DATA_DIR/logs/apt.log" 2>&1 || { echo "✗ apt-get update failed (see $MM_DATA_DIR/logs/apt.log)" >&2; exit 1; }
    touch "$MM_DATA_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$MM_DATA_DIR/logs/apt.log" 2>&1 ||
    { echo "✗ apt-get install $* failed (see $MM_DATA_DIR/logs/apt.log)" >&2; exit 1; }
}
