#!/usr/bin/env bash
# One benchmark run comparing, on this machine and in the same run:
#   1. a bare hyper server that only reads the body and answers 200,
#   2. smshook serve on SQLite (verify, parse, normalize, group commit, fsync),
#   3. the FastAPI receiver of Integify's guide, with a SQLite insert added:
#      as the guide's reader would write it (Python's sqlite3 defaults), and
#      tuned (WAL, synchronous=FULL),
#   4. smshook serve again with an HTTP destination (the outbox at work), its
#      deliveries received by a bare hyper server on the load generator's core,
#   5. smshook at a steady rate (half of its flood's, --rate, for
#      STEADY_SECS): the latency a provider sending at its own pace sees,
#      which the flood's closed loop understates; bare hyper at the same
#      rate is its baseline,
#   6. PAIRS short runs of 1 and 2 in turns: the share of bare hyper, pair by
#      pair, on a machine whose speed drifts between runs,
#   7. smshook serving HTTPS itself (tls_cert/tls_key, a self-signed
#      certificate made by openssl; skipped without it), against 2 run again
#      beside it: what the built-in TLS costs.
# Each server is pinned to core 0 and the load generator (smshook bench) to
# core 1. Prints a Markdown table for the README. Not part of CI.
#
#   bench/run.sh                  # defaults below
#   REQUESTS=500000 CONC=256 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-300000}
FASTAPI_REQUESTS=${FASTAPI_REQUESTS:-20000}
CONC=${CONC:-128}
PAIRS=${PAIRS:-3}
PAIR_REQUESTS=${PAIR_REQUESTS:-100000}
STEADY_SECS=${STEADY_SECS:-10}
SECRET=bench-secret-not-real
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet --bin smshook --example bare_hyper
BIN=target/release/smshook

if [ ! -x bench/.venv/bin/uvicorn ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet fastapi uvicorn
fi

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
load() { taskset -c 1 "$BIN" bench --url "$1" --secret "$SECRET" --requests "$2" --duration 60s --concurrency "$CONC" --json; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

echo "bare hyper..." >&2
taskset -c 0 target/release/examples/bare_hyper 127.0.0.1:18090 2>/dev/null & pid=$!
wait_port 18090
hyper=$(load http://127.0.0.1:18090/webhooks/integify "$REQUESTS")
hyper_rss=$(peak_rss_mb $pid); kill $pid; wait $pid 2>/dev/null || true

echo "smshook..." >&2
SMSHOOK_INTEGIFY_SECRET=$SECRET SMSHOOK_LOG=warn taskset -c 0 "$BIN" serve \
  --listen 127.0.0.1:18080 --database "$work/smshook.db" & pid=$!
wait_port 18080
smshook=$(load http://127.0.0.1:18080/webhooks/integify "$REQUESTS")
smshook_rss=$(peak_rss_mb $pid); kill -TERM $pid; wait $pid || true
stored=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$work/smshook.db")

echo "smshook at a steady rate..." >&2
rate=$(python3 -c "import json,sys; print(int(json.loads(sys.argv[1])['accepted_per_sec'] / 2))" "$smshook")
paced() { taskset -c 1 "$BIN" bench --url "$1" --secret "$SECRET" --rate "$rate" \
  --requests $((rate * STEADY_SECS)) --concurrency 512 --json; }
# The baseline: bare hyper at the same rate shows what this machine's
# scheduler and loopback alone add to the latency (on a VM with CPU steal,
# tens of milliseconds at p99).
taskset -c 0 target/release/examples/bare_hyper 127.0.0.1:18092 2>/dev/null & pid=$!
wait_port 18092
steady_hyper=$(paced http://127.0.0.1:18092/webhooks/integify)
kill $pid; wait $pid 2>/dev/null || true
SMSHOOK_INTEGIFY_SECRET=$SECRET SMSHOOK_LOG=warn taskset -c 0 "$BIN" serve \
  --listen 127.0.0.1:18083 --database "$work/smshook-steady.db" & pid=$!
wait_port 18083
steady=$(paced http://127.0.0.1:18083/webhooks/integify)
kill -TERM $pid; wait $pid || true

echo "smshook with a destination..." >&2
taskset -c 1 target/release/examples/bare_hyper 127.0.0.1:18091 2>/dev/null & app_pid=$!
cat > "$work/dest.toml" <<TOML
listen = "127.0.0.1:18082"
database = "$work/smshook-dest.db"
[[sources]]
name = "integify"
provider = "integify"
secrets = ["$SECRET"]
[[destinations]]
name = "app"
url = "http://127.0.0.1:18091/hooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOML
chmod 600 "$work/dest.toml"  # it holds secrets: serve warns otherwise
SMSHOOK_LOG=warn taskset -c 0 "$BIN" serve --config "$work/dest.toml" & pid=$!
wait_port 18082
dest=$(load http://127.0.0.1:18082/webhooks/integify "$REQUESTS")
# The flood is over: time how long the outbox takes to drain (at most 180 s).
pending() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from deliveries where state = 'pending'\").fetchone()[0])" "$work/smshook-dest.db"; }
backlog=$(pending); drain_start=$(date +%s.%N)
for _ in $(seq 1 360); do [ "$(pending)" = 0 ] && break; sleep 0.5; done
drain=$(python3 -c "print(f'{$(date +%s.%N) - $drain_start:.1f}')")
kill -TERM $pid; wait $pid || true; kill $app_pid; wait $app_pid 2>/dev/null || true
delivered=$(python3 -c "import sqlite3,sys; print(dict(sqlite3.connect(sys.argv[1]).execute('select state, count(*) from deliveries group by state').fetchall()))" "$work/smshook-dest.db")
delivered="$delivered; a backlog of $backlog drained in ${drain} s"

# $1: SQLITE_TUNED (0: the guide plus an insert, as written; 1: WAL).
fastapi() {
  SQLITE_TUNED=$1 WEBHOOK_SECRET=$SECRET DB_PATH="$work/fastapi-$1.db" taskset -c 0 bench/.venv/bin/uvicorn \
    --app-dir bench fastapi_integify:app --port 18070 --log-level warning & pid=$!
  wait_port 18070
  load http://127.0.0.1:18070/webhooks/integify "$FASTAPI_REQUESTS"
  peak_rss_mb $pid > "$work/fastapi-$1.rss"; kill $pid; wait $pid 2>/dev/null || true
}
echo "FastAPI, as the guide's reader would add SQLite..." >&2
fastapi_plain=$(fastapi 0); fastapi_plain_rss=$(cat "$work/fastapi-0.rss")
echo "FastAPI, tuned SQLite (WAL)..." >&2
fastapi_tuned=$(fastapi 1); fastapi_tuned_rss=$(cat "$work/fastapi-1.rss")

# The machine drifts between runs (other tenants, the disk): alternate short
# runs of the two, so the share of bare hyper is also measured pair by pair.
for i in $(seq 1 "$PAIRS"); do
  echo "interleaved pair $i/$PAIRS..." >&2
  taskset -c 0 target/release/examples/bare_hyper 127.0.0.1:18090 2>/dev/null & pid=$!
  wait_port 18090
  load http://127.0.0.1:18090/webhooks/integify "$PAIR_REQUESTS" > "$work/pair-$i.hyper"
  kill $pid; wait $pid 2>/dev/null || true
  SMSHOOK_INTEGIFY_SECRET=$SECRET SMSHOOK_LOG=warn taskset -c 0 "$BIN" serve \
    --listen 127.0.0.1:18080 --database "$work/pair-$i.db" & pid=$!
  wait_port 18080
  load http://127.0.0.1:18080/webhooks/integify "$PAIR_REQUESTS" > "$work/pair-$i.smshook"
  kill -TERM $pid; wait $pid || true
done

# HTTPS served by smshook itself, in two pairs with plain HTTP.
https='null'
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=bench -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
  -addext extendedKeyUsage=serverAuth -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null; then
  chmod 600 "$work/tls.key"  # serve warns about a key others can read
  echo "smshook over HTTPS, and plain beside it..." >&2
  for run in 1-http 1-https 2-http 2-https; do
    scheme=${run#*-}
    tls_env=()
    [ "$scheme" = https ] && tls_env=(SMSHOOK_TLS_CERT="$work/tls.crt" SMSHOOK_TLS_KEY="$work/tls.key")
    env "${tls_env[@]}" SMSHOOK_INTEGIFY_SECRET=$SECRET SMSHOOK_LOG=warn taskset -c 0 "$BIN" serve \
      --listen 127.0.0.1:18084 --database "$work/smshook-$run.db" & pid=$!
    wait_port 18084
    taskset -c 1 "$BIN" bench --url "$scheme://127.0.0.1:18084/webhooks/integify" --ca "$work/tls.crt" \
      --secret "$SECRET" --requests "$PAIR_REQUESTS" --concurrency "$CONC" --json > "$work/scheme.$run"
    kill -TERM $pid; wait $pid || true
  done
  https=$(python3 -c "import json,sys; print(json.dumps([[json.load(open(f'{sys.argv[1]}/scheme.{i}-{s}')) for s in ('http', 'https')] for i in (1, 2)]))" "$work")
else
  echo "no openssl command: HTTPS not measured" >&2
fi

python3 - "$hyper" "$smshook" "$fastapi_plain" "$fastapi_tuned" "$hyper_rss" "$smshook_rss" "$fastapi_plain_rss" "$fastapi_tuned_rss" "$stored" "$CONC" "$dest" "$delivered" "$PAIRS" "$work" "$steady" "$steady_hyper" "$https" <<'PY'
import json, sys
hyper, smshook, plain, tuned = (json.loads(a) for a in sys.argv[1:5])
rss = sys.argv[5:9]; stored = int(sys.argv[9]); conc = sys.argv[10]
dest, delivered = json.loads(sys.argv[11]), sys.argv[12]
base = smshook["accepted_per_sec"]
print(f"Load: {conc} keep-alive connections, integify sms.delivered events, distinct and signed.\n")
print("| server (core 0) | accepted/s | vs bare hyper | smshook vs it | p50 ms | p99 ms | peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|")
rows = (("bare hyper (no work)", hyper, rss[0]), ("smshook serve, SQLite", smshook, rss[1]),
        ("FastAPI guide + SQLite insert", plain, rss[2]), ("FastAPI guide + SQLite, WAL-tuned", tuned, rss[3]))
for name, r, m in rows:
    rate = r["accepted_per_sec"]
    print(f"| {name} | {rate:,.0f} | {rate / hyper['accepted_per_sec']:.0%} | {base / rate:.1f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {m} |")
print(f"\nsmshook: {smshook['accepted']} answered 200, {stored} rows in the database; refused {smshook['refused']}, errors {smshook['errors']}.")
busy = lambda r: f"{r['client_cpu_share']:.0%}" if r.get("client_cpu_share") is not None else "unknown"
print(f"\nThe load generator's core was {busy(hyper)} busy during bare hyper's flood and {busy(smshook)} during smshook's (near 100%: the client, not the server, set that rate).")
st = json.loads(sys.argv[15])
sh = json.loads(sys.argv[16])
print(f"\nAt a steady {st['rate']:,.0f}/s (half the flood's rate; open loop, latency from each request's scheduled time, 512 connections): p50 {st['p50_ms']:.2f} ms, p99 {st['p99_ms']:.2f} ms, max {st['max_ms']:.0f} ms; {st['accepted']} accepted, {st['refused']} refused, {st['errors']} errors. Bare hyper at the same rate: p50 {sh['p50_ms']:.2f} ms, p99 {sh['p99_ms']:.2f} ms, max {sh['max_ms']:.0f} ms.")
d = dest["accepted_per_sec"]
print(f"\nWith an HTTP destination: {d:,.0f} accepted/s = {d / base:.0%} of without (p50 {dest['p50_ms']:.2f} ms, p99 {dest['p99_ms']:.2f} ms); deliveries by state at the end: {delivered}.")
tls = json.loads(sys.argv[17])
if tls:
    each = "; ".join(f"{p['accepted_per_sec']:,.0f} / {t['accepted_per_sec']:,.0f} = {t['accepted_per_sec'] / p['accepted_per_sec']:.0%} (p99 {p['p99_ms']:.1f} / {t['p99_ms']:.1f} ms)" for p, t in tls)
    print(f"\nOver HTTPS (smshook's own TLS, self-signed P-256 certificate; connections and handshakes made before the clock starts), pairs plain / HTTPS: {each}.")
pairs = []
for i in range(1, int(sys.argv[13]) + 1):
    h, m = (json.load(open(f"{sys.argv[14]}/pair-{i}.{k}")) for k in ("hyper", "smshook"))
    pairs.append((h["accepted_per_sec"], m["accepted_per_sec"], m["p99_ms"]))
if pairs:
    shares = sorted(m / h for h, m, _ in pairs)
    each = "; ".join(f"{h:,.0f} / {m:,.0f} = {m / h:.0%} (p99 {p:.1f} ms)" for h, m, p in pairs)
    print(f"\nInterleaved pairs, bare hyper / smshook: {each}. Median share {shares[len(shares) // 2]:.0%}.")
PY
