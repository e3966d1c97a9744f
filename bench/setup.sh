#!/usr/bin/env bash
# Provisions what `npm run bench` needs on a fresh clone, idempotent: npm dependencies and nats-server
# (scripts/setup.sh), Postfix (the baseline, plus smtp-source) and dnsmasq from Debian, and Haraka from npm
# into a throwaway directory outside the repository (optional: the bench runs without it).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
log() { echo "[bench-setup] $*" >&2; }

bash scripts/setup.sh

source scripts/packages.sh
bash scripts/debian-packages.sh --optional "${BENCH_PACKAGES[@]}"
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
