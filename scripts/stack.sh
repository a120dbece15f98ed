#!/usr/bin/env bash
# The local stack: Temporal (dev server + Web UI, or the full server), PostgreSQL 15, NATS
# JetStream and Neo4j 5.26, installed when missing and run as local processes on loopback.
#
#   scripts/stack.sh up [--temporal dev|server] [service…]
#                                      install what is missing, start (or reuse) and wait until ready
#   scripts/stack.sh down [service…]   stop what this stack started
#   scripts/stack.sh status            one line per service
#   scripts/stack.sh logs <service>    follow a service's log
#
# Temporal runs as the dev server (one process, SQLite, one history shard, its Web UI) or, with
# `--temporal server` or MM_TEMPORAL_MODE=server, as the full server docker-compose deploys:
# persistence and visibility in this stack's PostgreSQL, MM_TEMPORAL_SHARDS history shards.
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
TEMPORAL_SERVER_VERSION=1.29.1
TEMPORAL_SERVER_HOME="$MM_CACHE_DIR/temporal-server-$TEMPORAL_SERVER_VERSION"
MM_TEMPORAL_MODE=${MM_TEMPORAL_MODE:-dev}
MM_TEMPORAL_SHARDS=${MM_TEMPORAL_SHARDS:-4}
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

# What a spawned server was started with (a hash of its credentials): when .env changes them, or
# an older stack.sh started it without any, the server is restarted with the new ones.
fingerprint() { sha256sum | cut -d' ' -f1; }
ours_and_current() {
  local name=$1 print=$2
  [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null &&
    [ "$(cat "$RUN_DIR/$name.fingerprint" 2>/dev/null)" = "$print" ]
}
ours_running() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

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
# Logs in as the service does; the password goes by environment, never on a command line.
postgres_login() {
  PGPASSWORD=$MM_PG_PASSWORD psql -h "$MM_PG_HOST" -p "$MM_PG_PORT" -U "$MM_PG_USER" -d "$MM_PG_DATABASE" \
    -Atqc 'SELECT 1' >/dev/null 2>&1
}
# Only the cluster's owner reaches it without a password: by peer over the socket, for this setup.
# Every TCP client (the service, the tests) proves its password with SCRAM; nothing is trusted.
postgres_auth_files() {
  local owner=postgres; [ "$(id -u)" = 0 ] || owner=$(id -un)
  printf '%s\n' "# Written by scripts/stack.sh at every start." \
    "local all postgres peer map=owner" "host all all all scram-sha-256" |
    as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null
  printf 'owner %s postgres\n' "$owner" | as_pg tee "$PG_DATA/pg_ident.conf" >/dev/null
}
postgres_setup() {
  as_pg "$PG_BIN/psql" -q -h "$PG_SOCKETS" -p "$MM_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -f - <"$ROOT/stack/postgres/service-role.sql" >/dev/null ||
    die "postgres: setting up role $MM_PG_USER and database $MM_PG_DATABASE failed (log: $PG_LOG)"
  as_pg "$PG_BIN/psql" -q -h "$PG_SOCKETS" -p "$MM_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -f - <"$ROOT/stack/postgres/statement-stats.sql" >/dev/null ||
    die "postgres: setting up statement statistics failed (log: $PG_LOG)"
}
postgres_up() {
  if [ "${MM_PG_EXTERNAL:-0}" = 1 ]; then
    wait_ready postgres postgres_ready
    say "✓" "postgres: using the server of DATABASE_URL"
    return
  fi
  [ -x "$PG_BIN/initdb" ] || apt_install postgresql-15 postgresql-client-15
  if postgres_ready && [ ! -f "$PG_DATA/postmaster.pid" ]; then
    postgres_login || die "postgres: the server on $MM_PG_HOST:$MM_PG_PORT is not this stack's (data dir" \
      "$PG_DATA) and refuses $MM_PG_USER with the password in .env; stop it or choose another MM_PG_PORT"
    say "✓" "postgres: reusing the server on $MM_PG_HOST:$MM_PG_PORT"; return
  fi
  mkdir -p "$PG_SOCKETS" "$PG_HOME/logs"
  [ "$PG_HOME" = "$MM_DATA_DIR" ] || say "▸" "postgres: $MM_DATA_DIR is not reachable by the postgres user; cluster in $PG_HOME"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    say "▸" "postgres: creating a cluster in $PG_DATA"
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DATA" "$PG_SOCKETS"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      -E UTF8 >>"$PG_LOG" 2>&1 || die "postgres: initdb failed (log: $PG_LOG)"
  fi
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_SOCKETS" && touch "$PG_LOG" && chown postgres "$PG_LOG"
  postgres_auth_files
  if postgres_ready; then
    say "▸" "postgres: reusing this stack's server on $MM_PG_HOST:$MM_PG_PORT"
  else
    say "▸" "postgres: starting on $MM_PG_HOST:$MM_PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" \
      -o "-p $MM_PG_PORT -k $PG_SOCKETS -c listen_addresses=$MM_PG_HOST -c max_connections=300 -c shared_preload_libraries=pg_stat_statements" \
      start >/dev/null 9>&- || die "postgres: pg_ctl start failed (log: $PG_LOG)"
    wait_ready postgres postgres_ready
  fi
  postgres_setup
  postgres_login || die "postgres: $MM_PG_USER cannot log in with the password in .env (log: $PG_LOG)"
  say "✓" "postgres ready on $MM_PG_HOST:$MM_PG_PORT (database $MM_PG_DATABASE)"
}
postgres_down() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null && say "✓" "postgres stopped"
}

# --- NATS JetStream ---------------------------------------------------------------------------
NATS_CONF="$MM_DATA_DIR/nats/nats.conf"
nats_ready() { curl -fsS -o /dev/null "http://$MM_NATS_HOST:$MM_NATS_MONITOR_PORT/healthz?js-enabled-only=true" 2>/dev/null; }
# Whether the server answers PING after a CONNECT as this user (no user: anonymously).
nats_accepts() {
  local creds='' reply=''
  [ $# = 0 ] || creds=$(printf '"user":"%s","pass":"%s",' "$1" "$2")
  reply=$(exec 3<>"/dev/tcp/$MM_NATS_HOST/$MM_NATS_PORT" || exit
    read -r -t 5 _ <&3 || exit # INFO
    printf 'CONNECT {%s"verbose":false,"pedantic":false}\r\nPING\r\n' "$creds" >&3
    read -r -t 5 line <&3 && echo "$line") 2>/dev/null
  [[ $reply == PONG* ]]
}
nats_config() {
  NATS_LISTEN="$MM_NATS_HOST:$MM_NATS_PORT" NATS_MONITOR="$MM_NATS_HOST:$MM_NATS_MONITOR_PORT" \
    NATS_STORE_DIR="$MM_DATA_DIR/nats" MM_ALERT_SUBJECT=$MM_ALERT_SUBJECT sh "$ROOT/stack/nats/config.sh"
}
nats_up() {
  command -v nats-server >/dev/null || apt_install nats-server
  mkdir -p "$MM_DATA_DIR/nats"
  local config print; config=$(nats_config) || die "nats: no configuration"; print=$(fingerprint <<<"$config")
  if ours_and_current nats "$print"; then
    wait_ready nats nats_ready
    say "✓" "nats: reusing this stack's server on $MM_NATS_HOST:$MM_NATS_PORT"; return
  fi
  if ours_running nats; then
    say "▸" "nats: restarting this stack's server with the users and permissions of .env"
    spawned_down nats
  elif port_open "$MM_NATS_HOST" "$MM_NATS_PORT"; then
    nats_accepts ingest "$MM_NATS_INGEST_PASSWORD" && ! nats_accepts ||
      die "nats: the server on $MM_NATS_HOST:$MM_NATS_PORT is not this stack's and does not hold the" \
        "users of .env (or lets anyone in); stop it or choose another NATS_URL"
    say "✓" "nats: reusing the server on $MM_NATS_HOST:$MM_NATS_PORT"; return
  fi
  (umask 077 && printf '%s\n' "$config" >"$NATS_CONF")
  say "▸" "nats: starting JetStream on $MM_NATS_HOST:$MM_NATS_PORT (config $NATS_CONF, mode 0600)"
  spawn nats nats-server -c "$NATS_CONF"
  echo "$print" >"$RUN_DIR/nats.fingerprint"
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
# The mode a spawned Temporal runs in: its pid file is temporal.pid (dev) or temporal-server.pid.
# Only one on TEMPORAL_ADDRESS counts: the other mode may run beside it on its own port.
temporal_spawned_mode() {
  [ "$(cat "$RUN_DIR/temporal.address" 2>/dev/null)" = "$TEMPORAL_ADDRESS" ] || return 0
  if ours_running temporal; then echo dev; elif ours_running temporal-server; then echo server; fi
}
temporal_up() {
  temporal_install
  local host=${TEMPORAL_ADDRESS%:*} port=${TEMPORAL_ADDRESS##*:}
  # Neither mode authenticates anybody here: whoever reaches it can signal or cancel any workflow.
  [[ $host == 127.* || $host == localhost || $host == "[::1]" ]] ||
    die "temporal: the local Temporal only runs on loopback (TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS); a" \
      "frontend reachable from the network needs mTLS (docker-compose.yaml)"
  local running; running=$(temporal_spawned_mode)
  if [ -n "$running" ] && [ "$running" != "$MM_TEMPORAL_MODE" ]; then
    say "▸" "temporal: switching this stack's Temporal from $running to $MM_TEMPORAL_MODE"
    temporal_down
  fi
  if port_open "$host" "$port"; then
    wait_ready temporal temporal_ready
    say "✓" "temporal: reusing the server on $TEMPORAL_ADDRESS"
  elif [ "$MM_TEMPORAL_MODE" = server ]; then
    temporal_server_start "$host" "$port"
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
      --dynamic-config-value system.enableActivityEagerExecution=true \
      --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal
    echo "$TEMPORAL_ADDRESS" >"$RUN_DIR/temporal.address"
    wait_ready temporal temporal_ready
  fi
  temporal_namespace
  # A reused server (or a namespace created later) may lack the project's search attributes.
  local existing; existing=$("$TEMPORAL_BIN" operator search-attribute list --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" 2>/dev/null || true)
  for a in "${SEARCH_ATTRIBUTES[@]}"; do
    grep -qw "${a%=*}" <<<"$existing" && continue
    # A namespace just registered reaches the full server's frontend a few seconds later:
    # retried until it takes (bounded by MM_STACK_TIMEOUT).
    SEARCH_ATTRIBUTE=$a wait_ready temporal-server temporal_search_attribute_created
  done
  if [ "$(temporal_spawned_mode)" = server ]; then
    say "✓" "temporal server ready on $TEMPORAL_ADDRESS ($MM_TEMPORAL_SHARDS history shards; no Web UI:" \
      "the dev server's or docker-compose's)"
  else
    say "✓" "temporal ready on $TEMPORAL_ADDRESS (Web UI http://$host:$TEMPORAL_UI_PORT)"
  fi
}

temporal_search_attribute_created() {
  "$TEMPORAL_BIN" operator search-attribute create --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" --name "${SEARCH_ATTRIBUTE%=*}" \
    --type "${SEARCH_ATTRIBUTE#*=}" >/dev/null 2>&1 ||
    "$TEMPORAL_BIN" operator search-attribute list --address "$TEMPORAL_ADDRESS" \
      --namespace "$TEMPORAL_NAMESPACE" 2>/dev/null | grep -qw "${SEARCH_ATTRIBUTE%=*}"
}

# The namespace, registered when missing (the dev server registers its own; the full server none).
temporal_namespace_exists() {
  "$TEMPORAL_BIN" operator namespace describe --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1
}
temporal_namespace_registered() {
  temporal_namespace_exists || "$TEMPORAL_BIN" operator namespace create --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" --retention 72h >/dev/null 2>&1
}
temporal_namespace() {
  temporal_namespace_exists && return
  say "▸" "temporal: registering namespace $TEMPORAL_NAMESPACE"
  # Right after start-up the frontend may answer before history does: retried until it takes.
  wait_ready temporal-server temporal_namespace_registered
}

# The full server and its SQL tool, built once per machine into the tool cache with the schema
# files of the same module version.
temporal_server_install() {
  [ -x "$TEMPORAL_SERVER_HOME/bin/temporal-server" ] && [ -x "$TEMPORAL_SERVER_HOME/bin/temporal-sql-tool" ] &&
    [ -d "$TEMPORAL_SERVER_HOME/schema" ] && return
  command -v go >/dev/null || die "temporal: Go is needed to build the Temporal server (go install)"
  say "▸" "temporal: building the Temporal server v$TEMPORAL_SERVER_VERSION and its SQL tool with go install" \
    "(several minutes, once per machine; log $LOG_DIR/temporal-server-install.log)"
  local gobin log="$LOG_DIR/temporal-server-install.log"; gobin=$(mktemp -d)
  # -v names each package as it is built: a count every 100 shows progress.
  CGO_ENABLED=0 GOBIN="$gobin" go install -v "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" \
    "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION" 2>&1 | tee -a "$log" |
    awk '{ if (++n % 100 == 0) { printf "  … %d packages\n", n; fflush() } }' ||
    die "temporal: go install failed (log: $log)"
  local dir; dir=$(cd "$gobin" && go mod download -json "go.temporal.io/server@v$TEMPORAL_SERVER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/schema/postgresql/v12" ] || die "temporal: no PostgreSQL schema in the module ($dir)"
  mkdir -p "$TEMPORAL_SERVER_HOME/bin" "$TEMPORAL_SERVER_HOME/schema"
  cp -R "$dir/schema/postgresql/v12/." "$TEMPORAL_SERVER_HOME/schema/"
  chmod -R u+w "$TEMPORAL_SERVER_HOME/schema"
  mv "$gobin/server" "$TEMPORAL_SERVER_HOME/bin/temporal-server"
  mv "$gobin/sql" "$TEMPORAL_SERVER_HOME/bin/temporal-sql-tool"
  rmdir "$gobin"
  say "✓" "temporal: server v$TEMPORAL_SERVER_VERSION installed in $TEMPORAL_SERVER_HOME"
}

# Role, databases and schemas on this stack's PostgreSQL: created when missing, brought to the
# schema version of the installed server otherwise (update-schema applies only what is new).
temporal_server_schemas() {
  [ "${MM_PG_EXTERNAL:-0}" = 1 ] &&
    die "temporal: the full server sets itself up on this stack's PostgreSQL (DATABASE_URL names another)"
  postgres_ready || postgres_up
  as_pg "$PG_BIN/psql" -q -h "$PG_SOCKETS" -p "$MM_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -f - <"$ROOT/stack/postgres/temporal-role.sql" >/dev/null ||
    die "temporal: setting up role temporal and its databases failed (log: $PG_LOG)"
  local db dir sqltool="$TEMPORAL_SERVER_HOME/bin/temporal-sql-tool"
  for db in temporal temporal_visibility; do
    dir=temporal; [ "$db" = temporal ] || dir=visibility
    # The password by environment (SQL_PASSWORD), never on a command line.
    local tool=(env SQL_PASSWORD="$MM_TEMPORAL_PG_PASSWORD" "$sqltool" --plugin postgres12
      --ep "$MM_PG_HOST" -p "$MM_PG_PORT" -u temporal --db "$db")
    if ! PGPASSWORD=$MM_TEMPORAL_PG_PASSWORD psql -h "$MM_PG_HOST" -p "$MM_PG_PORT" -U temporal -d "$db" \
      -Atqc "SELECT 1 FROM schema_version LIMIT 1" >/dev/null 2>&1; then
      say "▸" "temporal: creating the schema of $db"
      "${tool[@]}" setup-schema -v 0.0 >>"$LOG_DIR/temporal-server.log" 2>&1 ||
        die "temporal: setup-schema of $db failed (log: $LOG_DIR/temporal-server.log)"
    fi
    "${tool[@]}" update-schema -d "$TEMPORAL_SERVER_HOME/schema/$dir/versioned" \
      >>"$LOG_DIR/temporal-server.log" 2>&1 ||
      die "temporal: update-schema of $db failed (log: $LOG_DIR/temporal-server.log)"
  done
}

temporal_server_start() {
  local host=$1 port=$2 dir="$MM_DATA_DIR/temporal-server"
  [[ $MM_TEMPORAL_SHARDS =~ ^[1-9][0-9]{0,3}$ ]] ||
    die "temporal: MM_TEMPORAL_SHARDS must be a whole number from 1 to 9999 (is '$MM_TEMPORAL_SHARDS')"
  temporal_server_install
  temporal_server_schemas
  # The shard count is the cluster's for life: a different one would strand every workflow.
  local shards; shards=$(PGPASSWORD=$MM_TEMPORAL_PG_PASSWORD psql -h "$MM_PG_HOST" -p "$MM_PG_PORT" \
    -U temporal -d temporal -Atqc "SELECT count(*) FROM shards" 2>/dev/null || echo 0)
  [ "$shards" = 0 ] || [ "$shards" = "$MM_TEMPORAL_SHARDS" ] ||
    die "temporal: the cluster in database temporal has $shards history shards, MM_TEMPORAL_SHARDS=" \
      "$MM_TEMPORAL_SHARDS; set it back, or drop databases temporal and temporal_visibility"
  mkdir -p "$dir/config"
  # Locally also: a search attribute the stack script creates is usable at once, not after the
  # cache's refresh (a setting for tests, so not in the file docker-compose mounts).
  { cat "$ROOT/stack/temporal/dynamicconfig.yaml"
    printf 'system.forceSearchAttributesCacheRefreshOnRead:\n  - value: true\n    constraints: {}\n'
  } >"$dir/dynamicconfig.yaml"
  (umask 077 && TEMPORAL_HOST=$host TEMPORAL_PORT=$port TEMPORAL_SHARDS=$MM_TEMPORAL_SHARDS \
    PG_HOST=$MM_PG_HOST PG_PORT=$MM_PG_PORT PG_USER=temporal PG_PASSWORD=$MM_TEMPORAL_PG_PASSWORD \
    DYNAMIC_CONFIG="$dir/dynamicconfig.yaml" sh "$ROOT/stack/temporal/config.sh" >"$dir/config/development.yaml") ||
    die "temporal: no server configuration"
  say "▸" "temporal: starting the full server v$TEMPORAL_SERVER_VERSION on $TEMPORAL_ADDRESS" \
    "($MM_TEMPORAL_SHARDS history shards, PostgreSQL $MM_PG_HOST:$MM_PG_PORT)"
  # --allow-no-auth: loopback only (checked above), like the dev server; compose adds mTLS.
  spawn temporal-server "$TEMPORAL_SERVER_HOME/bin/temporal-server" --root "$dir" --config config \
    --env development --allow-no-auth start
  echo "$TEMPORAL_ADDRESS" >"$RUN_DIR/temporal.address"
  wait_ready temporal-server temporal_ready
}

# --- Neo4j ------------------------------------------------------------------------------------
neo4j_ready() { port_open "${MM_NEO4J_BOLT_ADDRESS%:*}" "${MM_NEO4J_BOLT_ADDRESS##*:}"; }
neo4j_up() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  bash "$ROOT/stack/neo4j/install.sh" "$NEO4J_HOME" || die "neo4j: install failed"
  local print; print=$(fingerprint <<<"$NEO4J_USER:$NEO4J_PASSWORD")
  if ours_and_current neo4j "$print"; then
    say "✓" "neo4j: reusing this stack's server on $MM_NEO4J_BOLT_ADDRESS"; return
  fi
  if ours_running neo4j; then
    # The launcher sets the password of .env when it starts (an older stack.sh used a fixed one).
    say "▸" "neo4j: restarting this stack's server to set the password of .env"
    spawned_down neo4j
  elif neo4j_ready; then
    say "✓" "neo4j: reusing the server on $MM_NEO4J_BOLT_ADDRESS"; return
  fi
  mkdir -p "$MM_DATA_DIR/neo4j"
  say "▸" "neo4j: starting $NEO4J_VERSION, Bolt on $MM_NEO4J_BOLT_ADDRESS"
  NEO4J_BOLT_ADDRESS=$MM_NEO4J_BOLT_ADDRESS NEO4J_USER=$NEO4J_USER NEO4J_PASSWORD=$NEO4J_PASSWORD \
    spawn neo4j bash "$ROOT/stack/neo4j/run.sh" "$NEO4J_HOME" "$MM_DATA_DIR/neo4j"
  echo "$print" >"$RUN_DIR/neo4j.fingerprint"
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
  rm -f "$pidfile" "$RUN_DIR/$name.fingerprint"
}
nats_down() { spawned_down nats; }
temporal_down() { spawned_down temporal; spawned_down temporal-server; }
neo4j_down() { spawned_down neo4j; }

status_line() {
  local name=$1 ready=$2 where=$3
  if $ready; then say "●" "$name up ($where)"; else say "○" "$name down ($where)"; fi
}

selected() { if [ $# -gt 0 ]; then echo "$@"; else echo "${SERVICES[@]}"; fi; }

main() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  local cmd=${1:-}; shift || true
  if [ "$cmd" = up ] && [ "${1:-}" = --temporal ]; then
    MM_TEMPORAL_MODE=${2:-}; shift 2 || die "usage: stack.sh up --temporal dev|server [service…]"
  fi
  [[ $MM_TEMPORAL_MODE == dev || $MM_TEMPORAL_MODE == server ]] ||
    die "MM_TEMPORAL_MODE (or --temporal) must be dev or server (is '$MM_TEMPORAL_MODE')"
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
    *) die "usage: stack.sh up [--temporal dev|server]|down|status|logs [service…]";;
  esac
}

main "$@"
