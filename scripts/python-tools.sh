#!/usr/bin/env bash
# Python tools the test suite runs, installed from PyPI into a venv under the cache directory keyed by version
# (outside the repository), so a second run costs nothing. Uses Debian's python3 (+ python3-venv, named in
# scripts/packages.sh), not whatever python3 comes first on the PATH.
#
#   scripts/python-tools.sh [schemathesis]   prints KEY=path lines (also written to $CACHE/env-python.sh)
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

CACHE="${POSTERN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/postern}"
mkdir -p "$CACHE"
PYTHON=${POSTERN_PYTHON:-/usr/bin/python3}

log() { echo "[python-tools] $*" >&2; }

# A venv is not relocatable (its scripts name their own path), so it is built in place and marked complete last;
# an interrupted install is found incomplete and built again.
provide_schemathesis() {
  local dir="$CACHE/schemathesis-$SCHEMATHESIS_VERSION"
  if [ ! -f "$dir/.complete" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    "$dir/bin/st" --version >&2
    touch "$dir/.complete"
  fi
  echo "SCHEMATHESIS_BIN=$dir/bin/st"
}

what=${1:-schemathesis}
{
  case "$what" in
    schemathesis) provide_schemathesis ;;
    *) log "unknown tool $what"; exit 2 ;;
  esac
} | tee "$CACHE/env-python.sh"
