#!/usr/bin/env bash
# Proxy throughput with request logging on and off: release binaries, a
# 1 KiB upstream, the control plane on SQLite, one node pinned to CPU 0 with
# one worker thread; wrk, the upstream and the control plane (running
# throughout, as a user runs it) pinned to CPU 1. Prints requests/s and latency for
# both runs and the cost of logging: at each one's maximum, then at the same paced rate (RATE, default 10000
# req/s offered), where the node's CPU per request compares fairly, with the share of its background thread.
#
#   benches/load/logging.sh [duration-seconds]
#   ROUNDS=3 benches/load/logging.sh 8            (three on/off pairs and their medians)
#   PERF_DATA=/tmp/l benches/load/logging.sh 8   (perf record of CPU 0 during each run: /tmp/l-max-logs-true, /tmp/l-paced-logs-false, ...)
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/gh_load benches/load/logging.sh   (an empty database)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin gatehouse --example upstream
TARGET=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

taskset -c 1 "$TARGET/examples/upstream" 127.0.0.1:18081 2>/dev/null & PIDS+=($!)
# The control plane at the lowest priority: with logs on, its ingestion
# would otherwise take CPU 1 from wrk, and the node would see a lower,
# burstier load in that run than in the other (and spend more CPU per
# request for it). Ingested late, the logs wait in the node's outbox.
taskset -c 1 "$TARGET/gatehouse" control --listen 127.0.0.1:18000 --database-url "${DATABASE_URL:-sqlite://$WORK/db.sqlite}" \
  --jwt-secret load-bench-secret-load-bench-secret-00 --data-dir "$WORK/data" --mail-outbox "$WORK/outbox" \
  2>"$WORK/control.log" & PIDS+=($!)
CONTROL_PID=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:18000/healthz >/dev/null && break; sleep 0.1; done
EMAIL="load-$(date +%s%N)@example.com"
REG=$(curl -fs -H 'content-type: application/json' -d "{\"name\":\"load\",\"email\":\"$EMAIL\",\"password\":\"load-bench-pw\"}" http://127.0.0.1:18000/api/auth/register)
field() { python3 -c "import json,sys;print(json.load(sys.stdin)['$1'])"; }
TOKEN=$(echo "$REG" | field token); TENANT=$(echo "$REG" | field tenantId); KEY=$(echo "$REG" | field gatewayApiKey)
API=http://127.0.0.1:18000/api/tenants/$TENANT
SERVICE=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"fast","targetUrl":"http://127.0.0.1:18081"}' "$API/services" | field id)
curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d "{\"method\":\"GET\",\"pathPattern\":\"/bench\",\"serviceId\":\"$SERVICE\",\"authRequired\":false}" "$API/routes" >/dev/null
# No anonymous limit (the default 60 a minute per IP would answer 429s).
curl -fs -X PUT -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"tiers":[{"name":"free","requestsPerMinute":60}],"anonymousRequestsPerMinute":null}' "$API/rate-limit-tiers" >/dev/null

# A steady offered load below both runs' maximum (128 connections, each
# pausing between requests): the node's CPU per request at the same rate is
# the fair comparison when, logs on, the control plane's ingestion takes CPU
# from wrk and the node is no longer the bottleneck.
RATE=${RATE:-10000}
PACED=$WORK/paced.lua
cat > "$PACED" <<LUA
delay = function() return $(( 128000 / RATE )) end
LUA

run() {
  local logs=$1
  taskset -c 0 "$TARGET/gatehouse" proxy --control-url http://127.0.0.1:18000 --gateway-key "$KEY" \
    --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19080 --state-dir "$WORK/node-$logs" --threads 1 \
    --request-logs "$logs" --telemetry-memory-records "$MEMORY_RECORDS" 2>"$WORK/proxy-$logs.log" &
  local pid=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:19080/healthz >/dev/null && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c32 -d2s http://127.0.0.1:18080/bench >/dev/null
  local before after max_background_before max_background_after
  before=$(cpu_ticks "$pid")
  max_background_before=$(background_ticks "$pid")
  phase "max-logs-$logs" "wrk-$logs" -c32 -d"${DURATION}s"
  after=$(cpu_ticks "$pid")
  max_background_after=$(background_ticks "$pid")
  local paced_before paced_after background_before background_after
  paced_before=$(cpu_ticks "$pid")
  background_before=$(background_ticks "$pid")
  phase "paced-logs-$logs" "paced-$logs" -c128 -d"${DURATION}s" -s "$PACED"
  paced_after=$(cpu_ticks "$pid")
  background_after=$(background_ticks "$pid")
  if grep -q "Non-2xx" "$WORK/wrk-$logs.txt" "$WORK/paced-$logs.txt"; then
    echo "logs=$logs: $(grep Non-2xx "$WORK/wrk-$logs.txt") — the figures would not be of proxied requests" >&2
    exit 1
  fi
  curl -fs http://127.0.0.1:19080/metrics | grep -E '^gatehouse_telemetry' | sed "s/^/  logs=$logs /" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99 requests cpu_us
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-$logs.txt")
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk-$logs.txt")
  cpu_us=$(python3 -c "print(round(($after - $before) * 1e6 / $(getconf CLK_TCK) / $requests, 2))")
  max_background_us=$(python3 -c "print(round(($max_background_after - $max_background_before) * 1e6 / $(getconf CLK_TCK) / $requests, 2))")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk-$logs.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk-$logs.txt")
  local paced_rps paced_requests paced_cpu_us
  paced_rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/paced-$logs.txt")
  paced_requests=$(awk '/requests in/ {print $1}' "$WORK/paced-$logs.txt")
  paced_cpu_us=$(python3 -c "print(round(($paced_after - $paced_before) * 1e6 / $(getconf CLK_TCK) / $paced_requests, 2))")
  background_us=$(python3 -c "print(round(($background_after - $background_before) * 1e6 / $(getconf CLK_TCK) / $paced_requests, 2))")
  echo "$logs $rps $p50 $p99 $cpu_us $paced_rps $paced_cpu_us $background_us $max_background_us" \
    "$(cat "$WORK/spill-max-logs-$logs")" "$(cat "$WORK/spill-paced-logs-$logs")"
}

# One measured phase, named $1: wrk on one thread with the arguments after
# $2, its report in $WORK/$2.txt. Meanwhile the node's spill is watched
# ($WORK/spill-$1) and CPU 0 recorded (PERF_DATA); after it, the node's
# outbox drains.
phase() {
  local name=$1 report=$2 watcher recorder
  shift 2
  watch_spill "$WORK/spill-$name" >/dev/null & watcher=$!
  recorder=$(record_cpu0 "$name")
  taskset -c 1 wrk -t1 "$@" --latency http://127.0.0.1:18080/bench > "$WORK/$report.txt"
  kill "$watcher"; wait "$watcher" 2>/dev/null || true
  while [ -n "$recorder" ] && kill -0 "$recorder" 2>/dev/null; do sleep 0.1; done
  drain
}

# The most telemetry the node has spilled to its state dir so far, written
# to $1 every half second until killed: a node whose control plane ingests
# slower than it logs spills, and that costs it more than logging.
watch_spill() {
  local most=0 now
  echo 0 > "$1"
  while :; do
    now=$(curl -fs --max-time 1 http://127.0.0.1:19080/metrics | awk '/^gatehouse_telemetry_spilled_bytes/ {printf "%d", $2}')
    if [ -n "$now" ] && [ "$now" -gt "$most" ]; then most=$now; echo "$most" > "$1"; fi
    sleep 0.5
  done
}

# The control plane runs throughout, storing the logs as they come; after
# each phase the node's outbox is waited out, so the node's CPU figures
# include shipping everything. The node keeps what the control plane has
# not taken yet in memory (MEMORY_RECORDS, default 1,000,000, as its
# outbox bound).
MEMORY_RECORDS=${MEMORY_RECORDS:-1000000}
drain() {
  local waiting
  for _ in $(seq 600); do
    waiting=$(curl -fs --max-time 1 http://127.0.0.1:19080/metrics | awk '/^gatehouse_telemetry_batches_waiting/ {printf "%d", $2}')
    [ "$waiting" = 0 ] && return 0
    sleep 0.1
  done
  echo "the node's outbox did not drain in 60 s ($waiting batches waiting)" >&2
}

# With PERF_DATA set, records all of CPU 0 (the node's threads and the
# kernel's work done there) for DURATION seconds into $PERF_DATA-$1 in the
# background, and prints the recorder's pid (not this shell's child: wait
# for it with kill -0).
record_cpu0() {
  [ -n "${PERF_DATA:-}" ] || return 0
  perf record -q -C 0 -g -o "$PERF_DATA-$1" -- sleep "$DURATION" >/dev/null 2>&1 &
  echo $!
}

# utime + stime of a process and its threads, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The same for its background thread alone (telemetry: the request log's
# plugin calls, batching, encoding and shipping; the link; health checks).
background_ticks() {
  local task
  for task in /proc/"$1"/task/*; do
    if grep -q '^gatehouse-backg' "$task/comm"; then
      sed 's/^.*) //' "$task/stat" | awk '{print $12 + $13}'
      return
    fi
  done
  echo 0
}
# ROUNDS pairs of runs, logs on then off, each pair back to back: on this
# 2-core machine the figures of one pair swing with CPU 1's load, so with
# ROUNDS > 1 the medians are printed too.
RESULTS=()
for _ in $(seq "${ROUNDS:-1}"); do
  RESULTS+=("$(run true)" "$(run false)")
done
printf '%-14s %12s %10s %10s %16s %14s %16s %18s\n' "request logs" "requests/s" "p50" "p99" "node CPU µs/req" "paced req/s" "paced CPU µs/req" "of it background"
for result in "${RESULTS[@]}"; do
  # shellcheck disable=SC2086
  set -- $result
  printf '%-14s %12s %10s %10s %16s %14s %16s %18s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8"
done
python3 - "${RESULTS[@]}" <<'PY'
import statistics
import sys
rows = [line.split() for line in sys.argv[1:]]
pairs = list(zip(rows[0::2], rows[1::2]))
def more(on, off, field):
    return 100 * (float(on[field]) - float(off[field])) / float(off[field])
costs = []
for round_, (on, off) in enumerate(pairs, 1):
    if len(pairs) > 1:
        print(f"round {round_}:")
    throughput = -more(on, off, 1)
    paced = more(on, off, 6)
    background = float(on[7]) - float(off[7])
    costs.append((throughput, paced, background))
    print(f"logging costs {throughput:.1f}% of measured throughput "
          "(node pinned to CPU 0, 1 worker; wrk, upstream, control plane on CPU 1, 32 connections)")
    print(f"and {more(on, off, 4):.1f}% more node CPU per request at those rates, "
          f"of which the background thread took {on[8]} µs per request with logs, {off[8]} without; "
          f"the node spilled up to {int(on[9]) / 1e6:.1f} MB of logs to disk meanwhile (the control plane "
          "ingesting slower than the node logs)")
    print(f"at the same offered rate ({on[5]} vs {off[5]} req/s, 128 paced connections): "
          f"{float(on[6])} vs {float(off[6])} µs node CPU per request, {paced:.1f}% more with logs "
          f"(the throughput cost when the node is the bottleneck; {int(on[10]) / 1e6:.1f} MB spilled meanwhile)")
    print(f"the background thread (request log, batching, shipping) took {on[7]} µs per request with logs, "
          f"{off[7]} without: {background:.2f} µs of logging work off the hot path")
if len(pairs) > 1:
    median = [statistics.median(c[i] for c in costs) for i in range(3)]
    print(f"medians of {len(pairs)} rounds: {median[0]:.1f}% of throughput, {median[1]:.1f}% more node CPU "
          f"per request at the paced rate, {median[2]:.2f} µs of background work per request")
PY
STORED=$(curl -fs -H "Authorization: Bearer $TOKEN" "$API/metrics?period=1h" | python3 -c 'import json,sys;print(sum(b["requestCount"] for b in json.load(sys.stdin)))')
echo "requests counted by the control plane's metrics: $STORED"
