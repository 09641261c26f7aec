#!/usr/bin/env bash
# `make stack-up` / `make stack-down`: deploy/compose.yml on this machine
# with podman, and a chat round trip from outside the containers.
#
#   scripts/stack.sh up     install what is missing, start, wait, chat
#   scripts/stack.sh down   remove every container, network and volume `up`
#                           made (label io.confab.stack=PROJECT) and its
#                           work directory; nothing else
#
# up: podman (scripts/ensure-podman.sh), the Debian bases
# (scripts/image-base.sh), PostgreSQL, RabbitMQ and Prometheus images made
# from Debian's packages (scripts/image-infra.sh; no registry here), and
# confab:latest (scripts/image.sh) when it is missing. TLS material for every
# process made with the host's confabctl into the work directory. Then the
# services of deploy/compose.yml, started with podman by
# scripts/stack-compose.py (Debian's podman-compose cannot run the file; that
# script says why): PostgreSQL, RabbitMQ and Prometheus first, healthy, then
# the 3 routers, 2 persist processes and 2 gateways, until each one's health
# check (the compose file's: /readyz on its plain HTTP port) passes, then
# until persist answers through each gateway. Grafana, Loki and Alloy are
# not started: they are no Debian packages, so there is no image of them
# here. Last, from the host with the host's confab-chat:
# two users register, become friends, and a message sent through gateway 1
# reaches the other user, listening on gateway 2, live and in history.
# Prints the time each step took; on a failure, the logs of the failing
# container, and leaves the stack up for a look (`make stack-down`).
#
# Ports are published on 127.0.0.1 only, each at the compose file's port +
# CONFAB_STACK_PORT_OFFSET (default 10000: gateway 1 at 127.0.0.1:17201,
# so that a local cluster's 7201 is not in the way).
#
#   CONFAB_STACK_PROJECT      names and label (default confab-stack)
#   CONFAB_STACK_DIR          work directory (default ~/.cache/confab/stack)
#   CONFAB_STACK_PORT_OFFSET  added to each published port (default 10000)
#   CONFAB_STACK_TIMEOUT      seconds to wait for readiness (default 300)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROJECT="${CONFAB_STACK_PROJECT:-confab-stack}"
WORK="${CONFAB_STACK_DIR:-$HOME/.cache/confab/stack}"
OFFSET="${CONFAB_STACK_PORT_OFFSET:-10000}"
TIMEOUT="${CONFAB_STACK_TIMEOUT:-300}"
IMAGE="${IMAGE:-confab:latest}"
TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
BIN="$TARGET_DIR/release"
LABEL="io.confab.stack=$PROJECT"
# Debian's Python (python3-yaml), whatever python3 comes first on the PATH.
PY=/usr/bin/python3
compose() { "$PY" "$ROOT/scripts/stack-compose.py" --file "$ROOT/deploy/compose.yml" \
  --project "$PROJECT" --port-offset "$OFFSET" "$@"; }

INFRA=(postgres rabbitmq prometheus)
CONFAB=(router-1 router-2 router-3 persist-1 persist-2 gateway-1 gateway-2)
ABSENT=(grafana loki alloy)

down() {
  local ids
  ids=$(podman ps -aq --filter "label=$LABEL")
  # Stopped first, each within its stop_grace_period (the stop timeout
  # stack-compose.py gave it), then removed.
  # shellcheck disable=SC2086 # a list of ids
  [ -z "$ids" ] || { podman stop $ids >/dev/null; podman rm -f $ids >/dev/null; }
  ids=$(podman network ls -q --filter "label=$LABEL")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman network rm $ids >/dev/null
  ids=$(podman volume ls -q --filter "label=$LABEL")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman volume rm $ids >/dev/null
  rm -rf "$WORK"
  echo "stack $PROJECT: removed (containers, networks, volumes, $WORK)"
}

if [ "${1:-}" = down ]; then
  command -v podman >/dev/null 2>&1 || { echo "no podman: nothing to remove"; exit 0; }
  down
  exit 0
fi
[ "${1:-}" = up ] || { echo "usage: $0 up|down" >&2; exit 2; }

t0=$SECONDS
step() { echo "== $* ($((SECONDS - t0)) s)"; }
fail() {
  echo "stack-up failed: $1" >&2
  shift
  for c in "$@"; do
    echo "---- logs of ${PROJECT}_$c (last 40 lines)" >&2
    podman logs --tail 40 "${PROJECT}_$c" >&2 2>&1 || true
  done
  echo "the stack is left up for a look: make stack-down removes it" >&2
  exit 1
}

step "podman and images"
"$ROOT/scripts/ensure-podman.sh"
"$PY" -c 'import yaml' 2>/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null
"$ROOT/scripts/image-base.sh"
"$ROOT/scripts/image-infra.sh"
if ! podman image exists "$IMAGE"; then
  echo "$IMAGE: missing, making it (scripts/image.sh)"
  IMAGE="$IMAGE" "$ROOT/scripts/image.sh"
fi
for b in confabctl confab-chat; do
  [ -x "$BIN/$b" ] || { echo "no $BIN/$b: make build first" >&2; exit 1; }
done
if [ -n "$(podman ps -aq --filter "label=$LABEL")" ]; then
  echo "stack $PROJECT is up already: make stack-down first" >&2
  exit 1
fi
t_images=$((SECONDS - t0))

# The images deploy/compose.yml names in their place, the TLS material it
# reads, what /v1/gateway hands out (the published ports).
export CONFAB_IMAGE="$IMAGE"
export CONFAB_POSTGRES_IMAGE=localhost/confab-postgres:15
export CONFAB_RABBITMQ_IMAGE=localhost/confab-rabbitmq:3.10
export CONFAB_PROMETHEUS_IMAGE=localhost/confab-prometheus:2.42
export CONFAB_TLS_DIR="$WORK/tls"
gw1=$((7201 + OFFSET))
gw2=$((7202 + OFFSET))
export CONFAB_GATEWAY_1_ADDR="127.0.0.1:$gw1" CONFAB_GATEWAY_2_ADDR="127.0.0.1:$gw2"

published=$(compose ports "${INFRA[@]}" "${CONFAB[@]}")
while read -r _ _ addr _; do
  port="${addr##*:}"
  if "$PY" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    continue
  fi
  echo "127.0.0.1:$port is taken: set CONFAB_STACK_PORT_OFFSET to another offset" >&2
  exit 1
done <<<"$published"

step "TLS material in $CONFAB_TLS_DIR"
rm -rf "$WORK"
mkdir -p "$CONFAB_TLS_DIR"
tls="$CONFAB_TLS_DIR"
"$BIN/confabctl" certs init --dir "$tls" >/dev/null
issue() { "$BIN/confabctl" certs issue --dir "$tls" "$@" >/dev/null; }
for i in 1 2 3; do issue --role router --id "$i" --host "router-$i"; done
for i in 1 2; do issue --role gateway --id "$i" --host "gateway-$i"; done
issue --role persist --host persist-1 --host persist-2
issue --role admin
issue --role client-port --name gateway-client --host gateway-1 --host gateway-2 --host localhost --host 127.0.0.1
# Bind-mounted as they are (no Swarm secrets here): readable by the images'
# users. The CA's key stays with the host's user.
chmod 0644 "$tls"/*.pem "$tls"/*.key
chmod 0600 "$tls/ca.key"

ready() { podman healthcheck run "${PROJECT}_$1" >/dev/null 2>&1; }
wait_ready() {
  local deadline=$((SECONDS + TIMEOUT)) pending=("$@") left c state
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for c in "${pending[@]}"; do
      state=$(podman inspect "${PROJECT}_$c" --format '{{.State.Status}}' 2>/dev/null || echo missing)
      if [ "$state" = running ] && ready "$c"; then
        echo "   $c: healthy $((SECONDS - t_start)) s after the first container started"
      else
        left+=("$c")
      fi
    done
    pending=("${left[@]+"${left[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
      fail "not ready after ${TIMEOUT} s: ${pending[*]}" "${pending[@]}"
    fi
    sleep 2
  done
}

step "PostgreSQL, RabbitMQ, Prometheus (not run here: ${ABSENT[*]}, no image of them)"
t_start=$SECONDS
compose up "${INFRA[@]}" || fail "podman run" "${INFRA[@]}"
wait_ready postgres rabbitmq
step "routers, persist, gateways"
compose up "${CONFAB[@]}" || fail "podman run" "${CONFAB[@]}"
wait_ready "${CONFAB[@]}" prometheus
t_ready=$((SECONDS - t_start))
step "every container healthy ($t_ready s after the first one started)"
podman ps --filter "label=$LABEL" --format '   {{.Names}}\t{{.Status}}\t{{.Ports}}'
for c in "${CONFAB[@]}"; do
  user=$(podman exec "${PROJECT}_$c" id -un)
  [ "$user" = confab ] || fail "$c runs as $user, not confab" "$c"
done

chat() { local port="$1"; shift; "$BIN/confab-chat" --tls-ca "$tls/ca.pem" --gateway "127.0.0.1:$port" "$@"; }

# A gateway's /readyz says it is registered with the routers; its calls to
# persist (accounts, history) may still time out for a while after that
# ("Unavailable: persist unavailable, retry"). Wait until each gateway's
# persist answers: the login of a user that does not exist is refused as
# BadCredentials, which takes persist's answer. (Each try under a new name:
# the login rate limits count per account too.)
step "persist answering through each gateway"
t_data=$SECONDS
for port in "$gw1" "$gw2"; do
  n=0 before=""
  until out=$(chat "$port" --user "nobody-$port-$n" --password x login 2>&1) || true
        grep -q BadCredentials <<<"$out"; do
    n=$((n + 1)) before="$out"
    [ $((SECONDS - t_data)) -lt "$TIMEOUT" ] || fail "127.0.0.1:$port: persist does not answer: $out" gateway-1 gateway-2 persist-1 persist-2
    sleep 1
  done
  echo "   127.0.0.1:$port: persist answers after $((SECONDS - t_data)) s${before:+ ($n tries before: $before)}"
done
t_data=$((SECONDS - t_data))

step "chat round trip from the host: ada on gateway 1 (127.0.0.1:$gw1), bo on gateway 2 (127.0.0.1:$gw2)"
t_chat=$SECONDS
listener=""
trap '[ -z "$listener" ] || kill "$listener" 2>/dev/null || true' EXIT
text="hello through the stack $(date +%s)"
chat "$gw1" register ada --password pw >/dev/null || fail "register ada" gateway-1
chat "$gw2" register bo --password pw >/dev/null || fail "register bo" gateway-2
chat "$gw1" --user ada --password pw add-friend bo >/dev/null || fail "ada add-friend bo" gateway-1
chat "$gw2" --user bo --password pw accept ada >/dev/null || fail "bo accept ada" gateway-2
chat "$gw2" --user bo --password pw listen --count 1 >"$WORK/received" 2>&1 &
listener=$!
sleep 2
chat "$gw1" --user ada --password pw send bo "$text" >/dev/null || fail "ada send" gateway-1
for _ in $(seq 1 50); do
  grep -qF "$text" "$WORK/received" && break
  sleep 0.2
done
grep -qF "$text" "$WORK/received" \
  || { cat "$WORK/received" >&2; fail "bo did not receive the message live" gateway-1 gateway-2; }
chat "$gw2" --user bo --password pw history ada | grep -qF "$text" \
  || fail "the message is not in bo's history" gateway-2 persist-1 persist-2
t_chat=$((SECONDS - t_chat))
echo "   ada -> bo: received live on gateway 2 and in history ($t_chat s for the round trip, registrations included)"

step "Prometheus scrapes every Confab process, found through the routers' GET /sd"
t_scrape=$SECONDS
want="gateway:1 gateway:2 persist:1 persist:2 router:1 router:2 router:3"
targets() {
  curl -fsS "http://127.0.0.1:$((9090 + OFFSET))/api/v1/targets" 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    if t["health"] == "up" and "role" in t["labels"]:
        print(t["labels"]["role"] + ":" + t["labels"].get("node", "?"))' | sort | paste -sd' ' -
}
up=""
for _ in $(seq 1 60); do
  up="$(targets || true)"
  [ "$up" = "$want" ] && break
  sleep 1
done
[ "$up" = "$want" ] || fail "Prometheus scrapes [$up], not [$want]" prometheus
t_scrape=$((SECONDS - t_scrape))
echo "   up == 1 for $want ($t_scrape s)"

echo "stack $PROJECT up in $((SECONDS - t0)) s (images ${t_images} s; containers started to all healthy ${t_ready} s; then persist answering through the gateways ${t_data} s; chat ${t_chat} s)"
echo "   gateway 1: 127.0.0.1:$gw1 (TCP), https://127.0.0.1:$((8201 + OFFSET)); gateway 2: 127.0.0.1:$gw2, https://127.0.0.1:$((8202 + OFFSET))"
echo "   Prometheus: http://127.0.0.1:$((9090 + OFFSET)); TLS material: $tls (confab-chat --tls-ca $tls/ca.pem)"
echo "   status: podman exec ${PROJECT}_router-1 confabctl status;  make stack-down removes it all"
