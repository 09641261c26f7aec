#!/usr/bin/env bash
# The router's peer in the same run: etcd 3.4 (Debian's etcd-server, installed
# here when missing), three members on loopback, each with its own data
# directory under a temp dir, fsync on (etcd's default: every write is on
# disk on a quorum before it is acknowledged). `etcdctl check perf` writes
# with LOAD's clients (l: 500 clients, capped at 8,000 writes/s; xl: 1,000
# clients, capped at 15,000/s) for 60 s and reports the throughput it saw.
# Writes $OUT/etcd-writes.json: {"writes_per_s", "clients", "load",
# "verdict"}. Stops what it started.
#   scripts/bench-etcd.sh OUT [LOAD]
set -euo pipefail
OUT="${1:?usage: bench-etcd.sh OUT [LOAD]}"
LOAD="${2:-l}"
case "$LOAD" in
  s) clients=50 ;; m) clients=200 ;; l) clients=500 ;; xl) clients=1000 ;;
  *) echo "LOAD must be s, m, l or xl" >&2; exit 2 ;;
esac
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  echo "installing Debian's etcd-server and etcd-client" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
fi
mkdir -p "$OUT"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -a client peer
for i in 1 2 3; do
  client[$i]=$(free_port)
  peer[$i]=$(free_port)
done
initial="e1=http://127.0.0.1:${peer[1]},e2=http://127.0.0.1:${peer[2]},e3=http://127.0.0.1:${peer[3]}"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$work/e$i" \
    --listen-client-urls "http://127.0.0.1:${client[$i]}" --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "confab-bench-$$" \
    --log-level error >"$work/e$i.log" 2>&1 &
  pids+=($!)
done
endpoints="127.0.0.1:${client[1]},127.0.0.1:${client[2]},127.0.0.1:${client[3]}"
for _ in $(seq 1 100); do
  etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
etcdctl --endpoints "$endpoints" endpoint health >/dev/null || { cat "$work"/e*.log >&2; exit 1; }
echo "etcd $(etcd --version | head -n 1 | awk '{print $3}'): 3 members on loopback, check perf --load=$LOAD ($clients clients)"
report="$work/perf.txt"
# check perf exits 1 when a check fails (the throughput under its target,
# a slow request): the figure is still the one measured. Its progress bar
# is left out of the output.
etcdctl --endpoints "$endpoints" check perf --load="$LOAD" >"$report" 2>&1 || true
grep -E "PASS|FAIL|Slowest|Stddev" "$report" || true
python3 - "$report" "$LOAD" "$clients" "$OUT/etcd-writes.json" <<'PY'
import json, re, sys
text, load, clients, out = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3]), sys.argv[4]
m = re.search(r"Throughput (?:is|too low:) (\d+) writes/s", text)
if not m:
    sys.exit("bench-etcd: no throughput in etcdctl's report")
verdict = "PASS" if "PASS: Throughput" in text else "FAIL"
json.dump({"writes_per_s": int(m.group(1)), "clients": clients, "load": load,
           "members": 3, "fsync": True, "verdict": verdict}, open(out, "w"), indent=2)
print(f"etcd writes/s: {m.group(1)} ({clients} clients)")
PY
