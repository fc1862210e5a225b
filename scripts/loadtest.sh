#!/usr/bin/env bash
# Runs one load-test scenario against a fresh kaichat-server on loopback and writes
# report/<scenario>-<timestamp>/ with REPORT.md and plots. `--help` prints the usage below.
#
# Steps: build both binaries in release mode (unless BIN_DIR names prebuilt ones); start
# kaichat-server on 127.0.0.1:$PORT (cluster-3x: a local network of 3 nodes on $PORT,
# $PORT+1, $PORT+2 and its redis-server, started by scripts/cluster.sh); sample the
# server's (each node's, redis-server's) and loadgen's RSS and CPU time from /proc every
# second; run loadgen with the scenario's flags (it stops by itself);
# stop the server with SIGTERM; turn everything into REPORT.md and SVG plots with
# `loadgen-report`. Every step is bounded in time; traffic stays on 127.0.0.0/8. A run
# that fails removes its half-made report folder (what it printed on the terminal is
# what is left of it).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/loadtest.sh [smoke|poll-19k|push-19k|mixed-19k|push-idle-19k|idle-19k|storm|flat-out|
                            cluster-3x] [extra loadgen flags...]

Runs one load-test scenario against a fresh kaichat-server on 127.0.0.1 and writes
report/<scenario>-<timestamp>/ with REPORT.md, SVG plots, latency histograms and the
raw CPU and memory samples.

Scenarios:
  smoke      200 clients for 15 s: checks that everything works
  poll-19k   19,000 clients in 200 channels polling every 3 s for 60 s (protocol 1)
  push-19k   the same load in protocol 2: 19,000 clients pushed to, no polling, one
             message per client per minute, 60 s
  mixed-19k  the same load, half protocol-1 pollers and half protocol-2 clients in the
             same channels (delivery latency reported per protocol)
  push-idle-19k
             19,000 idle protocol-2 clients (no messages; a keep-alive PING every 30 s)
  idle-19k   19,000 protocol-1 clients connected and joined, not polling (RSS per idle
             connection)
  storm      as many TLS connections as fit, as fast as possible: set-ups per second
             of wall clock and of server CPU, server CPU per set-up (a full TLS 1.3
             handshake, PING, version, CLIENT_INFO, JOIN and the first answer)
  flat-out   2,000 clients querying as fast as answers come (CPU per query)
  cluster-3x a network of 3 nodes and one redis-server (scripts/cluster.sh): 18,000
             clients, 6,000 per node, in 200 channels whose members sit on every node;
             one message per client per minute; half protocol-2 (pushed), half
             protocol-1 (polling every 3 s); 60 s. Reports each node's CPU and RSS and
             redis-server's CPU and memory. A small try: cluster-3x --clients 300

Extra flags go to loadgen and override the scenario's (e.g. --msg-every 0);
--plaintext goes to the server too.

Environment:
  TAG=name          add a name to the report folder
  PORT=n            the server's port (29400); cluster-3x: node K's is PORT + K
  REDIS_PORT=n      cluster-3x: redis-server's port (29379)
  SAMPLE_EVERY=s    seconds between CPU and memory samples (1)
  BIN_DIR=dir       use kaichat-server, loadgen and loadgen-report from dir instead
                    of building them
  REPORTS=dir       where report folders go (report)

A run that fails removes its half-made report folder.
EOF
}

cd "$(dirname "$0")/.."
scenario=${1:-smoke}
shift || true

PORT=${PORT:-29400}
SAMPLE_EVERY=${SAMPLE_EVERY:-1}
REPORTS=${REPORTS:-report}
sources=127.0.0.1-127.0.0.40

# Scenario → loadgen flags and the server's connection cap (per node, for a network:
# `nodes` > 0 starts one with scripts/cluster.sh). The open-file limit here is 20,000 per
# process (hard); loadgen and the server each keep 32 descriptors in reserve
# (kaichat::fd_limit::RESERVED_FDS), so 19,900 is "as many connections as fit" in both.
nodes=0
case "$scenario" in
  smoke)
    flags=(--clients 200 --channels 10 --interval 3 --duration 15 --msg-every 5 --ramp 1000)
    max_clients=1000 ;;
  poll-19k)
    flags=(--clients 19000 --channels 200 --interval 3 --duration 60 --msg-every 60 --ramp 2000)
    max_clients=19900 ;;
  push-19k)
    # No polling: the 3 s warm-up lets the last joiners' replays (pushed right after each
    # JOIN) finish before the steady window.
    flags=(--protocol 2 --clients 19000 --channels 200 --warmup 3 --duration 60 --msg-every 60 --ramp 2000)
    max_clients=19900 ;;
  mixed-19k)
    flags=(--protocol mixed --clients 19000 --channels 200 --interval 3 --duration 60 --msg-every 60 --ramp 2000)
    max_clients=19900 ;;
  push-idle-19k)
    flags=(--protocol 2 --clients 19000 --channels 200 --warmup 3 --duration 60 --msg-every 0 --ramp 2000)
    max_clients=19900 ;;
  idle-19k)
    # --interval 600: each client's first QUERY comes at a random time up to 10 minutes
    # away, so nearly none polls in the 20 s window; no messages.
    flags=(--clients 19000 --channels 100 --interval 600 --warmup 0 --duration 20 --msg-every 0 --ramp 2000)
    max_clients=19900 ;;
  storm)
    # Handshakes only: --interval 60 keeps the connected clients from polling during the
    # ramp (at 3 s, answering their QUERYs takes a third of both processes' CPU), and
    # --no-verify spares loadgen, which shares the 2 cores, its two ECDSA verifications;
    # the server's handshake work is the same either way.
    flags=(--clients 19900 --channels 200 --interval 60 --warmup 0 --duration 5 --ramp 0 --max-setup 1000 --no-verify)
    max_clients=19900 ;;
  flat-out)
    flags=(--clients 2000 --channels 20 --interval 0 --duration 30 --ramp 2000)
    max_clients=2500 ;;
  cluster-3x)
    # loadgen spreads the clients over the nodes so that every channel has members on
    # every node (--server A,B,C); mixed-19k's load, 3 nodes of 6,000.
    flags=(--protocol mixed --v2-share 50 --clients 18000 --channels 200 --interval 3 --duration 60 --msg-every 60 --ramp 2000)
    max_clients=6500
    nodes=3 ;;
  -h|--help)
    usage
    exit 0 ;;
  *)
    echo "loadtest.sh: unknown scenario '$scenario' (smoke, poll-19k, push-19k, mixed-19k, push-idle-19k, idle-19k, storm, flat-out, cluster-3x)" >&2
    exit 2 ;;
esac
# A network's node K listens on PORT + K.
servers="127.0.0.1:$PORT"
for ((k = 1; k < nodes; k++)); do servers+=",127.0.0.1:$((PORT + k))"; done
flags+=(--sources "$sources" --server "$servers")

# Extra flags override the scenario's: drop each "--flag value" pair given again.
extra=("$@")
server_extra=()
for ((i = 0; i < ${#extra[@]}; i++)); do
  arg=${extra[i]}
  [ "$arg" = "--plaintext" ] && server_extra+=(--plaintext)
  if [[ $arg == --* ]] && ((i + 1 < ${#extra[@]})) && [[ ${extra[i + 1]} != --* ]]; then
    kept=()
    for ((j = 0; j < ${#flags[@]}; j++)); do
      if [ "${flags[j]}" = "$arg" ]; then
        j=$((j + 1))
      else
        kept+=("${flags[j]}")
      fi
    done
    flags=("${kept[@]}")
    i=$((i + 1))
  fi
done
flags+=("${extra[@]}")

if [ -n "${BIN_DIR:-}" ]; then
  bin_dir=$BIN_DIR
else
  echo "loadtest.sh: building (release)" >&2
  cargo build --release --quiet -p kaichat --bin kaichat-server -p loadgen --bin loadgen --bin loadgen-report
  bin_dir=target/release
fi

server_bin=$bin_dir/kaichat-server
loadgen_bin=$bin_dir/loadgen
report_bin=$bin_dir/loadgen-report
stamp=$(date +%Y%m%d-%H%M%S)
out=$REPORTS/$scenario${TAG:+-$TAG}-$stamp
mkdir -p "$out"
# Set once REPORT.md is written; until then the folder is half-made, and a failure (or an
# interruption) removes it so that report/ only holds runs that can be read.
finished=""

now() { date +%s.%N; }

# Samples one process every SAMPLE_EVERY seconds until it exits:
# unix time, RSS (KiB), utime + stime (clock ticks), time on CPU (ns, from schedstat).
sample() {
  local pid=$1 file=$2
  echo "t_unix,rss_kib,cpu_ticks,cpu_ns" > "$file"
  while [ -r "/proc/$pid/stat" ]; do
    local t rss ticks ns stat
    t=$(now)
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || break
    # Fields after the command name "(...)": utime and stime are fields 14 and 15.
    stat=${stat##*) }
    ticks=$(awk '{print $12 + $13}' <<<"$stat")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
    ns=$(awk '{print $1}' "/proc/$pid/schedstat" 2>/dev/null || echo 0)
    echo "$t,${rss:-0},$ticks,$ns" >> "$file"
    sleep "$SAMPLE_EVERY"
  done
}

# Samples the whole machine in the same format (RSS 0, CPU = busy ticks of all CPUs):
# the machine is shared, and the report shows how much CPU other processes took.
sample_machine() {
  local file=$1
  echo "t_unix,rss_kib,cpu_ticks,cpu_ns" > "$file"
  while [ -e "$out/.sampling" ]; do
    echo "$(now),0,$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat),0" >> "$file"
    sleep "$SAMPLE_EVERY"
  done
}

server_pid=""
cluster_pid=""
loadgen_pid=""
sampler_pids=()
cleanup() {
  if [ -n "$loadgen_pid" ] && kill -0 "$loadgen_pid" 2>/dev/null; then
    kill -INT "$loadgen_pid" 2>/dev/null || true
  fi
  rm -f "$out/.sampling"
  for p in "${sampler_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
  fi
  # cluster.sh stops its nodes and redis-server on SIGTERM.
  if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
  fi
  if [ -z "$finished" ]; then
    wait 2>/dev/null || true # the samplers and the server, so nothing writes into the folder
    rm -rf "$out"
    echo "loadtest.sh: failed; removed the half-made $out" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

{
  echo "scenario=$scenario"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host_cpus=$(nproc)"
  echo "host_cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "host_kernel=$(uname -r)"
  echo "host_mem_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
  echo "clk_tck=$(getconf CLK_TCK)"
  echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$out/run.env"

server_flags=(--max-clients "$max_clients" --stats-interval 10 "${server_extra[@]}")
node_pids=()
redis_pid=""
if [ "$nodes" -gt 0 ]; then
  server_cmd=(scripts/cluster.sh "$nodes" "${server_flags[@]}")
  echo "server_cmd=BASE_PORT=$PORT ${server_cmd[*]}" >> "$out/run.env"
  echo "loadtest.sh: starting ${server_cmd[*]}" >&2
  # cluster.sh writes its nodes' and redis-server's logs into the report folder, and
  # their pids into cluster.state once every node listens.
  BIN_DIR=$bin_dir LOG_DIR=$out STATE_FILE=$out/cluster.state BASE_PORT=$PORT \
    REDIS_PORT=${REDIS_PORT:-29379} "${server_cmd[@]}" 2> "$out/cluster.log" &
  cluster_pid=$!
  for _ in $(seq 300); do
    [ -f "$out/cluster.state" ] && break
    kill -0 "$cluster_pid" 2>/dev/null || { echo "loadtest.sh: the network did not start:" >&2; cat "$out/cluster.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -f "$out/cluster.state" ] || { echo "loadtest.sh: the network did not start in 30 s:" >&2; cat "$out/cluster.log" >&2; exit 1; }
  state() { awk -F= -v key="$1" '$1 == key {print $2}' "$out/cluster.state"; }
  redis_pid=$(state redis_pid)
  redis_port=$(state redis_port)
  for ((k = 0; k < nodes; k++)); do node_pids+=("$(state "node${k}_pid")"); done
  echo "redis_version=$(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/')" >> "$out/run.env"
else
  server_cmd=("$server_bin" --listen "127.0.0.1:$PORT" "${server_flags[@]}")
  echo "server_cmd=${server_cmd[*]}" >> "$out/run.env"

  echo "loadtest.sh: starting ${server_cmd[*]}" >&2
  "${server_cmd[@]}" 2> "$out/server.log" &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$out/server.log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "loadtest.sh: the server exited:" >&2; cat "$out/server.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q "listening on" "$out/server.log" || { echo "loadtest.sh: the server did not start in 10 s:" >&2; cat "$out/server.log" >&2; exit 1; }
fi

# loadgen reads the server's CPU time itself at the edges of the connect and steady
# windows: the samples below come once a second, too coarse for a window shorter than a
# few seconds.
# A network has no one server pid: each node's CPU comes from its /proc samples (the
# steady window spans 60 of them).
pid_flags=()
if [ -n "$server_pid" ]; then pid_flags=(--server-pid "$server_pid"); fi
loadgen_cmd=("$loadgen_bin" "${flags[@]}" "${pid_flags[@]}" --out "$out")
echo "loadgen_cmd=${loadgen_cmd[*]}" >> "$out/run.env"

if [ -n "$server_pid" ]; then
  sample "$server_pid" "$out/server.csv" &
  sampler_pids+=($!)
fi
for ((k = 0; k < ${#node_pids[@]}; k++)); do
  sample "${node_pids[k]}" "$out/server-node$k.csv" &
  sampler_pids+=($!)
done
if [ -n "$redis_pid" ]; then
  sample "$redis_pid" "$out/redis.csv" &
  sampler_pids+=($!)
fi
touch "$out/.sampling"
sample_machine "$out/machine.csv" &
sampler_pids+=($!)
sleep 2 # a baseline of the idle server
echo "loadgen_start_unix=$(now)" >> "$out/run.env"

echo "loadtest.sh: running ${loadgen_cmd[*]}" >&2
# loadgen ends by itself; the watchdog is only a safety net against a bug.
"${loadgen_cmd[@]}" 2> >(tee "$out/loadgen.log" >&2) > "$out/loadgen.txt" &
loadgen_pid=$!
(
  for _ in $(seq 900); do
    sleep 1
    kill -0 "$loadgen_pid" 2>/dev/null || exit 0
  done
  kill -INT "$loadgen_pid" 2>/dev/null; sleep 10; kill -KILL "$loadgen_pid" 2>/dev/null
) &
watchdog_pid=$!
sampler_pids+=("$watchdog_pid")
sample "$loadgen_pid" "$out/loadgen-proc.csv" &
sampler_pids+=($!)
set +e
wait "$loadgen_pid"
loadgen_status=$?
set -e
echo "loadgen_end_unix=$(now)" >> "$out/run.env"
echo "loadgen_status=$loadgen_status" >> "$out/run.env"
cat "$out/loadgen.txt"

sleep 1
if [ -n "$redis_pid" ]; then
  # redis-server's own view of the run, before the network stops.
  if command -v redis-cli >/dev/null 2>&1; then
    for section in memory cpu clients stats; do
      redis-cli -p "$redis_port" INFO "$section" || true
    done > "$out/redis-info.txt"
  else
    echo "loadtest.sh: redis-cli not found; no redis-info.txt" >&2
  fi
fi
if [ -n "$cluster_pid" ]; then
  kill -TERM "$cluster_pid"
  # cluster.sh gives its nodes 10 s after SIGTERM, then stops redis-server.
  for _ in $(seq 200); do
    kill -0 "$cluster_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$cluster_pid" 2>/dev/null; then
    echo "loadtest.sh: the network did not stop in 20 s after SIGTERM" >&2
  fi
  wait "$cluster_pid" 2>/dev/null || true
  cluster_pid=""
else
  kill -TERM "$server_pid"
  for _ in $(seq 150); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "loadtest.sh: the server did not stop in 15 s after SIGTERM; killing it" >&2
    kill -KILL "$server_pid" || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
fi
rm -f "$out/.sampling"
for p in "${sampler_pids[@]}"; do kill "$p" 2>/dev/null || true; done
sampler_pids=()

if [ "$loadgen_status" -ne 0 ] || [ ! -f "$out/summary.json" ]; then
  # loadgen's own lines were on the terminal as it ran; the server's last words may help.
  echo "loadtest.sh: loadgen failed (status $loadgen_status); the server's log ends:" >&2
  for log in "$out"/server.log "$out"/node*.log; do
    if [ -f "$log" ]; then tail -n 5 "$log" >&2; fi
  done
  exit 1
fi
"$report_bin" "$out"
finished=yes
case $scenario in
  # The figures the scenario exists for, from the report just written.
  storm) grep -E "^\| (server CPU per connection set up|connections set up per second of server CPU)" "$out/REPORT.md" >&2 || true ;;
  idle-19k) grep -E "^\| server RSS growth per connection" "$out/REPORT.md" >&2 || true ;;
esac
echo "loadtest.sh: report in $out/REPORT.md" >&2
