#!/usr/bin/env bash
# The router's elasticity benchmarks (part of `make bench`), on a private
# release cluster (fsync on, 3 replicas, 16 shards) on ports of its own:
#   1. grow 3 -> 5 nodes while confab-bench runs logins and lookups: the
#      client-visible errors during the grow (target 0);
#   2. a learner catching up a shard of 1,000,000 sessions (`confab-bench
#      catchup`, target < 10 s);
#   3. SIGKILL of shard leaders, time until writes to that shard succeed
#      again (`confab-bench failover`, target p99 < 1 s over 20 kills).
# Stops what it started by pid. SKIP_BUILD=1 uses the binaries as they are.
set -euo pipefail
# The benchmark clusters run plain gRPC inside (TLS=1 turns mutual TLS on).
export TLS="${TLS:-0}"
source "$(dirname "$0")/lib.sh"
export PROFILE=release
BIN="$TARGET_DIR/release"
OUT="${BENCH_OUT:-$ROOT/target-bench}"
GROW_SECS="${GROW_SECS:-40}"
CATCHUP_SESSIONS="${CATCHUP_SESSIONS:-1000000}"
KILLS="${KILLS:-20}"
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release --workspace --bins)
fi
mkdir -p "$OUT"
export CLUSTER_DIR="$(mktemp -d)"
# Fixed ports below the ephemeral range (32768-60999 here), so that no
# outgoing connection of the run holds one when a router (re)binds it.
export GRPC_BASE="${ELASTIC_GRPC_BASE:-22100}" HTTP_BASE="${ELASTIC_HTTP_BASE:-22200}" ROUTERS=3
cleanup() { "$ROOT/scripts/cluster-down.sh" >/dev/null 2>&1 || true; rm -rf "$CLUSTER_DIR"; }
trap cleanup EXIT
for i in 1 2 3; do start_router "$i"; done
for i in 1 2 3; do wait_ready "http://$(router_http "$i")/readyz" 60; done
routers="$(router_grpc 1),$(router_grpc 2),$(router_grpc 3)"

echo "== router: grow 3 -> 5 nodes under load (logins, logouts, lookups)"
"$BIN/confab-bench" router --router "$routers" $(tool_tls_flags) --mix both --sessions 0 --duration "$GROW_SECS" \
  --concurrency 64 --json >"$OUT/grow-load.json" &
load=$!
sleep 3
for i in 4 5; do
  start_router "$i"
  wait_ready "http://$(router_http "$i")/healthz" 60
done
cluster_ctl --router "$routers" node add --id 4 --addr "$(router_grpc 4)" --no-rebalance >/dev/null
cluster_ctl --router "$routers" --json node add --id 5 --addr "$(router_grpc 5)" | tee "$OUT/grow.json"
wait "$load"
python3 - "$OUT/grow-load.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"load during the grow: {s['ops']} operations, {sum(s['errors'].values())} errors {s['errors']}, "
      f"p99 {s['p99_us']/1000:.1f} ms, max {s['max_us']/1000:.1f} ms")
PY
cluster_ctl --router "$routers" status | tail -n 25

echo "== router: a new replica catches up a shard of $CATCHUP_SESSIONS sessions"
"$BIN/confab-bench" catchup --router "$routers" $(tool_tls_flags) --shard 1 --sessions "$CATCHUP_SESSIONS" --json \
  | tee "$OUT/catchup.json"

echo "== router: SIGKILL a shard leader, time until writes to that shard succeed ($KILLS kills)"
"$BIN/confab-bench" failover --router "$routers" $(tool_tls_flags) --kills "$KILLS" --pid-dir "$CLUSTER_DIR" \
  --restart-cmd "ROUTERS=3 $ROOT/scripts/start-router.sh {id}" --json | tee "$OUT/failover.json"
echo "results in $OUT"
