#!/usr/bin/env bash
# Runs Neo4j in the foreground (the caller backgrounds it and waits for the Bolt port):
#
#   bash stack/neo4j/run.sh <install-dir> <data-dir>
#
# Environment: NEO4J_BOLT_ADDRESS (127.0.0.1:7687), NEO4J_USER (neo4j),
# NEO4J_PASSWORD (required, min. 8 chars), NEO4J_HEAP (max heap, 768m),
# NEO4J_PAGECACHE (256m). Logs go to stdout (plus <data-dir>/logs/debug.log); prints
# "neo4j ready bolt://<addr>" once Bolt accepts connections; SIGTERM/SIGINT stop it cleanly.
set -euo pipefail

die() { echo "neo4j run: $*" >&2; exit 1; }

[[ $# -eq 2 && -n $1 && -n $2 ]] || die "usage: bash stack/neo4j/run.sh <install-dir> <data-dir>"
install_dir=$1
data_dir=$2
[[ -d $install_dir/classes && -d $install_dir/lib ]] \
  || die "$install_dir is not a Neo4j install; run: bash stack/neo4j/install.sh $install_dir"
mkdir -p "$data_dir"

export NEO4J_BOLT_ADDRESS=${NEO4J_BOLT_ADDRESS:-127.0.0.1:7687}
export NEO4J_USER=${NEO4J_USER:-neo4j}
: "${NEO4J_PASSWORD:?must be set (scripts/env.sh keeps one per installation in .env)}" # env, not argv: argv shows in ps
export NEO4J_PAGECACHE=${NEO4J_PAGECACHE:-256m}

java=java
[[ -n ${JAVA_HOME:-} ]] && java=$JAVA_HOME/bin/java

# --add-opens: Neo4j reaches into NIO internals (direct buffers, file descriptors for
# fadvise/preallocation); without them it logs warnings and takes slower fallbacks.
exec "$java" \
  -Xms256m -Xmx"${NEO4J_HEAP:-768m}" \
  -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
  --add-opens=java.base/java.nio=ALL-UNNAMED \
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
  --add-opens=java.base/java.io=ALL-UNNAMED \
  -Dio.netty.tryReflectionSetAccessible=true \
  -cp "$install_dir/classes:$install_dir/lib/*" \
  mitigation.stack.Neo4jLauncher --data-dir "$data_dir"
