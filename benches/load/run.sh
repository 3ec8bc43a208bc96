#!/usr/bin/env bash
# The hot-path load benchmark: Gatehouse against nginx on this machine.
#
#   benches/load/run.sh [seconds-per-scenario]      (default 10)
#   BIG_CONFIG=0 benches/load/run.sh                (skip the 10k routes / 100k consumers run)
#   BIG_CONFIG=only benches/load/run.sh             (only that run; printed, latest.json untouched)
#   PROFILE=plain|logs|policies|plugin benches/load/run.sh [seconds] [--graph]
#                                                   (perf profile of the node instead; see profile.py)
#   SOAK=minutes benches/load/run.sh                (the soak run instead: steady load, memory of
#                                                   both binaries sampled; see soak.py)
#
# Builds release binaries and the example plugins, installs wrk and nginx
# (Debian's) when missing, then runs every scenario with the same wrk on
# loopback and prints a table; the results go to benches/results/latest.json.
# Each proxy is pinned to CPU 0 with one worker (nginx worker_processes 1,
# gatehouse --threads 1); wrk and the upstream are pinned to CPU 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -z "${PROFILE:-}" ] || command -v perf >/dev/null || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/setup.sh
cargo build --release --quiet --bin gatehouse --example upstream --example bare_pingora
(cd plugins && cargo build --release --quiet --target wasm32-wasip2 -p add-header)
export GATEHOUSE_BIN=${CARGO_TARGET_DIR:-target}/release/gatehouse
export UPSTREAM_BIN=${CARGO_TARGET_DIR:-target}/release/examples/upstream
export TENANT_PLUGIN=${CARGO_TARGET_DIR:-plugins/target}/wasm32-wasip2/release/add_header.wasm
export BARE_PINGORA_BIN=${CARGO_TARGET_DIR:-target}/release/examples/bare_pingora
export NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
if [ -n "${SOAK:-}" ]; then
  exec python3 benches/load/soak.py "$SOAK"
fi
if [ -n "${PROFILE:-}" ]; then
  exec python3 benches/load/profile.py "$PROFILE" "${1:-10}" "${@:2}"
fi
exec python3 benches/load/compare.py "${1:-10}"
