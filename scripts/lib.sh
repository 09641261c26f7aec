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

# start_router ID: one router of the local cluster. Ids 1..ROUTERS form the
# initial cluster (bootstrap is a no-op on a restart: the data dir wins);
# higher ids join it through router 1 (`make cluster-add-router`).
start_router() {
  local peers="" i
  if [ "$1" -gt "$ROUTERS" ]; then
    start "router-$1" "$BIN/confab-router" --id "$1" --listen "$(router_grpc "$1")" \
      --http "$(router_http "$1")" --data-dir "$CLUSTER_DIR/router-$1" --join "$(router_grpc 1)"
    return
  fi
  for i in $(seq 1 "$ROUTERS"); do peers+="${peers:+,}$i=$(router_grpc "$i")"; done
  start "router-$1" "$BIN/confab-router" --id "$1" --listen "$(router_grpc "$1")" \
    --http "$(router_http "$1")" --data-dir "$CLUSTER_DIR/router-$1" --bootstrap --peers "$peers"
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
