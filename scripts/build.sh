#!/usr/bin/env bash
# Configures and builds gavel into build/ (Release, Ninja, ccache). Installs the Debian
# packages first. Extra arguments are passed to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja "$@" > build-configure.log 2>&1 || { cat build-configure.log; exit 1; }
rm -f build-configure.log
cmake --build build -j"$(nproc)"
