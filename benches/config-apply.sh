#!/usr/bin/env bash
# How long `gatehouse apply` takes for a file of 1,000 routes and 10,000
# consumers (ROUTES, CONSUMERS to change that), and how many config
# versions it makes, on SQLite and on PostgreSQL (skipped when none answers
# on 127.0.0.1:5432, or set POSTGRES_URL), with the release binary:
#
#   benches/config-apply.sh
#
# For each database: a fresh control plane and tenant, the file applied
# (timed), applied again (timed: nothing changes), then a sync that
# changes one consumer in 10 and drops one route in 10 (timed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROUTES=${ROUTES:-1000}
CONSUMERS=${CONSUMERS:-10000}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release --quiet --bin gatehouse
bin=${CARGO_TARGET_DIR:-$root/target}/release/gatehouse
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# file <path> <every-nth-consumer-on-pro> <drop-every-nth-route>
file() {
  python3 - "$1" "$ROUTES" "$CONSUMERS" "$2" "$3" <<'EOF'
import json, sys
path, routes, consumers, pro, drop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
doc = {
    "services": [{"name": "echo", "targetUrl": "http://127.0.0.1:9000"}],
    "routes": [{"method": "GET", "pathPattern": f"/r{i}/:id", "service": "echo", "authRequired": True}
               for i in range(routes) if drop == 0 or i % drop != 0],
    "consumers": [{"name": f"consumer-{i}", "rateLimitTier": "pro" if pro and i % pro == 0 else "free"}
                  for i in range(consumers)],
}
json.dump(doc, open(path, "w"))
EOF
}

# seconds <command...>: runs it, prints its wall time in seconds.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/out.txt"
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.2f}')"
}

run() { # run <label> <database-url>
  local label=$1 url=$2 dir="$work/$1"
  mkdir -p "$dir"
  "$bin" control --listen 127.0.0.1:0 --database-url "$url" --data-dir "$dir/data" \
    --mail-outbox "$dir/outbox" --jwt-secret bench-secret-bench-secret-bench-secret \
    2>"$dir/control.log" &
  local addr=""
  for _ in $(seq 100); do
    addr=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/control.log" |
      sed -n 's/.*control plane listening.*addr=\([0-9.:]*\).*/\1/p' | head -1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$dir/control.log"; exit 1; }
  export GATEHOUSE_URL="http://$addr"
  GATEHOUSE_TOKEN=$(curl -sS -H 'content-type: application/json' \
    -d "{\"name\": \"bench\", \"email\": \"bench-$label@example.com\", \"password\": \"bench-password\"}" \
    "$GATEHOUSE_URL/api/auth/register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  export GATEHOUSE_TOKEN
  version() { "$bin" diff -f "$work/first.json" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["configVersion"])'; }
  local before first again sync after
  before=$(version)
  first=$(seconds "$bin" apply -f "$work/first.json" --keys-out "$dir/keys.json")
  after=$(version)
  again=$(seconds "$bin" apply -f "$work/first.json")
  sync=$(seconds "$bin" sync -f "$work/second.json")
  printf '%-11s apply %6s s (config version %s -> %s)   again %6s s (no change)   sync of a tenth %6s s\n' \
    "$label" "$first" "$before" "$after" "$again" "$sync"
  tail -1 "$work/out.txt" | sed 's/^/            /'
  kill %1 2>/dev/null || true
  wait 2>/dev/null || true
}

file "$work/first.json" 3 0
file "$work/second.json" 10 10
echo "$ROUTES routes, $CONSUMERS consumers; $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
run sqlite "sqlite://$work/sqlite/gatehouse.db"
if psql "$POSTGRES_URL" -qc 'SELECT 1' >/dev/null 2>&1; then
  db="gh_bench_$$"
  psql "$POSTGRES_URL" -qc "CREATE DATABASE $db" >/dev/null
  run postgresql "${POSTGRES_URL%/*}/$db"
  psql "$POSTGRES_URL" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
  echo "postgresql  skipped: nothing answers at $POSTGRES_URL"
fi
