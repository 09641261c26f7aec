#!/usr/bin/env bash
# The infrastructure images `make stack-up` runs in place of the official
# ones (there is no image registry here), each from Debian's package on
# localhost/confab-debian:bookworm (scripts/image-base.sh), with a small
# entrypoint that gives it the interface deploy/compose.yml uses (environment
# variables, data paths, health check commands): deploy/images/*/.
#
#   localhost/confab-postgres:15      PostgreSQL 15      (for postgres:16)
#   localhost/confab-rabbitmq:3.10    RabbitMQ 3.10      (for rabbitmq:3.13)
#   localhost/confab-prometheus:2.42  Prometheus 2.42    (for prom/prometheus:v2.53.2)
#
# Grafana, Loki and Alloy are not Debian packages: no image is made for
# them. Made once; FORCE=1 makes them again.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/image-base.sh" >/dev/null
LOGS="${IMAGE_WORK:-/var/tmp/confab-image}"
mkdir -p "$LOGS"
build() {
  local name="$1" dir="$ROOT/deploy/images/$2"
  if [ "${FORCE:-0}" != 1 ] && podman image exists "$name"; then
    echo "$name: present (FORCE=1 makes it again)"
    return
  fi
  echo "== $name from $dir"
  podman build --format docker -f "$dir/Containerfile" -t "$name" "$dir" >"$LOGS/$2.log" 2>&1 \
    || { tail -n 30 "$LOGS/$2.log" >&2; exit 1; }
  echo "$name: made"
}
build localhost/confab-postgres:15 postgres
build localhost/confab-rabbitmq:3.10 rabbitmq
build localhost/confab-prometheus:2.42 prometheus
