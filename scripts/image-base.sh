#!/usr/bin/env bash
# The two base images Confab's Dockerfile starts from, made from Debian's
# packages (no image registry is needed): debootstrap bookworm into a
# folder, import it with podman.
#
#   localhost/confab-debian:bookworm  minbase + ca-certificates, curl: what
#                                     the services run on (sh, awk, bash and
#                                     curl are used by the manifests)
#   localhost/confab-build:bookworm   the same + a C/C++ compiler and libclang
#                                     (RocksDB), for the build stage
#
# Made once; FORCE=1 makes them again. MIRROR picks the Debian mirror.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/ensure-podman.sh"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
WORK="${IMAGE_WORK:-/var/tmp/confab-image}"

make_base() {
  local name="$1" include="$2"
  if [ "${FORCE:-0}" != 1 ] && podman image exists "$name"; then
    echo "$name: present (FORCE=1 makes it again)"
    return
  fi
  local dir="$WORK/${name##*/}"
  dir="${dir%%:*}"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "== debootstrap $SUITE ($include) for $name"
  debootstrap --variant=minbase --include="$include" "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; exit 1; }
  # Smaller and reproducible enough: no package lists or caches.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
  tar -C "$dir" -c . | podman import --change 'CMD ["/bin/bash"]' - "$name" >/dev/null
  rm -rf "$dir"
  echo "$name: made"
}

make_base localhost/confab-debian:bookworm ca-certificates,curl
make_base localhost/confab-build:bookworm ca-certificates,curl,gcc,g++,make,libc6-dev,libclang-dev,pkg-config
