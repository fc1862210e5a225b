#!/usr/bin/env bash
# System calls and wake-ups per QUERY (BENCHMARKS.md, issue 10): a kaichat-server pinned to
# CPU 0 under poll-19k's load without messages (loadgen pinned to CPU 1), and `perf stat`
# on the server for 20 s of the steady window. Bounded: loadgen runs 45 s, the whole thing
# about a minute; traffic stays on 127.0.0.0/8.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/perf-stat.sh [SERVER_BIN]

  SERVER_BIN   the kaichat-server to measure (default: target/release/kaichat-server,
               built if missing)

Environment: PORT (29460). Needs perf (Debian: linux-perf) and taskset.
Prints perf's counts for the server over 20 s, then the run's QUERYs per second: divide
the system-call counts by 20 s and by the QUERYs per second.
USAGE
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
cd "$(dirname "$0")/.."
server=${1:-target/release/kaichat-server}
PORT=${PORT:-29460}
command -v perf >/dev/null || { echo "perf-stat.sh: perf is not installed" >&2; exit 1; }
cargo build --release --quiet -p loadgen --bin loadgen
[ -x "$server" ] || cargo build --release --quiet -p kaichat --bin kaichat-server
out=$(mktemp -d)
taskset -c 0 "$server" --listen "127.0.0.1:$PORT" --max-clients 19900 2>/dev/null &
sp=$!
trap 'kill -TERM $sp 2>/dev/null || true; rm -rf "$out"' EXIT
sleep 0.5
timeout 150 taskset -c 1 target/release/loadgen --clients 19000 --channels 200 --interval 3 \
  --duration 45 --msg-every 0 --ramp 2000 --sources 127.0.0.1-127.0.0.40 \
  --server "127.0.0.1:$PORT" --ca certs/ca.pem --quiet --out "$out/run" >"$out/loadgen.txt" 2>&1 &
lp=$!
sleep 22
perf stat -e 'syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,context-switches,task-clock' \
  -p "$sp" -- sleep 20 2>&1
wait "$lp"
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('queries/s', s['queries_per_s'], 'errors', s['errors'])" "$out/run/summary.json"
