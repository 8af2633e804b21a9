#!/usr/bin/env bash
# tools/dev.sh - one entry point for people and CI (Debian 12, as root or
# with sudo for the package step).
#
#   bash tools/dev.sh bench   install deps, build, run the short benchmark table
#   bash tools/dev.sh test    install deps, build with -Werror, run the full suite:
#                             unit + stress + reliability + tools tests, the
#                             PostgreSQL integration suite (a private server,
#                             about 30 s), then the unit, stress and reliability
#                             suites under AddressSanitizer+UBSan
#   bash tools/dev.sh deps | build | asan
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DEPS=(build-essential meson ninja-build pkg-config liburcu-dev libck-dev
      libcriterion-dev libjansson-dev libbenchmark-dev libaprutil1-dev
      libdpdk-dev gnuplot-nox clang libclang-rt-14-dev valgrind man-db groff-base
      libjemalloc-dev libgoogle-perftools-dev   # lfpool-bench --alloc
      python3-prometheus-client curl   # the OpenMetrics parse and scrape tests
      postgresql libpq-dev)   # examples/pgpool and the integration suite

deps() {
    local missing=()
    for p in "${DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
    if [ ! -d "$BUILD" ]; then
        # -Dpg=enabled: libpq-dev is in DEPS, so a missing libpq is an error
        # here, not a silently smaller build
        meson setup "$BUILD" --werror -Dbuildtype=debugoptimized -Dpg=enabled >/dev/null
    fi
    ninja -C "$BUILD" >/dev/null
}

asan() {
    local b="$BUILD-asan"
    if [ ! -d "$b" ]; then
        # alignment/pointer-overflow stay recoverable so that .ci/ubsan.supp
        # can name the third-party headers they come from; the rest halts.
        # float-cast-overflow is not in clang's `undefined` group: named here
        # (a double-to-integer conversion out of range, e.g. a huge delay)
        CC=clang CXX=clang++ meson setup "$b" --werror -Db_sanitize=address,undefined \
            -Db_lundef=false -Dc_args='-fsanitize=float-cast-overflow -fno-sanitize-recover=float-cast-overflow -fsanitize-recover=alignment,pointer-overflow' -Dbench=false -Ddpdk=disabled -Dapr=disabled >/dev/null
    fi
    ninja -C "$b" >/dev/null
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/.ci/ubsan.supp \
        meson test -C "$b" --print-errorlogs --no-rebuild --suite unit --suite stress \
        --suite reliability --no-suite fork  # fork under ASan: tests/reliability/meson.build
}

case "${1:-}" in
deps) deps ;;
build) deps; build ;;
bench)
    deps; build
    "./$BUILD/tools/lfpool-bench" "${@:2}"
    ;;
test)
    deps; build
    echo "== default suite (unit, stress, reliability, tools, integration)"
    meson test -C "$BUILD" --print-errorlogs --no-rebuild
    echo "== the same under AddressSanitizer + UBSan"
    asan
    ;;
asan) deps; asan ;;
*)
    sed -n '2,11p' "$0"
    exit 2
    ;;
esac
