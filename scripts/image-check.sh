#!/usr/bin/env bash
# `make image-check`: runs the image as a small cluster and chats through it
# from outside the containers. One podman pod (one network namespace, an
# address from 198.18.0.0/15) holds a router, persist (SQLite + the embedded
# queue) and a gateway, all from confab:latest, as its own user, with mutual
# TLS between them and TLS on the client port; only the gateway's client
# port is published, on 127.0.0.1. From the host, confab-chat registers two
# users, makes them friends, and one's message reaches the other live and in
# history. Each container's health check must pass. Removes what it made.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-confab:latest}"
TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
BIN="$TARGET_DIR/release"
"$ROOT/scripts/ensure-podman.sh"
podman image exists "$IMAGE" || { echo "no image $IMAGE: make image first" >&2; exit 1; }
for b in confabctl confab-chat; do
  [ -x "$BIN/$b" ] || { echo "no $BIN/$b: make build first" >&2; exit 1; }
done
pod="confab-check-$$"
work="$(mktemp -d)"
listener=""
cleanup() {
  if [ -n "$listener" ]; then kill "$listener" 2>/dev/null || true; fi
  podman pod rm -f -t 10 "$pod" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Certificates for 127.0.0.1 (inside the pod every process is on its
# loopback); readable by the image's user.
tls="$work/tls"
"$BIN/confabctl" certs init --dir "$tls" >/dev/null
issue() { "$BIN/confabctl" certs issue --dir "$tls" --name "$1" --role "$2" ${3:+--id "$3"} --host 127.0.0.1 --host localhost >/dev/null; }
issue router-1 router 1
issue persist persist
issue gateway-1 gateway 1
issue gateway-1-client client-port
chmod 0644 "$tls"/*
flags() { echo --tls-ca /tls/ca.pem --tls-cert "/tls/$1.pem" --tls-key "/tls/$1.key"; }

podman pod create --name "$pod" -p "127.0.0.1:$port:7201" >/dev/null
run() {
  local name="$1"; shift
  # No timer for the image's health check (podman asks systemd for one,
  # and says so on stderr where there is none): the script runs it itself,
  # below.
  podman run -d --pod "$pod" --name "$pod-$name" --health-interval disable -v "$tls:/tls:ro" "$IMAGE" "$@" \
    >/dev/null 2>>"$work/podman.log" || { cat "$work/podman.log" >&2; exit 1; }
}
# shellcheck disable=SC2046 # flags is a list of words
run router confab-router --id 1 --listen 127.0.0.1:7101 --http 127.0.0.1:9101 \
  --data-dir /var/lib/confab/router --bootstrap --peers 1=127.0.0.1:7101 $(flags router-1)
# shellcheck disable=SC2046
run persist confab-persist --listen 127.0.0.1:7301 --http 127.0.0.1:9301 \
  --data-dir /var/lib/confab/persist $(flags persist)
# shellcheck disable=SC2046
run gateway confab-gateway --id 1 --listen 0.0.0.0:7201 --http 127.0.0.1:8201 --metrics 127.0.0.1:9201 \
  --grpc 127.0.0.1:7211 --router 127.0.0.1:7101 --persist 127.0.0.1:7301 $(flags gateway-1) \
  --client-tls-cert /tls/gateway-1-client.pem --client-tls-key /tls/gateway-1-client.key

echo "pod $pod: $(podman pod inspect "$pod" --format '{{.InfraContainerID}}' | cut -c1-12), address \
$(podman inspect "$pod-router" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'), gateway on 127.0.0.1:$port"
ready=""
for _ in $(seq 1 60); do
  if podman exec "$pod-gateway" curl -fsS http://127.0.0.1:9201/readyz >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 1
done
if [ -z "$ready" ]; then
  for c in router persist gateway; do echo "== $c"; podman logs --tail 20 "$pod-$c"; done
  echo "the gateway did not become ready" >&2
  exit 1
fi
for c in router persist gateway; do
  podman healthcheck run "$pod-$c" >/dev/null || { echo "$c: health check failed" >&2; exit 1; }
  user=$(podman exec "$pod-$c" id -un)
  [ "$user" = confab ] || { echo "$c runs as $user, not confab" >&2; exit 1; }
done
echo "router, persist, gateway: healthy, running as user confab"

chat() { "$BIN/confab-chat" --tls-ca "$tls/ca.pem" --gateway "127.0.0.1:$port" "$@"; }
chat register ada --password pw >/dev/null
chat register bo --password pw >/dev/null
chat --user ada --password pw add-friend bo >/dev/null
chat --user bo --password pw accept ada >/dev/null
chat --user bo --password pw listen --count 1 >"$work/received" 2>&1 &
listener=$!
sleep 2
chat --user ada --password pw send bo "hello through the image" >/dev/null
for _ in $(seq 1 50); do
  grep -q "hello through the image" "$work/received" && break
  sleep 0.2
done
grep -q "hello through the image" "$work/received" \
  || { echo "bo did not receive the message live:" >&2; cat "$work/received" >&2; exit 1; }
chat --user bo --password pw history ada | grep -q "hello through the image" \
  || { echo "the message is not in bo's history" >&2; exit 1; }
echo "chat round trip through the image: ok (live and in history)"
