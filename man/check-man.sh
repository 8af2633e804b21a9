#!/usr/bin/env bash
# man/check-man.sh LIB MANDIR - the man-pages test (man/meson.build).
#
# Owns: the check that the man pages cover the library and render cleanly.
# Invariant: fails when an exported symbol of LIB (nm -D --defined-only) has
# no page MANDIR/SYMBOL.3, or when `MANWIDTH=80 man --warnings -l` prints
# anything on stderr for a page (link pages are rendered through their .so).
set -uo pipefail
lib=$1 mandir=$2
for tool in nm man groff; do
    command -v "$tool" >/dev/null ||
        { echo "check-man.sh: '$tool' not found (install binutils, man-db, groff-base)" >&2; exit 1; }
done

fail=0
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ && $3 ~ /^lfpool_/ { print $3 }')
[ -n "$syms" ] || { echo "check-man.sh: no lfpool_ symbol exported by $lib" >&2; exit 1; }
n=0
for s in $syms; do
    n=$((n + 1))
    [ -f "$mandir/$s.3" ] || { echo "no man page for exported symbol $s ($mandir/$s.3)" >&2; fail=1; }
done

# .so requests are resolved from the current directory: render from a
# directory whose man3/ is MANDIR
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
ln -s "$(cd "$mandir" && pwd)" "$tmp/man3"
pages=0
for p in "$mandir"/*.3; do
    pages=$((pages + 1))
    page=man3/$(basename "$p")
    out=$(cd "$tmp" && MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        echo "$page: man --warnings (exit $rc):" >&2
        printf '%s\n' "$out" | sed 's/^/  /' >&2
        fail=1
    fi
done
echo "check-man.sh: $n exported symbols, $pages pages checked"
exit $fail
