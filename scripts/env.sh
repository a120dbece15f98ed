# Shared by the project's scripts: reads .env (if any) and fills in the defaults of the local stack.
# The service reads the same variables (src/config.ts), so what the stack starts is what it uses.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
if [ -f "$ROOT/.env" ]; then set -a; source "$ROOT/.env"; set +a; fi

export MM_DATA_DIR=${MM_DATA_DIR:-$ROOT/.data}
export MM_CACHE_DIR=${MM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mitigation-manager}

# PostgreSQL: the stack's own cluster unless the user's DATABASE_URL names an existing server
# (decided once: nested scripts see the DATABASE_URL this file exported, not the user's).
if [ -z "${MM_PG_EXTERNAL:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then MM_PG_EXTERNAL=1; else MM_PG_EXTERNAL=0; fi
fi
export MM_PG_EXTERNAL
export MM_PG_HOST=${MM_PG_HOST:-127.0.0.1} MM_PG_PORT=${MM_PG_PORT:-5433}
export MM_PG_USER=${MM_PG_USER:-mm} MM_PG_PASSWORD=${MM_PG_PASSWORD:-mm} MM_PG_DATABASE=${MM_PG_DATABASE:-mm}
export DATABASE_URL=${DATABASE_URL:-postgres://$MM_PG_USER:$MM_PG_PASSWORD@$MM_PG_HOST:$MM_PG_PORT/$MM_PG_DATABASE}

export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
MM_NATS_HOST=${NATS_URL#*://}; MM_NATS_HOST=${MM_NATS_HOST%%:*}
MM_NATS_PORT=${NATS_URL##*:}; MM_NATS_PORT=${MM_NATS_PORT%%/*}
MM_NATS_MONITOR_PORT=${MM_NATS_MONITOR_PORT:-8222}

export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export TEMPORAL_NAMESPACE=${TEMPORAL_NAMESPACE:-default}
export TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}

export NEO4J_URI=${NEO4J_URI:-bolt://127.0.0.1:7687}
export NEO4J_USER=${NEO4J_USER:-neo4j} NEO4J_PASSWORD=${NEO4J_PASSWORD:-mitigation-manager}
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
