#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build Gatehouse: cmake (for
# pingora's zlib-ng), curl (the getting-started steps), the wasm32-wasip2
# target (for plugins), and rustfmt and clippy (for `make lint`). Idempotent.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust with rustup first" >&2
  exit 1
fi
# cmake for pingora's zlib-ng; curl for the getting-started steps (and
# their test).
missing=""
command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
  done
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi
