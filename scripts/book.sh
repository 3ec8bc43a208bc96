#!/usr/bin/env bash
# Builds the book into target/book/ (`make docs`): mdBook, pinned and
# installed with cargo when missing, into a staging dir, the interactive API
# reference beside it (scripts/api-reference.sh), then only the files whose
# bytes changed are copied over (and files gone are removed), so an
# unchanged book keeps its mtimes and the control plane, which embeds it,
# is not rebuilt for nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
version=0.5.4
if ! mdbook --version 2>/dev/null | grep -qx "mdbook v$version"; then
  echo "book: installing mdBook $version"
  cargo install mdbook --version "$version" --locked
fi
stage=$root/target/book-staging
out=$root/target/book
rm -rf "$stage"
mdbook build "$root/docs" -d "$stage"
"$root/scripts/api-reference.sh" "$stage/api"
sync_site "$stage" "$out"
rm -rf "$stage"
# A control plane built while the book was missing watches docs/ instead
# (control/build.rs): touching book.toml has it embed the new book.
if [ "$SYNC_FRESH" = 1 ]; then touch "$root/docs/book.toml"; fi
echo "book: $out"
