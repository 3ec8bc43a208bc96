#!/usr/bin/env bash
# Builds the tenant console (console/) into target/console/, which the
# control plane embeds (control/build.rs) and serves at /: installs Node.js
# from Debian's packages when missing, the npm packages pinned in
# console/package-lock.json when they changed, generates the typed API
# client from console/openapi.json, type-checks, bundles with Vite, and
# copies only the files that changed. With --browser it also makes sure
# Debian's chromium is there, for the browser tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
if [ "${1:-}" = --browser ] && [ ! -x /usr/bin/chromium ]; then
  echo "console: installing chromium for the browser tests"
  apt_install chromium
fi
if ! ensure_node; then
  echo "console: Node.js and npm are missing and could not be installed" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "console: Node.js $(node --version) is too old for Vite; 20.19 or newer is needed" >&2
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
fresh=$(sync_site "$root/console/dist" "$root/target/console")
# A control plane built while the console was missing watches
# console/package.json instead (control/build.rs).
if [ "$fresh" = 1 ]; then touch "$root/console/package.json"; fi
echo "console: $root/target/console"
