#!/usr/bin/env bash
# Fuzzes the rules compiler: scripts/fuzz.sh [SECONDS]   (default 300)
#
# Builds tests/fuzz/compile_fuzzer with clang (libFuzzer + ASan + UBSan) in $GAVEL_FUZZ_BUILD
# (default /tmp/build-fuzz), runs it for SECONDS on the corpus tests/fuzz/corpus/ with the
# dictionary tests/fuzz/gavel.dict, then merges the new inputs that reach new code back into the
# corpus. The corpus is kept small (at most $GAVEL_FUZZ_MAX_CORPUS files, default 300): when it
# grows past the limit, the hand-written seeds (seed-*) and regression inputs (regress-*) stay,
# and tests/fuzz/minimize_corpus.py picks the other files greedily, the one that covers the most
# edges not yet covered first.
#
# A crash, timeout (> 5 s per input) or out-of-memory (> 2 GB) leaves its input in
# $GAVEL_FUZZ_BUILD/fuzz/artifacts/ and makes this script exit 1. To keep it as a regression
# input, minimise it (compile_fuzzer -minimize_crash=1 -runs=10000 FILE) and copy it into
# tests/fuzz/corpus/ as regress-<what>.gavel (seed-* and regress-* files are never dropped):
# tests/dsl/fuzz_corpus_test.cpp replays every corpus file in the normal test build.
#
# Environment: GAVEL_FUZZ_JOBS=N runs N fuzzing processes (libFuzzer -fork=N; default 1; on a
# 2-core machine one process was faster), GAVEL_FUZZ_BUILD, GAVEL_FUZZ_MAX_CORPUS, CXX_FUZZ.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SECS=${1:-300}
BUILD=${GAVEL_FUZZ_BUILD:-/tmp/build-fuzz}
JOBS=${GAVEL_FUZZ_JOBS:-1}
MAX_CORPUS=${GAVEL_FUZZ_MAX_CORPUS:-300}
CORPUS=$ROOT/tests/fuzz/corpus
DICT=$ROOT/tests/fuzz/gavel.dict
CXX_FUZZ=${CXX_FUZZ:-clang++-14}

if [[ ! -f $BUILD/build.ninja ]]; then
  CXX=$CXX_FUZZ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DGAVEL_FUZZ=ON -DGAVEL_SANITIZE=ON \
    -DGAVEL_TESTS=ON -DGAVEL_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$BUILD.configure.log" 2>&1 ||
    { cat "$BUILD.configure.log"; exit 1; }
fi
ninja -C "$BUILD" compile_fuzzer > "$BUILD/fuzz-build.log" 2>&1 || { cat "$BUILD/fuzz-build.log"; exit 1; }
FUZZER=$BUILD/fuzz/compile_fuzzer
ARTIFACTS=$BUILD/fuzz/artifacts
mkdir -p "$ARTIFACTS/previous"
# Findings of earlier runs are kept, out of the way.
find "$ARTIFACTS" -maxdepth 1 -type f -exec mv -t "$ARTIFACTS/previous" {} +

COMMON=(-dict="$DICT" -max_len=4096 -timeout=5 -rss_limit_mb=2048)
WORK=$(mktemp -d /tmp/gavel-fuzz-work.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "fuzzing for ${SECS}s with $JOBS job(s); corpus: $(ls "$CORPUS" | wc -l) files"
FORK=()
if (( JOBS > 1 )); then FORK=(-fork="$JOBS"); fi
set +e
"$FUZZER" "${COMMON[@]}" "${FORK[@]}" -max_total_time="$SECS" -print_final_stats=1 \
  -artifact_prefix="$ARTIFACTS/" "$WORK" "$CORPUS" 2>&1 | tee "$BUILD/fuzz/last-run.log" |
  grep --line-buffered -E '^#[0-9]+([[:space:]]+(pulse|INITED|DONE)|: cov)|^(==|SUMMARY|stat::|Done|INFO: (seed|-fork))|(crash|timeout|oom|leak)-'
status=${PIPESTATUS[0]}
set -e

# Merge back what reaches new code (edges only, so the corpus stays small).
echo "merging $(ls "$WORK" | wc -l) new inputs"
"$FUZZER" "${COMMON[@]}" -use_counters=0 -merge=1 "$CORPUS" "$WORK" > "$BUILD/fuzz/merge.log" 2>&1 ||
  { tail -20 "$BUILD/fuzz/merge.log"; exit 1; }

count=$(ls "$CORPUS" | wc -l)
if (( count > MAX_CORPUS )); then
  echo "corpus has $count files (limit $MAX_CORPUS): minimising"
  SCRATCH=$(mktemp -d /tmp/gavel-fuzz-min.XXXXXX)
  mkdir "$SCRATCH/out"
  # Full edge sets per file, then a greedy choice capped at MAX_CORPUS (seeds always stay).
  "$FUZZER" -max_len=1048576 -timeout=5 -rss_limit_mb=2048 -use_counters=0 -set_cover_merge=1 \
    -merge_control_file="$SCRATCH/control" "$SCRATCH/out" "$CORPUS" > "$BUILD/fuzz/min.log" 2>&1 ||
    { tail -20 "$BUILD/fuzz/min.log"; exit 1; }
  # Seeds libFuzzer skips (the empty file) are kept too, so make room for them.
  skipped=0
  for f in "$CORPUS"/seed-* "$CORPUS"/regress-*; do
    grep -qxF "$f" "$SCRATCH/control" || skipped=$((skipped + 1))
  done
  python3 "$ROOT/tests/fuzz/minimize_corpus.py" "$SCRATCH/control" $((MAX_CORPUS - skipped)) \
    > "$SCRATCH/keep"
  for f in "$CORPUS"/*; do
    case $(basename "$f") in seed-* | regress-*) continue ;; esac
    grep -qxF "$f" "$SCRATCH/keep" || rm -f "$f"
  done
  rm -rf "$SCRATCH"
fi
echo "corpus: $(ls "$CORPUS" | wc -l) files, $(du -sh "$CORPUS" | cut -f1)"

shopt -s nullglob
found=("$ARTIFACTS"/crash-* "$ARTIFACTS"/timeout-* "$ARTIFACTS"/oom-* "$ARTIFACTS"/leak-*)
if (( status != 0 || ${#found[@]} > 0 )); then
  echo "FINDINGS (fuzzer exit $status):"
  for f in "${found[@]}"; do echo "  $f"; done
  echo "log: $BUILD/fuzz/last-run.log"
  exit 1
fi
echo "no crash, timeout or out-of-memory"
