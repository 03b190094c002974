#!/usr/bin/env bash
# Installs what alloctrace needs on Debian 12 (apt packages), then
# configures and builds it.  Idempotent: installs only what is missing and
# reuses an existing build directory.
#
#   scripts/setup.sh [BUILD_DIR [MESON_SETUP_ARGS...]]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
shift || true

packages=(
  build-essential pkg-config meson ninja-build python3
  libsqlite3-dev sqlite3 libunwind-dev uthash-dev libdw-dev libelf-dev
  libiberty-dev
  # `alloctrace export --format pprof` gzips with zlib
  zlib1g-dev
  valgrind g++ git clang-format
  # docs/ci.md's CMake recipe is run by tests/ci_recipes_test.py
  cmake make
  # the manual pages are rendered by man in tests/cli_test.py
  man-db
  # tests/ownmalloc_test.py links programs with their own allocators
  libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
  # the HTML report's viewer is tested in a real browser
  chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# The viewer (viewer/) is bundled by node at build time.  Any node >= 18
# will do: Debian's nodejs is 18; a machine that has node from elsewhere
# (with its own npm) keeps it, so node and npm are looked for as commands.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The Rust tests build programs with rustc (tests/rust_test.py) and with
# cargo over the crate bindings/rust (tests/rust_crate_test.py, offline:
# no crate from a registry); a toolchain from rustup (on PATH) will do as
# well as Debian's (rustc 1.63, the oldest the crate supports).
command -v rustc >/dev/null || missing+=(rustc)
command -v cargo >/dev/null || missing+=(cargo)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "$here/scripts/apt_install.sh" "${missing[@]}"
fi

# The viewer's npm packages, exactly as the committed lockfile pins them:
# again whenever the lockfile is newer than what was installed.
viewer="$here/viewer"
if [ ! -f "$viewer/node_modules/.package-lock.json" ] ||
   [ "$viewer/package-lock.json" -nt "$viewer/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci in viewer/"
  (cd "$viewer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Microsoft's SARIF multitool, which tests/sarif_test.py validates the
# SARIF reports with: pinned by tests/sarif/package-lock.json, like the
# viewer's packages (a self-contained linux-x64 program in an npm package).
sarif="$here/tests/sarif"
if [ ! -f "$sarif/node_modules/.package-lock.json" ] ||
   [ "$sarif/package-lock.json" -nt "$sarif/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci in tests/sarif/"
  (cd "$sarif" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# pprof-format, the independent pprof decoder tests/export_test.py reads
# `alloctrace export --format pprof` with: pinned by tests/pprof/package-lock.json.
pprof="$here/tests/pprof"
if [ ! -f "$pprof/node_modules/.package-lock.json" ] ||
   [ "$pprof/package-lock.json" -nt "$pprof/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci in tests/pprof/"
  (cd "$pprof" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

cd "$here"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$@" >/dev/null
fi
ninja -C "$build" >/dev/null
echo "setup: built in $here/$build"
