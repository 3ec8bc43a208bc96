#!/usr/bin/env bash
# The hot-path load benchmark: Gatehouse's cost on top of pingora, rung by
# rung, beside nginx, pingap and pingora alone on this machine.
#
#   benches/load/run.sh [seconds-per-scenario]      (default 10)
#   BIG_CONFIG=0 benches/load/run.sh                (skip the 10k routes / 100k consumers run)
#   BIG_CONFIG=only benches/load/run.sh             (only that run; printed, latest.json untouched)
#   PROFILE=plain|logs|policies|plugin benches/load/run.sh [seconds] [--graph]
#                                                   (perf profile of the node instead; see profile.py)
#   SOAK=minutes benches/load/run.sh                (the soak run instead: steady load, memory of
#                                                   both binaries sampled; see soak.py)
#   PINGAP=0 benches/load/run.sh                    (without the pingap row, and without building it)
#   INSTRUCTIONS=1 benches/load/run.sh [seconds] [rung ...]
#                                                   (instructions a request rung by rung, under
#                                                   callgrind; see instructions.py)
#
# Builds release binaries and the example plugins (Rust, JavaScript and
# Python), installs wrk and nginx (Debian's) when missing, builds pingap
# 0.13.1 once (cached under $PINGAP_ROOT, default /var/tmp/pingap-0.13.1;
# its build needs Debian's protobuf-compiler), then runs every scenario with
# the same wrk on loopback and prints the peers and the cost ladder (see
# compare.py); the results go to benches/results/latest.json. Each proxy is
# pinned to CPU 0 with one worker (nginx worker_processes 1, pingap and
# gatehouse one thread); wrk, the upstream and the control plane are
# pinned to CPU 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -z "${PROFILE:-}" ] || command -v perf >/dev/null || need+=(linux-perf)
[ -z "${INSTRUCTIONS:-}" ] || command -v valgrind >/dev/null || need+=(valgrind)
PINGAP_ROOT=${PINGAP_ROOT:-/var/tmp/pingap-0.13.1}
want_pingap=""
if [ "${PINGAP:-1}" != 0 ] && [ -z "${PROFILE:-}${SOAK:-}${INSTRUCTIONS:-}" ] && [ "${BIG_CONFIG:-}" != only ]; then
  want_pingap=1
  [ -x "$PINGAP_ROOT/bin/pingap" ] || command -v protoc >/dev/null || need+=(protobuf-compiler)
fi
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/setup.sh
cargo build --release --quiet --bin gatehouse --example upstream --example bare_pingora
(cd plugins && cargo build --release --quiet --target wasm32-wasip2 -p add-header)
if [ -n "$want_pingap" ] && [ ! -x "$PINGAP_ROOT/bin/pingap" ]; then
  echo "building pingap 0.13.1 into $PINGAP_ROOT (once; several minutes)" >&2
  cargo install pingap --version 0.13.1 --locked --bin pingap --quiet --root "$PINGAP_ROOT" \
    --target-dir "$PINGAP_ROOT/build" || echo "pingap did not build; its row is left out" >&2
  rm -rf "$PINGAP_ROOT/build"
fi
[ -z "$want_pingap" ] || [ ! -x "$PINGAP_ROOT/bin/pingap" ] || export PINGAP_BIN=$PINGAP_ROOT/bin/pingap
export GATEHOUSE_BIN=${CARGO_TARGET_DIR:-target}/release/gatehouse
export UPSTREAM_BIN=${CARGO_TARGET_DIR:-target}/release/examples/upstream
export TENANT_PLUGIN=${CARGO_TARGET_DIR:-plugins/target}/wasm32-wasip2/release/add_header.wasm
export BARE_PINGORA_BIN=${CARGO_TARGET_DIR:-target}/release/examples/bare_pingora
export NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
# The JavaScript and Python examples, for the ladder's plugin rungs
# (componentize-js and componentize-py are installed on first use).
if [ -z "${PROFILE:-}${SOAK:-}${INSTRUCTIONS:-}" ] && [ "${BIG_CONFIG:-}" != only ]; then
  examples=${CARGO_TARGET_DIR:-target}/bench-plugins
  mkdir -p "$examples"
  if "$GATEHOUSE_BIN" plugin build --dir plugins/examples/js-guard --out "$examples/js-guard.wasm" >&2; then
    export JS_PLUGIN=$examples/js-guard.wasm
  else
    echo "the JavaScript example did not build; its rung is left out" >&2
  fi
  if "$GATEHOUSE_BIN" plugin build --dir plugins/examples/python-rewrite --out "$examples/python-rewrite.wasm" >&2; then
    export PYTHON_PLUGIN=$examples/python-rewrite.wasm
  else
    echo "the Python example did not build; its rung is left out" >&2
  fi
fi
if [ -n "${SOAK:-}" ]; then
  exec python3 benches/load/soak.py "$SOAK"
fi
if [ -n "${INSTRUCTIONS:-}" ]; then
  exec python3 benches/load/instructions.py "${@}"
fi
if [ -n "${PROFILE:-}" ]; then
  exec python3 benches/load/profile.py "$PROFILE" "${1:-10}" "${@:2}"
fi
exec python3 benches/load/compare.py "${1:-10}"
