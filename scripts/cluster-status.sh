#!/usr/bin/env bash
# Shows the local cluster: processes, then confabctl status.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
shopt -s nullglob
for pidfile in "$CLUSTER_DIR"/*.pid; do
  pid="$(cat "$pidfile")"
  state=down; alive "$pid" && state=up
  printf '%-12s pid %-8s %s\n' "$(basename "$pidfile" .pid)" "$pid" "$state"
done
cluster_ctl --router "$(router_grpc 1)" status "$@"
