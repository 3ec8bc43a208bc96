#!/usr/bin/env bash
# Builds the JavaScript and Python example plugins of plugins/examples/ into
# the directory given (default: target/example-plugins): js-guard.wasm with
# componentize-js (npm) and python-rewrite.wasm with componentize-py (PyPI),
# both pinned and installed on first use under $GATEHOUSE_PLUGIN_TOOLS
# (default /var/tmp/gatehouse-plugin-tools). A component is rebuilt only when
# its source or the WIT changed. The Rust examples are built by
# proxy/build.rs with the other guests.
set -euo pipefail

COMPONENTIZE_JS=0.23.0
COMPONENTIZE_PY=0.25.1

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/example-plugins}
tools=${GATEHOUSE_PLUGIN_TOOLS:-/var/tmp/gatehouse-plugin-tools}
mkdir -p "$out" "$tools"
wit=$root/wit/plugin.wit

stale() { [ ! -s "$1" ] || [ "$2" -nt "$1" ] || [ "$wit" -nt "$1" ]; }

js_src=$root/plugins/examples/js-guard/guard.js
if stale "$out/js-guard.wasm" "$js_src"; then
  js_tools=$tools/js-$COMPONENTIZE_JS
  if [ ! -x "$js_tools/node_modules/.bin/componentize-js" ]; then
    command -v npm >/dev/null || { echo "build-example-plugins: npm is needed (Node.js)" >&2; exit 1; }
    mkdir -p "$js_tools"
    (cd "$js_tools" && npm install --no-audit --no-fund --silent --prefix . \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS" >/dev/null)
  fi
  "$js_tools/node_modules/.bin/componentize-js" --wit "$root/wit" --world-name plugin \
    --disable http --disable fetch-event -o "$out/js-guard.wasm.tmp" "$js_src" >/dev/null
  mv "$out/js-guard.wasm.tmp" "$out/js-guard.wasm"
fi

py_src=$root/plugins/examples/python-rewrite/app.py
if stale "$out/python-rewrite.wasm" "$py_src"; then
  py_tools=$tools/py-$COMPONENTIZE_PY
  if [ ! -x "$py_tools/bin/componentize-py" ]; then
    python3 -m venv "$py_tools"
    "$py_tools/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY"
  fi
  "$py_tools/bin/componentize-py" -d "$root/wit" -w plugin componentize \
    -p "$root/plugins/examples/python-rewrite" app -o "$out/python-rewrite.wasm.tmp" >/dev/null
  mv "$out/python-rewrite.wasm.tmp" "$out/python-rewrite.wasm"
fi
echo "$out"
