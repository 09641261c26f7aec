#!/usr/bin/env bash
# Starts the local cluster on the default addresses, waits until it is ready
# and prints how to reach it. Safe to run again: running processes are kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_bins
peers=""
for i in $(seq 1 "$ROUTERS"); do peers+="${peers:+,}$i=$(router_grpc "$i")"; done
for i in $(seq 1 "$ROUTERS"); do
  start "router-$i" "$BIN/confab-router" --id "$i" --listen "$(router_grpc "$i")" \
    --http "$(router_http "$i")" --data-dir "$CLUSTER_DIR/router-$i" --bootstrap --peers "$peers"
done
for i in $(seq 1 "$ROUTERS"); do
  if ! wait_ready "http://$(router_http "$i")/readyz" 60; then
    echo "router-$i is not ready; its log: $CLUSTER_DIR/router-$i.log" >&2
    tail -n 20 "$CLUSTER_DIR/router-$i.log" >&2 || true
    exit 1
  fi
done
echo "cluster up: routers on $(router_grpc 1)..$(router_grpc "$ROUTERS") (metrics on $(router_http 1)..)"
echo "  status:  make cluster-status   (or $BIN/confabctl --router $(router_grpc 1) status)"
echo "  stop:    make cluster-down"
