#!/usr/bin/env bash
# Builds the tenant console (console/) into target/console/, which the
# control plane embeds (control/build.rs) and serves at /: installs Node.js
# from Debian's packages when missing, the npm packages pinned in
# console/package-lock.json when they changed, generates the typed API
# client from console/openapi.json, type-checks, bundles with Vite, and
# copies only the files that changed. With --browser it also makes sure
# Debian's chromium is there, for the browser tests. Needs Node.js 18 or
# newer (20 with --browser).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
browser=0
[ "${1:-}" = --browser ] && browser=1
if [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "console: installing chromium for the browser tests"
  if ! apt_install chromium; then
    echo "console: chromium could not be installed (apt-get install chromium, as root)" >&2
    exit 1
  fi
fi
if ! ensure_node; then
  echo "console: Node.js and npm are missing and could not be installed" >&2
  exit 1
fi
# Vite builds on Node.js 18 (Debian 12's); Playwright, for the tests, needs 20.
major=$(node -p 'process.versions.node.split(".")[0]')
need=18
[ "$browser" = 1 ] && need=20
if [ "$major" -lt "$need" ]; then
  echo "console: Node.js $(node --version) is too old: $need or newer is needed" >&2
  exit 1
fi
cd "$root/console"
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.gatehouse-lock 2>/dev/null)" != "$lock" ]; then
  # The browser is Debian's chromium: Playwright downloads none.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >node_modules/.gatehouse-lock
fi
npm run --silent build
sync_site "$root/console/dist" "$root/target/console"
# A control plane built while the console was missing watches
# console/package.json instead (control/build.rs).
if [ "$SYNC_FRESH" = 1 ]; then touch "$root/console/package.json"; fi
echo "console: $root/target/console"
