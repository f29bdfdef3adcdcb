#!/usr/bin/env bash
# User-space instructions per webhook of `smshook serve` on SQLite, counted by
# valgrind's callgrind: unlike events/s, the count repeats whatever else this
# shared machine is doing, so it shows a change of a few percent. Compare two
# builds with BIN=... Kernel time (TCP, fsync) is not counted. valgrind runs
# SHA-256 without SHA-NI, so the HMAC line is printed apart. The server runs
# under `taskset -c 0`, as in bench/run.sh, so it picks the same one-thread
# runtime.
#
#   bench/instructions.sh                 # 20,000 requests
#   REQUESTS=5000 BIN=/tmp/old-smshook bench/instructions.sh
#   KEEP=1 bench/instructions.sh          # keep the callgrind profiles (prints where)
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-20000}
SECRET=bench-secret-not-real
command -v valgrind >/dev/null || { echo "needs valgrind (apt install valgrind)" >&2; exit 1; }
cargo build --release --quiet --bin smshook
BIN=${BIN:-target/release/smshook}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; if [ -n "${KEEP:-}" ]; then echo "profiles kept in $work" >&2; else rm -rf "$work"; fi' EXIT

wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

SMSHOOK_INTEGIFY_SECRET=$SECRET SMSHOOK_LOG=warn taskset -c 0 valgrind --tool=callgrind --separate-threads=yes \
  --callgrind-out-file="$work/cg.out" "$BIN" serve --listen 127.0.0.1:18095 \
  --database "$work/smshook.db" 2>"$work/valgrind.log" & pid=$!
wait_port 18095
target/release/smshook bench --url http://127.0.0.1:18095/webhooks/integify --secret "$SECRET" \
  --requests "$REQUESTS" --duration 600s --concurrency 64 --json >/dev/null
kill -TERM $pid; wait $pid || true

# One profile per thread: the SQLite writer's is the one that ran Writer's
# methods (run itself is inlined into the thread's entry).
python3 - "$REQUESTS" "$work"/cg.out-* <<'PY'
import re, subprocess, sys
n = int(sys.argv[1])
total = hmac = writer = 0
for path in sys.argv[2:]:
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path],
                         capture_output=True, text=True).stdout
    ir = lambda pat: max((int(m.group(1).replace(",", "")) for m in
                          re.finditer(r"^\s*([\d,]+) \(.*" + pat, out, re.M)), default=0)
    thread = ir(r"PROGRAM TOTALS")
    total += thread
    # `mac` calls `mac_parts`, inlined or not: the larger inclusive count.
    hmac += ir(r"signature::Secret::mac(?:_parts)? \[")
    if "sqlite::writer::Writer::" in out:
        writer += thread
print(f"instructions per request ({n} requests):")
print(f"  all but HMAC-SHA256:       {(total - hmac) / n:>9,.0f}")
print(f"    in the SQLite writer:    {writer / n:>9,.0f}")
print(f"  HMAC-SHA256 (software):    {hmac / n:>9,.0f}")
PY
