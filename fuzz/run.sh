#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] - build fuzz_pool with clang (libFuzzer + ASan +
# UBSan) in its own build dir and fuzz it for SECONDS (default 60), starting
# from fuzz/corpus.  New inputs go to the build dir's corpus copy, never
# into the repository; a crash leaves its input (crash-*) in the build dir
# and makes the script fail.
#
#   FUZZ_BUILD=DIR               build dir (default: build-fuzz/ in the tree)
#   FUZZ_JOBS=1                  parallel fuzzing processes
#   FUZZ_SEED=N                  fixed libFuzzer seed (CI: reproducible runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-60}
build=${FUZZ_BUILD:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-1}

if ! command -v clang >/dev/null; then
  echo "fuzz/run.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" "$root" -Dbench=false >/dev/null
fi
ninja -C "$build" fuzz/fuzz_pool >/dev/null
bin="$build/fuzz/fuzz_pool"
work="$build/fuzz-corpus"
mkdir -p "$work" "$build/fuzz-artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$root/.ci/ubsan.supp}
echo "fuzz/run.sh: fuzzing $bin for ${secs}s ($jobs job(s)), corpus $work + $here/corpus"
set +e
"$bin" -max_total_time="$secs" ${FUZZ_SEED:+-seed=$FUZZ_SEED} -timeout=20 -rss_limit_mb=4096 -max_len=512 \
  -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/" \
  ${FUZZ_JOBS:+-jobs=$jobs -workers=$jobs} "$work" "$here/corpus" 2>"$build/fuzz.log"
rc=$?
set -e
tail -n 25 "$build/fuzz.log"
if [ $rc -ne 0 ] || ls "$build"/fuzz-artifacts/crash-* >/dev/null 2>&1; then
  echo "fuzz/run.sh: FAILED (exit $rc); inputs in $build/fuzz-artifacts/, log $build/fuzz.log" >&2
  exit 1
fi
echo "fuzz/run.sh: ok, corpus now $(ls "$work" | wc -l) inputs"
