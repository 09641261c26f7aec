#!/usr/bin/env bash
# `make cluster-add-router`: starts the next router of the local cluster (it
# joins through router 1), then `confabctl node add` rebalances replicas and
# leaderships onto it. ID=N picks the id (a new one: never a removed node's).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
id="${ID:-}"
if [ -z "$id" ]; then
  id=$((ROUTERS + 1))
  while [ -e "$CLUSTER_DIR/router-$id" ]; do id=$((id + 1)); done
fi
start_router "$id"
wait_ready "http://$(router_http "$id")/healthz" 60
cluster_ctl --router "$(router_grpc 1)" node add --id "$id" --addr "$(router_grpc "$id")"
# A member now: `make cluster-up` starts it again after `make cluster-down`.
touch "$CLUSTER_DIR/router-$id.member"
echo "router-$id added: gRPC $(router_grpc "$id"), metrics $(router_http "$id")"
