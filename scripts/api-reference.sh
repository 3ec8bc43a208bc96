#!/usr/bin/env bash
# Puts the interactive REST API reference into the built book (the dir given,
# by default target/book/api/, served by the control plane at /docs/api/):
# our page and Swagger UI's files from the npm package pinned in
# api-reference/package-lock.json. Installs Node.js and npm from Debian's
# packages when missing; where that cannot be done it says so and leaves the
# reference out (the rest of the book still builds). Run by scripts/book.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/book/api}
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
if ! ensure_node; then
  echo "api-reference: no npm and it could not be installed: /docs/api/ is left out" >&2
  exit 0
fi
cd "$root/api-reference"
dist=node_modules/swagger-ui-dist
if [ ! -f "$dist/package.json" ] || [ package-lock.json -nt "$dist/package.json" ]; then
  # No install scripts: the only one is a dependency's usage analytics.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi
mkdir -p "$out"
cp index.html init.js "$dist/swagger-ui-bundle.js" "$dist/swagger-ui.css" "$dist/LICENSE" "$out/"
