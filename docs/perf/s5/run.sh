#!/bin/bash
# The lead's measurement, fifth session (issue 19: the bulk floor, the bulk
# trims): the tight loop of the session's base and of main, alternating,
# each run pinned to one CPU (taskset; CPU 0 and 1 in turn) and unpinned.
#   BASE=<base build>/tools/lfpool-bench bash docs/perf/s5/run.sh
# Output: one file per run in $OUT; summarize with
#   python3 docs/perf/s5/summarize.py $OUT
NEW=${NEW:-./build/tools/lfpool-bench}
BASE=${BASE:?set BASE to the lfpool-bench of the base build}
RUNS=${RUNS:-6}
OUT=${OUT:-docs/perf/s5/run-$(date +%H%M)}
mkdir -p "$OUT"
{ grep -m1 "cpu family" /proc/cpuinfo; grep -m1 "model name" /proc/cpuinfo; nproc; } > "$OUT/host.txt"
for i in $(seq "$RUNS"); do
    cpu=$((i % 2))
    echo "== $i $(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.txt"
    for b in new base; do
        bin=$NEW
        [ $b = base ] && bin=$BASE
        taskset -c $cpu "$bin" --tight --no-main -r 5 -q > "$OUT/tight-$b-pin$cpu-$i.txt" 2>&1
        "$bin" --tight --no-main -r 5 -q > "$OUT/tight-$b-free-$i.txt" 2>&1
    done
done
echo "== end $(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.txt"
echo "$OUT"
