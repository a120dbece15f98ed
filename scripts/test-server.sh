#!/usr/bin/env bash
# Installs (when missing) Temporal's time-skipping test server for test/timeskip into the per-user
# tool cache every clone shares, and prints the path of its executable on the last line; progress
# goes to stderr. The vitest global setup runs it, so a clean clone's `npm test` gets it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh" >&2
command -v java >/dev/null || apt_install openjdk-17-jre-headless >&2
command -v mvn >/dev/null || apt_install maven >&2
VERSION=$(sed -n 's:.*<test-server.version>\(.*\)</test-server.version>.*:\1:p' "$ROOT/stack/temporal-test-server/pom.xml")
bash "$ROOT/stack/temporal-test-server/install.sh" "$MM_CACHE_DIR/temporal-test-server-$VERSION"
