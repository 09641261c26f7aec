#!/usr/bin/env bash
# `make bench-trace`: what traces and JSON logs cost, in one series. Runs the
# gateway part of scripts/bench.sh (1:1 chat, closed loop: the most the
# cluster delivers; CHAT_SWEEP="FROM STEP TO" adds the latency-throughput
# sweep, whose knee is the highest offered rate with p99 under 50 ms and
# nothing lost) ROUNDS times (default 8), each round a pair of runs:
# plain (text logs, no tracing), and with every process exporting traces
# at 1 % sampling to an OTLP receiver (`confab-bench otlp-sink`, which
# counts what it gets) and writing JSON logs. Prints both series, the
# median of the rounds' ratios and the CPU per message
# (scripts/trace-cost.py), also as JSON in target-bench/trace/cost.json;
# fails when the traced figure is under 95 % (the median of the rounds'
# knee ratios when the sweep ran, else of their closed-loop ratios).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PROFILE=release
source "$ROOT/scripts/lib.sh"
OUT="${BENCH_OUT:-$ROOT/target-bench}/trace"
ROUNDS="${ROUNDS:-8}"
RATIO="${TRACE_RATIO:-0.01}"
SINK="${OTLP_SINK:-127.0.0.1:27499}"
export BENCH_ONLY=gateway BENCH_GROUP=0 BENCH_CONNECTIONS=0
export CHAT_RATES="${CHAT_RATES:-0}"
export CHAT_SWEEP="${CHAT_SWEEP:-}"
rm -rf "$OUT"
mkdir -p "$OUT"
# SKIP_BUILD=... (as in bench.sh) takes those binaries as they are.
skip="${SKIP_BUILD:-}"
sink_pid=""
stop_sink() { [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; wait "$sink_pid" 2>/dev/null || true; sink_pid=""; }
trap stop_sink EXIT
plain() {
  echo "==== round $1: plain"
  BENCH_OUT="$OUT/plain-$1" SKIP_BUILD="$skip" "$ROOT/scripts/bench.sh"
  built
}
# The later runs take the binaries the first one built.
built() { skip="confab-router confab-persist confab-gateway confab-chat confabctl confab-bench"; }
traced() {
  echo "==== round $1: traces at $RATIO to $SINK, JSON logs"
  mkdir -p "$OUT/traced-$1"
  "$TARGET_DIR/release/confab-bench" otlp-sink --listen "$SINK" >"$OUT/traced-$1/otlp-sink.json" &
  sink_pid=$!
  CONFAB_TRACING__OTLP_ENDPOINT="http://$SINK" CONFAB_TRACING__SAMPLE_RATIO="$RATIO" CONFAB_LOG_FORMAT=json \
    BENCH_OUT="$OUT/traced-$1" SKIP_BUILD="$skip" "$ROOT/scripts/bench.sh"
  built
  stop_sink
  cat "$OUT/traced-$1/otlp-sink.json"
}
# Odd rounds run plain first, even rounds traced first, so a drift of the
# machine over the series falls on both sides alike.
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    plain "$round"; traced "$round"
  else
    traced "$round"; plain "$round"
  fi
done
python3 "$ROOT/scripts/trace-cost.py" "$OUT" "$ROUNDS" | tee "$OUT/cost.txt"
