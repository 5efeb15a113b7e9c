#!/usr/bin/env bash
# Installs the Debian 12 packages gavel needs to build, test and fuzz.
# Safe to run again: apt-get skips what is already installed. Needs root (or sudo).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkgconf ccache git
  libboost1.81-dev
  libsqlite3-dev sqlite3 libcurl4-openssl-dev libssl-dev curl python3
  libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  catch2 libhowardhinnant-date-dev tzdata libxxhash-dev libsimdjson-dev
  clang-14 libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
