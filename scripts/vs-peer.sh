#!/usr/bin/env bash
# Runs one loadgen scenario against the tokio peer (an ordinary tokio + tokio-rustls server
# of the same v1 contract, kept outside this repository) and against kaichat-server, in one
# sitting: alternating rounds, a fresh server each run, the server pinned to one CPU and
# loadgen to the other. Prints each run and the medians; the last line is kaichat ÷ peer.
#
#   scripts/vs-peer.sh PEER_DIR [ROUNDS]     (default 3 rounds)
#   SCENARIO=poll-19k | poll-19k-nomsg | idle-19k | flat-out   (scripts/ab.sh's scenarios)
#
# The rest is scripts/ab.sh (which this script calls with the peer as A, kaichat as B).
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/vs-peer.sh PEER_DIR [ROUNDS]

Compares kaichat-server with the tokio peer under one loadgen scenario, in one sitting:
ROUNDS (default 3) alternating rounds, a fresh server for each run, the server pinned to
CPU 0 and loadgen to CPU 1. Prints each run (server CPU % of one core, RSS growth per
connection, query p99, server CPU per QUERY, messages lost, errors), the medians, and the
ratios kaichat ÷ peer (the line "B/A").

PEER_DIR is the peer's source folder (Cargo.toml, Cargo.lock, src/). It is copied to a
temporary folder and built from there in release mode with its own lock file (--locked),
into target/tokio-peer/ (kept between runs), so nothing is written into PEER_DIR; the peer runs as a current-thread runtime (--threads 1,
its best on one core; PEER_THREADS=n to change) with certs/server.pem and server.key.

Environment: SCENARIO (poll-19k, poll-19k-nomsg, idle-19k, flat-out; default poll-19k),
SERVER_CPU (0), LOADGEN_CPU (1), KAICHAT (default target/release/kaichat-server, built
first). Needs python3 and taskset.
EOF
}
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 1 ] || { usage >&2; exit 2; }
peer_dir=$1 rounds=${2:-3}
[ -f "$peer_dir/Cargo.toml" ] && [ -f "$peer_dir/Cargo.lock" ] || {
  echo "vs-peer.sh: $peer_dir has no Cargo.toml and Cargo.lock: not the peer's source folder" >&2
  exit 2
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$peer_dir/Cargo.toml" "$peer_dir/Cargo.lock" "$peer_dir/src" "$work/"
echo "vs-peer.sh: building the peer (release, its own Cargo.lock) into target/tokio-peer" >&2
if ! CARGO_TARGET_DIR=$PWD/target/tokio-peer cargo build --release --locked --quiet \
  --manifest-path "$work/Cargo.toml" >"$work/build.log" 2>&1; then
  echo "vs-peer.sh: the peer could not be built; cargo said:" >&2
  tail -n 20 "$work/build.log" >&2
  exit 1
fi
peer_bin=$PWD/target/tokio-peer/release/tokio-kaichat
[ -x "$peer_bin" ] || { echo "vs-peer.sh: the peer built, but no target/release/tokio-kaichat" >&2; exit 1; }

if [ -z "${KAICHAT:-}" ]; then
  echo "vs-peer.sh: building kaichat-server (release)" >&2
  cargo build --release --quiet -p kaichat --bin kaichat-server
  KAICHAT=target/release/kaichat-server
fi

# ab.sh starts each server as `BIN --listen ADDR --max-clients N`: the peer's own flags
# instead (it has no connection cap; the open-file limit is raised to its hard limit, as
# kaichat-server does itself). exec keeps the pid that ab.sh measures.
cat >"$work/peer.sh" <<EOF
#!/usr/bin/env bash
ulimit -n "\$(ulimit -Hn)"
exec "$peer_bin" --listen "\$2" --cert "$PWD/certs/server.pem" --key "$PWD/certs/server.key" \\
  --threads "${PEER_THREADS:-1}"
EOF
chmod +x "$work/peer.sh"

SERVER_CPU=${SERVER_CPU:-0} LOADGEN_CPU=${LOADGEN_CPU:-1} LABEL_A=tokio-peer LABEL_B=kaichat \
  scripts/ab.sh "$work/peer.sh" "$KAICHAT" "$rounds"
