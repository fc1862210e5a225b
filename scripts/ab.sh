#!/usr/bin/env bash
# Compares two kaichat-server binaries under the poll-19k load, alternating A, B, A, B...
# in one sitting so that the shared machine's noise hits both alike. Prints, per run, the
# server's CPU (% of one core, sampled inside the steady window) and its RSS growth per
# connection. Used to choose the allocator (BENCHMARKS.md).
#
#   scripts/ab.sh SERVER_A SERVER_B [ROUNDS]     (default 2 rounds; ~75 s per run)
#
# Builds loadgen in release mode first. Traffic stays on 127.0.0.0/8; every run is bounded.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/ab.sh SERVER_A SERVER_B [ROUNDS]

Compares two kaichat-server binaries under the poll-19k load (19,000 clients polling
every 3 s), alternating A, B, A, B... so that a shared machine's noise hits both alike.
Prints, per run, the server's CPU (% of one core, sampled for 40 s inside the steady
window) and its RSS growth per connection. ROUNDS defaults to 2; a run takes about 75 s.
EOF
}
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
a=$1 b=$2 rounds=${3:-2}
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }; done
cargo build --release --quiet -p loadgen --bin loadgen
clients=19000 port=29450
ticks=$(getconf CLK_TCK)

run() {
  local bin=$1 sp lp rss0 rss1 t1 t2
  "$bin" --listen 127.0.0.1:$port --max-clients 19900 2>/dev/null & sp=$!
  sleep 0.5
  rss0=$(awk '/VmRSS/{print $2}' /proc/$sp/status)
  timeout 150 target/release/loadgen --clients $clients --channels 200 --interval 3 \
    --duration 60 --msg-every 60 --ramp 2000 --sources 127.0.0.1-127.0.0.40 \
    --server 127.0.0.1:$port --ca certs/ca.pem --quiet >/dev/null 2>&1 & lp=$!
  # The ramp takes ~10 s; sample 40 s of the 60 s steady window.
  sleep 20; t1=$(awk '{print $14+$15}' /proc/$sp/stat)
  sleep 40; t2=$(awk '{print $14+$15}' /proc/$sp/stat)
  rss1=$(awk '/VmRSS/{print $2}' /proc/$sp/status)
  wait $lp || true
  kill -TERM $sp; wait $sp || true
  awk -v n="$bin" -v t=$((t2 - t1)) -v hz="$ticks" -v r=$((rss1 - rss0)) -v c=$clients \
    'BEGIN { printf "%-40s cpu %5.1f %%   rss/conn %5.2f KiB\n", n, 100 * t / hz / 40, r / c }'
}

for ((i = 1; i <= rounds; i++)); do run "$a"; run "$b"; done
