#!/bin/bash
# wait (up to $1 s) until both cores are >=90% idle over 3 s, then run the rest
deadline=$(( $(date +%s) + $1 )); shift
while :; do
  read -r _ u n s i w q sq st _ < /proc/stat; t0=$((u+n+s+i+w+q+sq+st)); i0=$((i+w))
  sleep 3
  read -r _ u n s i w q sq st _ < /proc/stat; t1=$((u+n+s+i+w+q+sq+st)); i1=$((i+w))
  idle=$(( 100*(i1-i0)/(t1-t0) ))
  if [ $idle -ge 90 ] || [ $(date +%s) -ge $deadline ]; then echo "idle before start: $idle% at $(date +%T)" >&2; break; fi
done
exec "$@"
