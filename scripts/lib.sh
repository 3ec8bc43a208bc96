# Shared by the build scripts (sourced, not run): root commands, Node.js,
# Debian's chromium, and copying a built site over its last build.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# Installs Debian packages "$@" (quietly). Fails when that cannot be done.
apt_install() {
  as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Makes sure node and npm are on PATH, installing Debian's when missing.
# Returns non-zero when they are missing and cannot be installed.
ensure_node() {
  command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && return 0
  echo "installing Node.js and npm from Debian's packages"
  apt_install nodejs npm
}

# Copies the files of dir $1 into dir $2 whose bytes changed, and removes
# from $2 the files $1 lacks: an unchanged site keeps its mtimes, so the
# control plane that embeds it is not rebuilt for nothing. Sets
# SYNC_FRESH=1 when $2 did not exist before (see control/build.rs), else 0.
sync_site() {
  local stage=$1 out=$2 file
  SYNC_FRESH=0
  [ -d "$out" ] || SYNC_FRESH=1
  mkdir -p "$out"
  while read -r file; do
    if ! cmp -s "$stage/$file" "$out/$file"; then
      mkdir -p "$(dirname "$out/$file")"
      cp "$stage/$file" "$out/$file"
    fi
  done < <(cd "$stage" && find . -type f)
  while read -r file; do
    [ -e "$stage/$file" ] || rm -f "$out/$file"
  done < <(cd "$out" && find . -type f)
}
