#!/usr/bin/env bash
# .ci/sanitizers.sh - run the test suite under the sanitizers and valgrind,
# and fuzz for a bounded time.  Called by .ci/run; runnable by hand:
#
#   bash .ci/sanitizers.sh                 every step (about 5-6 min on 2 cores)
#   SAN_STEPS="asan tsan" bash .ci/sanitizers.sh
#   SAN_FUZZ_SECONDS=300 bash .ci/sanitizers.sh
#
# Steps (each in its own build directory under $SAN_ROOT, default
# build-san/ in the source tree, next to (never inside) build/):
#   asan      clang, -Db_sanitize=address,undefined, LSan on (detect_leaks=1):
#             the default `meson test` run (unit, stress, reliability, fuzz
#             corpus replay, tools smoke) but the integration suite, whose
#             recovery-time assertions assume an unsanitized client (run it
#             by hand under ASan: tests/integration/meson.build).
#   valgrind  gcc, memcheck with --leak-check=full on the unit, reliability
#             and fuzz-replay suites (Criterion's workers are exec'd: followed
#             with --trace-children=yes; definite leaks and errors fail).
#   tsan      clang, -Db_sanitize=thread, with .ci/tsan.supp (each
#             suppression has its reason there): the soak program for
#             $SAN_TSAN_SOAK_SECONDS (40), the fuzz replay and the bench smoke
#             (Criterion itself cannot start under TSan).
#   fuzz      fuzz/run.sh: libFuzzer + ASan + UBSan for $SAN_FUZZ_SECONDS (60).
# UBSan reports halt except those listed in .ci/ubsan.supp (third-party
# headers only, each with its reason).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# build dirs live in the tree they build (a shared /tmp dir could hold builds
# configured from another checkout, which meson would silently reuse)
san=${SAN_ROOT:-$root/build-san}
steps=${SAN_STEPS:-asan valgrind tsan fuzz}
fuzz_secs=${SAN_FUZZ_SECONDS:-60}
tsan_soak=${SAN_TSAN_SOAK_SECONDS:-40}
jobs=${SAN_JOBS:-2}
mkdir -p "$san"

log() { printf '\n=== sanitizers: %s (%s)\n' "$*" "$(date +%T)"; }

# Tools: install what is missing when we may (CI runs as root).
need_pkgs=()
command -v clang >/dev/null || need_pkgs+=(clang)
command -v valgrind >/dev/null || need_pkgs+=(valgrind)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 ||
  need_pkgs+=(libclang-rt-14-dev)
pkg-config --exists jansson 2>/dev/null || need_pkgs+=(libjansson-dev)
pkg-config --exists criterion 2>/dev/null || need_pkgs+=(libcriterion-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null; }
  else
    echo "sanitizers.sh: missing ${need_pkgs[*]}" >&2
    exit 2
  fi
fi

ubsan_supp="$root/.ci/ubsan.supp"
tsan_supp="$root/.ci/tsan.supp"
# recoverable so that ubsan.supp can name them; everything else halts
# (float-cast-overflow is not in clang's `undefined` group: named)
ubsan_flags="-fsanitize=float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow -fsanitize-recover=alignment,pointer-overflow"

setup() { # dir, meson args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$root" -Dbench=false "$@" >"$dir.setup.log" 2>&1 ||
      { cat "$dir.setup.log"; return 1; }
  fi
  ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

# Criterion runs each test in an exec'd worker and ignores the worker's exit
# status once the test has passed, so a leak (LSan, valgrind) reported at
# the worker's exit would not fail the run: scan the step's test log too.
scan() { # step, build dir, pattern (meson writes testlog-<wrapper>.txt with --wrap)
  local n log
  for log in "$2"/meson-logs/testlog*.txt; do
    [ -f "$log" ] || continue
    n=$(grep -cE "$3" "$log" 2>/dev/null || true)
    if [ "${n:-0}" -gt 0 ]; then
      echo "sanitizers.sh: $1: $n report line(s) in $log:" >&2
      grep -nE -A12 "$3" "$log" | head -80 >&2
      failed+=("$1-reports")
    fi
  done
}
fresh_logs() { rm -f "$1"/meson-logs/testlog*.txt "$1"/meson-logs/testlog*.json; }
san_pat='ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error:|==[0-9]+== VGERR-BEGIN'

failed=()
t_all=$(date +%s)

for step in $steps; do
  t0=$(date +%s)
  case $step in
  asan)
    log "ASan + UBSan + LSan build and default test run"
    CC=clang CXX=clang++ setup "$san/asan" -Db_sanitize=address,undefined -Db_lundef=false \
      -Dc_args="$ubsan_flags" -Dcpp_args="$ubsan_flags" || { failed+=(asan-build); continue; }
    fresh_logs "$san/asan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$ubsan_supp" \
    LSAN_OPTIONS="suppressions=$root/.ci/lsan.supp:print_suppressions=0" \
      meson test -C "$san/asan" --print-errorlogs --num-processes "$jobs" --timeout-multiplier 3 \
        --no-suite fork --no-suite integration ||
      failed+=(asan)
    scan asan "$san/asan" "$san_pat"
    ;;
  valgrind)
    log "valgrind memcheck (unit, reliability, fuzz replay)"
    CC=gcc CXX=g++ setup "$san/valgrind" || { failed+=(valgrind-build); continue; }
    fresh_logs "$san/valgrind"
    vg="valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite"
    vg="$vg --errors-for-leak-kinds=definite --trace-children=yes --max-threads=2500"
    vg="$vg --suppressions=$root/.ci/valgrind.supp --quiet --error-markers=VGERR-BEGIN,VGERR-END"
    meson test -C "$san/valgrind" --wrap="$vg" --suite unit --suite reliability --suite fuzz \
      --print-errorlogs --num-processes "$jobs" --timeout-multiplier 4 ||
      failed+=(valgrind)
    scan valgrind "$san/valgrind" "$san_pat"
    ;;
  tsan)
    # Criterion cannot start under TSan (BoxFort maps its arena at a fixed
    # address inside TSan's shadow: "Could not initialize inheritable
    # arena"), so TSan runs the Criterion-free programs: the soak (8 threads,
    # every fault, invariants), the fuzz corpus replay and the bench smoke.
    log "ThreadSanitizer (soak ${tsan_soak}s, fuzz replay, bench smoke)"
    CC=clang CXX=clang++ setup "$san/tsan" -Db_sanitize=thread -Db_lundef=false ||
      { failed+=(tsan-build); continue; }
    fresh_logs "$san/tsan"
    export TSAN_OPTIONS="suppressions=$tsan_supp:halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=0"
    meson test -C "$san/tsan" --suite fuzz --suite tools --print-errorlogs \
      --num-processes "$jobs" --timeout-multiplier 4 || failed+=(tsan)
    LFPOOL_SOAK_SECONDS=$tsan_soak LFPOOL_SOAK_NO_RSS=1 "$san/tsan/tests/reliability/rel_soak" \
      >"$san/tsan/soak.log" 2>&1 || { tail -60 "$san/tsan/soak.log"; failed+=(tsan-soak); }
    tail -1 "$san/tsan/soak.log"
    unset TSAN_OPTIONS
    scan tsan "$san/tsan" "$san_pat"
    if grep -qE "$san_pat" "$san/tsan/soak.log"; then
      grep -nE -A20 "$san_pat" "$san/tsan/soak.log" | head -60 >&2
      failed+=(tsan-soak-reports)
    fi
    ;;
  fuzz)
    log "libFuzzer for ${fuzz_secs}s"
    # a fixed seed: a CI failure can be replayed exactly (FUZZ_SEED= for random)
    FUZZ_SEED=${FUZZ_SEED-1} FUZZ_BUILD="$san/fuzz" bash "$root/fuzz/run.sh" "$fuzz_secs" || failed+=(fuzz)
    ;;
  *)
    echo "sanitizers.sh: unknown step $step" >&2
    failed+=("$step")
    ;;
  esac
  echo "--- $step: $(( $(date +%s) - t0 )) s"
done

log "done in $(( $(date +%s) - t_all )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitizers.sh: FAILED: ${failed[*]} (logs in $san/*/meson-logs/testlog*.txt)" >&2
  exit 1
fi
echo "sanitizers.sh: all steps passed ($steps)"
