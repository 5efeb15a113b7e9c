#!/usr/bin/env bash
# The test command (README, CI): installs dependencies, builds, and runs every test through
# ctest, which prints its summary line. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
