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
  valgrind g++ git clang-format
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cd "$here"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$@" >/dev/null
fi
ninja -C "$build" >/dev/null
echo "setup: built in $here/$build"
