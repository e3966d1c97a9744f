#!/usr/bin/env bash
# Everything Postern needs on a fresh machine, idempotent and quick when already done:
# npm dependencies (incl. the Node 24 runtime package), Debian packages used as real peers in tests and
# bench (swaks, Postfix's smtp-source/smtp-sink, dnsmasq, Prometheus for the dashboard queries), and the infrastructure binaries (nats-server;
# with --tests also etcd, kube-apiserver, helm) cached outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=false
[ "${1:-}" = "--tests" ] && want_tests=true

log() { echo "[setup] $*" >&2; }

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
node_modules/.bin/node --version | grep -q '^v24\.' || { log "node_modules/.bin/node is not Node 24"; exit 1; }

if $want_tests; then
  bash scripts/debian-packages.sh swaks:swaks smtp-source:postfix dnsmasq:dnsmasq-base prometheus:prometheus
  bash scripts/test-bins.sh all >/dev/null
else
  bash scripts/test-bins.sh nats >/dev/null
fi
