#!/usr/bin/env bash
# Compares two kaichat-server binaries under one load scenario, alternating A, B, A, B...
# in one sitting so that the shared machine's noise hits both alike, each run with a fresh
# server. Prints, per run, the server's CPU (% of one core, sampled inside the steady
# window), its RSS growth per connection, the query and delivery p99 and the messages
# lost; for flat-out also the server CPU per QUERY. Then the median of each figure per
# binary.
#
#   scripts/ab.sh SERVER_A SERVER_B [ROUNDS]      (default 2 rounds)
#   SCENARIO=poll-19k (default, ~75 s a run), poll-19k-nomsg, push-19k or mixed-19k (the
#   same load in protocol 2, or half and half), idle-19k (~40 s) or flat-out (~35 s);
#   SERVER_CPU=n / LOADGEN_CPU=m pin the server and loadgen (taskset); LABEL_A, LABEL_B
#   name the two in the output (scripts/vs-peer.sh uses all of these).
#
# Builds loadgen in release mode first. Traffic stays on 127.0.0.0/8; every run is bounded.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/ab.sh SERVER_A SERVER_B [ROUNDS]

Compares two kaichat-server binaries under one load scenario, alternating A, B, A, B...
so that a shared machine's noise hits both alike, each run with a fresh server. Prints,
per run, the server's CPU (% of one core, sampled inside the steady window), its RSS
growth per connection, the query p99, the delivery p99 (of protocol-2 readers where
there are any) and the messages lost, echoes included (and, for flat-out, the server CPU
per QUERY); then the median of each figure per binary.

ROUNDS defaults to 2. Environment:
  SCENARIO=poll-19k        19,000 clients, QUERY every 3 s, a message per client per
                           minute (the default, about 75 s a run)
  SCENARIO=poll-19k-nomsg  the same without messages
  SCENARIO=push-19k        the same load in protocol 2: pushed, no polling
  SCENARIO=mixed-19k       half protocol-1 pollers, half protocol-2 clients
  SCENARIO=idle-19k        19,000 clients connected and joined, no polling (about 40 s):
                           the RSS figure is the memory per idle connection
  SCENARIO=flat-out        2,000 clients querying back to back (about 35 s a run)
  SERVER_CPU=n, LOADGEN_CPU=m   pin the server and loadgen to CPUs n and m (taskset)
  LABEL_A, LABEL_B         names shown for the two binaries (A and B)
Needs python3 (and taskset when pinning).
EOF
}
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
a=$1 b=$2 rounds=${3:-2} scenario=${SCENARIO:-poll-19k}
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }; done
command -v python3 >/dev/null || { echo "ab.sh: needs python3 to read loadgen's summary.json" >&2; exit 2; }
case $scenario in
  poll-19k|poll-19k-nomsg)
    clients=19000
    msg_every=60
    [ "$scenario" = poll-19k-nomsg ] && msg_every=0
    flags=(--clients $clients --channels 200 --interval 3 --duration 60 --msg-every $msg_every --ramp 2000)
    # The ramp takes ~10 s and the warm-up 3 s; sample 40 s of the 60 s steady window.
    sample_from=20 sample_for=40 ;;
  push-19k|mixed-19k)
    clients=19000
    protocol=2; [ "$scenario" = mixed-19k ] && protocol=mixed
    flags=(--protocol $protocol --clients $clients --channels 200 --interval 3 --warmup 3 --duration 60 --msg-every 60 --ramp 2000)
    sample_from=20 sample_for=40 ;;
  idle-19k)
    clients=19000
    # Connected, set up and joined; --interval 600 puts each client's first QUERY (its
    # channel's replay) at a random time up to 10 minutes away, so nearly none polls in
    # the window. The ramp takes ~10 s; RSS is read at the end of the sample window.
    flags=(--clients $clients --channels 100 --interval 600 --warmup 0 --duration 20 --msg-every 0 --ramp 2000)
    sample_from=15 sample_for=10 ;;
  flat-out)
    clients=2000
    flags=(--clients $clients --channels 20 --interval 0 --duration 30 --ramp 2000)
    sample_from=5 sample_for=20 ;;
  *) echo "ab.sh: unknown SCENARIO '$scenario' (poll-19k, poll-19k-nomsg, push-19k, mixed-19k, idle-19k, flat-out)" >&2; exit 2 ;;
esac
pin_server=() pin_loadgen=()
if [ -n "${SERVER_CPU:-}" ] || [ -n "${LOADGEN_CPU:-}" ]; then
  command -v taskset >/dev/null || { echo "ab.sh: pinning needs taskset (util-linux)" >&2; exit 2; }
  [ -n "${SERVER_CPU:-}" ] && pin_server=(taskset -c "$SERVER_CPU")
  [ -n "${LOADGEN_CPU:-}" ] && pin_loadgen=(taskset -c "$LOADGEN_CPU")
fi
label_a=${LABEL_A:-A} label_b=${LABEL_B:-B}
cargo build --release --quiet -p loadgen --bin loadgen
port=29450
ticks=$(getconf CLK_TCK)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
results=$out/results.tsv

run() {
  local label=$1 bin=$2 sp lp rss0 rss1 t1 t2
  # taskset execs the binary: $sp is the server's own pid.
  "${pin_server[@]}" "$bin" --listen 127.0.0.1:$port --max-clients 19900 2>/dev/null & sp=$!
  sleep 0.5
  rss0=$(awk '/VmRSS/{print $2}' /proc/$sp/status)
  rm -rf "$out/run"
  timeout 150 "${pin_loadgen[@]}" target/release/loadgen "${flags[@]}" --sources 127.0.0.1-127.0.0.40 \
    --server 127.0.0.1:$port --ca certs/ca.pem --quiet --out "$out/run" >"$out/loadgen.log" 2>&1 & lp=$!
  sleep "$sample_from"; t1=$(awk '{print $14+$15}' /proc/$sp/stat)
  sleep "$sample_for"; t2=$(awk '{print $14+$15}' /proc/$sp/stat)
  rss1=$(awk '/VmRSS/{print $2}' /proc/$sp/status)
  wait $lp || true
  kill -TERM $sp; wait $sp || true
  if [ ! -f "$out/run/summary.json" ]; then
    echo "$label $bin: the run failed (no summary.json; left out of the medians); loadgen said:"
    tail -n 5 "$out/loadgen.log"
    return 0
  fi
  python3 - "$out/run/summary.json" "$label" "$bin" $((t2 - t1)) "$ticks" "$sample_for" \
    $((rss1 - rss0)) "$clients" >>"$results" <<'EOF'
import json, sys
path, label, bin_, ticks_used, hz, window, rss_kib, clients = sys.argv[1:]
s = json.load(open(path))
cpu_s = int(ticks_used) / int(hz)
cpu = 100 * cpu_s / float(window)
qps = s["queries_per_s"]
per_query_us = 1e6 * cpu_s / (qps * float(window)) if qps else float("nan")
p99_ms = s["latency_us"]["query"]["p99"] / 1000
lat = s["latency_us"]
# Protocol-2 readers' delivery where there are any (push-19k, mixed-19k), else everyone's.
delivery = lat.get("delivery_v2", {}).get("count") and lat["delivery_v2"] or lat["delivery"]
delivery_ms = delivery["p99"] / 1000
lost = s["messages_lost"] + s.get("echoes_lost", 0)
print(f"{label}\t{bin_}\t{cpu:.1f}\t{int(rss_kib) / int(clients):.2f}\t{p99_ms:.2f}\t{per_query_us:.2f}\t{lost}\t{s['errors']}\t{delivery_ms:.2f}")
EOF
  tail -n 1 "$results" | awk -F'\t' '{ printf "%s %-40s cpu %5.1f %%  rss/conn %5.2f KiB  query p99 %6.2f ms  delivery p99 %8.2f ms  cpu/query %6.2f us  lost %s  errors %s\n", $1, $2, $3, $4, $5, $9, $6, $7, $8 }'
}

echo "scenario $scenario, $rounds rounds, A = $label_a, B = $label_b${SERVER_CPU:+, server on CPU $SERVER_CPU}${LOADGEN_CPU:+, loadgen on CPU $LOADGEN_CPU}"
uptime
for ((i = 1; i <= rounds; i++)); do run A "$a"; run B "$b"; done
uptime
python3 - "$results" "$label_a" "$label_b" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
names = {"A": sys.argv[2], "B": sys.argv[3]}
print("median       cpu %   rss/conn KiB   query p99 ms   cpu/query us")
med = {}
for label in ("A", "B"):
    r = [x for x in rows if x[0] == label]
    if not r:
        sys.exit(f"no run of {label} ({names[label]}) completed")
    med[label] = [statistics.median(float(x[i]) for x in r) for i in (2, 3, 4, 5)]
    print(f"{label} ({names[label]})")
    print(f"          {med[label][0]:6.1f}   {med[label][1]:12.2f}   {med[label][2]:12.2f}   {med[label][3]:12.2f}")
ratio = [b / a if a else float("nan") for a, b in zip(med["A"], med["B"])]
print(f"B/A       {ratio[0]:6.2f}x  {ratio[1]:11.2f}x  {ratio[2]:11.2f}x  {ratio[3]:11.2f}x")
EOF
