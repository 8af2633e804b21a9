/*
 * table.c - the meta table costs what the objects cost, not what max_size
 * could allow.
 *
 * Before the fix the table was preallocated to the next power of two >=
 * max_size (up to 2^30 buckets): lfpool_new with max_size 2^24 took 0.9 s
 * and 256 MiB, with 2^30 or SIZE_MAX 36-44 s and 16 GiB, and lfpool_free
 * tens of seconds.  Now the table starts at min_size (at least 64 buckets),
 * grows with the objects created and shrinks at housekeeping rounds.
 *
 *  - table/huge_max_size_costs_nothing: lfpool_new and lfpool_free with
 *    max_size 2^24, 2^30, SIZE_MAX (eager and lazy, min_size 1) and an
 *    unbounded pool: each lfpool_new adds less than RSS_BOUND to the
 *    resident set (read from /proc/self/statm) and returns within a
 *    generous second, and so does lfpool_free.  The smallest case comes
 *    first, so that a regression fails there rather than allocating
 *    gigabytes.
 *  - table/grows_and_shrinks_with_objects: a pool with max_size SIZE_MAX
 *    grows to 100k objects held at once, they are recycled at a round
 *    (injected clock + lfpool_housekeep + max_avail_delay), twice; every
 *    get, every ret (most go through the table lookup) and the counters
 *    stay right, and each object is closed exactly once.
 *
 * Self-contained: include/lfpool.h, Criterion and libc only.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <lfpool.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RSS_BOUND (8L << 20) /* bytes; the unfixed 2^24 case took 256 MiB */
#define TIME_BOUND 1.0       /* seconds; the unfixed 2^30 case took ~40 s */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f, "/proc/self/statm");
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    cr_assert_eq(n, 2, "/proc/self/statm unreadable");
    return resident * sysconf(_SC_PAGESIZE);
}

/* ---- objects: a counter per creation number, closed exactly once */

#define MAXOBJS 250000
struct obj {
    uint64_t n;
};
static _Atomic uint32_t closes[MAXOBJS];
static _Atomic uint64_t created, bad_closes;
static _Atomic int64_t clock_us = 1000000;

static void *create(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n; /* concurrent creations may share n: number them here */
    struct obj *o = malloc(sizeof *o);
    if (!o)
        return NULL;
    o->n = atomic_fetch_add(&created, 1);
    return o;
}

static int closer(void *ctx, void *p)
{
    (void)ctx;
    struct obj *o = p;
    if (o->n >= MAXOBJS || atomic_fetch_add(&closes[o->n], 1) != 0)
        atomic_fetch_add(&bad_closes, 1);
    free(o);
    return 0;
}

static double test_clock(void *ctx)
{
    (void)ctx;
    return (double)atomic_load(&clock_us) / 1e6;
}

/* the expected ENOENT returns log a WARNING each: counted, not printed */
static _Atomic unsigned warnings, errors;
static void log_hook(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)msg;
    atomic_fetch_add(level == LFPOOL_LOG_ERROR ? &errors : &warnings, 1);
}

static lfpool_config base_config(void)
{
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = create;
    cfg.closer = closer;
    cfg.log = log_hook;
    return cfg;
}

Test(table, huge_max_size_costs_nothing, .timeout = 120)
{
    static const struct {
        size_t max_size;
        const char *name;
    } sizes[] = {
        {(size_t)1 << 24, "2^24"},
        {(size_t)1 << 30, "2^30"},
        {SIZE_MAX, "SIZE_MAX"},
        {0, "unbounded"},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int lazy = 0; lazy < 2; lazy++) {
            lfpool_config cfg = base_config();
            cfg.max_size = sizes[i].max_size;
            cfg.min_size = 1;
            cfg.lazy_start = lazy;
            lfpool *pool;
            long r0 = rss_bytes();
            double t0 = mono();
            cr_assert_eq(lfpool_new(&pool, &cfg), 0, "lfpool_new, max_size %s", sizes[i].name);
            double t_new = mono() - t0;
            long grew = rss_bytes() - r0;
            cr_log_info("max_size %s%s: lfpool_new %.6f s, RSS +%ld KiB", sizes[i].name,
                        lazy ? " (lazy)" : "", t_new, grew >> 10);
            cr_assert_lt(grew, RSS_BOUND,
                         "lfpool_new with max_size %s%s grew the RSS by %ld KiB", sizes[i].name,
                         lazy ? " (lazy)" : "", grew >> 10);
            cr_assert_lt(t_new, TIME_BOUND, "lfpool_new with max_size %s%s took %.3f s",
                         sizes[i].name, lazy ? " (lazy)" : "", t_new);

            void *o[3];
            for (int k = 0; k < 3; k++)
                cr_assert_eq(lfpool_get(pool, &o[k], 0), 0);
            for (int k = 0; k < 3; k++)
                cr_assert_eq(lfpool_ret(pool, o[k]), 0);

            t0 = mono();
            lfpool_free(pool);
            double t_free = mono() - t0;
            cr_log_info("max_size %s%s: lfpool_free %.6f s", sizes[i].name, lazy ? " (lazy)" : "",
                        t_free);
            cr_assert_lt(t_free, TIME_BOUND, "lfpool_free with max_size %s%s took %.3f s",
                         sizes[i].name, lazy ? " (lazy)" : "", t_free);
        }
    }
    cr_assert_eq(atomic_load(&bad_closes), 0);
    cr_assert_eq(atomic_load(&errors), 0, "ERROR logged");
}

#define HELD 100000

Test(table, grows_and_shrinks_with_objects, .timeout = 120)
{
    lfpool_config cfg = base_config();
    cfg.max_size = SIZE_MAX;
    cfg.min_size = 1;
    cfg.clock = test_clock;
    cfg.max_avail_delay = 1.0;
    cfg.delay = 3600; /* rounds only through lfpool_housekeep */
    lfpool *pool;
    cr_assert_eq(lfpool_new(&pool, &cfg), 0);
    void **held = calloc(HELD, sizeof *held);
    cr_assert_not_null(held);
    struct lfpool_stats st;

    for (int cycle = 0; cycle < 2; cycle++) {
        /* grow: HELD objects out at once (the table grows as they are
         * created: the load passes 2 per bucket many times over) */
        for (int i = 0; i < HELD; i++)
            cr_assert_eq(lfpool_get(pool, &held[i], 0), 0, "get %d of cycle %d", i, cycle);
        cr_assert_eq(lfpool_stats(pool, &st), 0);
        cr_assert_eq(st.nobjs, HELD, "cycle %d: nobjs %llu", cycle, (unsigned long long)st.nobjs);
        cr_assert_eq(st.nusing, HELD);
        /* a pointer the pool does not hold is refused, after the growth too */
        int foreign;
        cr_assert_eq(lfpool_ret(pool, &foreign), ENOENT);
        /* returned in reverse: all but the last few through the table */
        for (int i = HELD - 1; i >= 0; i--)
            cr_assert_eq(lfpool_ret(pool, held[i]), 0, "ret %d of cycle %d", i, cycle);
        cr_assert_eq(lfpool_ret(pool, held[0]), ENOENT, "a second ret");

        /* shrink: idle past max_avail_delay, recycled at the round, down to
         * min_size; the round ends with the table's shrink */
        atomic_fetch_add(&clock_us, 2000000);
        cr_assert_eq(lfpool_housekeep(pool), 0);
        cr_assert_eq(lfpool_stats(pool, &st), 0);
        cr_assert_eq(st.nobjs, 1, "cycle %d: nobjs %llu after the round", cycle,
                     (unsigned long long)st.nobjs);
        cr_assert_eq(st.nrecycled, (uint64_t)(cycle + 1) * (HELD - 1), "nrecycled %llu",
                     (unsigned long long)st.nrecycled);

        /* the pool still works after the shrink: the object left is found */
        void *o, *o2;
        cr_assert_eq(lfpool_get(pool, &o, 0), 0);
        cr_assert_eq(lfpool_get(pool, &o2, 0), 0);
        cr_assert_neq(o, o2);
        cr_assert_eq(lfpool_ret(pool, o2), 0);
        cr_assert_eq(lfpool_ret(pool, o), 0);
        cr_assert_eq(lfpool_ret(pool, o), ENOENT);
        /* the one extra object goes at the next round (idle), not now */
    }
    double t0 = mono();
    lfpool_free(pool);
    double t_free = mono() - t0;
    cr_assert_lt(t_free, 10 * TIME_BOUND, "lfpool_free took %.3f s", t_free);
    free(held);

    uint64_t n = atomic_load(&created);
    cr_assert_leq(n, MAXOBJS);
    cr_assert_eq(atomic_load(&bad_closes), 0, "an object closed twice");
    cr_assert_eq(atomic_load(&errors), 0, "ERROR logged");
    cr_assert_eq(atomic_load(&warnings), 6, "one WARNING per ENOENT return");
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&closes[i]), 1, "object %llu closed %u times",
                     (unsigned long long)i, atomic_load(&closes[i]));
}
