#!/usr/bin/env bash
# Installs schemathesis (PyPI) into a virtualenv in the per-user cache that every clone on the machine
# shares (like the stack's other tools), so only the first run pays for the install. Prints the path
# of the `schemathesis` executable on its last line; progress goes to stderr.
set -euo pipefail
CACHE=${MM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mitigation-manager}
# Pinned so that every run generates with the same engine; another version gets its own venv.
VERSION=${MM_SCHEMATHESIS_VERSION:-4.32.5}
VENV="$CACHE/schemathesis-$VERSION"
BIN="$VENV/bin/schemathesis"
# The stamp is written last, so an install interrupted half-way is redone, never used.
if [ ! -f "$VENV/.installed" ]; then
  mkdir -p "$CACHE"
  # Two test runs on one machine may both want it: one installs, the other waits.
  exec 9>"$VENV.lock"
  flock 9
  if [ ! -f "$VENV/.installed" ]; then
    command -v python3 >/dev/null || { echo "✗ python3 is needed for the API fuzzer" >&2; exit 1; }
    echo "▸ installing schemathesis $VERSION (PyPI) into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off \
      "schemathesis==$VERSION" 2>&1 | grep -E '^(Collecting|Successfully|ERROR)' >&2 || true
    [ -x "$BIN" ] || { echo "✗ installing schemathesis failed" >&2; exit 1; }
    touch "$VENV/.installed"
    echo "▸ schemathesis $VERSION installed" >&2
  fi
  exec 9>&-
fi
echo "$BIN"
