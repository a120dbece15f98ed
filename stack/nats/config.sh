#!/bin/sh
# Prints the NATS server configuration of the service, for the local stack (scripts/stack.sh) and
# for docker compose alike (POSIX sh: the nats alpine image runs it):
#
#   NATS_LISTEN=host:port NATS_MONITOR=host:port NATS_STORE_DIR=dir MM_ALERT_SUBJECT=alerts \
#   MM_NATS_{API,WORKER,INGEST,GATEWAY,PUBLISHER}_PASSWORD=… sh stack/nats/config.sh >nats.conf
#
# One user per role of the service, each allowed only its own subjects (src/gateway/subjects.ts),
# plus `publisher` for Wazuh and the tests. Replies go to a per-user inbox prefix
# (src/connections.ts), so no user reads another's replies or JetStream deliveries. Without a
# user, nobody gets in.
set -eu
for v in NATS_LISTEN NATS_MONITOR NATS_STORE_DIR MM_ALERT_SUBJECT MM_NATS_API_PASSWORD \
  MM_NATS_WORKER_PASSWORD MM_NATS_INGEST_PASSWORD MM_NATS_GATEWAY_PASSWORD MM_NATS_PUBLISHER_PASSWORD; do
  eval "[ -n \"\${$v:-}\" ]" || { echo "nats config: $v is not set" >&2; exit 1; }
done
cat <<EOF
# Written by stack/nats/config.sh at every start, from the passwords in .env.
server_name: mitigation-manager
listen: "$NATS_LISTEN"
http: "$NATS_MONITOR"
jetstream { store_dir: "$NATS_STORE_DIR" }
authorization {
  users: [
    { user: api, password: "$MM_NATS_API_PASSWORD", permissions: {
        publish: ["mm.agent.*.control"], subscribe: ["_INBOX_api.>"] } }
    { user: worker, password: "$MM_NATS_WORKER_PASSWORD", permissions: {
        publish: ["mm.agent.*.cmd", "mm.events.>"], subscribe: ["_INBOX_worker.>"] } }
    { user: gateway, password: "$MM_NATS_GATEWAY_PASSWORD", permissions: {
        publish: ["mm.agent.*.cmd", "mm.agent.*.control"],
        subscribe: ["mm.agent.*.*", "_INBOX_gateway.>"] } }
    # Creates the alert streams and their durable consumers at start, then pulls and acknowledges.
    { user: ingest, password: "$MM_NATS_INGEST_PASSWORD", permissions: {
        publish: ["\$JS.API.INFO", "\$JS.API.STREAM.INFO.*", "\$JS.API.STREAM.CREATE.*",
          "\$JS.API.STREAM.UPDATE.*", "\$JS.API.STREAM.DELETE.*", "\$JS.API.CONSUMER.CREATE.*",
          "\$JS.API.CONSUMER.CREATE.*.>", "\$JS.API.CONSUMER.DURABLE.CREATE.*.*",
          "\$JS.API.CONSUMER.INFO.*.*", "\$JS.API.CONSUMER.MSG.NEXT.*.*", "\$JS.ACK.>"],
        subscribe: ["_INBOX_ingest.>"] } }
    # Alerts only: on the alert subject, or below it (each test file has a subject of its own);
    # it may read the events the worker forwards to a SIEM (MM_SIEM_NATS_SUBJECT below mm.events).
    { user: publisher, password: "$MM_NATS_PUBLISHER_PASSWORD", permissions: {
        publish: ["$MM_ALERT_SUBJECT", "$MM_ALERT_SUBJECT.>"],
        subscribe: ["_INBOX_publisher.>", "mm.events.>"] } }
  ]
}
EOF
