#!/usr/bin/env bash
# Starts the local cluster on the default addresses, waits until it is ready
# and prints how to reach it. Safe to run again: running processes are kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_pkgs confab-router confab-persist confab-gateway confab-chat confabctl confab-bench
# Every router the local cluster has: the initial ones and those
# `make cluster-add-router` added (each leaves a router-N.member marker).
for i in $(cluster_routers); do start_router "$i"; done
routers=""
for i in $(seq 1 "$ROUTERS"); do routers+="${routers:+,}$(router_grpc "$i")"; done
# One persist process on the embedded defaults (SQLite + the embedded queue log);
# DATABASE_URL / AMQP_URL in the environment switch it to PostgreSQL (or
# MySQL/MariaDB: mysql://...) / RabbitMQ. With AMQP_URL the gateways publish
# straight to the broker (same queue prefix as persist); with AMQP_URL and a
# database server in DATABASE_URL a second persist process (id 2, 7302/9302)
# shares the partitions: the broker delivers each partition to one of them
# (single active consumer) and moves it to the other when one dies.
persist_ids=1
gateway_queue=()
if [ -n "${AMQP_URL:-}" ]; then
  gateway_queue=(CONFAB_QUEUE__BACKEND=amqp "CONFAB_QUEUE__AMQP_URL=$AMQP_URL"
    "CONFAB_QUEUE__PREFIX=${CONFAB_QUEUE__PREFIX:-confab.messages}")
  case "${DATABASE_URL:-}" in
    postgres*|mysql:*|mariadb:*) persist_ids="1 2" ;;
  esac
fi
persist_name() { if [ "$1" = 1 ]; then echo persist; else echo "persist-$1"; fi; }
persists=""
ensure_cert persist persist
for p in $persist_ids; do
  persists+="${persists:+,}127.0.0.1:$((7300 + p))"
  # shellcheck disable=SC2046 # tls_flags is a list of words
  start "$(persist_name "$p")" env CONFAB_SERVER__ID="$p" "$BIN/confab-persist" \
    --listen "127.0.0.1:$((7300 + p))" --http "127.0.0.1:$((9300 + p))" \
    --data-dir "$CLUSTER_DIR/$(persist_name "$p")" --router "$routers" $(tls_flags persist)
done
for i in $(cluster_routers); do
  if ! wait_ready "http://$(router_http "$i")/readyz" 60; then
    echo "router-$i is not ready; its log: $CLUSTER_DIR/router-$i.log" >&2
    tail -n 20 "$CLUSTER_DIR/router-$i.log" >&2 || true
    exit 1
  fi
done
# Every local client (chat, bench) comes from 127.0.0.1: the per-address
# connection cap and login/register rate limits are lifted here, and the
# login deadline (the bench's idle connections say Hello and never log in).
local_limits=(env CONFAB_LIMITS__MAX_CONNECTIONS_PER_IP=1000000 CONFAB_LIMITS__LOGIN_TIMEOUT_MS=86400000)
for k in LOGIN_PER_IP LOGIN_PER_ACCOUNT REGISTER_PER_IP; do
  local_limits+=("CONFAB_LIMITS__${k}_BURST=100000000" "CONFAB_LIMITS__${k}_PER_MINUTE=100000000")
done
# With TLS=1 the client ports speak TLS too: each gateway's client-port
# certificate (127.0.0.1, localhost) comes from the same dev CA; clients
# trust .cluster/tls/ca.pem (confab-chat --tls-ca).
for g in $(seq 1 "$GATEWAYS"); do
  ensure_cert "gateway-$g" gateway "$g"
  ensure_cert "gateway-$g-client" client-port
  # shellcheck disable=SC2046
  start "gateway-$g" "${local_limits[@]}" "${gateway_queue[@]}" "$BIN/confab-gateway" --id "$g" \
    --listen "127.0.0.1:$((7200 + g))" --http "127.0.0.1:$((8200 + g))" --grpc "127.0.0.1:$((7210 + g))" \
    --metrics "127.0.0.1:$((9200 + g))" --router "$routers" --persist "$persists" \
    $(tls_flags "gateway-$g") $(client_tls_flags "$g")
done
ensure_cert admin admin
queue="embedded queue"
[ -z "${AMQP_URL:-}" ] || queue=RabbitMQ
for p in $persist_ids; do
  name="$(persist_name "$p")"
  if ! wait_ready "http://127.0.0.1:$((9300 + p))/readyz" 60; then
    echo "$name is not ready; its log: $CLUSTER_DIR/$name.log" >&2
    tail -n 20 "$CLUSTER_DIR/$name.log" >&2 || true
    exit 1
  fi
  echo "$name up: gRPC 127.0.0.1:$((7300 + p)), metrics on 127.0.0.1:$((9300 + p)) (${DATABASE_URL:-SQLite} + $queue)"
done
if [ -n "${AMQP_URL:-}" ]; then
  echo "gateways publish to RabbitMQ, queue prefix ${CONFAB_QUEUE__PREFIX:-confab.messages}"
fi
for g in $(seq 1 "$GATEWAYS"); do
  if ! wait_ready "http://127.0.0.1:$((9200 + g))/readyz" 60; then
    echo "gateway-$g is not ready; its log: $CLUSTER_DIR/gateway-$g.log" >&2
    tail -n 20 "$CLUSTER_DIR/gateway-$g.log" >&2 || true
    exit 1
  fi
done
if [ "$TLS" = 1 ]; then
  ca="$(tls_dir)/ca.pem"
  echo "gateways up: clients on 127.0.0.1:7201..$((7200 + GATEWAYS)) (TCP with TLS), wss://127.0.0.1:8201/ws .. (WebSocket),"
  echo "  metrics on 127.0.0.1:9201..$((9200 + GATEWAYS)); clients trust $ca"
  echo "  chat:    $BIN/confab-chat --tls-ca $ca --gateway 127.0.0.1:7201 register alice --password pw"
  echo "           $BIN/confab-chat --tls-ca $ca --gateway 127.0.0.1:7201 --user alice --password pw"
else
  echo "gateways up: clients on 127.0.0.1:7201..$((7200 + GATEWAYS)) (TCP), ws://127.0.0.1:8201/ws .. (WebSocket),"
  echo "  metrics on 127.0.0.1:9201..$((9200 + GATEWAYS))"
  echo "  chat:    $BIN/confab-chat --gateway 127.0.0.1:7201 register alice --password pw"
fi
echo "cluster up: routers on $(router_grpc 1)..$(router_grpc "$ROUTERS") (metrics on $(router_http 1)..)"
if [ "$TLS" = 1 ]; then
  echo "  internal gRPC: mutual TLS, dev CA and certificates in $(tls_dir) (confabctl uses admin.pem there)"
else
  echo "  internal gRPC: plain (TLS=0)"
fi
echo "  status:  make cluster-status   (or $BIN/confabctl --router $(router_grpc 1) status)"
echo "  stop:    make cluster-down"
if [ "$TLS" = 1 ]; then
  echo "web client: https://127.0.0.1:8201/   (a second browser profile or private window is a second user)"
  echo "            the browser must trust $(tls_dir)/ca.pem, or accept the dev certificate once"
else
  echo "web client: http://127.0.0.1:8201/   (a second browser profile or private window is a second user)"
fi
