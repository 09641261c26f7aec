#!/usr/bin/env bash
# `make bench-tls`: what TLS costs, in one series. Runs scripts/bench.sh twice
# on the same build, first with everything plain (TLS=0), then as `make
# cluster-up` runs it (TLS=1: mutual TLS between the processes, TLS on the
# gateways' client ports, the load generators trusting the run's CA):
# replicated router writes, 1:1 chat at each offered rate of CHAT_RATES
# (the highest with p99 under 50 ms and nothing lost is the chat's figure),
# and idle logged-in connections (19,000 on one gateway, 50,000 over 3).
# Then prints both columns and the ratios (scripts/tls-cost.py), also as
# JSON in target-bench/tls/cost.json.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${BENCH_OUT:-$ROOT/target-bench}/tls"
export CHAT_RATES="${CHAT_RATES:-2000 4000 6000 8000 10000 12000}"
export BENCH_PERSIST=0 BENCH_GROUP=0
mkdir -p "$OUT"
skip=""
for mode in plain tls; do
  tls=0
  [ "$mode" = tls ] && tls=1
  echo "==== $mode (TLS=$tls)"
  TLS="$tls" BENCH_OUT="$OUT/$mode" SKIP_BUILD="$skip" "$ROOT/scripts/bench.sh"
  # The second run takes the binaries the first one built.
  skip="confab-router confab-persist confab-gateway confab-chat confabctl confab-bench"
done
python3 "$ROOT/scripts/tls-cost.py" "$OUT/plain" "$OUT/tls" | tee "$OUT/cost.txt"
