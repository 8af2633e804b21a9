#!/usr/bin/env bash
# bench/icount.sh [BUILD [N]] - instructions per get+ret pair, by callgrind.
#
# Owns: the instruction-count figures of docs/PERFORMANCE.md (P7).
# Invariant: every lfpool figure is of the per-CPU (rseq) path, checked.
#
# What is measured: BUILD/bench/icount (bench/icount.c) runs, on one
# thread, a pool of max_size 64 (prefilled, no hooks, no housekeeper,
# liblfpool.a linked statically: no PLT), 1000 warm-up pairs then N pairs
# of get then ret at once; callgrind counts the instructions (Ir) executed
# inside measure_loop (--toggle-collect), i.e. the calls and the loop
# around them (about 8 instructions a pair of loop, errors |= and the two
# calls' argument set-up), divided by N + 1000.  Columns:
#   pair   Ir of measure_loop / pairs (one object; a bulk pair: per object)
#   get    inclusive Ir of lfpool_get / lfpool_get_handle / lfpool_get_bulk
#          per call (bulk: per object)
#   ret    the same for the return call
# Valgrind makes glibc's rseq registration fail, which would measure the
# fallback (shared stack, CAS) path: icount --fake-rseq makes glibc's view
# say "registered, CPU 0" (see icount.c: single thread, valgrind never
# aborts a section, so the sections run as straight-line code) and exits 3
# unless the pool then really uses its per-CPU caches.  The DPDK rows run
# DPDK's rte_mempool_get/put (cache 42 of 64) and get_bulk/put_bulk of 32
# in the peer's loop (bench/peers/peer_dpdk.c), same shape, no fake needed.
# floor-bulk: the bulk pair's per-object bookkeeping alone, on lfpool's
# record type with no pool around it (bench/peers/floor.c): a lower bound
# for the bulk row.
# ptr-closed, handle-closed: the same loops on a pool whose caches a miss
# closed (max_fences 0: CAS mode, DESIGN §4); icount exits 3 unless the
# stats say they were closed once and still are.
set -euo pipefail
BUILD=${1:-build}
N=${2:-100000}
ICOUNT=$BUILD/bench/icount
command -v valgrind >/dev/null || { echo "icount.sh: valgrind not found" >&2; exit 2; }
[ -x "$ICOUNT" ] || { echo "icount.sh: $ICOUNT not built" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# inclusive Ir of function $2 in callgrind output $1 (the largest of its lines)
incl() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk -v f="$2" '{ n = $1; gsub(",", "", n) }
                       $0 ~ (":" f "( |$)") { if (n + 0 > best) best = n + 0 }
                       END { print best + 0 }'
}

printf '%-13s %8s %8s %8s  %s\n' loop pair get ret path
for mode in ptr handle bulk dpdk dpdk-bulk floor-bulk ptr-hold handle-hold ptr-closed handle-closed; do
    per=1
    case $mode in bulk | dpdk-bulk | floor-bulk) per=32 ;; esac
    fake=--fake-rseq
    case $mode in dpdk* | floor*) fake= ;; esac
    out=$tmp/cg.$mode
    if ! valgrind --tool=callgrind --toggle-collect=measure_loop --callgrind-out-file="$out" \
        "$ICOUNT" "$mode" "$N" $fake >"$tmp/stdout" 2>"$tmp/stderr"; then
        if [ "$mode" = dpdk ] || [ "$mode" = dpdk-bulk ]; then
            printf '%-13s %8s\n' "$mode" n/a
            continue
        fi
        cat "$tmp/stderr" "$tmp/stdout" >&2
        exit 1
    fi
    total=$(grep -m1 '^summary:' "$out" | awk '{ print $2 }')
    pairs=$(((N + 1000) * per))
    case $mode in
    ptr | ptr-hold | ptr-closed) g=lfpool_get r=lfpool_ret ;;
    handle | handle-hold | handle-closed) g=lfpool_get_handle r=lfpool_ret_handle ;;
    bulk) g=lfpool_get_bulk r=lfpool_ret_bulk ;;
    *) g= r= ;;
    esac
    gi=- ri=-
    if [ -n "$g" ]; then
        gi=$(awk -v a="$(incl "$out" "$g")" -v p="$pairs" 'BEGIN { printf "%.1f", a / p }')
        ri=$(awk -v a="$(incl "$out" "$r")" -v p="$pairs" 'BEGIN { printf "%.1f", a / p }')
    fi
    path=$(head -1 "$tmp/stdout" | sed 's/^[^:]*: //')
    printf '%-13s %8s %8s %8s  %s\n' "$mode" \
        "$(awk -v a="$total" -v p="$pairs" 'BEGIN { printf "%.1f", a / p }')" "$gi" "$ri" "$path"
done
