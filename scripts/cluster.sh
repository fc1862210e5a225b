#!/usr/bin/env bash
# A KaiChat network of N nodes on this machine: one redis-server of its own and N
# kaichat-server processes sharing it (cluster mode, issue 13). `--help` prints the usage.
#
# Everything it starts is its own: redis-server on its own port with a data directory
# under a fresh temporary directory and no persistence, the nodes on consecutive ports.
# Ctrl-C or SIGTERM (or the end of --for) stops the nodes (SIGTERM, then SIGKILL after
# 10 s), then redis-server, and removes the temporary directory.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/cluster.sh [--for SECONDS] N [extra kaichat-server flags...]

Starts a local redis-server and N kaichat-server nodes that form one KaiChat network
through it, prints how to connect a client to each node, and runs until Ctrl-C or
SIGTERM (or for SECONDS with --for), then stops all of them.

  node K (0 .. N-1) listens on 127.0.0.1:$((BASE_PORT + K)) and runs
      kaichat-server --listen 127.0.0.1:PORT --redis redis://127.0.0.1:REDIS_PORT/0
                     --node-id nodeK [extra flags...]
  e.g. scripts/cluster.sh 3 --lease-ms 2000 --history 500

Options:
  --for SECONDS   stop everything after SECONDS (for scripts); exit status 1 if a node
                  or redis-server died before that (a death is reported, and the rest
                  go on: kill -9 a node to watch the others take over its users' names)
  -h, --help      this text

Environment:
  REDIS_PORT=n    redis-server's port (29379); it must be free
  BASE_PORT=n     node 0's port (29200); node K gets BASE_PORT + K
  HOST=addr       the address the nodes listen on (127.0.0.1)
  BIN_DIR=dir     take kaichat-server from dir instead of building it (release)
  LOG_DIR=dir     write redis.log and nodeK.log there (kept) instead of the temporary
                  directory (removed at the end)
  STATE_FILE=f    once everything is up, write shell assignments there: redis_pid,
                  redis_port, redis_url, nodes, nodeK_pid, nodeK_addr (for scripts:
                  scripts/loadtest.sh cluster-3x reads it)

Exit status: 0 after Ctrl-C or SIGTERM, 1 when something could not start (or, with
--for, died meanwhile), 2 for a usage mistake.
EOF
}

cd "$(dirname "$0")/.."

run_for=""
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --for)
      [ $# -ge 2 ] || { echo "cluster.sh: --for needs a number of seconds (see --help)" >&2; exit 2; }
      run_for=$2
      shift 2 ;;
    --for=*) run_for=${1#--for=}; shift ;;
    *) break ;;
  esac
done
if [ -n "$run_for" ] && ! [[ $run_for =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "cluster.sh: --for: '$run_for' is not a number of seconds" >&2
  exit 2
fi
if [ $# -lt 1 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "cluster.sh: the first argument is the number of nodes, 1 or more (see --help)" >&2
  exit 2
fi
nodes=$1
shift
extra=("$@")

REDIS_PORT=${REDIS_PORT:-29379}
BASE_PORT=${BASE_PORT:-29200}
HOST=${HOST:-127.0.0.1}

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v redis-server >/dev/null 2>&1 \
  || die "redis-server not found: install Redis 7 (Debian: apt-get install redis-server)"

# Something answering on 127.0.0.1:PORT (bash's /dev/tcp: no other tool needed).
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# PING over RESP; true when redis-server on $REDIS_PORT answers +PONG.
redis_ping() (
  exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
  # shellcheck disable=SC2016 # RESP's "$4" (a 4-byte string), not a variable
  printf '*1\r\n$4\r\nPING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || reply=""
  [ "${reply%$'\r'}" = "+PONG" ]
)

port_in_use "$REDIS_PORT" 2>/dev/null \
  && die "port $REDIS_PORT is in use; choose another with REDIS_PORT=..."
for ((k = 0; k < nodes; k++)); do
  port_in_use $((BASE_PORT + k)) 2>/dev/null \
    && die "port $((BASE_PORT + k)) (node$k) is in use; choose another base with BASE_PORT=..."
done

if [ -n "${BIN_DIR:-}" ]; then
  bin_dir=$BIN_DIR
else
  say "building kaichat-server and kaichat (release)"
  cargo build --release --quiet --bin kaichat-server --bin kaichat
  bin_dir=target/release
fi
server_bin=$bin_dir/kaichat-server
[ -x "$server_bin" ] || die "$server_bin is missing"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kaichat-cluster.XXXXXX")
log_dir=${LOG_DIR:-$tmp}
mkdir -p "$log_dir" "$tmp/redis"

redis_pid=""
node_pids=()
timer=""
stopping=""
failed=yes # until everything is up, and again if something dies: the logs are kept
# shellcheck disable=SC2317 # run by the EXIT trap
stop_all() {
  [ -n "$stopping" ] && return
  stopping=yes
  local pid
  # The --for timer holds our stderr open for whoever reads it.
  if [ -n "$timer" ]; then kill "$timer" 2>/dev/null || true; fi
  for pid in "${node_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 100); do
    local alive=""
    for pid in "${node_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=yes
    done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in "${node_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      say "a node (pid $pid) did not stop in 10 s after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp/redis"
  if [ -n "$failed" ] && [ -z "${LOG_DIR:-}" ]; then
    say "logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap stop_all EXIT
trap 'say "stopping"; exit 0' INT TERM

redis_url="redis://127.0.0.1:$REDIS_PORT/0"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp/redis" > "$log_dir/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  redis_ping 2>/dev/null && break
  kill -0 "$redis_pid" 2>/dev/null || { cat "$log_dir/redis.log" >&2; die "redis-server exited"; }
  sleep 0.1
done
redis_ping 2>/dev/null || die "redis-server did not answer PING in 10 s (log: $log_dir/redis.log)"
say "redis-server $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/') on 127.0.0.1:$REDIS_PORT (pid $redis_pid)"

for ((k = 0; k < nodes; k++)); do
  addr=$HOST:$((BASE_PORT + k))
  "$server_bin" --listen "$addr" --redis "$redis_url" --node-id "node$k" "${extra[@]}" \
    2> "$log_dir/node$k.log" &
  node_pids+=($!)
done
for ((k = 0; k < nodes; k++)); do
  for _ in $(seq 100); do
    grep -q "listening on" "$log_dir/node$k.log" 2>/dev/null && break
    kill -0 "${node_pids[k]}" 2>/dev/null \
      || { cat "$log_dir/node$k.log" >&2; die "node$k exited"; }
    sleep 0.1
  done
  grep -q "listening on" "$log_dir/node$k.log" \
    || { cat "$log_dir/node$k.log" >&2; die "node$k did not start in 10 s"; }
done

failed=""
if [ -n "${STATE_FILE:-}" ]; then
  {
    echo "redis_pid=$redis_pid"
    echo "redis_port=$REDIS_PORT"
    echo "redis_url=$redis_url"
    echo "nodes=$nodes"
    for ((k = 0; k < nodes; k++)); do
      echo "node${k}_pid=${node_pids[k]}"
      echo "node${k}_addr=$HOST:$((BASE_PORT + k))"
    done
  } > "$STATE_FILE.tmp"
  mv "$STATE_FILE.tmp" "$STATE_FILE"
fi

{
  echo
  echo "A KaiChat network of $nodes node(s) through $redis_url:"
  for ((k = 0; k < nodes; k++)); do
    printf '  node%s  %s:%s  pid %s  log %s\n' "$k" "$HOST" $((BASE_PORT + k)) \
      "${node_pids[k]}" "$log_dir/node$k.log"
  done
  echo
  echo "Chat on it, one terminal per client, any node:"
  for ((k = 0; k < nodes && k < 3; k++)); do
    if [ -n "${BIN_DIR:-}" ]; then
      echo "  $BIN_DIR/kaichat --server $HOST:$((BASE_PORT + k)) --user user$k --channel @rust"
    else
      echo "  cargo run --release --bin kaichat -- --server $HOST:$((BASE_PORT + k)) --user user$k --channel @rust"
    fi
  done
  echo
  if [ -n "$run_for" ]; then
    echo "Stopping everything in $run_for s."
  else
    echo "Ctrl-C stops every node and redis-server."
  fi
} >&2

# Wait for the end of --for or a signal. A node or redis-server that dies is reported
# and the rest go on: trying a node's death (kill -9) or Redis's is what a network is for.
if [ -n "$run_for" ]; then
  sleep "$run_for" >/dev/null 2>&1 &
  timer=$!
fi
status=0
gone=()
redis_gone=""
while :; do
  if [ -n "$timer" ] && ! kill -0 "$timer" 2>/dev/null; then
    break
  fi
  for ((k = 0; k < nodes; k++)); do
    if [ -z "${gone[k]:-}" ] && ! kill -0 "${node_pids[k]}" 2>/dev/null; then
      gone[k]=yes
      say "node$k exited (the other nodes go on); its log ends:"
      tail -n 5 "$log_dir/node$k.log" >&2 || true
      status=1
      failed=yes
    fi
  done
  if [ -z "$redis_gone" ] && ! kill -0 "$redis_pid" 2>/dev/null; then
    redis_gone=yes
    say "redis-server exited (the nodes go on, refusing new set-ups and messages until a Redis is back on port $REDIS_PORT); its log ends:"
    tail -n 5 "$log_dir/redis.log" >&2 || true
    status=1
    failed=yes
  fi
  # `wait` returns at once when a trapped signal arrives; sleep alone would delay it.
  sleep 0.5 &
  wait $! 2>/dev/null || true
done
say "stopping"
exit "$status"
