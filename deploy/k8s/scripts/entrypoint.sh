#!/bin/sh
# Entrypoint of the Confab containers on Kubernetes: derives the process'
# identity from its StatefulSet pod name (NAME-ORDINAL) and starts it with
# the addresses its peers dial.
#
#   entrypoint.sh router    confab-router, node id = ordinal + 1
#   entrypoint.sh gateway   confab-gateway, gateway id = ordinal + 1
#   entrypoint.sh persist   confab-persist
#
# Environment (the confab-topology ConfigMap and the pod spec):
#   POD_NAME             this pod's name (downward API; default: hostname)
#   INITIAL_ROUTERS      routers that bootstrap the cluster (ids 1..N), 3
#   ROUTER_ID_OFFSET     added to ordinal + 1 for a router with an empty volume
#                        that must not take its ordinal's id (see README), 0
#   ROUTER_STS / ROUTER_SERVICE     confab-router / confab-router (headless)
#   GATEWAY_SERVICE      the gateways' headless Service, confab-gateway-internal
#   GATEWAY_PUBLIC_ADDR  host:port that /v1/gateway hands to clients; empty:
#                        the pod's own DNS name (in-cluster clients)
#   PERSIST_STS / PERSIST_SERVICE   confab-persist / confab-persist (headless)
#   PERSIST_REPLICAS     persist pods every gateway follows, 2
#
# Files: /etc/confab/deploy/*.toml (the confab-config ConfigMap),
# /etc/confab/tls (the confab-tls Secret: ca.pem and ROLE[-ID].pem/.key;
# absent or empty: plain gRPC), /etc/confab/client-tls (the
# confab-gateway-client-tls Secret: tls.crt, tls.key; absent: plain client
# ports).
set -eu

role="${1:?usage: entrypoint.sh router|gateway|persist}"
pod="${POD_NAME:-$(hostname)}"
ordinal="${pod##*-}"
case "$ordinal" in
  '' | *[!0-9]*)
    echo "entrypoint: pod name '$pod' does not end in a StatefulSet ordinal" >&2
    exit 1
    ;;
esac

config_dir=/etc/confab/deploy
tls_dir=/etc/confab/tls
client_tls_dir=/etc/confab/client-tls
router_sts="${ROUTER_STS:-confab-router}"
router_svc="${ROUTER_SERVICE:-confab-router}"
initial="${INITIAL_ROUTERS:-3}"

# use_tls NAME: sets TLS_FLAGS to NAME's mutual-TLS flags when the Secret
# holds ca.pem; a Secret with a CA but without NAME's pair is an error
# (a process silently running plain inside a TLS cluster would be worse).
TLS_FLAGS=""
use_tls() {
  if [ ! -f "$tls_dir/ca.pem" ]; then
    echo "entrypoint: no $tls_dir/ca.pem: internal gRPC runs plain" >&2
    return 0
  fi
  if [ ! -f "$tls_dir/$1.pem" ] || [ ! -f "$tls_dir/$1.key" ]; then
    echo "entrypoint: $tls_dir has ca.pem but not $1.pem and $1.key" >&2
    exit 1
  fi
  TLS_FLAGS="--tls-ca $tls_dir/ca.pem --tls-cert $tls_dir/$1.pem --tls-key $tls_dir/$1.key"
}

# list STS SERVICE PORT COUNT [FIRST]: the COUNT pods' addresses,
# STS-N.SERVICE:PORT, starting with ordinal FIRST (default 0) and wrapping.
list() {
  out="" i=0
  while [ "$i" -lt "$4" ]; do
    out="${out:+$out,}$1-$(((${5:-0} + i) % $4)).$2:$3"
    i=$((i + 1))
  done
  echo "$out"
}

# peers: the initial members, 1=STS-0.SERVICE:7101,2=STS-1...,N=STS-(N-1)...
peers() {
  out="" i=0
  while [ "$i" -lt "$initial" ]; do
    out="${out:+$out,}$((i + 1))=$router_sts-$i.$router_svc:7101"
    i=$((i + 1))
  done
  echo "$out"
}

router() {
  data=/var/lib/confab/router
  marker="$data/confab-node-id"
  mkdir -p "$data"
  # The id lives on the volume once given: a pod keeps its node id whatever
  # happens to ROUTER_ID_OFFSET later.
  if [ -f "$marker" ]; then
    id="$(cat "$marker")"
  else
    id=$((ordinal + 1 + ${ROUTER_ID_OFFSET:-0}))
  fi
  self="$pod.$router_svc:7101"
  if [ "$id" -le "$initial" ]; then
    # One of the initial members: every one of them starts with the same
    # peer list (a no-op on restart: the data dir holds the cluster).
    if [ "$id" -ne $((ordinal + 1)) ]; then
      echo "entrypoint: node id $id is an initial member's but this is ordinal $ordinal" >&2
      exit 1
    fi
    mode="--bootstrap --peers $(peers)"
  else
    # A node added later joins through router 1 (on a restart the join is
    # answered at once: a known id at the same address). --peers ID=ADDR
    # names the address this node is reached at; without it, it would
    # offer its bind address (0.0.0.0:7101) to the cluster.
    mode="--join $router_sts-0.$router_svc:7101 --peers $id=$self"
  fi
  use_tls "router-$id"
  echo "$id" >"$marker"
  # shellcheck disable=SC2086 # mode and TLS_FLAGS are lists of words
  exec confab-router --config "$config_dir/router.toml" --id "$id" --listen 0.0.0.0:7101 --http 0.0.0.0:9101 --data-dir "$data" $mode $TLS_FLAGS
}

gateway() {
  id=$((ordinal + 1))
  internal="${GATEWAY_SERVICE:-confab-gateway-internal}"
  routers="$(list "$router_sts" "$router_svc" 7101 "$initial")"
  # Every persist pod (the gateway follows each one's commits); the first
  # serves this gateway's data access, so gateways start at different ones.
  persist="$(list "${PERSIST_STS:-confab-persist}" "${PERSIST_SERVICE:-confab-persist}" 7301 "${PERSIST_REPLICAS:-2}" "$ordinal")"
  # What other gateways dial (registered with the routers) and what
  # GET /v1/gateway hands to clients.
  CONFAB_ADVERTISE_GRPC="$pod.$internal:7211"
  CONFAB_ADVERTISE_CLIENT="${GATEWAY_PUBLIC_ADDR:-$pod.$internal:7201}"
  export CONFAB_ADVERTISE_GRPC CONFAB_ADVERTISE_CLIENT
  client_tls=""
  if [ -f "$client_tls_dir/tls.crt" ] && [ -f "$client_tls_dir/tls.key" ]; then
    client_tls="--client-tls-cert $client_tls_dir/tls.crt --client-tls-key $client_tls_dir/tls.key"
  fi
  use_tls "gateway-$id"
  # shellcheck disable=SC2086
  exec confab-gateway --config "$config_dir/gateway.toml" --id "$id" --listen 0.0.0.0:7201 --http 0.0.0.0:8201 --metrics 0.0.0.0:9201 --grpc 0.0.0.0:7211 --router "$routers" --persist "$persist" $client_tls $TLS_FLAGS
}

persist() {
  use_tls persist
  # shellcheck disable=SC2086
  exec confab-persist --config "$config_dir/persist.toml" --listen 0.0.0.0:7301 --http 0.0.0.0:9301 --data-dir /var/lib/confab/persist $TLS_FLAGS
}

case "$role" in
  router) router ;;
  gateway) gateway ;;
  persist) persist ;;
  *)
    echo "entrypoint: unknown role '$role' (router, gateway or persist)" >&2
    exit 2
    ;;
esac
