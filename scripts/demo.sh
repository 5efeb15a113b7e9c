#!/usr/bin/env bash
# The main job (README): installs dependencies, builds, generates the sample warehouse and
# event stream under out/sample/, and compiles the example playbooks with `gavel check`,
# printing diagnostics and a summary of the compiled program (with the SQL each scheduled
# rule pushes down to the warehouse). The daemon (`gavel run`) will take this place once it
# exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p out/sample
./build/gavel-sample-data --out out/sample > /dev/null
echo "sample data: out/sample/warehouse.db, out/sample/events.ndjson"
echo "== gavel check playbooks/ =="
./build/gavel check --sql playbooks/
