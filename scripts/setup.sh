#!/usr/bin/env bash
# Everything Postern needs on a fresh machine, idempotent and quick when already done:
# npm dependencies (incl. the Node 24 runtime package); with --tests the Debian packages listed in
# scripts/packages.sh (real peers: swaks with TLS, Postfix's smtp-source/smtp-sink, dnsmasq, Prometheus; the cluster
# tier's containerd, runc, CNI plugins, buildah, iptables) and the infrastructure binaries (nats-server; with
# --tests also etcd, the Kubernetes commands, helm, CoreDNS; and schemathesis from PyPI in a venv) cached outside the
# repository.
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
  # shellcheck source=packages.sh
  source scripts/packages.sh
  bash scripts/debian-packages.sh "${TEST_PACKAGES[@]}" "${CLUSTER_PACKAGES[@]}"
  # A tool that lacks a capability the suite uses fails set-up loudly instead of failing (or skipping) tests later.
  swaks --support 2>&1 | grep -q '^=== TLS supported' || { log "swaks has no TLS support (libnet-ssleay-perl, libio-socket-ssl-perl)"; exit 1; }
  bash scripts/test-bins.sh all >/dev/null
  bash scripts/python-tools.sh schemathesis >/dev/null
else
  bash scripts/test-bins.sh nats >/dev/null
fi
