#!/usr/bin/env bash
# Provisions what `npm run bench` needs on a fresh clone, idempotent: npm dependencies and nats-server
# (scripts/setup.sh), Postfix (the baseline, plus smtp-source) and dnsmasq from Debian, and Haraka from npm
# into a throwaway directory outside the repository (optional: the bench runs without it).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
log() { echo "[bench-setup] $*" >&2; }

bash scripts/setup.sh

missing=()
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || missing+=(postfix)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    # Keep package scripts from starting daemons (Postfix would listen on port 25 of every interface).
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    log "missing ${missing[*]} and not root: the bench will skip what it cannot run"
  fi
fi
# Postfix refuses to run its daemons as root without the postfix user; the Debian package creates it.
id postfix >/dev/null 2>&1 || log "no postfix user: Postfix runs will be skipped"

haraka_dir="${BENCH_HARAKA_DIR:-$HOME/.cache/postern/bench/haraka}"
if [ ! -x "$haraka_dir/node_modules/Haraka/bin/haraka" ] && [ "${BENCH_NO_HARAKA:-}" != 1 ]; then
  log "installing Haraka into $haraka_dir (optional)"
  mkdir -p "$haraka_dir"
  [ -f "$haraka_dir/package.json" ] || echo '{"name":"haraka-bench","private":true}' >"$haraka_dir/package.json"
  # Built with the project's Node 24 so native modules match the runtime the bench uses.
  (cd "$haraka_dir" && PATH="$root/node_modules/.bin:$PATH" \
    npm install --no-audit --no-fund Haraka >install.log 2>&1) || log "Haraka did not install (see $haraka_dir/install.log); continuing without it"
fi
