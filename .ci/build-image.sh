#!/usr/bin/env bash
# Builds the chart's image from the Containerfile with buildah: no daemon, and no container registry either.
# The base root filesystem comes from Debian's own archive (mmdebstrap, minbase with the same path excludes as
# debian:bookworm-slim), imported as localhost/mcp-reconciler-base:bookworm and passed as the Containerfile's
# BASE; set BASE to build on a registry image instead. RUN steps use buildah's chroot isolation, which needs
# no OCI runtime and no cgroup manager (BUILDAH_ISOLATION overrides it). Behind a TLS-intercepting proxy,
# PIP_CERT (a CA bundle on this machine) is mounted into the build stage only.
#
#   .ci/build-image.sh [--oci DIR]      # also writes the image to the OCI layout DIR, tagged VERSION
#
# Environment: IMAGE (default the chart's repository), VERSION (default the chart's appVersion), BASE,
# DEBIAN_MIRROR, STORAGE_ROOT (a private buildah storage; default the system's). Prints IMAGE:VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

oci=""
if [[ "${1:-}" == "--oci" ]]; then
  oci="${2:?--oci needs a directory}"
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--oci DIR]" >&2
  exit 2
fi

IMAGE="${IMAGE:-ghcr.io/mcp-reconciler/mcp-reconciler}"
VERSION="${VERSION:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/mcp-reconciler/Chart.yaml)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org}"
LOCAL_BASE="localhost/mcp-reconciler-base:bookworm"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "build-image: $1 is missing (apt-get install $2)" >&2; exit 1; }
}
need buildah buildah
storage=()
if [[ -n "${STORAGE_ROOT:-}" ]]; then
  storage=(--root "$STORAGE_ROOT/storage" --runroot "$STORAGE_ROOT/run")
fi

if [[ -z "${BASE:-}" ]]; then
  BASE="$LOCAL_BASE"
  if ! buildah "${storage[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    need mmdebstrap mmdebstrap
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    echo "build-image: making the base root filesystem from $DEBIAN_MIRROR (Debian bookworm, minbase)" >&2
    mmdebstrap --quiet --variant=minbase \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Languages "none"' \
      bookworm "$scratch/rootfs.tar" \
      "deb $DEBIAN_MIRROR/debian bookworm main" \
      "deb $DEBIAN_MIRROR/debian bookworm-updates main" \
      "deb $DEBIAN_MIRROR/debian-security bookworm-security main"
    container="$(buildah "${storage[@]}" from scratch)"
    buildah "${storage[@]}" add "$container" "$scratch/rootfs.tar" / >/dev/null
    buildah "${storage[@]}" config --cmd /bin/bash \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
    buildah "${storage[@]}" commit --quiet --rm "$container" "$BASE" >/dev/null
  fi
fi

proxy_ca=()
if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then
  proxy_ca=(--volume "$PIP_CERT:/run/build-ca.pem:ro" --build-arg PIP_CERT=/run/build-ca.pem)
fi

echo "build-image: building $IMAGE:$VERSION on $BASE" >&2
previous="$(buildah "${storage[@]}" inspect --type image --format '{{.FromImageID}}' "$IMAGE:$VERSION" 2>/dev/null || true)"
buildah "${storage[@]}" build --quiet --layers=false -f Containerfile \
  --build-arg BASE="$BASE" --build-arg VERSION="$VERSION" "${proxy_ca[@]}" \
  -t "$IMAGE:$VERSION" . >&2
if [[ -n "$previous" ]]; then  # the previous build of this tag, now untagged
  buildah "${storage[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi

if [[ -n "$oci" ]]; then
  rm -rf "$oci"
  mkdir -p "$(dirname "$oci")"
  buildah "${storage[@]}" push --quiet "$IMAGE:$VERSION" "oci:$oci:$VERSION" >&2
fi
echo "$IMAGE:$VERSION"
