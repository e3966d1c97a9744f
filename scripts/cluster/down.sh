#!/usr/bin/env bash
# Tears down what scripts/cluster/up.sh started, even after a failed or half-finished bring-up; safe to run twice:
# processes by recorded PID (kubelet first so nothing restarts pods, then every container shim of this cluster's
# containerd with its containers), mounts under the cluster directory and the pods' network namespaces, the pods'
# cgroups, the node namespace with its veth, the routes and the egress guard, then the directory itself.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
log() { echo "[cluster-down] $(date +%T) $*" >&2; }
D=$CLUSTER_DIR

# Kills a process group (setsid made each recorded process a group leader) and waits, bounded, for it to go.
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
}

if [ -d "$D/pids" ]; then
  for name in kubelet kube-proxy coredns kube-scheduler kube-controller-manager; do
    [ -f "$D/pids/$name" ] && stop_pid "$(cat "$D/pids/$name")" && log "stopped $name"
  done
  # Container shims run outside containerd's process group; each carries this cluster's socket in its arguments.
  for pid in $(pgrep -f -- "containerd-shim.*-address $D/containerd/containerd.sock" || true); do
    for child in $(pgrep -P "$pid" || true); do kill -KILL "$child" 2>/dev/null; done
    kill -KILL "$pid" 2>/dev/null
  done
  # Container processes whose shim is gone already: anything still running from this cluster's rootfs mounts.
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    root=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
    case "$root" in "$D"/*) kill -KILL "$pid" 2>/dev/null ;; esac
  done
  for name in containerd kube-apiserver etcd; do
    [ -f "$D/pids/$name" ] && stop_pid "$(cat "$D/pids/$name")" && log "stopped $name"
  done
fi

# Mounts under the cluster directory (volumes, rootfs overlays, shm) and the pods' network namespaces, deepest first.
umount_all() {
  local prefix=$1 m
  for m in $(awk -v p="$prefix" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
}
[ -d "$D" ] && umount_all "$D/"
# Pod network namespaces are bind mounts /run/netns/cni-<uuid> made by the CRI plugin; with every sandbox of the
# cluster gone they are empty (this tier is the only CNI user on a test machine).
for ns in $(awk '$2 ~ /^\/run\/netns\/cni-/ {print $2}' /proc/self/mounts); do
  umount "$ns" 2>/dev/null && rm -f "$ns"
done

# The pods' cgroups (kubelet's cgroupfs driver puts them under kubepods in every v1 hierarchy).
for h in /sys/fs/cgroup/*/; do
  [ -d "$h/kubepods" ] || continue
  find "$h/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
done

if ip netns list 2>/dev/null | grep -qw "$CLUSTER_NETNS"; then
  ip netns delete "$CLUSTER_NETNS" && log "deleted network namespace $CLUSTER_NETNS"
fi
ip link delete "$CLUSTER_HOST_VETH" 2>/dev/null
ip route delete "$CLUSTER_POD_CIDR" 2>/dev/null
ip route delete "$CLUSTER_SERVICE_CIDR" 2>/dev/null
if command -v iptables >/dev/null; then
  while iptables -w -D FORWARD -i "$CLUSTER_HOST_VETH" -j "$CLUSTER_GUARD_CHAIN" 2>/dev/null; do :; done
  while iptables -w -D FORWARD -o "$CLUSTER_HOST_VETH" -j "$CLUSTER_GUARD_CHAIN" 2>/dev/null; do :; done
  iptables -w -F "$CLUSTER_GUARD_CHAIN" 2>/dev/null && iptables -w -X "$CLUSTER_GUARD_CHAIN" 2>/dev/null && log "removed the egress guard"
fi
if [ -d "$D" ]; then
  umount_all "$D/"
  rm -rf "$D" 2>/dev/null || { sleep 1; umount_all "$D/"; rm -rf "$D"; }
  log "removed $D"
fi
exit 0
