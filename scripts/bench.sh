#!/usr/bin/env bash
# `make bench`: starts a private release cluster (3 routers, fsync on, 3
# replicas) under a temp dir on ports of its own, runs the router benchmarks
# against it, then persist's write benchmark, measures the peers in the same
# run (Redis MGET of 100 keys, when a Redis is listening on 127.0.0.1:6379;
# etcd, 3 members, scripts/bench-etcd.sh; BENCH_PEERS=0 leaves etcd out;
# PostgreSQL's COPY of persist's rows, in the write benchmark) and prints
# one ratio table (scripts/peer-ratios.py, OUT/peers.json); then a second
# private cluster with persist (SQLite + embedded queue) and 2 gateways for the gateway benchmarks (idle
# connections' memory, 1:1 chat, group fan-out, friend lists with presence).
# Prints every figure and stops what it started.
# BENCH_ONLY=router or BENCH_ONLY=gateway runs one part alone; BENCH_PERSIST=0
# leaves out persist's write benchmark (it builds the example from this tree),
# BENCH_CONNECTIONS=0 the idle-connection memory runs, BENCH_GROUP=0 the group
# fan-out and presence runs; CHAT_SWEEP="FROM STEP TO" adds the chat's
# latency-throughput curve (its knee). BENCH_BACKEND=pg-amqp runs the gateway part on
# PostgreSQL + RabbitMQ with two persist processes (a database and queue
# prefix of its own, dropped at the end).
# SKIP_BUILD="confab-router ..." takes those binaries as they are in the target
# directory (e.g. a symlink to a router built elsewhere) instead of building them.
set -euo pipefail
# The benchmark clusters run plain gRPC inside and plain TCP to the clients;
# TLS=1 turns on mutual TLS inside and TLS on the gateways' client ports (as
# `make cluster-up` runs), the load generators trusting the run's dev CA.
export TLS="${TLS:-0}"
source "$(dirname "$0")/lib.sh"
export PROFILE=release
BIN="$TARGET_DIR/release"
DURATION="${DURATION:-10}"
# Writes need many in flight to fill the Raft pipelines (500: etcd's peer
# run below writes with 500 clients); lookups saturate sooner.
WRITE_CONCURRENCY="${WRITE_CONCURRENCY:-500}"
CONCURRENCY="${CONCURRENCY:-192}"
KILLS="${KILLS:-5}"
OUT="${BENCH_OUT:-$ROOT/target-bench}"
BENCH_ONLY="${BENCH_ONLY:-}"
case "$BENCH_ONLY" in
  "" | router | gateway) ;;
  *) echo "BENCH_ONLY must be router or gateway (or unset for both)" >&2; exit 2 ;;
esac
SKIP_BUILD="${SKIP_BUILD:-}"
to_build=()
for pkg in confab-router confab-persist confab-gateway confab-chat confabctl confab-bench; do
  case " $SKIP_BUILD " in
    *" $pkg "*)
      if [ ! -x "$BIN/$pkg" ]; then
        echo "SKIP_BUILD names $pkg, but $BIN/$pkg is not there" >&2
        exit 2
      fi ;;
    *) to_build+=("$pkg") ;;
  esac
done
build_pkgs "${to_build[@]}"
mkdir -p "$OUT"
if [ "$BENCH_ONLY" != gateway ]; then
  export CLUSTER_DIR="$(mktemp -d)"
  export GRPC_BASE="${BENCH_GRPC_BASE:-17100}" HTTP_BASE="${BENCH_HTTP_BASE:-17200}"
  cleanup() { "$ROOT/scripts/cluster-down.sh" >/dev/null 2>&1 || true; rm -rf "$CLUSTER_DIR"; }
  trap cleanup EXIT
  for i in 1 2 3; do start_router "$i"; done
  for i in 1 2 3; do wait_ready "http://$(router_http "$i")/readyz" 60; done
  routers="$(router_grpc 1),$(router_grpc 2),$(router_grpc 3)"

  echo "== router: replicated session writes (login + logout), fsync on, 3 replicas"
  "$BIN/confab-bench" router --router "$routers" $(tool_tls_flags) --mix writes --duration "$DURATION" \
    --concurrency "$WRITE_CONCURRENCY" --warmup 2 --json | tee "$OUT/router-writes.json"
  echo "== router: linearizable batch lookups of 100 uids"
  "$BIN/confab-bench" router --router "$routers" $(tool_tls_flags) --mix lookups --batch 100 --duration "$DURATION" \
    --concurrency "$CONCURRENCY" --warmup 2 --json | tee "$OUT/router-lookups.json"
  echo "== router: SIGKILL a shard leader, time until writes to that shard succeed ($KILLS kills)"
  "$BIN/confab-bench" failover --router "$routers" $(tool_tls_flags) --kills "$KILLS" --pid-dir "$CLUSTER_DIR" \
    --restart-cmd "$ROOT/scripts/start-router.sh {id}" --json | tee "$OUT/router-failover.json"
  # The routers are done: stop them so they take no CPU from what follows.
  cleanup
  trap - EXIT

  if command -v redis-benchmark >/dev/null && (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    echo "== peer: one Redis, MGET of 100 keys (same machine, same run)"
    keys=$(for k in $(seq 1 100); do printf 'confab:bench:%d ' "$k"; done)
    for k in $keys; do redis-cli -h 127.0.0.1 SET "$k" x >/dev/null; done
    # shellcheck disable=SC2086
    redis-benchmark -h 127.0.0.1 -p 6379 -q -n 200000 -c 50 MGET $keys | tr '\r' '\n' | tail -n 1 \
      | sed 's/^.*: \([0-9.]* requests per second.*\)$/MGET of 100 keys: \1/' | tee "$OUT/redis-mget.txt"
    for k in $keys; do redis-cli -h 127.0.0.1 DEL "$k" >/dev/null; done
  fi
  # etcd, three members with fsync on, writing with about the router run's
  # concurrency (ETCD_LOAD=l: 500 clients); BENCH_PEERS=0 leaves it out.
  if [ "${BENCH_PEERS:-1}" = 1 ]; then
    echo "== peer: etcd 3.4, 3 members on loopback, fsync on (same machine, same run)"
    "$ROOT/scripts/bench-etcd.sh" "$OUT" "${ETCD_LOAD:-l}"
  fi
  if [ "${BENCH_PERSIST:-1}" = 1 ]; then
    echo "== persist: messages enqueued -> committed, and the same rows by a plain batched INSERT"
    echo "   (SQLite + embedded queue; PostgreSQL + RabbitMQ, MariaDB + embedded queue when they listen on 127.0.0.1;"
    echo "   on PostgreSQL also the same rows by one COPY FROM STDIN, the peer)"
    (cd "$ROOT" && BENCH_JSON="$OUT/persist-write.json" cargo run --quiet --release -p confab-persist \
      --example write_bench -- "${PERSIST_MESSAGES:-200000}") | tee "$OUT/persist-write.txt"
  fi
  echo "== Confab against its peers, measured above in this run"
  python3 "$ROOT/scripts/peer-ratios.py" "$OUT" | tee "$OUT/peers.txt"
fi

# The gateway part: 3 routers, persist (SQLite + embedded queue; two on
# PostgreSQL + RabbitMQ with BENCH_BACKEND=pg-amqp), 2 gateways (a third for
# the last step), on ports of their own (27101-27103 / 27201-27203 routers,
# 27301-27304 persist, 27401-27403 / 27411-27413 / 27421-27423 gateways).
gateway_bench() {
  export CLUSTER_DIR="$(mktemp -d)"
  export GRPC_BASE="${BENCH_GW_GRPC_BASE:-27100}" HTTP_BASE="${BENCH_GW_HTTP_BASE:-27200}"
  local persist="127.0.0.1:27301" persist_http="127.0.0.1:27302" routers g
  gw_client() { echo "127.0.0.1:$((27400 + $1))"; }
  # BENCH_BACKEND=pg-amqp: persist on a fresh PostgreSQL database and
  # RabbitMQ (a queue prefix of its own), two persist processes sharing the
  # partitions, the gateways publishing straight to the broker; dropped at
  # the end. Default: one persist on SQLite + the embedded queue.
  local persist2="127.0.0.1:27303" persist2_http="127.0.0.1:27304" persists="$persist"
  local backend_env=(env) gateway_queue=() bench_db="" prefix=""
  local pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}" amqp="${BENCH_AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}"
  case "${BENCH_BACKEND:-embedded}" in
    embedded) ;;
    pg-amqp)
      bench_db="confab_bench_$$" prefix="confab.bench$$"
      psql "$pg/postgres" -q -c "CREATE DATABASE $bench_db"
      export BENCH_DB_NAME="$bench_db" BENCH_DB_ADMIN="$pg/postgres" BENCH_QUEUE_PREFIX="$prefix"
      backend_env+=("DATABASE_URL=$pg/$bench_db" "AMQP_URL=$amqp" "CONFAB_QUEUE__PREFIX=$prefix")
      gateway_queue=(CONFAB_QUEUE__BACKEND=amqp "CONFAB_QUEUE__AMQP_URL=$amqp" "CONFAB_QUEUE__PREFIX=$prefix")
      persists="$persist,$persist2" ;;
    *) echo "BENCH_BACKEND must be embedded or pg-amqp" >&2; exit 2 ;;
  esac
  cleanup() {
    "$ROOT/scripts/cluster-down.sh" >/dev/null 2>&1 || true
    rm -rf "$CLUSTER_DIR"
    # Also run by the EXIT trap, where this function's locals are gone:
    # the names come from the environment it exported.
    if [ -n "${BENCH_DB_NAME:-}" ]; then
      psql "$BENCH_DB_ADMIN" -q -c "DROP DATABASE IF EXISTS $BENCH_DB_NAME WITH (FORCE)" || true
      rabbitmqctl -q list_queues name 2>/dev/null | grep "^$BENCH_QUEUE_PREFIX\." | while read -r q; do
        rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null 2>&1 || true
      done || true
    fi
  }
  trap cleanup EXIT
  for i in 1 2 3; do start_router "$i"; done
  # Password hashing is not what these benchmarks measure: the cheapest
  # argon2 setting lets 50,000 users register and log in quickly.
  ensure_cert persist persist
  # The group fan-out run fills a group past the default cap on members.
  # shellcheck disable=SC2046 # tls_flags is a list of words
  CONFAB_DATABASE__ARGON2_MEMORY_KIB=64 CONFAB_LIMITS__MAX_GROUP_MEMBERS=100000 start persist "${backend_env[@]}" \
    "$BIN/confab-persist" --listen "$persist" --http "$persist_http" --data-dir "$CLUSTER_DIR/persist" $(tls_flags persist)
  if [ "$persists" != "$persist" ]; then
    # shellcheck disable=SC2046
    CONFAB_DATABASE__ARGON2_MEMORY_KIB=64 CONFAB_LIMITS__MAX_GROUP_MEMBERS=100000 CONFAB_SERVER__ID=2 \
      start persist-2 "${backend_env[@]}" "$BIN/confab-persist" --listen "$persist2" --http "$persist2_http" \
      --data-dir "$CLUSTER_DIR/persist-2" $(tls_flags persist)
  fi
  for i in 1 2 3; do wait_ready "http://$(router_http "$i")/readyz" 60; done
  wait_ready "http://$persist_http/readyz" 60
  [ "$persists" = "$persist" ] || wait_ready "http://$persist2_http/readyz" 60
  routers="$(router_grpc 1),$(router_grpc 2),$(router_grpc 3)"
  # Strangers may chat when the gateway has that switch (the benchmark's
  # users are not friends).
  local strangers=(env "${gateway_queue[@]}") gw_config
  # Read once: `--check-config | grep -q` under pipefail fails when grep
  # quits before the gateway has written everything (SIGPIPE).
  gw_config="$("$BIN/confab-gateway" --check-config 2>/dev/null || true)"
  has_key() { grep -q "$1" <<<"$gw_config"; }
  if has_key '^allow_strangers'; then
    strangers+=(CONFAB_ALLOW_STRANGERS=true)
  fi
  # Every benchmark client comes from 127.0.0.1: lift the per-address
  # connection cap and the login and register rate limits, where the
  # gateway has them; the idle-connection runs hold connections that said
  # Hello and never log in, so the login deadline is lifted too.
  if has_key '^max_connections_per_ip'; then
    strangers+=(CONFAB_LIMITS__MAX_CONNECTIONS_PER_IP=1000000 CONFAB_LIMITS__LOGIN_TIMEOUT_MS=86400000)
    for k in LOGIN_PER_IP LOGIN_PER_ACCOUNT REGISTER_PER_IP; do
      strangers+=("CONFAB_LIMITS__${k}_BURST=100000000" "CONFAB_LIMITS__${k}_PER_MINUTE=100000000")
    done
  fi
  # Gateways with an internal metrics port get one each (its default is one
  # address for all).
  local has_metrics=0
  if has_key '^metrics'; then
    has_metrics=1
  fi
  # The benchmark's users send far faster than a person: no per-user
  # message rate where the gateway has one.
  if has_key '^\[user_limits\]'; then
    [ ${#strangers[@]} -eq 0 ] && strangers=(env)
    strangers+=(CONFAB_USER_LIMITS__MESSAGES_PER_S=0)
  fi
  # Each idle connection is a descriptor, in the gateway and in the bench:
  # raise the limits (as root) for what this function starts. Where even
  # root may not (no CAP_SYS_RESOURCE), one process holds what the limit
  # allows, and the many connections are spread over 3 gateways and
  # several bench processes.
  ulimit -Hn 200000 2>/dev/null && ulimit -Sn 200000 2>/dev/null || true
  local nofile conns="${CONNECTIONS:-50000}" one="${CONNECTIONS_ONE:-19000}" per_process
  nofile="$(ulimit -Hn)"
  [ "$nofile" = unlimited ] && nofile=1000000
  if [ "$nofile" -lt $((one + 1000)) ]; then
    one=$((nofile - 1000))
  fi
  per_process=$((nofile - 1000))
  if [ "$nofile" -lt $((conns / 3 + 1000)) ]; then
    conns=$((3 * (nofile - 1000)))
    echo "note: open-file hard limit $nofile: measuring $conns connections over 3 gateways" >&2
  fi
  start_gateway() {
    ensure_cert "gateway-$1" gateway "$1"
    ensure_cert "gateway-$1-client" client-port
    # The gateway raises its soft limit to the hard one itself.
    local metrics=()
    [ "$has_metrics" = 1 ] && metrics=(--metrics "127.0.0.1:$((27430 + $1))")
    # shellcheck disable=SC2046
    (start "gateway-$1" "${strangers[@]}" "$BIN/confab-gateway" --id "$1" --listen "$(gw_client "$1")" \
       --http "127.0.0.1:$((27410 + $1))" --grpc "127.0.0.1:$((27420 + $1))" "${metrics[@]}" \
       --router "$routers" --persist "$persists" $(tls_flags "gateway-$1") $(client_tls_flags "$1"))
  }
  # How the load generators reach the client ports (TLS=1: the run's CA).
  client_ca() { [ "$TLS" = 1 ] && echo --tls-ca "$(tls_dir)/ca.pem"; return 0; }
  gw_pid() { cat "$CLUSTER_DIR/gateway-$1.pid"; }
  # Readiness on the internal metrics port where there is one (with TLS=1
  # the public HTTP port speaks HTTPS).
  gw_ready() {
    local port=$((27410 + $1))
    [ "$has_metrics" = 1 ] && port=$((27430 + $1))
    wait_ready "http://127.0.0.1:$port/readyz" 60
  }
  for g in 1 2; do start_gateway "$g"; done
  for g in 1 2; do gw_ready "$g"; done

  # The CPU every cluster process uses over the measured window, in the
  # chat JSON (cluster_cpu_s, cpu_us_per_msg), where the bench reads it.
  local cpu=()
  local chat_help
  chat_help=$("$BIN/confab-bench" chat --help)
  if grep -q -- '--cpu-pid' <<<"$chat_help"; then
    cpu=(--cpu-pid "$(cat "$CLUSTER_DIR"/*.pid | paste -sd, -)")
  fi

  # CHAT_RATES="2000 4000 ..." runs the chat at each offered rate (one JSON
  # per rate, gateway-chat-RATE.json); else once at CHAT_RATE.
  for rate in ${CHAT_RATES:-${CHAT_RATE:-10000}}; do
    local chat_out="$OUT/gateway-chat.json"
    [ -n "${CHAT_RATES:-}" ] && chat_out="$OUT/gateway-chat-$rate.json"
    echo "== gateway: 1:1 chat, persistence on, ${CHAT_PAIRS:-200} pairs over 2 gateways, window ${CHAT_WINDOW:-16}, rate $rate (0 = closed loop)"
    uptime
    # shellcheck disable=SC2046 # client_ca is a list of words
    "$BIN/confab-bench" chat $(client_ca) --gateway "$(gw_client 1),$(gw_client 2)" --pairs "${CHAT_PAIRS:-200}" \
      --window "${CHAT_WINDOW:-16}" --rate "$rate" --duration "$DURATION" --warmup 2 "${cpu[@]}" --json \
      | tee "$chat_out"
  done

  # CHAT_SWEEP="FROM STEP TO": then the latency-throughput curve, FROM msg/s
  # up by STEP until p99 passes 50 ms or a message is lost or refused
  # (gateway-chat-sweep.json with knee_msgs_per_s, chat-sweep.svg).
  if [ -n "${CHAT_SWEEP:-}" ]; then
    local from step to
    read -r from step to <<<"$CHAT_SWEEP"
    echo "== gateway: 1:1 chat sweep, offered $from msg/s and up by $step to $to, until p99 passes 50 ms"
    uptime
    # shellcheck disable=SC2046
    "$BIN/confab-bench" chat $(client_ca) --gateway "$(gw_client 1),$(gw_client 2)" --pairs "${CHAT_PAIRS:-200}" \
      --window "${CHAT_WINDOW:-16}" --duration "$DURATION" --warmup 2 "${cpu[@]}" \
      --sweep --sweep-from "$from" --sweep-step "$step" --sweep-to "$to" --svg "$OUT/chat-sweep.svg" --json \
      | tee "$OUT/gateway-chat-sweep.json"
  fi

  if [ "${BENCH_GROUP:-1}" = 1 ]; then
    echo "== gateway: a message to a ${GROUP_MEMBERS:-5000}-member group, every member online, ${GROUP_MESSAGES:-50} messages"
    uptime
    # shellcheck disable=SC2046
    "$BIN/confab-bench" group $(client_ca) --gateway "$(gw_client 1),$(gw_client 2)" --members "${GROUP_MEMBERS:-5000}" \
      --messages "${GROUP_MESSAGES:-50}" --json | tee "$OUT/gateway-group.json"

    # GROUP_INTERVAL_MS paces each owner (an offered rate of groups x
    # members x 1000 / interval deliveries/s); 0: unpaced, the capacity.
    echo "== gateway: fan-out capacity, ${GROUP_COUNT:-4} groups of ${GROUP_MEMBERS:-5000} members, their owners sending every ${GROUP_INTERVAL_MS:-0} ms"
    uptime
    # shellcheck disable=SC2046
    "$BIN/confab-bench" group $(client_ca) --gateway "$(gw_client 1),$(gw_client 2)" --members "${GROUP_MEMBERS:-5000}" \
      --groups "${GROUP_COUNT:-4}" --interval-ms "${GROUP_INTERVAL_MS:-0}" --messages "${GROUP_MESSAGES:-50}" --json \
      | tee "$OUT/gateway-group-capacity.json"

    echo "== gateway: friend lists of 100 friends with presence, 64 listers"
    uptime
    # shellcheck disable=SC2046
    "$BIN/confab-bench" presence $(client_ca) --gateway "$(gw_client 1),$(gw_client 2)" --friends 100 \
      --concurrency 64 --duration "$DURATION" --json | tee "$OUT/gateway-presence.json"
  fi

  if [ "${BENCH_CONNECTIONS:-1}" != 1 ]; then
    cleanup
    trap - EXIT
    return
  fi
  # Memory is measured on fresh gateway processes (what the chat left in
  # their allocators would hide the growth).
  echo "== gateway: $one idle logged-in connections on one gateway (one bench process), its memory per connection"
  stop_one gateway-1
  start_gateway 1
  gw_ready 1
  uptime
  # shellcheck disable=SC2046
  "$BIN/confab-bench" connections $(client_ca) --gateway "$(gw_client 1)" --connections "$one" \
    --gateway-pid "$(gw_pid 1)" --user-prefix "idle$$" --per-process "$per_process" --json \
    | tee "$OUT/gateway-connections-one.json"

  echo "== gateway: $conns idle logged-in connections over 3 gateways (bench worker processes), memory per connection"
  for g in 1 2; do stop_one "gateway-$g"; done
  for g in 1 2 3; do start_gateway "$g"; done
  for g in 1 2 3; do gw_ready "$g"; done
  uptime
  # shellcheck disable=SC2046
  "$BIN/confab-bench" connections $(client_ca) --gateway "$(gw_client 1),$(gw_client 2),$(gw_client 3)" \
    --connections "$conns" --gateway-pid "$(gw_pid 1),$(gw_pid 2),$(gw_pid 3)" \
    --user-prefix "idle$$" --per-process "$per_process" --json \
    | tee "$OUT/gateway-connections.json"
  cleanup
  trap - EXIT
}
if [ "$BENCH_ONLY" != router ]; then
  gateway_bench
fi
echo "results in $OUT"
