#!/usr/bin/env bash
# Builds (once) and caches the real Kubernetes control-plane binaries the operator's e2e suite runs
# against: `kube-apiserver` and `etcd`. Called by `find_binaries` in tests/e2e/kube.py when the e2e tests are
# selected (and usable by hand). Prints the directory holding both binaries on stdout; everything else goes
# to stderr.
#
# There is no Docker here and no registry ships kube-apiserver, but Debian's *source* package
# `kubernetes` is the upstream v1.20.2 tree with vendor/, so it builds offline with Debian's Go 1.19
# (unpacked with dpkg -x, nothing installed system-wide).
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS (envtest convention) if it holds etcd and kube-apiserver;
#   2. the cache: ${MCP_RECONCILER_KUBE_CACHE:-~/.cache/mcp-reconciler/kube-1.20.2};
#   3. a build into that cache (~5 minutes on 2 cores, ~2.4 GB of scratch space, removed afterwards).
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_DIR="${MCP_RECONCILER_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-reconciler/kube-${KUBE_VERSION}}"

log() { echo "kube-assets: $*" >&2; }

usable() {
  [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]] && "$1/kube-apiserver" --version >/dev/null 2>&1
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && usable "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
if usable "$CACHE_DIR"; then
  echo "$CACHE_DIR"
  exit 0
fi

mkdir -p "$(dirname "$CACHE_DIR")"
# Two test sessions starting at once must not build twice: the second waits for the first.
exec 9>"${CACHE_DIR}.lock"
flock 9
if usable "$CACHE_DIR"; then
  echo "$CACHE_DIR"
  exit 0
fi

WORK="$(mktemp -d "$(dirname "$CACHE_DIR")/build-XXXXXX")"
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
log "building kube-apiserver v${KUBE_VERSION} in $WORK (takes ~5 minutes)"

# A private apt configuration: the machine's own sources, with deb-src added, and private lists and
# caches, so nothing system-wide changes and no mirror host is written into the repository.
APT="$WORK/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/sources"
shopt -s nullglob
for src in /etc/apt/sources.list.d/*.sources; do
  sed -E 's/^Types:.*$/Types: deb deb-src/' "$src" >"$APT/sources/$(basename "$src")"
done
for src in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f "$src" ]] || continue
  { grep -E '^deb ' "$src" || true; grep -E '^deb ' "$src" | sed 's/^deb /deb-src /' || true; } \
    >"$APT/sources/$(basename "$src")"
done
shopt -u nullglob
APT_OPTS=(
  -o "Dir::Etc::SourceList=/dev/null"
  -o "Dir::Etc::SourceParts=$APT/sources"
  -o "Dir::State::Lists=$APT/lists"
  -o "Dir::Cache=$APT/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
apt-get "${APT_OPTS[@]}" -qq update >&2

cd "$WORK"
apt-get "${APT_OPTS[@]}" -qq source --download-only kubernetes >&2
apt-get "${APT_OPTS[@]}" -qq download golang-1.19-go golang-1.19-src etcd-server \
  golang-github-modern-go-reflect2-dev libpopt0 rsync >&2
mkdir -p root
for deb in ./*.deb; do dpkg -x "$deb" root; done

tar -xzf kubernetes_*.orig.tar.gz
SRC="$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
[[ -n "$SRC" && -d "$SRC/cmd/kube-apiserver" ]] || { log "unexpected source layout"; exit 1; }

# The vendored reflect2 v1.0.1 crashes kube-apiserver built with Go >= 1.18 (SIGSEGV in mapiterinit on
# the first custom resource); Debian's 1.0.2 files fix it.
REFLECT2="$SRC/vendor/github.com/modern-go/reflect2"
rm -f "$REFLECT2"/*.go "$REFLECT2"/*.s
cp root/usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$REFLECT2"/
cp root/usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$REFLECT2"/ 2>/dev/null || true
rm -f "$REFLECT2"/*_test.go

export GOROOT="$WORK/root/usr/lib/go-1.19"
export PATH="$GOROOT/bin:$WORK/root/usr/bin:$PATH"
export LD_LIBRARY_PATH="$WORK/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GOCACHE="$WORK/gocache" GOPATH="$WORK/gopath" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0
export GOTOOLCHAIN=local
(cd "$SRC" && make WHAT=cmd/kube-apiserver >&2)

STAGE="$(mktemp -d "$(dirname "$CACHE_DIR")/stage-XXXXXX")"
cp "$SRC/_output/bin/kube-apiserver" "$STAGE/kube-apiserver"
cp root/usr/bin/etcd "$STAGE/etcd"
chmod 0755 "$STAGE" "$STAGE/kube-apiserver" "$STAGE/etcd"
"$STAGE/kube-apiserver" --version >&2
rm -rf "$CACHE_DIR"
mv "$STAGE" "$CACHE_DIR"
log "cached in $CACHE_DIR"
echo "$CACHE_DIR"
