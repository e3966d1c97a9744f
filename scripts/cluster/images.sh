#!/usr/bin/env bash
# Builds every container image the cluster test tier runs, without any image registry (nothing is ever pulled):
#   docker.io/library/node:24-slim   a local stand-in for the Node 24 base (build-time only, not written to OUTDIR):
#                                    the `node` npm package's binary + its shared libraries, npm, sh, CA bundle
#   ghcr.io/postern/postern:<tag>    the repository's Dockerfile, built with buildah (tag defaults to the chart's
#                                    appVersion; --tag may be repeated: the extra tags re-use the same build and
#                                    differ only by their version label, so each has its own digest)
#   <chart's NATS image>             the cached static nats-server (scripts/test-bins.sh nats), entrypoint nats-server
#   registry.k8s.io/pause:3.10       pause.c from the k8s.io/kubernetes module, gcc -static (containerd's sandbox_image)
#
#   scripts/cluster/images.sh [--tag TAG]... OUTDIR
#
# Writes one docker archive per image into OUTDIR (for `ctr -n k8s.io images import`) and prints one line per
# image on stdout: "REFERENCE ARCHIVE". Every image is cached under $CACHE/images keyed by its inputs (the postern
# image by the content of the files its Dockerfile copies, so a code change rebuilds it); a warm run only links the
# cached archives into OUTDIR. One log line per step on stderr.
#
# Needs: buildah (storage is private, under $CACHE/images/storage; chroot isolation, no daemon), gcc + libc6-dev
# (static glibc for pause), go (nats-server, via scripts/test-bins.sh), ldd, and npm on the host (copied into the
# base image for the Dockerfile's `npm ci`, which reaches the npm registry). Debian: buildah gcc libc6-dev.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE="${POSTERN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/postern}"
IMG="$CACHE/images"
# Bump when a recipe below changes, so cached images built by the old recipe are not reused.
RECIPE=3
PAUSE_IMAGE="${POSTERN_PAUSE_IMAGE:-registry.k8s.io/pause:3.10}"
NODE_BASE=docker.io/library/node:24-slim
POSTERN_REPO=ghcr.io/postern/postern

log() { echo "[images] $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { echo "usage: $0 [--tag TAG]... OUTDIR" >&2; exit 2; }

tags=() out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || usage; tags+=("$2"); shift 2 ;;
    --tag=*) tags+=("${1#--tag=}"); shift ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$out" ] || usage; out=$1; shift ;;
  esac
done
[ -n "$out" ] || usage
if [ ${#tags[@]} -eq 0 ]; then
  tags=("$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"[:space:]]*\)"\{0,1\}.*/\1/p' "$ROOT/charts/postern/Chart.yaml")")
  [ -n "${tags[0]}" ] || die "no appVersion in charts/postern/Chart.yaml"
fi
command -v buildah >/dev/null || die "buildah is required (Debian package buildah)"
mkdir -p "$out" "$IMG/archives"
out=$(cd "$out" && pwd)

# One build at a time per cache (two test runs may share it).
exec 9>"$IMG/.lock"
flock 9

# --- buildah with private storage and configuration: nothing global is read or written, nothing is pulled ---------
RUNROOT="${POSTERN_BUILDAH_RUNROOT:-/run/postern-buildah}"
DRIVER="${POSTERN_BUILDAH_DRIVER:-overlay}"
mkdir -p "$IMG/storage" "$RUNROOT"
cat >"$IMG/registries.conf" <<'EOF'
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
cat >"$IMG/storage.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$IMG/storage"
runroot = "$RUNROOT"
EOF
export CONTAINERS_REGISTRIES_CONF="$IMG/registries.conf" CONTAINERS_STORAGE_CONF="$IMG/storage.conf"
export BUILDAH_ISOLATION=chroot
bh() { buildah --root "$IMG/storage" --runroot "$RUNROOT" --storage-driver "$DRIVER" "$@"; }

# The value of our cache-key label on a local image, empty when the image is absent.
image_key() { bh inspect --type image --format '{{index .OCIv1.Config.Labels "dev.postern.key"}}' "$1" 2>/dev/null || true; }
image_id() { bh inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }
# Replaces the image named $1 by the committed container $2 and drops the image the name pointed at before.
commit_as() {
  local ref=$1 ctr=$2 old
  old=$(image_id "$ref")
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
  if [ -n "$old" ] && [ "$old" != "$(image_id "$ref")" ]; then bh rmi "$old" >/dev/null 2>&1 || true; fi
}
# Writes image $1 as a docker archive $2 (uncompressed layers: quick to write and to import).
save() {
  rm -f "$2.tmp"
  bh push --quiet "$1" "docker-archive:$2.tmp:$1" >/dev/null
  mv "$2.tmp" "$2"
}
# Links cached archive $1 into OUTDIR as $2 and reports the image.
emit() {
  local ref=$1 src=$2 dst="$out/$3"
  rm -f "$dst"; ln "$src" "$dst" 2>/dev/null || cp "$src" "$dst"
  echo "$ref $dst"
}
# Copies the shared libraries program $1 needs (as ldd resolves them on this host) into rootfs $2.
copy_libs() {
  local lib
  for lib in $(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    [ -e "$2$lib" ] || { mkdir -p "$2$(dirname "$lib")"; cp -L "$lib" "$2$lib"; }
  done
}
# A new root filesystem with the host's merged-/usr layout (/bin, /lib, /lib64 -> usr/...).
new_rootfs() {
  local d=$1 top
  mkdir -p "$d/usr/bin" "$d/usr/sbin" "$d/usr/lib" "$d/etc" "$d/tmp"
  chmod 1777 "$d/tmp"
  for top in bin sbin lib lib64; do
    if [ -L "/$top" ]; then ln -s "$(readlink "/$top")" "$d/$top"; mkdir -p "$d/$(readlink "/$top")"; fi
  done
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$d/etc/nsswitch.conf"
}
TMPD=$(mktemp -d "$IMG/tmp.XXXXXX")
trap 'rm -rf "$TMPD"' EXIT

# --- 1. the Node 24 base -----------------------------------------------------------------------------------------
step_base() {
  local t0=$SECONDS node npmdir nodever npmver key
  node=$(readlink -f "$ROOT/node_modules/.bin/node" 2>/dev/null) || true
  [ -x "$node" ] || die "no Node binary at node_modules/.bin/node (run npm ci: the devDependency 'node' provides it)"
  nodever=$("$node" --version)
  case "$nodever" in v24.*) ;; *) die "node_modules/.bin/node is $nodever, not Node 24" ;; esac
  npmdir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")") || die "npm is required on the host"
  npmver=$(node -p "require('$npmdir/package.json').version")
  key="node-$nodever-npm-$npmver-r$RECIPE"
  if [ "$(image_key "$NODE_BASE")" = "$key" ]; then log "base $NODE_BASE ($key): cached"; return; fi

  local ctr mnt
  ctr=$(bh from scratch)
  mnt=$(bh mount "$ctr")
  new_rootfs "$mnt"
  mkdir -p "$mnt/usr/local/bin" "$mnt/usr/local/lib/node_modules" "$mnt/usr/local/etc" "$mnt/root" "$mnt/home/node"
  # The npm package ships Node unstripped; its symbols are ~18 MB of the image.
  cp "$node" "$mnt/usr/local/bin/node"; strip "$mnt/usr/local/bin/node" 2>/dev/null || true
  [ -d "$npmdir/node_modules" ] || die "$npmdir is not a self-contained npm (its dependencies are elsewhere)"
  cp -a "$npmdir" "$mnt/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  # A shell for the Dockerfile's RUN lines and /usr/bin/env for npm's "#!/usr/bin/env node".
  cp "$(readlink -f /bin/dash)" "$mnt/usr/bin/dash"; ln -s dash "$mnt/usr/bin/sh"
  cp "$(readlink -f /usr/bin/env)" "$mnt/usr/bin/env"
  copy_libs "$node" "$mnt"; copy_libs /bin/dash "$mnt"; copy_libs /usr/bin/env "$mnt"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$mnt/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' >"$mnt/etc/group"
  chown 1000:1000 "$mnt/home/node"; chmod 700 "$mnt/root"
  # The host's CA bundle, so the Dockerfile's `npm ci` trusts whatever the host trusts for the npm registry.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$mnt/etc/ssl/certs"; cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/"
    echo 'cafile=/etc/ssl/certs/ca-certificates.crt' >"$mnt/usr/local/etc/npmrc"
  fi
  printf 'update-notifier=false\nfund=false\n' >>"$mnt/usr/local/etc/npmrc"
  bh umount "$ctr" >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=${nodever#v}" \
    --cmd node --label "dev.postern.key=$key" --created-by "postern scripts/cluster/images.sh" "$ctr"
  commit_as "$NODE_BASE" "$ctr"
  log "base $NODE_BASE ($key): built in $((SECONDS - t0))s"
}

# --- 2. the Postern image from the repository's Dockerfile ---------------------------------------------------------
step_postern() {
  local t0=$SECONDS srcs=() key tag need=false
  # The build's inputs: the Dockerfile, .dockerignore and every file its COPY lines take from the context.
  mapfile -t srcs < <(awk 'toupper($1) == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "$ROOT/Dockerfile")
  key=$( (cd "$ROOT" && echo "r$RECIPE $(image_id "$NODE_BASE")" \
    && find Dockerfile .dockerignore "${srcs[@]}" \( -type f -o -type l \) -print0 2>/dev/null | LC_ALL=C sort -z \
      | xargs -0 sha256sum) | sha256sum | cut -c1-16)
  for tag in "${tags[@]}"; do [ -f "$IMG/archives/postern-$tag-$key.tar" ] || need=true; done
  if ! $need; then
    for tag in "${tags[@]}"; do emit "$POSTERN_REPO:$tag" "$IMG/archives/postern-$tag-$key.tar" "postern-$tag.tar"; done
    log "postern ${tags[*]} ($key): cached"; return
  fi
  local build=localhost/postern-build:latest
  if [ "$(image_key "$build")" != "$key" ]; then
    # --layers keeps the npm ci layer while package*.json are unchanged; --pull=never: the base is local.
    bh bud --quiet --layers --pull=never --isolation chroot --build-arg "NODE_IMAGE=$NODE_BASE" \
      --label "dev.postern.key=$key" -f "$ROOT/Dockerfile" -t "$build" "$ROOT" >/dev/null
  fi
  local ctr a
  for tag in "${tags[@]}"; do
    a="$IMG/archives/postern-$tag-$key.tar"
    if [ ! -f "$a" ]; then
      ctr=$(bh from --pull=never "$build")
      bh config --label "org.opencontainers.image.version=$tag" "$ctr"
      commit_as "$POSTERN_REPO:$tag" "$ctr"
      find "$IMG/archives" -name "postern-$tag-????????????????.tar" -delete
      save "$POSTERN_REPO:$tag" "$a"
    fi
    emit "$POSTERN_REPO:$tag" "$a" "postern-$tag.tar"
  done
  log "postern ${tags[*]} ($key): built in $((SECONDS - t0))s"
}

# --- 3. NATS, tagged as the chart's default image ------------------------------------------------------------------
step_nats() {
  local t0=$SECONDS bin repo tag ref key a
  repo=$(awk '/^nats:/ {n = 1; next} /^[^[:space:]#]/ {n = 0} n && $1 == "repository:" {print $2; exit}' "$ROOT/charts/postern/values.yaml")
  tag=$(awk '/^nats:/ {n = 1; next} /^[^[:space:]#]/ {n = 0} n && $1 == "tag:" {print $2; exit}' "$ROOT/charts/postern/values.yaml")
  repo=${repo//\"/}; tag=${tag//\"/}
  [ -n "$repo" ] && [ -n "$tag" ] || die "no nats.image.repository/tag in charts/postern/values.yaml"
  case "$repo" in */*) ;; *) repo="library/$repo" ;; esac
  case "${repo%%/*}" in *.*|*:*|localhost) ref="$repo:$tag" ;; *) ref="docker.io/$repo:$tag" ;; esac
  bin=$(bash "$ROOT/scripts/test-bins.sh" nats | sed -n 's/^NATS_SERVER_BIN=//p')
  [ -x "$bin" ] || die "scripts/test-bins.sh nats provided no nats-server"
  if ldd "$bin" >/dev/null 2>&1; then die "$bin is dynamically linked (build it with CGO_ENABLED=0)"; fi
  key=$(echo "r$RECIPE $ref $(sha256sum <"$bin")" | sha256sum | cut -c1-16)
  a="$IMG/archives/nats-$key.tar"
  if [ -f "$a" ]; then emit "$ref" "$a" nats.tar; log "nats $ref ($key): cached"; return; fi
  local ctr mnt
  ctr=$(bh from scratch)
  mnt=$(bh mount "$ctr")
  new_rootfs "$mnt"
  mkdir -p "$mnt/usr/local/bin" "$mnt/etc/nats"
  cp "$bin" "$mnt/usr/local/bin/nats-server"
  bh umount "$ctr" >/dev/null
  bh config --env PATH=/usr/local/bin:/usr/bin:/bin --entrypoint '["/usr/local/bin/nats-server"]' \
    --port 4222 --port 6222 --port 8222 --label "dev.postern.key=$key" --created-by "postern scripts/cluster/images.sh" "$ctr"
  commit_as "$ref" "$ctr"
  find "$IMG/archives" -name 'nats-*.tar' -delete
  save "$ref" "$a"
  emit "$ref" "$a" nats.tar
  log "nats $ref ($key): built in $((SECONDS - t0))s"
}

# --- 4. pause, from the Kubernetes sources ---------------------------------------------------------------------------
step_pause() {
  local t0=$SECONDS k8s dir src ver key a
  k8s=$(sed -n 's/^K8S_VERSION=//p' "$ROOT/scripts/test-bins.sh")
  key=$(echo "r$RECIPE $PAUSE_IMAGE $k8s $(gcc -dumpfullversion 2>/dev/null)" | sha256sum | cut -c1-16)
  a="$IMG/archives/pause-$key.tar"
  if [ -f "$a" ]; then emit "$PAUSE_IMAGE" "$a" pause.tar; log "pause $PAUSE_IMAGE ($key): cached"; return; fi
  command -v gcc >/dev/null || die "gcc is required for the pause image (Debian: gcc libc6-dev)"
  command -v go >/dev/null || die "go is required to fetch the k8s.io/kubernetes module (pause.c)"
  dir=$(cd "$TMPD" && go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  src="$dir/build/pause/linux/pause.c"
  [ -f "$src" ] || die "no $src in the k8s.io/kubernetes@$k8s module"
  ver=$(sed -n 's/^TAG ?= *//p' "$dir/build/pause/Makefile")
  # As upstream's build/pause/Makefile: -Os -Wall -Werror -static, then strip.
  gcc -Os -Wall -Werror -static -DVERSION="v$ver-$k8s" -o "$TMPD/pause" "$src"
  strip "$TMPD/pause"
  local ctr
  ctr=$(bh from scratch)
  bh copy --quiet "$ctr" "$TMPD/pause" /pause >/dev/null
  bh config --user 65535:65535 --entrypoint '["/pause"]' --label "dev.postern.key=$key" \
    --created-by "postern scripts/cluster/images.sh" "$ctr"
  commit_as "$PAUSE_IMAGE" "$ctr"
  find "$IMG/archives" -name 'pause-*.tar' -delete
  save "$PAUSE_IMAGE" "$a"
  emit "$PAUSE_IMAGE" "$a" pause.tar
  log "pause $PAUSE_IMAGE ($key): built in $((SECONDS - t0))s"
}

step_base
step_postern
step_nats
step_pause
