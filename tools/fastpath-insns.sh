#!/bin/sh
# tools/fastpath-insns.sh LIB - instruction counts of the exported get/ret
# entry points of a built liblfpool (their fast paths are inlined into them;
# the slow paths are separate functions, reached by tail calls).
lib=${1:-build/liblfpool.so}
for f in lfpool_get lfpool_get_handle lfpool_ret lfpool_ret_handle; do
    n=$(objdump -d --no-show-raw-insn "$lib" |
        awk -v f="<$f>:" '$2 == f {on = 1; next} on && /^$/ {exit} on && /^ *[0-9a-f]+:/ {n++} END {print n + 0}')
    printf '%-20s %s\n' "$f" "$n"
done
