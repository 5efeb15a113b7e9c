#!/usr/bin/env bash
# Renders the backtest HTML reports in headless Chromium and checks that they work as a
# reviewer opens them (docs/review.md):
#   - the golden reports (tests/golden/backtest/*.html, kept byte-equal to the renderer's output
#     by tests/daemon/backtest_test.cpp), and, when the gavel executable has the `backtest`
#     verb, a fresh report made from a small sample generated here;
#   - each is loaded from a file:// URL with every host name unresolvable, with a small checker
#     script injected first that records uncaught errors, unhandled rejections, console.error
#     calls and every resource the page fetched, and writes them into the DOM at `load`;
#   - checks on the dumped DOM: the title, the report's own script ran to its end
#     (data-report-ready="yes"), the charts (inline <svg> with bars), the tables; no errors,
#     no fetched resources; and no console message at all in Chromium's log;
#   - a screenshot of each (PNG, kept in the output directory for a look).
# Chromium comes from Debian (apt-get install chromium) if it is missing. Exit 0 all good,
# 1 a check failed, 77 skipped (Chromium missing and apt-get impossible; ctest shows SKIP).
#
# usage: tests/html/check_report.sh [BUILD_DIR] [OUT_DIR]
#   BUILD_DIR  where gavel and gavel-sample-data are (default: build)
#   OUT_DIR    where the rendered DOMs, logs and screenshots go (default: a temp directory)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=${2:-$(mktemp -d "${TMPDIR:-/tmp}/gavel-html-check.XXXXXX")}
mkdir -p "$OUT"

# ---------------------------------------------------------------- Chromium
find_chromium() {
  for c in chromium chromium-browser; do
    if command -v "$c" > /dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}
CHROMIUM=$(find_chromium || true)
if [ -z "$CHROMIUM" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo > /dev/null 2>&1 && sudo -n true 2> /dev/null; then SUDO="sudo -n"; fi
  fi
  if command -v apt-get > /dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }; then
    echo "installing chromium from Debian (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y --no-install-recommends chromium > "$OUT/apt.log" 2>&1; then
      $SUDO apt-get update >> "$OUT/apt.log" 2>&1 || true
      $SUDO apt-get install -y --no-install-recommends chromium >> "$OUT/apt.log" 2>&1 || {
        echo "FAIL: apt-get install chromium failed:"; tail -n 20 "$OUT/apt.log"; exit 1; }
    fi
    CHROMIUM=$(find_chromium || true)
  fi
fi
if [ -z "$CHROMIUM" ]; then
  echo "SKIP: Chromium is not installed and apt-get cannot install it here (not root, no sudo, or no apt)"
  exit 77
fi
echo "chromium: $("$CHROMIUM" --version 2> /dev/null || echo "$CHROMIUM")"

# The flags that work on a closed build machine (see the machine notes): headless, no
# sandbox as root, no GPU, no background connections, a fresh profile per run. Every host
# name resolves to nothing, so a report that tried to fetch anything would show it.
chromium_run() {  # chromium_run PROFILE_DIR ARGS...
  local profile=$1
  shift
  rm -rf "$profile"
  mkdir -p "$profile"
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
    --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 --virtual-time-budget=3000 "$@"
}

# The checker injected before anything of the page runs.
CHECKER='<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push("error: " + (e.message || e.type)); }, true);
  window.addEventListener("unhandledrejection", function () { errors.push("unhandled rejection"); });
  var original = console.error;
  console.error = function () { errors.push("console.error: " + Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
  window.addEventListener("load", function () {
    var resources = performance.getEntriesByType("resource").map(function (r) { return r.name; });
    var out = document.createElement("pre");
    out.id = "gavel-check";
    out.textContent = "GAVEL-CHECK errors=" + errors.length + " resources=" + resources.length + " " + JSON.stringify({errors: errors, resources: resources});
    document.body.appendChild(out);
  });
})();
</script>'

FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }

# check_report NAME FILE EXPECTED_IDS...
check_report() {
  local name=$1 file=$2
  shift 2
  local page="$OUT/$name.checked.html" dom="$OUT/$name.dom.html" log="$OUT/$name.chromium.log" png="$OUT/$name.png"
  if [ ! -s "$file" ]; then fail "$name: $file is missing or empty"; return; fi
  # Nothing in the report may point outside it.
  if grep -Eiq '(src|href)="(https?:)?//|<link |@import|url\(' "$file"; then
    fail "$name: the report references an outside resource:"
    grep -Eio '(src|href)="(https?:)?//[^"]*|<link [^>]*|@import[^;]*|url\([^)]*\)' "$file" | head -5 || true
  fi
  # The checker goes right after <head>, before the report's own style and script.
  awk -v checker="$CHECKER" '{ print } /<head>/ && !done { print checker; done = 1 }' "$file" > "$page"
  chromium_run "$OUT/profile-$name-dom" --dump-dom "file://$page" > "$dom" 2> "$log" || {
    fail "$name: chromium --dump-dom failed (log: $log)"; tail -n 5 "$log"; return; }
  chromium_run "$OUT/profile-$name-png" --window-size=1280,2000 --hide-scrollbars --screenshot="$png" "file://$file" \
    >> "$log" 2>&1 || fail "$name: chromium --screenshot failed (log: $log)"

  grep -q '<title>gavel ' "$dom" || fail "$name: no gavel title in the rendered DOM"
  grep -q 'data-report-ready="yes"' "$dom" || fail "$name: the report's script did not run to its end"
  grep -q 'GAVEL-CHECK errors=0 resources=0 ' "$dom" || {
    fail "$name: errors or fetched resources: $(grep -o '<pre id="gavel-check">[^<]*' "$dom" | sed 's/^<pre id="gavel-check">//' || true)"
    grep -q '<pre id="gavel-check">' "$dom" || echo "  (the checker did not report: no load event?)"; }
  if grep -E ':CONSOLE[:(]' "$log" > /dev/null; then
    fail "$name: console messages:"
    grep -E ':CONSOLE[:(]' "$log" | head -10 || true
  fi
  local svgs rects
  svgs=$({ grep -o '<svg ' "$dom" || true; } | wc -l)
  rects=$({ grep -o '<rect ' "$dom" || true; } | wc -l)
  if [ "$name" != diff ]; then [ "$svgs" -ge 4 ] || fail "$name: fewer than four charts (<svg>) in the DOM"; fi
  for id in "$@"; do
    grep -q "id=\"$id\"" "$dom" || fail "$name: no element with id=\"$id\" in the DOM"
  done
  if [ -s "$png" ] && [ "$(stat -c %s "$png")" -gt 20000 ]; then :; else fail "$name: the screenshot is missing or blank ($png)"; fi
  echo "$name: rendered; $svgs charts, $rects bars; DOM $dom, screenshot $png"
}

GOLDEN="$ROOT/tests/golden/backtest"
check_report backtest_against "$GOLDEN/backtest_against.html" \
  summary chart-actions chart-spend chart-budget chart-alerts units-table days-table no-conflicts diff-table diff-units
check_report conflicts "$GOLDEN/conflicts.html" \
  summary chart-actions chart-spend units-table conflicts-table conflict-groups days-table

# A fresh report from the executable, when it has the verb.
if [ -x "$BUILD/gavel" ] && "$BUILD/gavel" backtest --help > /dev/null 2>&1 && [ -x "$BUILD/gavel-sample-data" ]; then
  "$BUILD/gavel-sample-data" --out "$OUT/sample" --days 35 --adsets 40 --campaigns 5 --leads 60 --events 900 > /dev/null
  (cd "$ROOT" && "$BUILD/gavel" backtest --rules playbooks --events "$OUT/sample/events.ndjson" \
     --warehouse "$OUT/sample/warehouse.db" --from 2026-10-20 --to 2026-10-31 --out "$OUT/fresh.html" --no-progress)
  check_report fresh "$OUT/fresh.html" summary chart-actions chart-spend units-table days-table
  # `gavel diff --format html`: the playbooks against a copy with the pause threshold lowered.
  rm -rf "$OUT/playbooks-new"
  cp -r "$ROOT/playbooks" "$OUT/playbooks-new"
  sed -i 's/when cpa > 1.5 \* adset.target_cpa/when cpa > 1.2 * adset.target_cpa/' "$OUT/playbooks-new/cpa_pause.gavel"
  (cd "$ROOT" && "$BUILD/gavel" diff playbooks "$OUT/playbooks-new" --events "$OUT/sample/events.ndjson" \
     --warehouse "$OUT/sample/warehouse.db" --from 2026-10-20 --to 2026-10-31 --format html --out "$OUT/diff.html" \
     --no-progress)
  check_report diff "$OUT/diff.html" diff diff-units diff-table
else
  echo "note: $BUILD/gavel has no backtest verb (yet); checked the golden reports only"
fi

if [ "$FAILED" != 0 ]; then
  echo "check_report: FAILED (output in $OUT)"
  exit 1
fi
echo "check_report: all reports render in headless Chromium with no console errors (output in $OUT)"
