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
echo
echo "== gavel replay: the last two days of the sample (decisions only: replay executes nothing) =="
rm -f out/decisions.db out/decisions.db-wal out/decisions.db-shm
./build/gavel replay --rules playbooks --events out/sample/events.ndjson \
  --warehouse out/sample/warehouse.db --from 2026-10-30T00:00:00Z --to 2026-11-01T00:00:00Z \
  --log out/decisions.db > out/decisions.txt
echo "decisions: out/decisions.txt (first lines below), log: out/decisions.db"
head -n 15 out/decisions.txt | cut -c1-220
./build/gavel log verify --db out/decisions.db
