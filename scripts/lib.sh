# Shared by the cluster scripts: where things are and how to wait for them.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
PROFILE="${PROFILE:-release}"
# Every script builds into (and runs from) the target directory the Makefile
# uses, also when started without make.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/confab/target}"
TARGET_DIR="$CARGO_TARGET_DIR"
BIN="$TARGET_DIR/$PROFILE"
ROUTERS="${ROUTERS:-3}"
GATEWAYS="${GATEWAYS:-2}"

GRPC_BASE="${GRPC_BASE:-7100}"
HTTP_BASE="${HTTP_BASE:-9100}"
router_grpc() { echo "127.0.0.1:$((GRPC_BASE + $1))"; }
router_http() { echo "127.0.0.1:$((HTTP_BASE + $1))"; }

# TLS=1 (the default): every process of the local cluster runs with mutual
# TLS on its internal gRPC, with certificates from a dev CA under
# $CLUSTER_DIR/tls (made once, kept across restarts); TLS=0 runs it plain.
TLS="${TLS:-1}"
tls_dir() { echo "$CLUSTER_DIR/tls"; }

# ensure_cert NAME ROLE [ID]: the dev CA and NAME's certificate (for
# 127.0.0.1 and localhost), made if missing.
ensure_cert() {
  [ "$TLS" = 1 ] || return 0
  local dir; dir="$(tls_dir)"
  [ -f "$dir/ca.pem" ] || "$BIN/confabctl" certs init --dir "$dir" >/dev/null
  [ -f "$dir/$1.pem" ] && return 0
  "$BIN/confabctl" certs issue --dir "$dir" --name "$1" --role "$2" ${3:+--id "$3"} \
    --host 127.0.0.1 --host localhost >/dev/null
}

# tls_flags NAME: the --tls-* flags of process NAME (nothing with TLS=0).
tls_flags() {
  [ "$TLS" = 1 ] || return 0
  local dir; dir="$(tls_dir)"
  echo --tls-ca "$dir/ca.pem" --tls-cert "$dir/$1.pem" --tls-key "$dir/$1.key"
}

# client_tls_flags G: gateway G's client-port certificate flags (nothing with TLS=0).
client_tls_flags() {
  [ "$TLS" = 1 ] || return 0
  local dir; dir="$(tls_dir)"
  echo --client-tls-cert "$dir/gateway-$1-client.pem" --client-tls-key "$dir/gateway-$1-client.key"
}

# tool_tls_flags: how confabctl and confab-bench reach this cluster's routers.
tool_tls_flags() {
  if [ "$TLS" = 1 ]; then
    ensure_cert admin admin
    echo --tls-dir "$(tls_dir)"
  else
    echo --no-tls
  fi
}

# cluster_ctl ARGS...: confabctl against the local cluster, as its admin.
cluster_ctl() {
  # shellcheck disable=SC2046
  "$BIN/confabctl" $(tool_tls_flags) "$@"
}

# start_router ID: one router of the local cluster. Ids 1..ROUTERS form the
# initial cluster (bootstrap is a no-op on a restart: the data dir wins);
# higher ids join it through router 1 (`make cluster-add-router`).
start_router() {
  local peers="" i
  ensure_cert "router-$1" router "$1"
  # shellcheck disable=SC2046 # tls_flags is a list of words
  if [ "$1" -gt "$ROUTERS" ]; then
    start "router-$1" "$BIN/confab-router" --id "$1" --listen "$(router_grpc "$1")" \
      --http "$(router_http "$1")" --data-dir "$CLUSTER_DIR/router-$1" --join "$(router_grpc 1)" \
      $(tls_flags "router-$1")
    return
  fi
  for i in $(seq 1 "$ROUTERS"); do peers+="${peers:+,}$i=$(router_grpc "$i")"; done
  # shellcheck disable=SC2046
  start "router-$1" "$BIN/confab-router" --id "$1" --listen "$(router_grpc "$1")" \
    --http "$(router_http "$1")" --data-dir "$CLUSTER_DIR/router-$1" --bootstrap --peers "$peers" \
    $(tls_flags "router-$1")
}

# cluster_routers: the ids of the local cluster's routers, the initial
# 1..ROUTERS and every one `make cluster-add-router` added.
cluster_routers() {
  local f
  seq 1 "$ROUTERS"
  for f in "$CLUSTER_DIR"/router-*.member; do
    [ -e "$f" ] || continue
    f="${f##*/router-}"
    echo "${f%.member}"
  done | sort -n
}

# alive PID: the process runs (a zombie awaiting its reaper does not count).
alive() {
  kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

# start NAME CMD...: runs CMD in the background, logs and pid under .cluster/.
start() {
  local name="$1"; shift
  mkdir -p "$CLUSTER_DIR"
  if [ -f "$CLUSTER_DIR/$name.pid" ] && alive "$(cat "$CLUSTER_DIR/$name.pid")"; then
    echo "$name already running (pid $(cat "$CLUSTER_DIR/$name.pid"))"
    return 0
  fi
  nohup "$@" >"$CLUSTER_DIR/$name.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/$name.pid"
}

# wait_ready URL SECONDS
wait_ready() {
  local url="$1" deadline=$((SECONDS + $2))
  until curl -fsS "$url" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "not ready after $2 s: $url" >&2
      return 1
    fi
    sleep 0.2
  done
}

# build_pkgs PKG...: makes sure these packages' binaries are built (same
# profile). It builds every binary of the workspace, as `make build` and
# `make test` do: a build of a few packages alone (`-p`) unifies the
# dependencies' features differently and recompiles most of them.
build_pkgs() {
  local flag=""
  [ "$PROFILE" = "release" ] && flag="--release"
  [ $# -eq 0 ] && return 0
  (cd "$ROOT" && cargo build $flag --workspace --bins)
}

# stop_one NAME: stops what `start NAME` started, by its pid (TERM, then KILL).
stop_one() {
  local pidfile="$CLUSTER_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}
