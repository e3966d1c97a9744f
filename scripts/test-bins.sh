#!/usr/bin/env bash
# Provides the real infrastructure binaries Postern's tests and local mode run against:
#   nats-server (JetStream), etcd + kube-apiserver (envtest-style control plane), helm.
# Each is taken from the environment when given, else built from its Go module into a cache
# directory OUTSIDE the repository, keyed by version, so a second run costs nothing.
#
#   scripts/test-bins.sh [nats|k8s|helm|coredns|prometheus|cluster|all]   (default: all)
#   prints KEY=path lines for what it provided (also written to $CACHE/env.sh)
set -euo pipefail
# A failed build inside $(...) must stop the script, not leave an empty cache entry behind.
shopt -s inherit_errexit

NATS_VERSION=v2.12.15
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.19.5
COREDNS_VERSION=v1.15.0
# Prometheus 3.16.0 (its Go module is tagged v0.<major*100+minor>.<patch>). Debian's build lacks kubernetes_sd_configs.
PROMETHEUS_VERSION=v0.316.0

CACHE="${POSTERN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/postern}"
mkdir -p "$CACHE"
export GOFLAGS="${GOFLAGS:-} -trimpath"
export CGO_ENABLED=0

log() { echo "[test-bins] $*" >&2; }

need_go() {
  command -v go >/dev/null || { log "go is required to build $1 (or set the matching env var)"; exit 1; }
}

# Builds package $3 from module $1@$2 in a throwaway module; $4 = output path; $5 = optional replace block.
build_from_module() {
  local ver=$2 pkg=$3 out=$4 replaces=${5:-}
  local dir="$CACHE/build/$(basename "$out")-$ver"
  rm -rf "$dir"; mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module postern.dev/testbin
go 1.24
$replaces
GOMOD
  (cd "$dir" && go get "$pkg@$ver" && go build -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

provide_nats() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then echo "NATS_SERVER_BIN=$NATS_SERVER_BIN"; return; fi
  local out="$CACHE/nats-server-$NATS_VERSION/nats-server"
  if [ ! -x "$out" ]; then
    need_go nats-server
    log "building nats-server $NATS_VERSION (once; cached in $CACHE)"
    mkdir -p "$(dirname "$out")"
    GOBIN="$(dirname "$out")" go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
  fi
  echo "NATS_SERVER_BIN=$out"
}

provide_etcd() {
  local out="$CACHE/etcd-$ETCD_VERSION/etcd"
  if [ ! -x "$out" ]; then
    need_go etcd
    log "building etcd $ETCD_VERSION (once; cached in $CACHE)"
    mkdir -p "$(dirname "$out")"
    build_from_module go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$out"
  fi
  echo "$out"
}

# The Kubernetes commands, all from one `go build` of the k8s.io/kubernetes module (they share most packages),
# version-stamped like an upstream release: an unstamped build reports v0.0.0-master, which breaks helm's
# kubeVersion constraints and semverCompare on .Capabilities.KubeVersion. kube-apiserver serves the envtest tier;
# the rest (kubelet, controller-manager, scheduler, kube-proxy, kubectl) the cluster tier.
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
provide_kube() {
  local dir="$CACHE/kubernetes-$K8S_VERSION"
  local missing=false c
  for c in "${KUBE_COMMANDS[@]}"; do [ -x "$dir/$c" ] || missing=true; done
  if $missing; then
    need_go kubernetes
    log "building Kubernetes $K8S_VERSION (${KUBE_COMMANDS[*]}; once, several minutes; cached in $CACHE)"
    # k8s.io/kubernetes requires its staging modules at v0.0.0; each is published as v0.<minor>.<patch>.
    local modfile
    modfile=$(cd "$CACHE" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    local staging="v0${K8S_VERSION#v1}"
    local replaces
    replaces=$(grep -E '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "$modfile" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}' | sort -u)
    local major minor stamp="" pkgs=() build="$CACHE/build/kubernetes-$K8S_VERSION"
    major=${K8S_VERSION#v}; major=${major%%.*}
    minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      stamp+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
      stamp+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    for c in "${KUBE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    rm -rf "$build" "$dir.tmp"; mkdir -p "$build" "$dir.tmp"
    printf 'module postern.dev/testbin\ngo 1.24\n%s\n' "$replaces" >"$build/go.mod"
    (cd "$build" && go get "${pkgs[@]/%/@$K8S_VERSION}" && go build -ldflags "-s -w$stamp" -o "$dir.tmp/" "${pkgs[@]}")
    rm -rf "$dir"; mv "$dir.tmp" "$dir"; rm -rf "$build"
  fi
  echo "$dir"
}

provide_k8s() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    echo "TEST_ASSET_KUBE_APISERVER=${TEST_ASSET_KUBE_APISERVER:-$KUBEBUILDER_ASSETS/kube-apiserver}"
    echo "TEST_ASSET_ETCD=${TEST_ASSET_ETCD:-$KUBEBUILDER_ASSETS/etcd}"
    return
  fi
  local etcd apiserver
  etcd=${TEST_ASSET_ETCD:-}; [ -n "$etcd" ] || etcd=$(provide_etcd)
  apiserver=${TEST_ASSET_KUBE_APISERVER:-}; [ -n "$apiserver" ] || apiserver="$(provide_kube)/kube-apiserver"
  echo "TEST_ASSET_ETCD=$etcd"
  echo "TEST_ASSET_KUBE_APISERVER=$apiserver"
}

provide_helm() {
  if [ -n "${HELM_BIN:-}" ]; then echo "HELM_BIN=$HELM_BIN"; return; fi
  local out="$CACHE/helm-$HELM_VERSION/helm"
  if [ ! -x "$out" ]; then
    need_go helm
    log "building helm $HELM_VERSION (once; cached in $CACHE)"
    mkdir -p "$(dirname "$out")"
    build_from_module helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$out"
  fi
  echo "HELM_BIN=$out"
}

# CoreDNS for the cluster tier's DNS (run as a host process with the kubernetes plugin). Built from the
# github.com/coredns/coredns module with a small main that links only the plugins a test cluster uses: the
# stock binary also links every cloud SDK (route53, azure, clouddns, etcd, tracing) and takes far longer to build.
# The plugins (directive:package, as in CoreDNS's plugin.cfg) keep CoreDNS's own order (dnsserver.Directives).
COREDNS_PLUGINS=(reload bind debug ready health prometheus:metrics errors log loadbalance rewrite cache template hosts
  kubernetes file loop forward whoami)
# Prometheus for the cluster tier, which discovers pods with kubernetes_sd_configs (Debian's package is built
# without that discovery); the web UI's assets are not embedded, the HTTP API is all the tests use.
provide_prometheus() {
  if [ -n "${PROMETHEUS_BIN:-}" ]; then echo "PROMETHEUS_BIN=$PROMETHEUS_BIN"; return; fi
  local out="$CACHE/prometheus-$PROMETHEUS_VERSION/prometheus"
  if [ ! -x "$out" ]; then
    need_go prometheus
    log "building prometheus $PROMETHEUS_VERSION (once; cached in $CACHE)"
    mkdir -p "$(dirname "$out")"
    build_from_module github.com/prometheus/prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus "$out"
  fi
  echo "PROMETHEUS_BIN=$out"
}

provide_coredns() {
  if [ -n "${COREDNS_BIN:-}" ]; then echo "COREDNS_BIN=$COREDNS_BIN"; return; fi
  local out="$CACHE/coredns-$COREDNS_VERSION/coredns"
  if [ ! -x "$out" ]; then
    need_go coredns
    log "building coredns $COREDNS_VERSION (once; cached in $CACHE)"
    local build="$CACHE/build/coredns-$COREDNS_VERSION" p imports="" names=""
    for p in "${COREDNS_PLUGINS[@]}"; do
      imports+="	_ \"github.com/coredns/coredns/plugin/${p#*:}\"\n"; names+="\"${p%%:*}\": true, "
    done
    rm -rf "$build"; mkdir -p "$build" "$(dirname "$out")"
    printf 'module postern.dev/coredns\ngo 1.26\n' >"$build/go.mod"
    printf '%b' "package main

import (
	\"github.com/coredns/coredns/core/dnsserver\"
	\"github.com/coredns/coredns/coremain\"
$imports)

func init() {
	keep := map[string]bool{$names}
	var ds []string
	for _, d := range dnsserver.Directives {
		if keep[d] {
			ds = append(ds, d)
		}
	}
	dnsserver.Directives = ds
}

func main() { coremain.Run() }
" >"$build/main.go"
    (cd "$build" && go get "github.com/coredns/coredns@$COREDNS_VERSION" && go mod tidy \
      && go build -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$out.tmp" .)
    mv "$out.tmp" "$out"
    rm -rf "$build"
  fi
  echo "COREDNS_BIN=$out"
}

what=${1:-all}
{
  case "$what" in
    nats) provide_nats ;;
    k8s) provide_k8s ;;
    helm) provide_helm ;;
    coredns) provide_coredns ;;
    # The cluster tier: every Kubernetes command, etcd and CoreDNS (plus helm and nats for the images).
    prometheus) provide_prometheus ;;
    cluster) echo "KUBE_BIN_DIR=$(provide_kube)"; echo "TEST_ASSET_ETCD=$(provide_etcd)"; provide_coredns; provide_helm; provide_prometheus ;;
    all) provide_nats; provide_k8s; provide_helm; provide_coredns; provide_prometheus; echo "KUBE_BIN_DIR=$(provide_kube)" ;;
    *) log "unknown target $what"; exit 2 ;;
  esac
} | tee "$CACHE/env-$what.sh"
