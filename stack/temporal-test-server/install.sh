#!/usr/bin/env bash
# Installs Temporal's time-skipping test server (Java, from Maven Central) for test/timeskip:
#   <install-dir>/lib/                    its jars, resolved by mvn (~10 s, ~35 MB the first time)
#   <install-dir>/app.jsa                 a class-data-sharing archive of its start-up
#   <install-dir>/bin/temporal-test-server  the executable the SDK starts with the port as argument
#   <install-dir>/READY                   written last; holds a checksum of pom.xml + this script
#
#   bash stack/temporal-test-server/install.sh <install-dir>
#
# Prints the executable's path on its last line; progress goes to stderr. Idempotent and cheap when
# done. <install-dir> may be in the per-user cache shared by several clones: the jars are resolved in a
# staging directory beside it and moved into place in one step, the marker is written last, and
# concurrent runs are serialised by flock.
set -euo pipefail

die() { echo "temporal-test-server install: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=stack/install-lib.sh
source "$here/../install-lib.sh"
resolve_install_dir stack/temporal-test-server/install.sh "$@"
exe="$install_dir/bin/temporal-test-server"
marker="$install_dir/READY"
# A pom or script edit must not be hidden by a stale shared cache, hence the checksum.
stamp=$(cat "$here/pom.xml" "$here/install.sh" | sha256sum | cut -d' ' -f1)
is_ready() { [[ -f $marker && $(<"$marker") == "$stamp" && -x $exe ]]; }
is_ready && { echo "$exe"; exit 0; }

command -v mvn >/dev/null || die "mvn (Maven 3) not found; install it, e.g. apt-get install maven"
command -v java >/dev/null || die "java not found; install a JRE 17 or later, e.g. apt-get install openjdk-17-jre-headless"
# The archive below belongs to one JVM build: the wrapper names that JVM, not whatever is first on PATH later.
java=$(readlink -f "$(command -v java)")

if command -v flock >/dev/null; then
  exec 9>"$install_dir.lock"
  flock 9 # another clone may be installing right now
  is_ready && { echo "$exe"; exit 0; }
fi

version=$(sed -n 's:.*<test-server.version>\(.*\)</test-server.version>.*:\1:p' "$here/pom.xml")
stage=$(mktemp -d "$install_dir.tmp.XXXXXX")
server=''
trap '[[ -z $server ]] || kill "$server" 2>/dev/null; rm -rf "$stage"' EXIT
chmod 755 "$stage" # mktemp makes it 0700
mkdir -p "$stage/build" "$stage/bin"
cp "$here/pom.xml" "$stage/build/pom.xml"

echo "▸ temporal-test-server: resolving io.temporal:temporal-test-server:$version from Maven Central…" >&2
# mvn's output goes to a log (even -q leaves colour escapes on the terminal); shown on failure.
if ! mvn -q -B -f "$stage/build/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$stage/lib" >"$stage/mvn.log" 2>&1; then
  tail -n 40 "$stage/mvn.log" >&2
  die "mvn could not resolve io.temporal:temporal-test-server:$version (is Maven Central reachable? mvn output above)"
fi

rm -rf "$stage/build" "$stage/mvn.log"
swap_into_place "$stage"
trap '[[ -z $server ]] || kill "$server" 2>/dev/null' EXIT

# The SDK gives a test server 5 s to answer; a cold JVM loading these jars takes 2 s on an idle
# machine and more on a busy one. An archive of the classes loaded at start-up cuts that to ~0.5 s.
echo "▸ temporal-test-server: recording a class-data-sharing archive of its start-up…" >&2
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$java" -XX:ArchiveClassesAtExit="$install_dir/app.jsa" -Xmx512m -cp "$install_dir/lib/*" io.temporal.testserver.TestServer "$port" \
  >"$install_dir/cds.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$install_dir/cds.log" >&2; die "the test server exited during start-up"; }
  sleep 0.1
done
kill "$server" # the JVM writes the archive on its way out
wait "$server" || true
server=''
[[ -f $install_dir/app.jsa ]] || echo "▸ temporal-test-server: no archive written; it will start without one" >&2

cat >"$install_dir/bin/temporal-test-server" <<WRAPPER
#!/bin/sh
# Written by stack/temporal-test-server/install.sh. Started by @temporalio/testing as
# \`temporal-test-server <port> [extra args]\`; exec, so that the SDK's kill reaches the JVM.
exec "$java" -Xshare:auto -XX:SharedArchiveFile="$install_dir/app.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off \\
  -Xmx512m -cp "$install_dir/lib/*" io.temporal.testserver.TestServer "\$@"
WRAPPER
chmod 755 "$install_dir/bin/temporal-test-server"

rm -f "$install_dir/cds.log"
echo "$stamp" >"$marker"
echo "▸ temporal-test-server: $version installed in $install_dir ($(du -sh "$install_dir" | cut -f1))" >&2
echo "$exe"
