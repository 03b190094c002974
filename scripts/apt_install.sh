#!/usr/bin/env bash
# Installs Debian packages with apt, as root or through sudo.
#
#   scripts/apt_install.sh PACKAGE...
set -euo pipefail
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "apt_install: run as root or install sudo ($*)" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
