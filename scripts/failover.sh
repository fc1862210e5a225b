#!/usr/bin/env bash
# Failover time of a KaiChat network (docs/CLUSTER.md, "A node that dies"): how long after
# a node's SIGKILL its users' names can be taken again through another node.
#
# Starts its own redis-server and a surviving node, then ROUNDS times: starts a victim
# node, connects a client named failoverK to it with `kaichat`, kills the victim with
# SIGKILL, and tries to take the name through the surviving node every ~50 ms until it is
# accepted. Prints each round's time and the median. Everything stops by itself (each
# round gives up after twice the lease plus 10 s); traffic stays on 127.0.0.1.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/failover.sh [ROUNDS] [extra kaichat-server flags...]

  ROUNDS           kills to time (default 5)
  extra flags      given to both nodes, e.g. --lease-ms 3000 (default lease: 10000 ms)

Environment: REDIS_PORT (29389), BASE_PORT (29290: the survivor; the victim is +1),
BIN_DIR (take kaichat-server and kaichat from there instead of building them).
USAGE
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
case "$rounds" in ''|*[!0-9]*) echo "failover.sh: ROUNDS must be a number, not '$rounds'" >&2; usage >&2; exit 2 ;; esac
extra=("$@")
lease=10000
for ((i = 0; i < ${#extra[@]}; i++)); do
  if [ "${extra[$i]}" = --lease-ms ] && [ $((i + 1)) -lt ${#extra[@]} ]; then lease=${extra[$((i + 1))]}; fi
done
REDIS_PORT=${REDIS_PORT:-29389}
BASE_PORT=${BASE_PORT:-29290}
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --quiet --bin kaichat-server --bin kaichat
  BIN_DIR=target/release
fi
command -v redis-server >/dev/null || { echo "failover.sh: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  # Reaped quietly: bash would report each killed job.
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
url="redis://127.0.0.1:$REDIS_PORT/0"
node() { # node PORT ID LOG
  "$BIN_DIR/kaichat-server" --listen "127.0.0.1:$1" --redis "$url" --node-id "$2" "${extra[@]}" >"$3" 2>&1 &
  pids+=($!)
  local pid=$! deadline=$(( $(now_ms) + 10000 ))
  until grep -q 'connected to Redis' "$3" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "failover.sh: node $2 did not connect to Redis:" >&2; cat "$3" >&2; exit 1; }
    kill -0 "$pid" 2>/dev/null || { echo "failover.sh: node $2 exited:" >&2; cat "$3" >&2; exit 1; }
    sleep 0.05
  done
  echo "$pid"
}
survivor=$(node "$BASE_PORT" survivor "$work/survivor.log")
pids+=("$survivor")

times=()
for ((k = 1; k <= rounds; k++)); do
  victim=$(node $((BASE_PORT + 1)) "victim$k" "$work/victim$k.log")
  pids+=("$victim")
  name="failover$k"
  # A client that stays: its input is a pipe that stays open until the round ends.
  mkfifo "$work/in$k"
  "$BIN_DIR/kaichat" --server "127.0.0.1:$((BASE_PORT + 1))" --user "$name" --channel @failover \
    <"$work/in$k" >"$work/client$k.out" 2>&1 &
  client=$!
  pids+=("$client")
  exec 3>"$work/in$k"
  deadline=$(( $(now_ms) + 10000 ))
  until grep -q "^established $name" "$work/client$k.out" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "failover.sh: $name never got its name on the victim" >&2; cat "$work/client$k.out" >&2; exit 1; }
    sleep 0.05
  done
  kill -9 "$victim"
  killed=$(now_ms)
  give_up=$(( killed + 2 * lease + 10000 ))
  while :; do
    out=$(timeout 5 "$BIN_DIR/kaichat" --server "127.0.0.1:$BASE_PORT" --user "$name" </dev/null 2>&1 || true)
    if grep -q "^established $name" <<<"$out"; then break; fi
    [ "$(now_ms)" -lt "$give_up" ] || { echo "failover.sh: $name was still taken $(( $(now_ms) - killed )) ms after the kill" >&2; exit 1; }
    sleep 0.05
  done
  took=$(( $(now_ms) - killed ))
  times+=("$took")
  echo "round $k: $name free again through the survivor $took ms after the victim's SIGKILL (lease $lease ms)"
  exec 3>&-
  kill "$client" 2>/dev/null || true
  wait "$victim" 2>/dev/null || true
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
echo "failover: median $median ms over $rounds kills (min $(printf '%s\n' "${times[@]}" | sort -n | head -1), max $(printf '%s\n' "${times[@]}" | sort -n | tail -1)); lease $lease ms"
