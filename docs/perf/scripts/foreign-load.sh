#!/bin/bash
# usage: perf-run.sh LABEL cmd...   -> runs cmd, prints foreign CPU load during it
label=$1; shift
read -r _ u n s i w q sq st _ < /proc/stat; t0=$((u+n+s+i+w+q+sq+st)); idle0=$((i+w))
/usr/bin/time -f "%U %S %e" -o /tmp/perf-time.$$ "$@"; rc=$?
read -r _ u n s i w q sq st _ < /proc/stat; t1=$((u+n+s+i+w+q+sq+st)); idle1=$((i+w))
read -r us ss el < /tmp/perf-time.$$; rm -f /tmp/perf-time.$$
python3 - "$label" $t0 $t1 $idle0 $idle1 $us $ss $el $rc <<'PY' >&2
import sys
lab,t0,t1,i0,i1,us,ss,el,rc=sys.argv[1],*map(float,sys.argv[2:])
hz=100.0
busy=((t1-t0)-(i1-i0))/hz; own=us+ss
print(f"[{lab}] rc={int(rc)} wall={el:.1f}s own_cpu={own:.1f}s all_busy={busy:.1f}s foreign_cpu={busy-own:.1f}s = {100*(busy-own)/el:.0f}% of one core on average")
PY
exit $rc
