#!/usr/bin/env bash
# The local stack: Temporal (dev server + Web UI), PostgreSQL 15, NATS JetStream and Neo4j 5.26,
# installed when missing and run as local processes on loopback.
#
#   scripts/stack.sh up [service…]     install what is missing, start (or reuse) and wait until ready
#   scripts/stack.sh down [service…]   stop what this stack started
#   scripts/stack.sh status            one line per service
#   scripts/stack.sh logs <service>    follow a service's log
#
# Services: postgres nats temporal neo4j. Built tools live in a per-user cache shared by every
# clone on the machine (MM_CACHE_DIR); data, logs and pid files under MM_DATA_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

SERVICES=(postgres nats temporal neo4j)
TIMEOUT=${MM_STACK_TIMEOUT:-180}
TEMPORAL_VERSION=1.5.1
TEMPORAL_BIN="$MM_CACHE_DIR/bin/temporal-$TEMPORAL_VERSION"
NEO4J_VERSION=$(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$ROOT/stack/neo4j/pom.xml" 2>/dev/null)
NEO4J_HOME="$MM_CACHE_DIR/neo4j-$NEO4J_VERSION"
RUN_DIR="$MM_DATA_DIR/run"
LOG_DIR="$MM_DATA_DIR/logs"
# Custom search attributes that make incidents findable in the Temporal UI.
SEARCH_ATTRIBUTES=(Host=Keyword AgentId=Keyword Techniques=KeywordList Severity=Keyword IncidentStatus=Keyword)

say() { printf '%s %s\n' "$1" "${*:2}"; }
die() { say "✗" "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Runs a command detached from this shell, logging to LOG_DIR and remembering its pid.
spawn() {
  local name=$1; shift
  # 9>&-: the server must not inherit the start-up lock, or it would hold it for its whole life.
  setsid nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

wait_ready() {
  local name=$1 check=$2 started=$SECONDS
  while ! $check; do
    if [ -f "$RUN_DIR/$name.pid" ] && ! kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited during start-up (log: $LOG_DIR/$name.log)"
    fi
    if ((SECONDS - started > TIMEOUT)); then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name not ready after ${TIMEOUT}s (log: $LOG_DIR/$name.log; raise MM_STACK_TIMEOUT?)"
    fi
    sleep 0.5
  done
}

# --- PostgreSQL -------------------------------------------------------------------------------
PG_BIN=/usr/lib/postgresql/15/bin
# PostgreSQL refuses to run as root, so as root the cluster belongs to the postgres user, who must
# reach it: a clone under a private folder (mode 700) gets its cluster under /var/lib instead.
PG_HOME="$MM_DATA_DIR"
mkdir -p "$MM_DATA_DIR"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$MM_DATA_DIR" 2>/dev/null; then
  PG_HOME="/var/lib/mitigation-manager/$(printf '%s' "$MM_DATA_DIR" | md5sum | cut -c1-12)"
fi
PG_DATA="$PG_HOME/postgres"
PG_SOCKETS="$PG_HOME/postgres-sockets"
PG_LOG="$PG_HOME/logs/postgres.log"
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
postgres_ready() { pg_isready -q -d "$DATABASE_URL"; }
postgres_up() {
  if [ "${MM_PG_EXTERNAL:-0}" = 1 ]; then
    wait_ready postgres postgres_ready
    say "✓" "postgres: using the server of DATABASE_URL"
    return
  fi
  [ -x "$PG_BIN/initdb" ] || apt_install postgresql-15 postgresql-client-15
  if postgres_ready; then say "✓" "postgres: reusing the server on $MM_PG_HOST:$MM_PG_PORT"; return; fi
  mkdir -p "$PG_SOCKETS" "$PG_HOME/logs"
  [ "$PG_HOME" = "$MM_DATA_DIR" ] || say "▸" "postgres: $MM_DATA_DIR is not reachable by the postgres user; cluster in $PG_HOME"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    say "▸" "postgres: creating a cluster in $PG_DATA"
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DATA" "$PG_SOCKETS"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 >>"$PG_LOG" 2>&1 || die "postgres: initdb failed (log: $PG_LOG)"
  fi
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_SOCKETS" && touch "$PG_LOG" && chown postgres "$PG_LOG"
  say "▸" "postgres: starting on $MM_PG_HOST:$MM_PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" \
    -o "-p $MM_PG_PORT -k $PG_SOCKETS -c listen_addresses=$MM_PG_HOST -c max_connections=300" \
    start >/dev/null 9>&- || die "postgres: pg_ctl start failed (log: $PG_LOG)"
  wait_ready postgres postgres_ready
  # The application role may create databases: tests give every file a database of its own.
  as_pg "$PG_BIN/psql" -q -h "$PG_SOCKETS" -p "$MM_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -v user="$MM_PG_USER" -v password="$MM_PG_PASSWORD" -v db="$MM_PG_DATABASE" >/dev/null <<'SQL' ||
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
    die "postgres: creating role/database failed"
  say "✓" "postgres ready on $MM_PG_HOST:$MM_PG_PORT (database $MM_PG_DATABASE)"
}
postgres_down() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null && say "✓" "postgres stopped"
}

# --- NATS JetStream ---------------------------------------------------------------------------
nats_ready() { curl -fsS -o /dev/null "http://$MM_NATS_HOST:$MM_NATS_MONITOR_PORT/healthz?js-enabled-only=true" 2>/dev/null; }
nats_up() {
  command -v nats-server >/dev/null || apt_install nats-server
  if port_open "$MM_NATS_HOST" "$MM_NATS_PORT"; then
    say "✓" "nats: reusing the server on $MM_NATS_HOST:$MM_NATS_PORT"; return
  fi
  mkdir -p "$MM_DATA_DIR/nats"
  say "▸" "nats: starting JetStream on $MM_NATS_HOST:$MM_NATS_PORT"
  spawn nats nats-server -js -sd "$MM_DATA_DIR/nats" -a "$MM_NATS_HOST" -p "$MM_NATS_PORT" \
    -m "$MM_NATS_MONITOR_PORT" -n mitigation-manager
  wait_ready nats nats_ready
  say "✓" "nats ready on $MM_NATS_HOST:$MM_NATS_PORT"
}

# --- Temporal ---------------------------------------------------------------------------------
temporal_install() {
  [ -x "$TEMPORAL_BIN" ] && return
  command -v go >/dev/null || die "temporal: Go is needed to build the temporal CLI (go install)"
  say "▸" "temporal: building the temporal CLI v$TEMPORAL_VERSION with go install (a few minutes, once per machine)"
  local gobin; gobin=$(mktemp -d)
  CGO_ENABLED=0 GOBIN="$gobin" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_VERSION" \
    >>"$LOG_DIR/temporal-install.log" 2>&1 || die "temporal: go install failed (log: $LOG_DIR/temporal-install.log)"
  mkdir -p "$(dirname "$TEMPORAL_BIN")"
  mv "$gobin/temporal" "$TEMPORAL_BIN"
  rmdir "$gobin"
}
temporal_ready() {
  "$TEMPORAL_BIN" operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING
}
temporal_up() {
  temporal_install
  local host=${TEMPORAL_ADDRESS%:*} port=${TEMPORAL_ADDRESS##*:}
  if port_open "$host" "$port"; then
    wait_ready temporal temporal_ready
    say "✓" "temporal: reusing the server on $TEMPORAL_ADDRESS"
  else
    mkdir -p "$MM_DATA_DIR/temporal"
    say "▸" "temporal: starting the dev server on $TEMPORAL_ADDRESS, Web UI on :$TEMPORAL_UI_PORT"
    local attrs=()
    for a in "${SEARCH_ATTRIBUTES[@]}"; do attrs+=(--search-attribute "$a"); done
    [ "$TEMPORAL_NAMESPACE" = default ] || attrs+=(--namespace "$TEMPORAL_NAMESPACE")
    # WAL without an fsync per commit: several times the throughput, and a crash of any process
    # loses nothing (only a power cut can lose the last commits). Production runs on PostgreSQL.
    spawn temporal "$TEMPORAL_BIN" server start-dev --ip "$host" --port "$port" \
      --ui-port "$TEMPORAL_UI_PORT" --db-filename "$MM_DATA_DIR/temporal/temporal.db" \
      --log-level warn "${attrs[@]}" \
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal
    wait_ready temporal temporal_ready
  fi
  # A reused server (or a namespace created later) may lack the project's search attributes.
  local existing; existing=$("$TEMPORAL_BIN" operator search-attribute list --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" 2>/dev/null || true)
  for a in "${SEARCH_ATTRIBUTES[@]}"; do
    grep -qw "${a%=*}" <<<"$existing" && continue
    "$TEMPORAL_BIN" operator search-attribute create --address "$TEMPORAL_ADDRESS" \
      --namespace "$TEMPORAL_NAMESPACE" --name "${a%=*}" --type "${a#*=}" >/dev/null ||
      die "temporal: could not register search attribute ${a%=*}"
  done
  say "✓" "temporal ready on $TEMPORAL_ADDRESS (Web UI http://$host:$TEMPORAL_UI_PORT)"
}

# --- Neo4j ------------------------------------------------------------------------------------
neo4j_ready() { port_open "${MM_NEO4J_BOLT_ADDRESS%:*}" "${MM_NEO4J_BOLT_ADDRESS##*:}"; }
neo4j_up() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  bash "$ROOT/stack/neo4j/install.sh" "$NEO4J_HOME" || die "neo4j: install failed"
  if neo4j_ready; then say "✓" "neo4j: reusing the server on $MM_NEO4J_BOLT_ADDRESS"; return; fi
  mkdir -p "$MM_DATA_DIR/neo4j"
  say "▸" "neo4j: starting $NEO4J_VERSION, Bolt on $MM_NEO4J_BOLT_ADDRESS"
  NEO4J_BOLT_ADDRESS=$MM_NEO4J_BOLT_ADDRESS NEO4J_USER=$NEO4J_USER NEO4J_PASSWORD=$NEO4J_PASSWORD \
    spawn neo4j bash "$ROOT/stack/neo4j/run.sh" "$NEO4J_HOME" "$MM_DATA_DIR/neo4j"
  wait_ready neo4j neo4j_ready
  say "✓" "neo4j ready on bolt://$MM_NEO4J_BOLT_ADDRESS"
}

# --- processes this stack spawned (nats, temporal, neo4j) --------------------------------------
spawned_down() {
  local name=$1 pidfile="$RUN_DIR/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    say "✓" "$name stopped"
  fi
  rm -f "$pidfile"
}
nats_down() { spawned_down nats; }
temporal_down() { spawned_down temporal; }
neo4j_down() { spawned_down neo4j; }

status_line() {
  local name=$1 ready=$2 where=$3
  if $ready; then say "●" "$name up ($where)"; else say "○" "$name down ($where)"; fi
}

selected() { if [ $# -gt 0 ]; then echo "$@"; else echo "${SERVICES[@]}"; fi; }

main() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  local cmd=${1:-}; shift || true
  for s in "$@"; do [[ " ${SERVICES[*]} " == *" $s "* ]] || die "unknown service '$s' (one of: ${SERVICES[*]})"; done
  case $cmd in
    up)
      exec 9>"$RUN_DIR/stack.lock"; flock 9   # one start-up at a time (npm start and npm test race)
      local started=$SECONDS
      for s in $(selected "$@"); do "${s}_up"; done
      say "✓" "stack ready in $((SECONDS - started))s";;
    down)
      local list; read -ra list <<<"$(selected "$@")"
      for ((i=${#list[@]}-1; i>=0; i--)); do "${list[i]}_down"; done;;
    status)
      temporal_ready_quiet() { [ -x "$TEMPORAL_BIN" ] && temporal_ready; }
      status_line postgres postgres_ready "$MM_PG_HOST:$MM_PG_PORT"
      status_line nats nats_ready "$MM_NATS_HOST:$MM_NATS_PORT"
      status_line temporal temporal_ready_quiet "$TEMPORAL_ADDRESS, UI :$TEMPORAL_UI_PORT"
      status_line neo4j neo4j_ready "$MM_NEO4J_BOLT_ADDRESS";;
    logs)
      [ $# = 1 ] || die "usage: stack.sh logs <service>"
      if [ "$1" = postgres ]; then exec tail -n 100 -F "$PG_LOG"; fi
      exec tail -n 100 -F "$LOG_DIR/$1.log";;
    *) die "usage: stack.sh up|down|status|logs [service…]";;
  esac
}

main "$@"
