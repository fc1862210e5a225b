#!/usr/bin/env bash
# Makes a KaiChat store for start-up measurements: CHANNELS channels (@chan0, @chan1, ...)
# of ENTRIES chat entries each (60-byte texts), in a new file at PATH.
#
#   scripts/fill-store.sh PATH [CHANNELS] [ENTRIES]      (default 1000 x 1000)
#
# The server creates the schema (started once on the new file, stopped at once); python3's
# sqlite3 module then inserts the entries in one transaction. Needs a release build
# (cargo build --release) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
path=$1 channels=${2:-1000} entries=${3:-1000}
[ ! -e "$path" ] || { echo "fill-store.sh: $path exists; give a new file" >&2; exit 2; }
command -v python3 >/dev/null || { echo "fill-store.sh: needs python3" >&2; exit 2; }
server=target/release/kaichat-server
[ -x "$server" ] || { echo "fill-store.sh: build first: cargo build --release" >&2; exit 2; }
"$server" --plaintext --listen 127.0.0.1:0 --store "$path" 2>/dev/null & pid=$!
for _ in $(seq 100); do [ -s "$path" ] && break; sleep 0.05; done
sleep 0.2
kill -TERM $pid; wait $pid || true
python3 - "$path" "$channels" "$entries" <<'PY'
import sqlite3, sys, time
path, channels, entries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
now = int(time.time() * 1000)
text = b"x" * 60
with db:
    for c in range(channels):
        cur = db.execute("INSERT INTO channels (name) VALUES (?)", (f"@chan{c}",))
        cid = cur.lastrowid
        db.executemany(
            "INSERT INTO entries (channel, seq, time_ms, sender, text) VALUES (?, ?, ?, ?, ?)",
            ((cid, s, now, f"u{s % 100}", text) for s in range(entries)),
        )
db.close()
print(f"{path}: {channels} channels x {entries} entries")
PY
