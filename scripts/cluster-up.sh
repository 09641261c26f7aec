#!/usr/bin/env bash
# Starts the local cluster on the default addresses, waits until it is ready
# and prints how to reach it. Safe to run again: running processes are kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_pkgs confab-router confab-persist confab-gateway confab-chat confabctl confab-bench
for i in $(seq 1 "$ROUTERS"); do start_router "$i"; done
# One persist process on the embedded defaults (SQLite + the embedded queue log);
# DATABASE_URL / AMQP_URL in the environment switch it to PostgreSQL / RabbitMQ.
start persist "$BIN/confab-persist" --listen 127.0.0.1:7301 --http 127.0.0.1:9301 \
  --data-dir "$CLUSTER_DIR/persist"
for i in $(seq 1 "$ROUTERS"); do
  if ! wait_ready "http://$(router_http "$i")/readyz" 60; then
    echo "router-$i is not ready; its log: $CLUSTER_DIR/router-$i.log" >&2
    tail -n 20 "$CLUSTER_DIR/router-$i.log" >&2 || true
    exit 1
  fi
done
routers=""
for i in $(seq 1 "$ROUTERS"); do routers+="${routers:+,}$(router_grpc "$i")"; done
for g in $(seq 1 "$GATEWAYS"); do
  start "gateway-$g" "$BIN/confab-gateway" --id "$g" --listen "127.0.0.1:$((7200 + g))" \
    --http "127.0.0.1:$((8200 + g))" --grpc "127.0.0.1:$((7210 + g))" \
    --router "$routers" --persist 127.0.0.1:7301
done
if ! wait_ready "http://127.0.0.1:9301/readyz" 60; then
  echo "persist is not ready; its log: $CLUSTER_DIR/persist.log" >&2
  tail -n 20 "$CLUSTER_DIR/persist.log" >&2 || true
  exit 1
fi
echo "persist up: gRPC 127.0.0.1:7301, metrics on 127.0.0.1:9301 (${DATABASE_URL:+$DATABASE_URL}${DATABASE_URL:-SQLite + embedded queue})"
for g in $(seq 1 "$GATEWAYS"); do
  if ! wait_ready "http://127.0.0.1:$((8200 + g))/readyz" 60; then
    echo "gateway-$g is not ready; its log: $CLUSTER_DIR/gateway-$g.log" >&2
    tail -n 20 "$CLUSTER_DIR/gateway-$g.log" >&2 || true
    exit 1
  fi
done
echo "gateways up: clients on 127.0.0.1:7201..$((7200 + GATEWAYS)) (TCP), ws://127.0.0.1:8201/ws .. (WebSocket)"
echo "  chat:    $BIN/confab-chat --gateway 127.0.0.1:7201 register alice --password pw"
echo "           $BIN/confab-chat --gateway 127.0.0.1:7201 --user alice --password pw"
echo "cluster up: routers on $(router_grpc 1)..$(router_grpc "$ROUTERS") (metrics on $(router_http 1)..)"
echo "  status:  make cluster-status   (or $BIN/confabctl --router $(router_grpc 1) status)"
echo "  stop:    make cluster-down"
