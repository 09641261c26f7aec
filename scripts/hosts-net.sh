#!/usr/bin/env bash
# The network of `make cluster-up-hosts` and of the zones test: every
# process gets a network namespace of its own ("a host") with addresses on
# virtual links, arranged as the plan's zones. Needs root and iproute2.
#
#   scripts/hosts-net.sh up PREFIX     build it (namespaces PREFIX-NAME)
#   scripts/hosts-net.sh down PREFIX   delete it (processes inside must be
#                                      stopped first: they keep running)
#   scripts/hosts-net.sh cut PREFIX ZONE / heal PREFIX ZONE
#                                      take a zone's switch down / up
#   scripts/hosts-net.sh addr          the address table (NAME ZONE ADDRESS)
#   scripts/hosts-net.sh gateway-toml G
#                                      gateway G's configuration on it (its
#                                      zone's and the public address, the
#                                      directory's zones; ports 7201 client,
#                                      8201 HTTP, 7211 gRPC, 9201 metrics)
#
# The switches (one bridge per network) live in PREFIX-sw. Addresses come
# from 198.18.0.0/15, the range reserved for benchmarking:
#   core      198.18.100.0/24  routers .11-.13, persist .21, gateways .31-.32,
#                              op .2 (where an operator's tools run)
#   subnet-1  198.18.101.0/24  gateway 1 .1, client c1 .100
#   subnet-2  198.18.102.0/24  gateway 2 .1, client c2 .100
#   public    198.18.103.0/24  gateway 1 .1, gateway 2 .2, client c3 .100
# No namespace has a default route: a host reaches only the networks it
# is on, so a client in subnet-1 reaches gateway 1 and nothing else.
set -euo pipefail

# NAME ZONE ADDRESS: every link of every host.
LINKS="r1 core 198.18.100.11
r2 core 198.18.100.12
r3 core 198.18.100.13
p1 core 198.18.100.21
g1 core 198.18.100.31
g2 core 198.18.100.32
op core 198.18.100.2
g1 subnet-1 198.18.101.1
c1 subnet-1 198.18.101.100
g2 subnet-2 198.18.102.1
c2 subnet-2 198.18.102.100
g1 public 198.18.103.1
g2 public 198.18.103.2
c3 public 198.18.103.100"
ZONES="core subnet-1 subnet-2 public"

# The bridge of ZONE (interface names are at most 15 bytes).
bridge() {
  case "$1" in
    core) echo br-core ;;
    subnet-1) echo br-s1 ;;
    subnet-2) echo br-s2 ;;
    public) echo br-pub ;;
    *) echo "no zone $1 (zones: $ZONES)" >&2; return 1 ;;
  esac
}

up() {
  local p="$1" sw="$1-sw" name zone addr hosts i=0
  command -v ip >/dev/null || { echo "iproute2 (ip) is needed" >&2; exit 1; }
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  for zone in $ZONES; do
    ip -n "$sw" link add "$(bridge "$zone")" type bridge
    ip -n "$sw" link set "$(bridge "$zone")" up
  done
  hosts="$(echo "$LINKS" | awk '{print $1}' | sort -u)"
  for name in $hosts; do
    ip netns add "$p-$name"
    ip -n "$p-$name" link set lo up
  done
  while read -r name zone addr; do
    i=$((i + 1))
    # The host's end is named after the zone; the switch's end vNN.
    ip -n "$sw" link add "v$i" type veth peer name "$zone" netns "$p-$name"
    ip -n "$sw" link set "v$i" master "$(bridge "$zone")" up
    ip -n "$p-$name" addr add "$addr/24" dev "$zone"
    ip -n "$p-$name" link set "$zone" up
  done <<<"$LINKS"
}

# The address of host NAME in ZONE.
addr_of() {
  echo "$LINKS" | awk -v n="$1" -v z="$2" '$1 == n && $2 == z {print $3}'
}

gateway_toml() {
  local g="$1" zone own core public r routers=""
  case "$g" in
    1) zone=subnet-1 ;;
    2) zone=subnet-2 ;;
    *) echo "no gateway $g (1 or 2)" >&2; return 1 ;;
  esac
  own="$(addr_of "g$g" "$zone")" core="$(addr_of "g$g" core)" public="$(addr_of "g$g" public)"
  for r in r1 r2 r3; do routers+="${routers:+, }\"$(addr_of "$r" core):7101\""; done
  cat <<TOML
id = $g
listen = "0.0.0.0:7201"
http = "0.0.0.0:8201"
grpc = "$core:7211"
metrics = "$core:9201"
advertise_client = "$public:7201"
advertise_ws = "ws://$public:8201/ws"
routers = [$routers]
persist = ["$(addr_of p1 core):7301"]

[[zones]]
name = "subnet-1"
cidrs = ["198.18.101.0/24"]
gateways = [1]

[[zones]]
name = "subnet-2"
cidrs = ["198.18.102.0/24"]
gateways = [2]

[[zones]]
name = "public"
cidrs = []
gateways = [1, 2]

[[zone_addresses]]
zone = "$zone"
client = "$own:7201"
ws = "ws://$own:8201/ws"
TOML
}

down() {
  local p="$1" ns
  for ns in $(ip netns list | awk '{print $1}'); do
    case "$ns" in "$p"-*) ip netns del "$ns" ;; esac
  done
}

case "${1:-}" in
  up) up "${2:?PREFIX}" ;;
  down) down "${2:?PREFIX}" ;;
  cut) ip -n "${2:?PREFIX}-sw" link set "$(bridge "${3:?ZONE}")" down ;;
  heal) ip -n "${2:?PREFIX}-sw" link set "$(bridge "${3:?ZONE}")" up ;;
  addr) echo "$LINKS" ;;
  gateway-toml) gateway_toml "${2:?G}" ;;
  *) sed -n '2,26p' "$0" >&2; exit 2 ;;
esac
