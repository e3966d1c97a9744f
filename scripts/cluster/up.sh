#!/usr/bin/env bash
# Brings up a real single-node Kubernetes on this machine for the cluster tier, in this order:
#   egress guard → node network namespace + veth → certificates → etcd → kube-apiserver → controller-manager,
#   scheduler → containerd (CRI, bridge CNI) → images imported → kubelet → kube-proxy → CoreDNS → node Ready.
# Everything it starts is recorded in $CLUSTER_DIR/pids and stopped by scripts/cluster/down.sh, which also removes
# the guard, the namespace, the mounts and the cgroups. Images are never pulled: scripts/cluster/images.sh builds
# them and they are imported before kubelet starts.
#   scripts/cluster/up.sh IMAGE_ARCHIVE...     prints KUBECONFIG=<path> when the node is Ready
set -euo pipefail
shopt -s inherit_errexit
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
log() { echo "[cluster-up] $(date +%T) $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "the cluster tier needs root (network namespace, iptables, containerd)"
[ -e "$CLUSTER_DIR/pids" ] && die "$CLUSTER_DIR exists: a cluster is running or was not torn down (scripts/cluster/down.sh)"
ip netns list | grep -qw "$CLUSTER_NETNS" && die "network namespace $CLUSTER_NETNS exists: run scripts/cluster/down.sh"

# Binaries: the version-stamped Kubernetes commands, etcd and CoreDNS from scripts/test-bins.sh (cached).
bins=$(bash "$root/scripts/test-bins.sh" cluster)
KUBE_DIR=$(sed -n 's/^KUBE_BIN_DIR=//p' <<<"$bins")
ETCD_BIN=$(sed -n 's/^TEST_ASSET_ETCD=//p' <<<"$bins")
COREDNS_BIN=$(sed -n 's/^COREDNS_BIN=//p' <<<"$bins")
for b in "$KUBE_DIR/kubelet" "$ETCD_BIN" "$COREDNS_BIN"; do [ -x "$b" ] || die "missing $b"; done

mkdir -p "$CLUSTER_DIR"/{pids,logs,pki,etc,etcd,kubelet,containerd/root,containerd/state,cni/net.d,manifests}
D=$CLUSTER_DIR
inns() { nsenter --net="/run/netns/$CLUSTER_NETNS" -- "$@"; }
# Starts a long-lived process inside the node namespace in its own session; its pid goes to pids/NAME.
start() {
  local name=$1; shift
  nsenter --net="/run/netns/$CLUSTER_NETNS" -- setsid "$@" >"$D/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$D/pids/$name"
  log "started $name (pid $!)"
}
# Waits (bounded) until a command succeeds; names the log to read when it does not.
wait_for() {
  local what=$1 tries=$2 logname=$3; shift 3
  local i
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if [ -n "$logname" ] && [ -f "$D/pids/$logname" ] && ! kill -0 "$(cat "$D/pids/$logname")" 2>/dev/null; then
      tail -n 30 "$D/logs/$logname.log" >&2 || true
      die "$logname exited while waiting for $what"
    fi
    sleep 1
  done
  [ -n "$logname" ] && tail -n 30 "$D/logs/$logname.log" >&2
  die "timed out waiting for $what"
}

# --- 1. Egress guard, before anything starts -------------------------------------------------------------------
# This machine forwards nothing from or to the node's veth; inside the node namespace (below) only loopback and
# the cluster's own range are reachable. Rules are checked by reading them, never by sending traffic outside.
iptables -w -N "$CLUSTER_GUARD_CHAIN" 2>/dev/null || iptables -w -F "$CLUSTER_GUARD_CHAIN"
iptables -w -A "$CLUSTER_GUARD_CHAIN" -j DROP
iptables -w -I FORWARD 1 -i "$CLUSTER_HOST_VETH" -j "$CLUSTER_GUARD_CHAIN"
iptables -w -I FORWARD 1 -o "$CLUSTER_HOST_VETH" -j "$CLUSTER_GUARD_CHAIN"
log "egress guard installed on this machine (FORWARD via $CLUSTER_HOST_VETH dropped)"

# --- 2. The node: a network namespace joined to this machine by one veth pair -----------------------------------
ip netns add "$CLUSTER_NETNS"
ip link add "$CLUSTER_HOST_VETH" type veth peer name "$CLUSTER_NODE_VETH"
ip link set "$CLUSTER_NODE_VETH" netns "$CLUSTER_NETNS"
ip addr add "$CLUSTER_LINK_HOST_IP/$CLUSTER_LINK_PREFIX" dev "$CLUSTER_HOST_VETH"
ip link set "$CLUSTER_HOST_VETH" up
inns ip link set lo up
inns ip addr add "$CLUSTER_NODE_IP/$CLUSTER_LINK_PREFIX" dev "$CLUSTER_NODE_VETH"
inns ip link set "$CLUSTER_NODE_VETH" up
# Pods and Services are reached from this machine (tests, Prometheus) through the node.
ip route add "$CLUSTER_POD_CIDR" via "$CLUSTER_NODE_IP"
ip route add "$CLUSTER_SERVICE_CIDR" via "$CLUSTER_NODE_IP"
inns sysctl -qw net.ipv4.ip_forward=1
inns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
inns sysctl -qw net.ipv6.conf.default.disable_ipv6=1
# kube-proxy needs bridged pod traffic to pass iptables (Service → pod on the same bridge).
inns sysctl -qw net.bridge.bridge-nf-call-iptables=1 || die "br_netfilter is not available in the node namespace"
# The guard inside the node: loopback and the cluster's own range only, for the node's processes and for pods.
inns iptables -w -N "$CLUSTER_GUARD_CHAIN"
inns iptables -w -A "$CLUSTER_GUARD_CHAIN" -d 127.0.0.0/8 -j RETURN
inns iptables -w -A "$CLUSTER_GUARD_CHAIN" -d "$CLUSTER_NET" -j RETURN
inns iptables -w -A "$CLUSTER_GUARD_CHAIN" -j DROP
inns iptables -w -I OUTPUT 1 -j "$CLUSTER_GUARD_CHAIN"
inns iptables -w -I FORWARD 1 -j "$CLUSTER_GUARD_CHAIN"
inns ip route | grep -q '^default' && die "the node namespace has a default route"
log "node namespace $CLUSTER_NETNS: $CLUSTER_NODE_IP, no default route, egress limited to loopback and $CLUSTER_NET"

# --- 3. Certificates and credentials ------------------------------------------------------------------------------
P=$D/pki
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=postern-test-ca" \
  -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$P/apiserver.key" -out "$P/apiserver.csr" 2>/dev/null
cat >"$P/apiserver.ext" <<EXT
subjectAltName=IP:$CLUSTER_NODE_IP,IP:$CLUSTER_API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
  -extfile "$P/apiserver.ext" -out "$P/apiserver.crt" 2>/dev/null
openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
token=$(openssl rand -hex 24)
# One admin credential (system:masters) for the test, helm and the cluster's own components; pods use
# ServiceAccount tokens under RBAC, so the chart's RBAC is what the operator really gets.
echo "$token,postern-admin,postern-admin,system:masters" >"$P/tokens.csv"
kubeconfig=$D/kubeconfig
cat >"$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: postern
  cluster: { server: "https://$CLUSTER_NODE_IP:$CLUSTER_API_PORT", certificate-authority: "$P/ca.crt" }
users:
- name: admin
  user: { token: "$token" }
contexts:
- name: postern
  context: { cluster: postern, user: admin, namespace: default }
current-context: postern
KC

# --- 4. etcd and the control plane --------------------------------------------------------------------------------
start etcd "$ETCD_BIN" --data-dir "$D/etcd" --listen-client-urls http://127.0.0.1:2379 \
  --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
  --unsafe-no-fsync --quota-backend-bytes 2147483648
start kube-apiserver "$KUBE_DIR/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
  --advertise-address "$CLUSTER_NODE_IP" --bind-address "$CLUSTER_NODE_IP" --secure-port "$CLUSTER_API_PORT" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" --client-ca-file "$P/ca.crt" \
  --token-auth-file "$P/tokens.csv" --authorization-mode Node,RBAC \
  --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" --service-node-port-range 30000-32767 \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --allow-privileged=true --profiling=false --endpoint-reconciler-type lease \
  --kubelet-preferred-address-types InternalIP
kubectl() { "$KUBE_DIR/kubectl" --kubeconfig "$kubeconfig" "$@"; }
wait_for "kube-apiserver /readyz" 120 kube-apiserver kubectl get --raw /readyz
log "kube-apiserver ready ($("$KUBE_DIR/kubectl" --kubeconfig "$kubeconfig" version -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | tail -1))"
start kube-controller-manager "$KUBE_DIR/kube-controller-manager" --kubeconfig "$kubeconfig" \
  --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --service-account-private-key-file "$P/sa.key" \
  --root-ca-file "$P/ca.crt" --use-service-account-credentials=true \
  --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" --cluster-cidr "$CLUSTER_POD_CIDR" --allocate-node-cidrs=false \
  --controllers '*,-nodeipam,-cloud-node-lifecycle,-service,-route' --profiling=false
start kube-scheduler "$KUBE_DIR/kube-scheduler" --kubeconfig "$kubeconfig" \
  --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false

# --- 5. containerd with the CRI plugin and a bridge CNI without masquerade -----------------------------------------
cat >"$D/cni/net.d/10-postern.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "postern",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CLUSTER_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$D/cni/ipam",
        "ranges": [[{ "subnet": "$CLUSTER_POD_CIDR" }]],
        "routes": [{ "dst": "$CLUSTER_NET" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CNI
cat >"$D/etc/containerd.toml" <<TOML
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$CLUSTER_PAUSE_IMAGE"
  # CAP_SYS_RESOURCE is missing here: without this, pod sandboxes fail ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$D/etc/no-registries"
TOML
start containerd containerd --config "$D/etc/containerd.toml"
ctr() { command ctr --address "$D/containerd/containerd.sock" "$@"; }
wait_for "containerd" 60 containerd ctr version

# --- 6. Images: imported, never pulled ------------------------------------------------------------------------------
for archive in "$@"; do
  ctr -n k8s.io images import --all-platforms "$archive" >"$D/logs/import.log" 2>&1 || { cat "$D/logs/import.log" >&2; die "importing $archive failed"; }
done
if ! ctr -n k8s.io images ls -q | grep -qx "$CLUSTER_PAUSE_IMAGE"; then
  log "archives given: $*"; ctr -n k8s.io images ls -q >&2
  die "the pause image $CLUSTER_PAUSE_IMAGE was not imported"
fi
log "images: $(ctr -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --- 7. kubelet, kube-proxy, CoreDNS --------------------------------------------------------------------------------
: >"$D/etc/resolv.conf" # pods with dnsPolicy Default get no upstream resolver
cat >"$D/etc/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $CLUSTER_NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
clusterDNS: [$CLUSTER_NODE_IP]
clusterDomain: cluster.local
resolvConf: $D/etc/resolv.conf
authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }
authorization: { mode: AlwaysAllow }
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
protectKernelDefaults: false
maxPods: 60
KUBELET
start kubelet "$KUBE_DIR/kubelet" --config "$D/etc/kubelet.yaml" --kubeconfig "$kubeconfig" \
  --root-dir "$D/kubelet" --cert-dir "$D/kubelet/pki" --hostname-override "$CLUSTER_NODE_NAME" \
  --node-ip "$CLUSTER_NODE_IP"
cat >"$D/etc/kube-proxy.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: $kubeconfig }
hostnameOverride: $CLUSTER_NODE_NAME
clusterCIDR: $CLUSTER_POD_CIDR
bindAddress: $CLUSTER_NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$CLUSTER_NODE_IP/32"]
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
PROXY
start kube-proxy "$KUBE_DIR/kube-proxy" --config "$D/etc/kube-proxy.yaml"
cat >"$D/etc/Corefile" <<COREFILE
.:53 {
    bind $CLUSTER_NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    # No forward plugin: pods get no upstream DNS; anything outside the cluster is NXDOMAIN/REFUSED.
}
COREFILE
start coredns "$COREDNS_BIN" -conf "$D/etc/Corefile"

wait_for "node $CLUSTER_NODE_NAME Ready" 120 kubelet \
  bash -c "'$KUBE_DIR/kubectl' --kubeconfig '$kubeconfig' get node '$CLUSTER_NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
wait_for "the default ServiceAccount" 60 kube-controller-manager kubectl get serviceaccount default -n default
log "node $CLUSTER_NODE_NAME Ready"
echo "KUBECONFIG=$kubeconfig"
echo "KUBE_BIN_DIR=$KUBE_DIR"
echo "CLUSTER_DIR=$D"
