#!/usr/bin/env bash
# The per-call cost of a JavaScript and a Python tenant plugin next to a
# Rust one: builds the `gatehouse plugin new` templates for both languages
# (one header from config) and runs the `plugins` group of the hot-path
# criterion benchmark with them. Extra arguments go to cargo bench (e.g.
# `--profile-time 5`). Set BENCH_FAST=1 to build the bench without fat LTO
# (minutes faster to build, slightly slower code; say so with the figures).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${GATEHOUSE_BENCH_PLUGINS:-$root/target/bench-plugins}
mkdir -p "$out"
cd "$root"
cargo build --bin gatehouse
target=${CARGO_TARGET_DIR:-$root/target}
for lang in js python; do
  dir=$out/hello-$lang
  [ -f "$dir/gatehouse-plugin.json" ] || "$target/debug/gatehouse" plugin new "hello-$lang" --lang "$lang" --dir "$dir"
  "$target/debug/gatehouse" plugin build --dir "$dir" --out "$out/hello-$lang.wasm"
done
if [ "${BENCH_FAST:-}" = 1 ]; then
  export CARGO_PROFILE_BENCH_LTO=off CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
fi
GATEHOUSE_BENCH_PLUGINS=$out cargo bench -p gatehouse-proxy --bench hot_path -- '^plugins/tenant_' "$@"
