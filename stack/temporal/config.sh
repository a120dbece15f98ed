#!/bin/sh
# Prints the full Temporal server's configuration (development.yaml) for scripts/stack.sh: every
# service on loopback, persistence and visibility in the project's PostgreSQL. The gRPC ports of
# the other services follow the frontend's (7233 → history 7234, matching 7235, worker 7239;
# membership 300 below each, HTTP 10 above), so two stacks on different ports do not collide.
# Environment: TEMPORAL_HOST, TEMPORAL_PORT, TEMPORAL_SHARDS, PG_HOST, PG_PORT, PG_USER,
# PG_PASSWORD (the file holding it is written mode 0600), DYNAMIC_CONFIG (a file path).
set -eu
p=$TEMPORAL_PORT
service() { # name grpc-port
  cat <<YAML
  $1:
    rpc:
      grpcPort: $2
      membershipPort: $(($2 - 300))
      bindOnIP: "$TEMPORAL_HOST"
YAML
}
store() { # name database max-connections
  cat <<YAML
    $1:
      sql:
        pluginName: postgres12
        databaseName: $2
        connectAddr: "$PG_HOST:$PG_PORT"
        connectProtocol: tcp
        user: "$PG_USER"
        password: "$PG_PASSWORD"
        maxConns: $3
        maxIdleConns: $3
        maxConnLifetime: 1h
YAML
}
cat <<YAML
# Written by scripts/stack.sh at every start of the Temporal server (MM_TEMPORAL_MODE=server).
log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  # Fixed when the cluster is created: changing it needs fresh temporal databases.
  numHistoryShards: $TEMPORAL_SHARDS
  datastores:
$(store default temporal 10)
$(store visibility temporal_visibility 3)
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "$TEMPORAL_HOST"
services:
$(service frontend "$p")
      httpPort: $((p + 10))
$(service history $((p + 1)))
$(service matching $((p + 2)))
$(service worker $((p + 6)))
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "$TEMPORAL_HOST:$p"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "$DYNAMIC_CONFIG"
  pollInterval: 60s
YAML
