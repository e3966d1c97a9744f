# The Debian packages each part of Postern's tooling needs, in one place (sourced by setup.sh and bench/setup.sh).
# Installed with --no-install-recommends, so every library a tool needs for a capability the tests use is named.

# Real peers and clients of the test suite.
TEST_PACKAGES=(
  swaks                  # SMTP client used as a peer no one here wrote
  libnet-ssleay-perl     # swaks' STARTTLS / implicit TLS (without it: "TLS not available: requires Net::SSLeay")
  libio-socket-ssl-perl  # the same (swaks needs both for TLS)
  postfix                # smtp-source / smtp-sink
  dnsmasq-base           # MX / A answers for delivery tests, DNSBL zones for ingress tests
  rspamd                 # the content filter the ingress talks to at end of DATA (its HTTP protocol)
  clamav-daemon          # clamd behind rspamd's antivirus module (tests write their own signature; no freshclam run)
  unbound                # DNSSEC-validating resolver for the DANE tests (AD bit over a locally signed zone)
  ldnsutils              # ldns-keygen / ldns-signzone: sign the DANE tests' zone
  haproxy                # PROXY protocol v1/v2 sender in front of the ingress (proxy-protocol tests)
  libio-socket-inet6-perl  # swaks over IPv6 (without it: "IPv6 not available: requires IO::Socket::INET6")
  python3-venv           # venvs for the Python tools from PyPI (scripts/python-tools.sh: schemathesis)
)

# The cluster tier (scripts/test.sh cluster): a real single-node Kubernetes built here.
CLUSTER_PACKAGES=(
  containerd                   # container runtime with the CRI plugin
  runc                         # OCI runtime
  containernetworking-plugins  # bridge, host-local, loopback, portmap CNI plugins
  buildah                      # builds the images from the Dockerfile without a Docker engine
  iptables                     # kube-proxy (iptables mode) and the egress guard
  conntrack                    # kube-proxy's conntrack clean-up
  iproute2                     # network namespace, veth and bridge for the node
  libc6-dev                    # static glibc for the pause image (gcc -static)
  gcc
)

# The bench (bench/setup.sh), on top of the test packages it shares.
BENCH_PACKAGES=(postfix dnsmasq-base)
