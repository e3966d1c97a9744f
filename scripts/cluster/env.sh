# Shared settings of the cluster tier (sourced by up.sh, down.sh and images.sh callers).
# The whole node lives in its own network namespace: every process of the cluster (etcd, the control plane,
# containerd, kubelet, kube-proxy, CoreDNS) runs there, and pods get their own namespaces bridged inside it. The
# only link is one veth pair to this machine; the node namespace has no default route, its iptables drop anything
# not addressed to loopback or the cluster's own 10.217.0.0/16, and this machine forwards nothing for it.
CLUSTER_DIR="${POSTERN_CLUSTER_DIR:-/tmp/postern-cluster}"
CLUSTER_NETNS=postern-node
CLUSTER_NODE_NAME=postern-node
CLUSTER_NET=10.217.0.0/16          # everything the cluster may reach (besides loopback)
CLUSTER_LINK_HOST_IP=10.217.0.1    # this machine's end of the veth (test peers and sinks listen here)
CLUSTER_NODE_IP=10.217.0.2         # the node: apiserver, kubelet, NodePorts, CoreDNS
CLUSTER_LINK_PREFIX=30
CLUSTER_POD_CIDR=10.217.64.0/24
CLUSTER_SERVICE_CIDR=10.217.128.0/24
CLUSTER_API_SERVICE_IP=10.217.128.1
CLUSTER_HOST_VETH=pn-host
CLUSTER_NODE_VETH=pn-node
CLUSTER_BRIDGE=pn-cni0
CLUSTER_API_PORT=6443
CLUSTER_PAUSE_IMAGE=registry.k8s.io/pause:3.10
CLUSTER_GUARD_CHAIN=POSTERN-EGRESS
