#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (route patterns, the sync protocol
# decoders, plugin upload validation of bytes and of components of random
# worlds) for a bounded time each:
#
#   scripts/fuzz.sh [seconds-per-target]      (default 20; `make test` runs it)
#
# Installs cargo-fuzz (pinned) on first use. libFuzzer's instrumentation
# flags are unstable and this machine has one stable toolchain, so the build
# runs with RUSTC_BOOTSTRAP=1; without a sanitizer (safe Rust: a panic or a
# failed assertion is what a target finds), with debug assertions (overflow
# checks). Each run starts from the seeds in fuzz/seeds/<target> (copied:
# the corpus the fuzzer grows stays out of the tree); a crash is saved under
# fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
EACH=${1:-20}
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
# The fuzz build has its own flags: never share (and invalidate) the main
# target dir.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/fuzz}
for target in route_pattern sync_decoder plugin_check plugin_world; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  cp -n fuzz/seeds/$target/* "$corpus"/ 2>/dev/null || true
  echo "fuzzing $target for ${EACH}s"
  log=$(mktemp)
  if ! cargo fuzz run --sanitizer none --debug-assertions "$target" "$corpus" -- \
    -max_total_time="$EACH" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added)" "$log" || true
  rm -f "$log"
done
