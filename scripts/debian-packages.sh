#!/usr/bin/env bash
# Installs the Debian packages that provide the given commands, when a command is missing:
#   scripts/debian-packages.sh [--optional] COMMAND:PACKAGE ...
# As root it installs them (with a policy-rc.d guard so no package starts a daemon — Postfix would otherwise
# listen on port 25 of every interface). Not root: fails, or with --optional only warns.
set -euo pipefail
optional=false
[ "${1:-}" = "--optional" ] && { optional=true; shift; }
log() { echo "[debian-packages] $*" >&2; }

missing=()
for pair in "$@"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  if $optional; then log "missing ${missing[*]} and not root: continuing without them"; exit 0; fi
  log "missing ${missing[*]}: install them (apt-get install ${missing[*]}) and run again"
  exit 1
fi
log "installing Debian packages: ${missing[*]}"
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
