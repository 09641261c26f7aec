#!/usr/bin/env bash
# `make soak`: a private release cluster (3 routers, persist on the embedded
# defaults, 2 gateways; ports 37xxx) under 1:1 chat, group and presence load
# at about half the measured maximum for SOAK_SECS seconds (default 1800).
# Every SOAK_EVERY seconds (default 10) scripts/soak-report.py samples each
# process's RSS and open files and the gateways' send p99 (from their
# confab_gateway_send_seconds histograms, over the last interval) into
# $BENCH_OUT/soak/samples.json; at the end it judges them (the rule is in
# that script), writes soak.svg beside the JSON, and fails on growth.
#
#   SOAK_SECS=1800 make soak
#   SOAK_CHAT_RATE (default 8000 messages/s offered), SOAK_GROUP_INTERVAL_MS
#   (default 400: four groups of 500, one message each every 400 ms, 5,000
#   deliveries/s), SOAK_PRESENCE (default 1 friend-list reader of 100
#   friends, one list in flight: about 2,000 lists/s). Together about half
#   of what this 2-core machine sustains: with chat offered 15,000/s,
#   groups every 200 ms and 2 readers, chat delivered 10,200/s and fell
#   behind.
set -euo pipefail
export TLS=0
source "$(dirname "$0")/lib.sh"
export PROFILE=release
BIN="$TARGET_DIR/release"
SOAK_SECS="${SOAK_SECS:-1800}"
EVERY="${SOAK_EVERY:-10}"
OUT="${BENCH_OUT:-$ROOT/target-bench}/soak"
SKIP_BUILD="${SKIP_BUILD:-}"
[ -n "$SKIP_BUILD" ] || build_pkgs confab-router confab-persist confab-gateway confab-chat confabctl confab-bench
rm -rf "$OUT"
mkdir -p "$OUT"

export CLUSTER_DIR="$(mktemp -d)"
export GRPC_BASE=37100 HTTP_BASE=37200
persist=127.0.0.1:37301 persist_http=127.0.0.1:37302
gw_client() { echo "127.0.0.1:$((37400 + $1))"; }
loads=()
cleanup() {
  for p in "${loads[@]}"; do kill "$p" 2>/dev/null || true; done
  "$ROOT/scripts/cluster-down.sh" >/dev/null 2>&1 || true
  rm -rf "$CLUSTER_DIR"
}
trap cleanup EXIT
for i in 1 2 3; do start_router "$i"; done
CONFAB_DATABASE__ARGON2_MEMORY_KIB=64 start persist "$BIN/confab-persist" --listen "$persist" \
  --http "$persist_http" --data-dir "$CLUSTER_DIR/persist"
for i in 1 2 3; do wait_ready "http://$(router_http "$i")/readyz" 60; done
wait_ready "http://$persist_http/readyz" 60
routers="$(router_grpc 1),$(router_grpc 2),$(router_grpc 3)"
# The load's users send far faster than a person, all from 127.0.0.1.
limits=(env CONFAB_USER_LIMITS__MESSAGES_PER_S=0 CONFAB_LIMITS__MAX_CONNECTIONS_PER_IP=1000000)
for k in LOGIN_PER_IP LOGIN_PER_ACCOUNT REGISTER_PER_IP; do
  limits+=("CONFAB_LIMITS__${k}_BURST=100000000" "CONFAB_LIMITS__${k}_PER_MINUTE=100000000")
done
for g in 1 2; do
  start "gateway-$g" "${limits[@]}" "$BIN/confab-gateway" --id "$g" --listen "$(gw_client "$g")" \
    --http "127.0.0.1:$((37410 + g))" --grpc "127.0.0.1:$((37420 + g))" --metrics "127.0.0.1:$((37430 + g))" \
    --router "$routers" --persist "$persist"
done
for g in 1 2; do
  if ! wait_ready "http://127.0.0.1:$((37430 + g))/readyz" 60; then
    tail -n 20 "$CLUSTER_DIR/gateway-$g.log" >&2
    exit 1
  fi
done
gateways="$(gw_client 1),$(gw_client 2)"
metrics="127.0.0.1:37431,127.0.0.1:37432"

echo "== soak: ${SOAK_SECS} s; chat offered ${SOAK_CHAT_RATE:-8000}/s, 4 groups of 500 every ${SOAK_GROUP_INTERVAL_MS:-400} ms, ${SOAK_PRESENCE:-1} presence readers"
"$BIN/confab-bench" chat --gateway "$gateways" --pairs 200 --rate "${SOAK_CHAT_RATE:-8000}" \
  --duration "$SOAK_SECS" --warmup 5 --json >"$OUT/chat.json" 2>"$OUT/chat.log" &
loads+=($!)
interval="${SOAK_GROUP_INTERVAL_MS:-400}"
# The groups send until the samples end (SIGTERM below; their set-up, 2,004
# users registered and joined, takes a minute or two of the soak), then
# wait for the deliveries and report.
"$BIN/confab-bench" group --gateway "$gateways" --members 500 --groups 4 \
  --interval-ms "$interval" --messages 100000 --duration "$SOAK_SECS" --json >"$OUT/group.json" 2>"$OUT/group.log" &
group_pid=$!
loads+=("$group_pid")
"$BIN/confab-bench" presence --gateway "$gateways" --friends 100 \
  --concurrency "${SOAK_PRESENCE:-1}" --duration "$SOAK_SECS" --json >"$OUT/presence.json" 2>"$OUT/presence.log" &
loads+=($!)

pids=()
for f in "$CLUSTER_DIR"/*.pid; do pids+=("$(basename "$f" .pid)=$(cat "$f")"); done
status=0
python3 "$ROOT/scripts/soak-report.py" sample --every "$EVERY" --secs "$SOAK_SECS" --metrics "$metrics" \
  --parts "$persist_http" --out "$OUT" "${pids[@]}" || status=$?
# Chat and presence end by themselves; the groups stop sending now. A load
# still running a minute later is stopped and reported so.
kill -TERM "$group_pid" 2>/dev/null || true
names=(chat group presence)
for i in "${!loads[@]}"; do
  for _ in $(seq 1 60); do kill -0 "${loads[$i]}" 2>/dev/null || break; sleep 1; done
  if kill -0 "${loads[$i]}" 2>/dev/null; then
    kill "${loads[$i]}" 2>/dev/null || true
    wait "${loads[$i]}" 2>/dev/null || true
    echo "soak: ${names[$i]} load stopped with the soak"
  elif ! wait "${loads[$i]}"; then
    echo "soak: ${names[$i]} load failed (see $OUT/${names[$i]}.log)" >&2
    status=1
  fi
done
loads=()
for f in chat group presence; do
  echo "-- $f: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d.get('results',{}); print({k: d.get(k) for k in ('ops_per_s','p99_us')} | {k: r.get(k) for k in ('lost','duplicated') if k in r})" "$OUT/$f.json" 2>/dev/null || echo 'no summary')"
done
python3 "$ROOT/scripts/soak-report.py" judge --out "$OUT" || status=$?
exit "$status"
