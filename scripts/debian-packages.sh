#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet (checked with dpkg, not by looking for a command:
# a command can exist without the library package that gives it a capability, e.g. swaks without Net::SSLeay):
#   scripts/debian-packages.sh [--optional] PACKAGE ...
# As root it installs them (with a policy-rc.d guard so no package starts a daemon — Postfix would otherwise
# listen on port 25 of every interface, containerd would start on its own). Not root: fails, or with --optional
# only warns. The lists of what each part of the project needs live in scripts/packages.sh.
set -euo pipefail
optional=false
[ "${1:-}" = "--optional" ] && { optional=true; shift; }
log() { echo "[debian-packages] $*" >&2; }

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
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
