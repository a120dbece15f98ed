#!/usr/bin/env bash
# Installs embedded Neo4j for the local stack into <install-dir>:
#   <install-dir>/lib/      runtime jars, resolved from Maven Central by mvn (~1 min, ~125 MB the first time)
#   <install-dir>/classes/  the compiled Neo4jLauncher
#   <install-dir>/READY-<version>  written last; holds a checksum of pom.xml + launcher source
#
#   bash stack/neo4j/install.sh <install-dir>
#
# Idempotent and cheap when done: exits at once if the marker exists for the same sources.
# <install-dir> may be a per-user cache shared by several clones, so the build happens in a staging
# directory beside it, is moved into place in one step, and concurrent runs are serialised by flock.
# Writes nothing into the project tree (Maven's target/ goes to the staging directory).
set -euo pipefail

die() { echo "neo4j install: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=stack/install-lib.sh
source "$here/../install-lib.sh"
resolve_install_dir stack/neo4j/install.sh "$@"

version=$(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$here/pom.xml")
[[ -n $version ]] || die "no <neo4j.version> in $here/pom.xml"
marker="$install_dir/READY-$version"
# A launcher or pom edit must not be hidden by a stale shared cache, hence the checksum.
stamp=$(cat "$here/pom.xml" "$here"/src/main/java/mitigation/stack/*.java | sha256sum | cut -d' ' -f1)
is_ready() { [[ -f $marker && $(<"$marker") == "$stamp" ]]; }
is_ready && exit 0

command -v mvn >/dev/null || die "mvn (Maven 3) not found; install it, e.g. apt-get install maven"
command -v javac >/dev/null || die "javac not found; install a JDK 17 or 21, e.g. apt-get install openjdk-17-jdk-headless"
java_major=$(javac -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p')
[[ ${java_major:-0} -ge 17 ]] || die "Neo4j $version needs a JDK >= 17, javac reports: $(javac -version 2>&1)"

if command -v flock >/dev/null; then
  exec 9>"$install_dir.lock"
  flock 9 # another clone may be installing the same version right now
  is_ready && exit 0
fi

stage=$(mktemp -d "$install_dir.tmp.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage" # mktemp makes it 0700
mkdir -p "$stage/build"
cp "$here/pom.xml" "$stage/build/pom.xml"

echo "neo4j: resolving Neo4j $version jars from Maven Central (first time ~1 min, ~125 MB)…"
# mvn's output goes to a log (even -q leaves colour escapes on the terminal); shown on failure.
if ! mvn -q -B -f "$stage/build/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$stage/lib" >"$stage/mvn.log" 2>&1; then
  tail -n 40 "$stage/mvn.log" >&2
  die "mvn could not resolve org.neo4j:neo4j + neo4j-bolt $version (is Maven Central reachable? mvn output above)"
fi

echo "neo4j: compiling the launcher…"
javac --release 17 -nowarn -cp "$stage/lib/*" -d "$stage/classes" "$here"/src/main/java/mitigation/stack/*.java \
  || die "javac failed to compile $here/src (see above)"

rm -rf "$stage/build" "$stage/mvn.log"
echo "$stamp" >"$stage/READY-$version"
swap_into_place "$stage"
echo "neo4j: installed Neo4j $version in $install_dir ($(du -sh "$install_dir" | cut -f1))"
