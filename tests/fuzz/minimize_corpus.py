#!/usr/bin/env python3
"""Chooses at most MAX corpus files that cover as many coverage features as possible.

Reads a libFuzzer merge control file written with -set_cover_merge=1 (every `FT` line then
lists all features of its input; run with -use_counters=0 so that features are edges) and
prints the paths to keep, one per line. Hand-written seeds and regression inputs (seed-*, regress-*) are always
kept; the other files are added greedily, the one that covers the most features not yet
covered first (ties: the smaller file), until nothing new is covered or MAX files are kept.
A summary goes to stderr. Used by scripts/fuzz.sh.

usage: minimize_corpus.py CONTROL_FILE MAX
"""
import heapq
import os
import sys


def main():
    ctl, limit = sys.argv[1], int(sys.argv[2])
    with open(ctl, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().split("\n")
    n = int(lines[0])
    paths = lines[2:2 + n]
    sizes, feats = {}, {}
    for line in lines[2 + n:]:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "STARTED":
            sizes[int(parts[1])] = int(parts[2])
        elif parts[0] == "FT":
            feats[int(parts[1])] = set(map(int, parts[2:]))
    everything = set().union(*feats.values()) if feats else set()

    keep, covered = [], set()
    heap = []
    for i, p in enumerate(paths):
        if os.path.basename(p).startswith(("seed-", "regress-")):
            keep.append(i)
            covered |= feats.get(i, set())
    for i, p in enumerate(paths):
        if i not in keep and i in feats:
            heapq.heappush(heap, (-len(feats[i] - covered), sizes.get(i, 0), i))
    # Lazy greedy: a file's gain only shrinks as coverage grows.
    while heap and len(keep) < limit:
        neg, size, i = heapq.heappop(heap)
        gain = len(feats[i] - covered)
        if gain == 0:
            continue  # covers nothing new: dropped
        if heap and gain < -heap[0][0]:
            heapq.heappush(heap, (-gain, size, i))
            continue
        keep.append(i)
        covered |= feats[i]
    reachable = sum(1 for _, _, i in heap if feats[i] - covered)
    print(f"kept {len(keep)} of {n} files, covering {len(covered)} of {len(everything)} "
          f"features ({reachable} files with more were dropped at the limit of {limit})",
          file=sys.stderr)
    for i in keep:
        print(paths[i])


if __name__ == "__main__":
    main()
