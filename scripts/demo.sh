#!/usr/bin/env bash
# The main job (README): installs dependencies, builds, generates the sample warehouse and
# event stream under out/sample/, compiles the example playbooks, then starts the daemon
# (`gavel run` with its built-in defaults: the playbooks, the sample warehouse, the sample
# events ingested through the same path as POST /v1/events), shows the decisions it made
# (dry run: the daemon executes no action, every intended action is in the decision log),
# calls a few API endpoints, stops it with SIGTERM (exit 0) and verifies the decision log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p out/sample
./build/gavel-sample-data --out out/sample > /dev/null
echo "sample data: out/sample/warehouse.db, out/sample/events.ndjson"
echo
echo "== gavel check playbooks/ =="
./build/gavel check playbooks/ | tail -n 20
echo

PORT=${GAVEL_DEMO_PORT:-8080}
API=http://127.0.0.1:$PORT
pretty() { if command -v python3 > /dev/null; then python3 -m json.tool; else cat; echo; fi; }

echo "== gavel run (built-in defaults, listening on 127.0.0.1:$PORT) =="
rm -f out/gavel-state.db out/gavel-state.db-wal out/gavel-state.db-shm
./build/gavel run --listen 127.0.0.1:"$PORT" > out/gavel-run.log 2>&1 &
PID=$!
trap 'kill -KILL $PID 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
  if curl -sf "$API/readyz" > /dev/null; then break; fi
  if ! kill -0 $PID 2> /dev/null; then echo "gavel run exited:"; cat out/gavel-run.log; exit 1; fi
  sleep 0.1
done
curl -sf "$API/readyz" > /dev/null || { echo "gavel run did not get ready:"; cat out/gavel-run.log; exit 1; }
echo "-- the daemon's log (out/gavel-run.log) --"
cut -c1-240 out/gavel-run.log
echo
echo "-- GET /v1/decisions?format=text&limit=12: the first decisions (dry run: the daemon executes no external action) --"
curl -sf "$API/v1/decisions?format=text&limit=12" | cut -c1-220
echo
echo "-- GET /v1/decisions?rule=mql_handoff&format=text&limit=3: leads handed to sales --"
curl -sf "$API/v1/decisions?rule=mql_handoff&format=text&limit=3" | cut -c1-220
LEAD=$(curl -sf "$API/v1/decisions?rule=mql_handoff&format=text&limit=1" | grep -o 'lead=[^ ]*' | cut -d= -f2 || true)
if [ -n "$LEAD" ]; then
  echo
  echo "-- GET /v1/entities/lead/$LEAD: fields, scores, journeys, recent decisions (first lines) --"
  curl -sf "$API/v1/entities/lead/$LEAD" | pretty > out/entity.json
  head -n 40 out/entity.json
fi
echo
echo "-- GET /v1/rules: one line per unit (name, kind, mode, health, evaluations, fired) --"
curl -sf "$API/v1/rules" | { if command -v python3 > /dev/null; then
  python3 -c "import json, sys
b = json.load(sys.stdin)
for u in b['units']:
    print('%-22s %-8s %-8s %-6s evaluations=%-6s fired=%-5s version=%s' % (u['name'], u['kind'], u.get('mode', ''),
          u['health'], u['evaluations'], u['fired'], u['version'][:12]))"
  else cat; echo; fi; }
echo
echo "-- POST /v1/reload (recorded in the decision log as an operator record) --"
curl -sf -X POST -d '' "$API/v1/reload" | pretty
echo
echo "-- GET /metrics (excerpt) --"
curl -sf "$API/metrics" | grep -E '^gavel_(events_(accepted|duplicate)_total|decisions_total|commits_total|reloads_total)' || true
echo
echo "-- SIGTERM: drain, flush, exit --"
kill -TERM $PID
set +e
wait $PID
CODE=$?
set -e
trap - EXIT
echo "gavel run exited with status $CODE"
tail -n 2 out/gavel-run.log | cut -c1-200
./build/gavel log verify --db out/gavel-state.db
exit $CODE
