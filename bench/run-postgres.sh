#!/usr/bin/env bash
# PostgreSQL figures for the README: one `smshook serve` replica, then two
# replicas on the same database, load spread evenly over them. Server(s),
# PostgreSQL and the load generator share this machine's 2 cores (nothing is
# pinned). Each run uses a fresh schema. Not part of CI.
#
#   bench/run-postgres.sh        # PG from SMSHOOK_BENCH_POSTGRES_URL, default below
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${SMSHOOK_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
REQUESTS=${REQUESTS:-200000}
CONC=${CONC:-128}
SECRET=bench-secret-not-real
export PGOPTIONS="--client-min-messages=warning"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

cargo build --release --quiet --bin smshook
BIN=target/release/smshook
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

fresh_schema() {
  local schema="smshook_bench_$(date +%s)_$RANDOM"
  psql "$PG" -qc "CREATE SCHEMA $schema" >/dev/null
  echo "$PG?options=-c%20search_path%3D$schema"
}

serve() { SMSHOOK_INTEGIFY_SECRET=$SECRET SMSHOOK_LOG=warn "$BIN" serve --listen "127.0.0.1:$1" --database "$2" & }

run() { # replicas
  local db; db=$(fresh_schema)
  local urls=() pids=()
  for i in $(seq 1 "$1"); do
    serve $((18180 + i)) "$db"; pids+=($!)
    wait_port $((18180 + i))
    urls+=(--url "http://127.0.0.1:$((18180 + i))/webhooks/integify")
  done
  local result
  result=$("$BIN" bench "${urls[@]}" --secret "$SECRET" --requests "$REQUESTS" --duration 60s --concurrency "$CONC" --json)
  kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  local schema=${db##*%3D}
  local rows; rows=$(psql "$PG" -Atc "SELECT count(*) FROM $schema.events")
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); r['rows']=int(sys.argv[2]); print(json.dumps(r))" "$result" "$rows"
  psql "$PG" -qc "DROP SCHEMA $schema CASCADE" >/dev/null
}

echo "one replica..." >&2;  one=$(run 1)
echo "two replicas..." >&2; two=$(run 2)

python3 - "$one" "$two" "$CONC" <<'PY'
import json, sys
one, two = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"Load: {sys.argv[3]} keep-alive connections spread over the replicas; everything on 2 shared cores.\n")
print("| PostgreSQL | accepted/s | vs one replica | p50 ms | p99 ms | answered 200 | rows stored | refused | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, r in (("one replica", one), ("two replicas", two)):
    print(f"| {name} | {r['accepted_per_sec']:,.0f} | {r['accepted_per_sec'] / one['accepted_per_sec']:.2f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['accepted']} | {r['rows']} | {r['refused']} | {r['errors']} |")
PY
