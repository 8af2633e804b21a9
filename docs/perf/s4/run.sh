#!/bin/bash
# lead's measurement, fourth session: base 4cc5496 vs new main, alternating
NEW=${NEW:-./build/tools/lfpool-bench}
BASE=${BASE:?set BASE to the lfpool-bench of the base build (4cc5496)}
OUT=${OUT:-docs/perf/s4/run-$(date +%H%M)}
mkdir -p $OUT
grep -m1 "cpu family" /proc/cpuinfo > $OUT/host.txt; grep -m1 "model name" /proc/cpuinfo >> $OUT/host.txt; nproc >> $OUT/host.txt
for i in 1 2 3; do
  echo "== $i $(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/load.txt
  $NEW  -c 1:64:0 -p lfpool,lfpool-hold,lfpool-twin,lfpool-h,dpdk -r 7 > $OUT/p1-new-$i.txt 2>&1
  $BASE -c 1:64:0 -p lfpool,lfpool-hold,lfpool-h,dpdk -r 7 > $OUT/p1-base-$i.txt 2>&1
  $NEW  -c 2:64:0 -c 32:2:50 -c 16:8:0 -p lfpool,lfpool-budget,lfpool-twin,apr -r 3 > $OUT/p23-new-$i.txt 2>&1
  $BASE -c 2:64:0 -c 32:2:50 -c 16:8:0 -p lfpool,lfpool-strict,apr -r 3 > $OUT/p23-base-$i.txt 2>&1
  $NEW  --tight --no-main -r 5 -p lfpool,dpdk > $OUT/tight-new-$i.txt 2>&1
  $BASE --tight --no-main -r 5 -p lfpool,dpdk > $OUT/tight-base-$i.txt 2>&1
done
echo "== end $(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/load.txt
echo $OUT
