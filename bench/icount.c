/*
 * icount.c - the loop bench/icount.sh counts instructions of under
 * callgrind: one thread, a pool of max_size 64 (prefilled, no hooks, no
 * housekeeper), get then ret at once, N times, through one API.
 *
 * Owns: the measured loops and the rseq fake.  Invariant: it refuses to
 * measure (exit 3) when the pool did not take the per-CPU path it was
 * asked for, so that a figure never silently describes the fallback.
 *
 * Usage: icount MODE N [--fake-rseq]
 *   MODE: ptr (lfpool_get + lfpool_ret), handle (lfpool_get_handle +
 *   lfpool_ret_handle), bulk (lfpool_get_bulk + lfpool_ret_bulk of 32),
 *   dpdk, dpdk-bulk (when built with DPDK: rte_mempool get/put, 32);
 *   floor-bulk (the bulk pair's per-object bookkeeping alone on lfpool's
 *   record type, no pool: bench/peers/floor.c, a lower bound for bulk);
 *   ptr-hold, handle-hold: ptr and handle with cfg.hold_histogram on (the
 *   recording's cost: such a pool has a housekeeper thread, whose
 *   instructions callgrind does not count here, outside measure_loop).
 *   ptr-closed, handle-closed: ptr and handle on a pool in CAS mode
 *   (cfg.max_fences = 0, the caches closed by a get with timeout 0 that
 *   found none: DESIGN §4), each CPU's cache still in use with a locked
 *   commit; refused (exit 3) unless lfpool_stats says the caches were
 *   closed once and still are at the end.  The loop runs in stretches of
 *   CLOSED_STRETCH pairs with such a miss between them (outside
 *   measure_loop), so that a slow run under valgrind never reaches the
 *   reopening a pool without rounds makes once a period passes with no
 *   get that wanted every cache.
 *   The measured function is measure_loop (callgrind --toggle-collect).
 *
 * --fake-rseq: valgrind does not let glibc register rseq (the syscall
 * fails under it), so glibc leaves __rseq_size at 0 and the area's cpu_id
 * at "registration failed", and lfpool takes its fallback path (shared
 * stack, every return a CAS).  On one thread under valgrind nothing can
 * preempt or migrate the thread inside a section the way the kernel would
 * (valgrind serialises threads and delivers signals between basic blocks,
 * never restarting an rseq section), so the critical sections run as the
 * straight-line code they are on a registered thread that is never
 * aborted.  The fake makes glibc's view say "registered on CPU 0": it
 * writes cpu_id_start = cpu_id = 0 into this thread's rseq area and
 * __rseq_size = 32 (a read-only word of ld.so: the page is made writable
 * for the store).  The kernel still knows nothing of the area, so this is
 * only for a single-threaded measurement under valgrind, never a real run.
 * membarrier(2) itself is passed through to the kernel by valgrind.
 * A thread created by a thread whose cpu_id says "registered" must
 * register too, which fails under valgrind and is fatal in glibc: the hold
 * modes' pool (it starts its housekeeper in lfpool_new) is made with cpu_id
 * at "not registered" (-1), then the fake is restored.  Such a pool must not
 * touch a per-CPU cache on that stretch, where no section can commit: it
 * is made with min_size 0 (no fill; the warm-up's gets create the
 * objects), and its housekeeper (whose thread glibc leaves unregistered)
 * has nothing to fill.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <lfpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <unistd.h>

#include "peers.h"

static void *blk_new(void *ctx, uint64_t n)
{
    (void)ctx, (void)n;
    return aligned_alloc(64, 64);
}
static int blk_free(void *ctx, void *b)
{
    (void)ctx;
    free(b);
    return 0;
}

static int fake_rseq(void)
{
#if defined(__x86_64__)
    struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t page = (uintptr_t)&__rseq_size & ~(uintptr_t)(pg - 1);
    if (mprotect((void *)page, (size_t)pg, PROT_READ | PROT_WRITE) != 0) {
        perror("icount: mprotect(__rseq_size)");
        return -1;
    }
    *(volatile unsigned int *)&__rseq_size = 32;
    mprotect((void *)page, (size_t)pg, PROT_READ);
    rs->cpu_id_start = 0;
    rs->cpu_id = 0;
    return 0;
#else
    fprintf(stderr, "icount: --fake-rseq is x86-64 only\n");
    return -1;
#endif
}

enum mode { M_PTR, M_HANDLE, M_BULK, M_DPDK, M_DPDK_BULK, M_FLOOR_BULK };
static bool hold;   /* ptr-hold, handle-hold: cfg.hold_histogram */
static bool closed; /* ptr-closed, handle-closed: CAS mode */
#define CLOSED_STRETCH 10000
#define BULK 32

static lfpool *pool;
static void *dp; /* the dpdk peer's pool */
static int errors;

static const struct bench_tight *tight_named(const char *name)
{
    for (size_t i = 0; bench_tights[i]; i++)
        if (!strcmp(bench_tights[i]->name, name))
            return bench_tights[i];
    return NULL;
}

/* The measured loop: callgrind counts from its entry to its return.  The
 * DPDK loops are the peer's own (peer_dpdk.c), the same shape. */
__attribute__((noinline)) void measure_loop(enum mode m, long n)
{
    lfpool_handle hs[BULK];
    switch (m) {
    case M_PTR:
        for (long i = 0; i < n; i++) {
            void *o;
            errors |= lfpool_get(pool, &o, LFPOOL_FOREVER);
            errors |= lfpool_ret(pool, o);
        }
        break;
    case M_HANDLE:
        for (long i = 0; i < n; i++) {
            errors |= lfpool_get_handle(pool, &hs[0], LFPOOL_FOREVER);
            errors |= lfpool_ret_handle(pool, &hs[0]);
        }
        break;
    case M_BULK:
        for (long i = 0; i < n; i++) {
            errors |= lfpool_get_bulk(pool, hs, BULK, LFPOOL_FOREVER);
            errors |= lfpool_ret_bulk(pool, hs, BULK);
        }
        break;
    case M_DPDK:
        errors |= tight_named("dpdk")->loop(dp, (uint64_t)n);
        break;
    case M_DPDK_BULK:
        errors |= tight_named("dpdk-bulk32")->loop(dp, (uint64_t)n);
        break;
    case M_FLOOR_BULK:
        errors |= tight_named("floor-bulk32")->loop(dp, (uint64_t)n);
        break;
    }
}

/* ptr-closed, handle-closed: take every object, then one get with timeout
 * 0 more, which must see every cache before its EAGAIN: with max_fences 0
 * it closes the caches (the first time) or notes that it wanted them (the
 * pool stays closed at its next decision); then give them all back, into
 * this CPU's closed cache up to its capacity, the rest to the stack. */
static void miss(void)
{
    lfpool_handle hs[64];
    int got = 0;
    while (got < 64 && lfpool_get_handle(pool, &hs[got], 0) == 0)
        got++;
    lfpool_handle extra;
    if (lfpool_get_handle(pool, &extra, 0) != EAGAIN)
        errors |= 1;
    for (int i = 0; i < got; i++)
        errors |= lfpool_ret_handle(pool, &hs[i]);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: icount ptr|handle|bulk|dpdk|dpdk-bulk|floor-bulk|ptr-hold|handle-hold|"
                        "ptr-closed|handle-closed N [--fake-rseq]\n");
        return 2;
    }
    enum mode m;
    if (!strcmp(argv[1], "ptr"))
        m = M_PTR;
    else if (!strcmp(argv[1], "handle"))
        m = M_HANDLE;
    else if (!strcmp(argv[1], "bulk"))
        m = M_BULK;
    else if (!strcmp(argv[1], "dpdk"))
        m = M_DPDK;
    else if (!strcmp(argv[1], "dpdk-bulk"))
        m = M_DPDK_BULK;
    else if (!strcmp(argv[1], "floor-bulk"))
        m = M_FLOOR_BULK;
    else if (!strcmp(argv[1], "ptr-hold"))
        m = M_PTR, hold = true;
    else if (!strcmp(argv[1], "handle-hold"))
        m = M_HANDLE, hold = true;
    else if (!strcmp(argv[1], "ptr-closed"))
        m = M_PTR, closed = true;
    else if (!strcmp(argv[1], "handle-closed"))
        m = M_HANDLE, closed = true;
    else
        return 2;
    long n = atol(argv[2]);
    bool fake = argc > 3 && !strcmp(argv[3], "--fake-rseq");
    if (fake && fake_rseq() != 0)
        return 2;
    if (m == M_DPDK || m == M_DPDK_BULK || m == M_FLOOR_BULK) {
        const struct bench_tight *t = tight_named(m == M_FLOOR_BULK ? "floor-bulk32" : "dpdk");
        if (!t) {
            fprintf(stderr, "icount: built without DPDK\n");
            return 3;
        }
        const struct bench_peer *peer = t->peer;
        if (peer->open(&dp, 64, 64) != 0 || (peer->thread_init && peer->thread_init(dp) != 0))
            return 3;
        measure_loop(m, 1000); /* warm */
        measure_loop(m, n);
        printf("%s: errors %d\n", argv[1], errors);
        return errors ? 1 : 0;
    }
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = blk_new;
    cfg.closer = blk_free;
    cfg.max_size = 64;
    cfg.min_size = hold && fake ? 0 : 64; /* no fill on the unregistered stretch (below) */
    cfg.hold_histogram = hold;
    if (closed)
        cfg.max_fences = 0; /* the first get that must see every cache closes them */
#if defined(__x86_64__)
    struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    if (fake && hold)
        rs->cpu_id = (uint32_t)-1; /* the housekeeper is created unregistered (above) */
#endif
    int made = lfpool_new(&pool, &cfg);
#if defined(__x86_64__)
    if (fake && hold)
        rs->cpu_id = 0;
#endif
    if (made != 0)
        return 3;
    if (closed)
        miss();
    measure_loop(m, 1000); /* warm: the objects sit in this CPU's cache */
    if (closed) {
        for (long done = 0; done < n; done += CLOSED_STRETCH) {
            miss();
            measure_loop(m, n - done < CLOSED_STRETCH ? n - done : CLOSED_STRETCH);
        }
    } else {
        measure_loop(m, n);
    }
    struct lfpool_stats s;
    lfpool_stats(pool, &s);
    struct lfpool_histogram hh;
    lfpool_histogram(pool, LFPOOL_HIST_HOLD, &hh);
    printf("%s: per-CPU caches %s (cpu_cache %llu)%s, biased returns %s, flushes %llu, holds %llu, "
           "errors %d\n",
           argv[1], s.cpu_cache ? "on" : "off", (unsigned long long)s.cpu_cache,
           closed ? (s.cpu_closed ? " closed (CAS mode)" : " not closed") : "",
           s.ret_biased ? "on" : "off", (unsigned long long)s.nflushes,
           (unsigned long long)hh.total, errors);
    lfpool_free(pool);
    if (fake && !s.cpu_cache) {
        fprintf(stderr, "icount: the fake did not give the per-CPU path\n");
        return 3;
    }
    if (closed && (!s.cpu_closed || s.ncloses != 1)) {
        fprintf(stderr, "icount: the caches were not closed throughout (closed now: %d, closings %llu)\n",
                s.cpu_closed, (unsigned long long)s.ncloses);
        return 3;
    }
    if (hold && hh.total != (uint64_t)n + 1000) {
        fprintf(stderr, "icount: %llu holds recorded for %ld returns\n",
                (unsigned long long)hh.total, n + 1000);
        return 3;
    }
    return errors ? 1 : 0;
}
