#!/usr/bin/env bash
# Puts the interactive REST API reference into the built book
# (target/book/api/, served by the control plane at /docs/api/): our page
# and Swagger UI's files from the npm package pinned in
# api-reference/package-lock.json. Installs Node.js and npm from Debian's
# packages when missing. Run by `make docs`, after mdBook.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v npm >/dev/null 2>&1; then
  echo "api-reference: installing Node.js and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
cd "$root/api-reference"
dist=node_modules/swagger-ui-dist
if [ ! -f "$dist/package.json" ] || [ package-lock.json -nt "$dist/package.json" ]; then
  # No install scripts: the only one is a dependency's usage analytics.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi
out="$root/target/book/api"
mkdir -p "$out"
cp index.html init.js "$dist/swagger-ui-bundle.js" "$dist/swagger-ui.css" "$dist/LICENSE" "$out/"
