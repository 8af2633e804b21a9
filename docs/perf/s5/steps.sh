#!/bin/bash
# The bulk trims step by step: the tight loop of each step's build, the
# builds alternating, RUNS rounds; one file per build and round.
#   bash docs/perf/s5/steps.sh NAME=<lfpool-bench> NAME=<lfpool-bench> ...
# Summarize: python3 docs/perf/s5/summarize.py docs/perf/s5/steps --pooled
OUT=${OUT:-docs/perf/s5/steps}
RUNS=${RUNS:-4}
mkdir -p "$OUT"
for i in $(seq "$RUNS"); do
    for nb in "$@"; do
        name=${nb%%=*} bin=${nb#*=}
        "$bin" --tight --no-main -r 5 -q > "$OUT/tight-$name-free-$i.txt" 2>&1
    done
done
