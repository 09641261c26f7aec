#!/usr/bin/env bash
# The cluster as on separate hosts: every router, persist and gateway
# process in a network namespace of its own, on the zones of
# scripts/hosts-net.sh (namespaces confab-NAME), plain gRPC (no TLS) on
# embedded defaults. Needs root. Clients run in the client namespaces
# confab-c1 (subnet-1), confab-c2 (subnet-2) and confab-c3 (public) and
# start from the directory of their zone; confab-op is on the core network.
#
#   scripts/cluster-up-hosts.sh          start it (and print how to use it)
#   scripts/cluster-up-hosts.sh down     stop it and delete the namespaces
set -euo pipefail
source "$(dirname "$0")/lib.sh"
NET="$ROOT/scripts/hosts-net.sh"
PREFIX=confab
DIR="${HOSTS_DIR:-$ROOT/.cluster-hosts}"
export CLUSTER_DIR="$DIR"

if [ "$(id -u)" -ne 0 ]; then
  echo "network namespaces need root: run as root (or with sudo)" >&2
  exit 1
fi

if [ "${1:-}" = down ]; then
  "$ROOT/scripts/cluster-down.sh"
  "$NET" down "$PREFIX"
  echo "namespaces $PREFIX-* deleted"
  exit 0
fi

build_pkgs confab-router confab-persist confab-gateway confab-chat confabctl confab-bench
mkdir -p "$DIR"
if ! ip netns list | grep -q "^$PREFIX-sw\b"; then
  "$NET" up "$PREFIX"
fi
# in NAME HOST PROGRAM ARGS...: process NAME in host HOST's namespace.
in_host() {
  local name="$1" host="$2"; shift 2
  start "$name" ip netns exec "$PREFIX-$host" "$@"
}

routers=(198.18.100.11 198.18.100.12 198.18.100.13)
peers=""
for i in 1 2 3; do peers+="${peers:+,}$i=${routers[$((i - 1))]}:7101"; done
router_list="$(printf '%s:7101,' "${routers[@]}")"
router_list="${router_list%,}"
for i in 1 2 3; do
  r="${routers[$((i - 1))]}"
  in_host "router-$i" "r$i" "$BIN/confab-router" --id "$i" --listen "$r:7101" --http "$r:9101" \
    --data-dir "$DIR/router-$i" --bootstrap --peers "$peers"
done
in_host persist p1 "$BIN/confab-persist" --listen 198.18.100.21:7301 --http 198.18.100.21:9301 \
  --data-dir "$DIR/persist" --router "$router_list"

for g in 1 2; do "$NET" gateway-toml "$g" >"$DIR/gateway-$g.toml"; done
for g in 1 2; do
  in_host "gateway-$g" "g$g" "$BIN/confab-gateway" --config "$DIR/gateway-$g.toml"
done

# Ready, asked from the core network.
for target in router-1=198.18.100.11:9101 router-2=198.18.100.12:9101 router-3=198.18.100.13:9101 \
  persist=198.18.100.21:9301 gateway-1=198.18.100.31:9201 gateway-2=198.18.100.32:9201; do
  name="${target%%=*}"
  deadline=$((SECONDS + 60))
  until ip netns exec "$PREFIX-op" curl -fsS "http://${target#*=}/readyz" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$name is not ready; its log: $DIR/$name.log" >&2
      tail -n 20 "$DIR/$name.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
done
cat <<EOF
cluster up on separate network namespaces ($PREFIX-*; logs and data in $DIR):
  core      198.18.100.0/24  routers .11-.13 (gRPC 7101, HTTP 9101), persist .21, gateways .31/.32
  subnet-1  198.18.101.0/24  gateway 1 at .1; clients in namespace $PREFIX-c1
  subnet-2  198.18.102.0/24  gateway 2 at .1; clients in namespace $PREFIX-c2
  public    198.18.103.0/24  gateway 1 at .1, gateway 2 at .2; clients in namespace $PREFIX-c3
each zone's directory (GET /v1/gateway) names the gateway it reaches:
  ip netns exec $PREFIX-c1 curl -s http://198.18.101.1:8201/v1/gateway
  ip netns exec $PREFIX-c1 $BIN/confab-chat --directory http://198.18.101.1:8201 register ann --password pw
  ip netns exec $PREFIX-c3 $BIN/confab-chat --directory http://198.18.103.1:8201,http://198.18.103.2:8201 --user ann --password pw
cut and heal a zone: scripts/hosts-net.sh cut $PREFIX subnet-1 / scripts/hosts-net.sh heal $PREFIX subnet-1
stop: make cluster-down-hosts
EOF
