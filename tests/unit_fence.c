/* unit_fence.c - bounded fences (docs/DESIGN.md §4): a pool whose gets
 * must look into every CPU's cache (a waiter, or a get with timeout 0
 * before EAGAIN) closes the caches with one membarrier and stays closed
 * while gets keep waiting; a housekeeping round that saw no waiting since
 * the previous one reopens them without a fence; a pool without rounds
 * does the same by the clock.  Counted in nfences (every membarrier the
 * pool makes).  That is the default (cfg.max_fences 0).  With an opt-in
 * budget (cfg.max_fences = N), the gets first flush with the caches left
 * open, N times per window of the pool's clock (1 s), and close them only
 * after.  And what must not change: every get served, pause and the gets'
 * closing compose. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <sys/sysinfo.h>

/* no hooks around get/ret, the fake clock; the pool's period and rounds
 * are each test's (delay 1000: a housekeeper thread that never runs a
 * round on its own, the test's lfpool_housekeep calls are the rounds).
 * max_fences as lfpool_config_init sets it: the bound (the gets close the
 * caches at once), unless a test sets a budget */
LFPOOL_TEST_FIXTURE(fence, (C.getter = NULL, C.retter = NULL, C.delay = 1000));

/* A bounded pool large enough for per-CPU caches: at least one object per
 * cache (cache.c), and at most 64 (the tests' arrays). */
static size_t pool_size(void)
{
    int n = get_nprocs_conf();
    return n < 8 ? 8 : n > 64 ? 64 : (size_t)n;
}

/* Skip a test whose pool has no per-CPU caches (no rseq): free it first,
 * as a skipped test's teardown does not run. */
#define skip_without_caches()                                                                  \
    do {                                                                                       \
        lfpool_free(P);                                                                        \
        P = NULL;                                                                              \
        tctx_free_objs(&T);                                                                    \
        cr_skip_test("no per-CPU caches here");                                                \
    } while (0)

/* The fences of flushes and closings: every fence but the bias fences
 * (a return without its hint fences once per biased stretch, bias.c;
 * bounded per round on their own, saturated_pool_fences_per_round). */
static uint64_t fences(void)
{
    struct lfpool_stats s = tstats(P);
    return s.nfences - s.nbias_fences;
}

/* Take every object of the pool (max_size n) into o[]. */
static void take_all(void **o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0, "object %zu", i);
}

static void ret_all(void **o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
}

/* An exhausted pool: every get with timeout 0 gives EAGAIN; only the first
 * of them fences (it closes the caches), however many follow. */
Test(fence, eagain_gets_fence_once)
{
    size_t n = pool_size();
    C.max_size = n;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    for (int i = 0; i < 200; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    uint64_t f = fences() - f0;
    cr_assert_leq(f, 1, "%llu fences for 200 gets that found nothing", (unsigned long long)f);
    if (tstats(P).cpu_cache)
        cr_assert_eq(f, 1, "the first miss closes the caches with one fence");
    else
        cr_assert_eq(f, 0, "no per-CPU caches: no fence at all");
    /* closed: returns go to the shared stack, every object is served */
    for (int k = 0; k < 50; k++) {
        ret_all(o, n);
        take_all(o, n);
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    }
    cr_assert_leq(fences() - f0, 1);
    ret_all(o, n);
}

/* Closed caches reopen at a round that saw no waiting since the previous
 * one, and neither those rounds nor the reopening fence; the next miss
 * closes them again with one fence. */
Test(fence, quiet_rounds_reopen_without_fence)
{
    size_t n = pool_size();
    C.max_size = n;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + 1);
    ret_all(o, n); /* to the shared stack: the caches are closed */
    /* the round after the closing saw it (waiting): stays closed */
    cr_assert_eq(lfpool_housekeep(P), 0);
    take_all(o, n);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + 1, "still closed: no fence for a miss, none for the round");
    ret_all(o, n);
    cr_assert_eq(lfpool_housekeep(P), 0); /* saw the miss: stays closed */
    cr_assert_eq(lfpool_housekeep(P), 0); /* quiet since the last: reopens */
    cr_assert_eq(fences(), f0 + 1, "rounds over closed caches and the reopening need no fence");
    take_all(o, n);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + 2, "reopened: the next miss closes them again");
    ret_all(o, n);
}

/* Without housekeeping rounds (delay 0, no thread, lfpool_housekeep never
 * called) the gets' slow path reopens by the pool's clock: a period (1 s
 * without rounds) with no waiting since the last look at the clock. */
Test(fence, no_rounds_reopen_by_clock)
{
    size_t n = pool_size();
    C.max_size = n;
    C.delay = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + 1);
    ret_all(o, n);
    take_all(o, n); /* the clock stands still: closed */
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + 1);
    ret_all(o, n);
    for (int k = 0; k < 3; k++) { /* periods without waiting */
        tclock_advance(&T, 1.5);
        cr_assert_eq(lfpool_get(P, &x, 0), 0);
        cr_assert_eq(lfpool_ret(P, x), 0);
    }
    cr_assert_eq(fences(), f0 + 1, "reopening needs no fence");
    take_all(o, n);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + 2, "reopened by the clock: the next miss closes again");
    ret_all(o, n);
    cr_assert_eq(tstats(P).hk_rounds, 0);
}

/* The two reasons to close compose: a resume does not reopen what the
 * gets closed, and a quiet round does not reopen while paused (a return
 * would land in a cache where the fast path hands it out). */
Test(fence, pause_and_gets_compose)
{
    size_t n = pool_size();
    C.max_size = n;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN); /* closed by the gets */
    uint64_t f1 = fences();
    cr_assert_leq(f1 - f0, 1);
    cr_assert_eq(lfpool_pause(P), 0);
    cr_assert_eq(lfpool_resume(P), 0);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f1, "control's closing and reopening left the gets' closing alone");
    cr_assert_eq(lfpool_pause(P), 0);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(lfpool_housekeep(P), 0); /* quiet: the gets' reason ends */
    cr_assert_eq(lfpool_ret(P, o[0]), 0);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "paused: nothing handed out");
    cr_assert_eq(lfpool_resume(P), 0);
    cr_assert_eq(lfpool_get(P, &o[0], 0), 0);
    ret_all(o, n);
}

/* Saturation: twice as many threads as objects, each waiting for one in
 * turn, while a driver runs rounds on the fake clock.  Every get is
 * served, and the fences of flushes and closings stay within one per
 * round (the round's own flush, or the gets' closing after a reopening,
 * not both) plus a constant - not one per get; the bias fences within one
 * per round. */
struct sat {
    _Atomic int stop, got, failed;
    _Atomic long rounds;
    long min_rounds; /* the workers go on until the driver ran this many */
};
static struct sat S;

static void *sat_worker(void *arg)
{
    (void)arg;
    /* 400 pairs, and on until min_rounds rounds have run (at most 4000) */
    for (int i = 0; (i < 400 || atomic_load(&S.rounds) < S.min_rounds) && i < 4000; i++) {
        void *o;
        int r = lfpool_get(P, &o, 10.0);
        if (r) {
            atomic_fetch_add(&S.failed, 1);
            continue;
        }
        atomic_fetch_add(&S.got, 1);
        if (i % 8 == 0)
            sched_yield();
        if (lfpool_ret(P, o) != 0)
            atomic_fetch_add(&S.failed, 1);
    }
    return NULL;
}

static void *sat_driver(void *arg)
{
    (void)arg;
    while (!atomic_load(&S.stop)) {
        usleep(2000);
        tclock_advance(&T, 1.0);
        lfpool_housekeep(P);
        atomic_fetch_add(&S.rounds, 1);
    }
    return NULL;
}

Test(fence, saturated_pool_fences_per_round, .timeout = 60)
{
    size_t n = pool_size();
    size_t nth = 2 * n;
    C.max_size = n;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    memset(&S, 0, sizeof S);
    S.min_rounds = 20;
    uint64_t f0 = fences(), r0 = tstats(P).hk_rounds;
    pthread_t th[128], drv;
    pthread_create(&drv, NULL, sat_driver, NULL);
    for (size_t i = 0; i < nth; i++)
        pthread_create(&th[i], NULL, sat_worker, NULL);
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    atomic_store(&S.stop, 1);
    pthread_join(drv, NULL);
    struct lfpool_stats s = tstats(P);
    uint64_t rounds = s.hk_rounds - r0, f = s.nfences - s.nbias_fences - f0;
    cr_log_info("%d gets, %llu rounds, %llu fences (%llu bias), %llu waits", atomic_load(&S.got),
                (unsigned long long)rounds, (unsigned long long)f,
                (unsigned long long)s.nbias_fences, (unsigned long long)s.nwaits);
    cr_assert_eq(atomic_load(&S.failed), 0, "every get served and returned");
    cr_assert_geq(atomic_load(&S.got), (int)nth * 400);
    /* one per round: the round's flush fences only if the caches are
     * open, i.e. no closing since the previous round's reopening */
    cr_assert_leq(f, rounds + 2, "%llu fences for %llu rounds (%d gets)", (unsigned long long)f,
                  (unsigned long long)rounds, atomic_load(&S.got));
    cr_assert_leq(s.nbias_fences, rounds + 1, "bias fences: one per biased stretch");
    cr_assert_leq(s.nfences - f0, 2 * rounds + 3, "every fence");
}

/* Waiters parked while a quiet round reopens the caches (sleepers do not
 * look, so they do not keep the caches closed): the returns then push
 * into an open cache with no fence of their own, and must still wake every
 * waiter (the reopening's order, cache.c), whose look closes the caches
 * again and finds the objects. */
Test(fence, parked_waiters_across_a_reopening, .timeout = 60)
{
    size_t n = pool_size();
    if (n > 16)
        n = 16;
    C.max_size = n;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[64], *got[64];
    pthread_t th[64];
    for (int round = 0; round < 5; round++) {
        take_all(o, n);
        struct tburst b = {.p = P};
        for (size_t i = 0; i < n; i++)
            pthread_create(&th[i], NULL, tburst_get, &b);
        while (atomic_load(&b.entered) < (int)n || tstats(P).waiting < n)
            usleep(1000);
        usleep(5000); /* parked */
        uint64_t f0 = fences();
        /* the first round sees the looks before the waiters parked, the
         * second none (sleepers do not look): it reopens */
        cr_assert_eq(lfpool_housekeep(P), 0);
        cr_assert_eq(lfpool_housekeep(P), 0);
        cr_assert_eq(fences(), f0, "rounds over closed caches, and the reopening, do not fence");
        ret_all(o, n);
        for (size_t i = 0; i < n; i++)
            pthread_join(th[i], &got[i]);
        cr_assert_eq(atomic_load(&b.timeouts), 0, "round %d: a waiter missed a returned object", round);
        cr_assert_eq(atomic_load(&b.errors), 0);
        cr_assert_eq(atomic_load(&b.got), (int)n);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(lfpool_ret(P, got[i]), 0);
        cr_assert_leq(fences() - f0, 1, "one closing at most per reopening");
    }
}

/* ---- the fence budget (cfg.max_fences = N): N open flushes per window of
 * the pool's clock (1 s), then the closing */

enum { BUDGET = 5 };

/* An exhausted pool, the clock standing still: the first N gets that find
 * nothing flush with the caches left open (a fence each), the next closes
 * them (one more), and the rest fence no more - N + 1 in the window.  A
 * reopening within the same window finds the budget spent: the next miss
 * closes at once.  Each later window allows N open flushes again. */
Test(fence, budget_per_window)
{
    size_t n = pool_size();
    C.max_size = n;
    C.max_fences = BUDGET;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    for (int i = 0; i < 200; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences() - f0, BUDGET + 1, "%llu fences for 200 misses in one window",
                 (unsigned long long)(fences() - f0));
    /* two rounds reopen (the first saw the misses); same window */
    ret_all(o, n);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    take_all(o, n);
    uint64_t f1 = fences();
    cr_assert_eq(f1, f0 + BUDGET + 1, "rounds over closed caches and the reopening do not fence");
    for (int i = 0; i < 50; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f1 + 1, "budget spent in this window: the next miss closes at once");
    for (int w = 0; w < 3; w++) {
        ret_all(o, n);
        cr_assert_eq(lfpool_housekeep(P), 0);
        cr_assert_eq(lfpool_housekeep(P), 0); /* reopened */
        take_all(o, n);
        tclock_advance(&T, 1.5); /* a new window */
        uint64_t fw = fences();
        for (int i = 0; i < 200; i++)
            cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
        cr_assert_eq(fences() - fw, BUDGET + 1, "window %d: %llu fences for 200 misses", w,
                     (unsigned long long)(fences() - fw));
    }
    /* served all along: an open flush moved what the caches held */
    ret_all(o, n);
    take_all(o, n);
    ret_all(o, n);
}

/* Open flushes leave the caches open: a get that would create while
 * another CPU's cache holds objects flushes them (within the budget) and
 * takes one; the next get on this CPU finds its cache working again (no
 * closing: the budget is not spent). */
Test(fence, open_flush_keeps_caches_open)
{
    size_t n = pool_size();
    C.max_size = n;
    C.max_fences = BUDGET;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN); /* one open flush */
    cr_assert_eq(fences(), f0 + 1);
    /* still open: a get and return cycle through this CPU's cache, with
     * no flush and no fence */
    cr_assert_eq(lfpool_ret(P, o[0]), 0);
    uint64_t fl = tstats(P).nflushes;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(lfpool_get(P, &o[0], 0), 0);
        cr_assert_eq(lfpool_ret(P, o[0]), 0);
    }
    cr_assert_eq(tstats(P).nflushes, fl, "open caches: the cycle needs no flush");
    cr_assert_eq(fences(), f0 + 1);
    cr_assert_eq(lfpool_get(P, &o[0], 0), 0);
    ret_all(o, n);
}

/* Saturation with the clock standing still (one window, no rounds): every
 * get served, and the gets' fences stay within N + 1 for the whole run -
 * N open flushes, then the closing, and the caches stay closed. */
Test(fence, saturated_pool_budget_one_window, .timeout = 60)
{
    size_t n = pool_size();
    size_t nth = 2 * n;
    C.max_size = n;
    C.max_fences = BUDGET;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    memset(&S, 0, sizeof S);
    uint64_t f0 = fences();
    pthread_t th[128];
    for (size_t i = 0; i < nth; i++)
        pthread_create(&th[i], NULL, sat_worker, NULL);
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    struct lfpool_stats s = tstats(P);
    uint64_t f = s.nfences - s.nbias_fences - f0;
    cr_log_info("%d gets, %llu fences (%llu bias), %llu waits", atomic_load(&S.got),
                (unsigned long long)f, (unsigned long long)s.nbias_fences,
                (unsigned long long)s.nwaits);
    cr_assert_eq(atomic_load(&S.failed), 0, "every get served and returned");
    cr_assert_eq(atomic_load(&S.got), (int)nth * 400);
    cr_assert_eq(s.hk_rounds, 0);
    cr_assert_leq(f, BUDGET + 1, "%llu fences in one window (%d gets)", (unsigned long long)f,
                  atomic_load(&S.got));
}

/* Saturation across windows: the driver's rounds advance the clock by a
 * window each, so the gets may flush open N times per window on top of
 * the strict bound (one per round). */
Test(fence, saturated_pool_budget_per_window, .timeout = 60)
{
    size_t n = pool_size();
    size_t nth = 2 * n;
    C.max_size = n;
    C.max_fences = BUDGET;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    memset(&S, 0, sizeof S);
    S.min_rounds = 20;
    uint64_t f0 = fences(), r0 = tstats(P).hk_rounds;
    pthread_t th[128], drv;
    pthread_create(&drv, NULL, sat_driver, NULL);
    for (size_t i = 0; i < nth; i++)
        pthread_create(&th[i], NULL, sat_worker, NULL);
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    atomic_store(&S.stop, 1);
    pthread_join(drv, NULL);
    struct lfpool_stats s = tstats(P);
    uint64_t rounds = s.hk_rounds - r0, f = s.nfences - s.nbias_fences - f0;
    /* every window begins with a round (1 s of the clock each), and one
     * may have begun before the first */
    uint64_t windows = rounds + 1;
    cr_log_info("%d gets, %llu rounds, %llu fences (%llu bias)", atomic_load(&S.got),
                (unsigned long long)rounds, (unsigned long long)f,
                (unsigned long long)s.nbias_fences);
    cr_assert_eq(atomic_load(&S.failed), 0, "every get served and returned");
    cr_assert_leq(f, rounds + 2 + BUDGET * windows, "%llu fences for %llu rounds (%d gets)",
                  (unsigned long long)f, (unsigned long long)rounds, atomic_load(&S.got));
}

/* The default: lfpool_config_init sets LFPOOL_FENCES_DEFAULT, 0, no
 * budget: an exhausted pool's first miss closes the caches with one fence,
 * and no later miss fences; the stats say closed, one closing. */
Test(fence, default_is_bounded)
{
    lfpool_config d;
    lfpool_config_init(&d);
    cr_assert_eq(d.max_fences, LFPOOL_FENCES_DEFAULT);
    cr_assert_eq(d.max_fences, 0, "the bound, not a budget");
    cr_assert_eq(C.max_fences, LFPOOL_FENCES_DEFAULT, "the fixture keeps the default");
    size_t n = pool_size();
    C.max_size = n;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    take_all(o, n);
    cr_assert(!tstats(P).cpu_closed);
    uint64_t f0 = fences();
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(fences() - f0, 1, "%llu fences for 1000 misses", (unsigned long long)(fences() - f0));
    cr_assert(s.cpu_closed, "the caches are closed (CAS mode)");
    cr_assert_eq(s.ncloses, 1);
    ret_all(o, n);
    cr_assert_eq(lfpool_housekeep(P), 0); /* saw the misses: stays closed */
    cr_assert(tstats(P).cpu_closed);
    cr_assert_eq(lfpool_housekeep(P), 0); /* quiet: reopens, no fence */
    s = tstats(P);
    cr_assert(!s.cpu_closed, "a quiet round reopens");
    cr_assert_eq(fences() - f0, 1);
}

/* The opt-in budget, LFPOOL_FENCES_BUDGET (the default before the bound):
 * resolved to 65536 / CPUs (at least 1) open flushes per window, so an
 * exhausted pool's misses in one window fence at least twice (an open
 * flush, the closing) and at most that budget + 1, then no more. */
Test(fence, opt_in_budget)
{
    size_t n = pool_size();
    C.max_size = n;
    C.max_fences = LFPOOL_FENCES_BUDGET;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    int cpus = get_nprocs_conf(); /* the pool has a cache per CPU, at least these */
    uint64_t most = cpus > 0 && 65536 / cpus > 1 ? (uint64_t)(65536 / cpus) : 1;
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    for (uint64_t i = 0; i < most + 100; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    uint64_t f = fences() - f0;
    cr_log_info("budget: %llu fences (%d CPUs)", (unsigned long long)f, cpus);
    cr_assert_geq(f, 2, "an open flush, then the closing");
    cr_assert_leq(f, most + 1, "%llu fences, budget at most %llu", (unsigned long long)f,
                  (unsigned long long)most);
    cr_assert_eq(tstats(P).ncloses, 1);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences() - f0, f, "closed: no more fences in the window");
    ret_all(o, n);
}

/* The default config on the real clock, so that the fast paths and the
 * CAS mode's (get_miss, ret_put_miss: not taken with an injected clock)
 * run: twice as many threads as objects, half through handles, a
 * housekeeper running rounds every 5 ms.  No object goes to two holders,
 * at most max_size are out at once, every get is served; the fences of
 * flushes and closings stay within one per round plus a constant, the
 * closings within one per round; after lfpool_free every object was
 * closed exactly once. */
struct rsat {
    _Atomic int failed, doubles, holding, most;
    _Atomic long got;
};
static struct rsat R;

static void rsat_hold(struct tobj *t)
{
    if (atomic_exchange(&t->held, 1) != 0)
        atomic_fetch_add(&R.doubles, 1);
    int h = atomic_fetch_add(&R.holding, 1) + 1;
    for (int m = atomic_load(&R.most); h > m && !atomic_compare_exchange_weak(&R.most, &m, h);)
        ;
    atomic_fetch_add(&R.got, 1);
}

static void rsat_release(struct tobj *t)
{
    atomic_fetch_sub(&R.holding, 1);
    atomic_store(&t->held, 0);
}

static void *rsat_worker(void *arg)
{
    bool handles = (uintptr_t)arg & 1;
    for (int i = 0; i < 3000; i++) {
        if (handles) {
            lfpool_handle h;
            if (lfpool_get_handle(P, &h, 10.0) != 0) {
                atomic_fetch_add(&R.failed, 1);
                continue;
            }
            rsat_hold(h.obj);
            if (i % 8 == 0)
                sched_yield();
            rsat_release(h.obj);
            if (lfpool_ret_handle(P, &h) != 0)
                atomic_fetch_add(&R.failed, 1);
        } else {
            void *o;
            if (lfpool_get(P, &o, 10.0) != 0) {
                atomic_fetch_add(&R.failed, 1);
                continue;
            }
            rsat_hold(o);
            if (i % 8 == 0)
                sched_yield();
            rsat_release(o);
            if (lfpool_ret(P, o) != 0)
                atomic_fetch_add(&R.failed, 1);
        }
    }
    return NULL;
}

Test(fence, default_saturated_real_clock, .timeout = 60)
{
    size_t n = pool_size();
    size_t nth = 2 * n;
    C.max_size = n;
    C.min_size = n;
    C.clock = NULL; /* the real clock: the fast paths apply */
    C.clock_ctx = NULL;
    C.delay = 0.005;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    memset(&R, 0, sizeof R);
    struct lfpool_stats s0 = tstats(P);
    pthread_t th[128];
    for (size_t i = 0; i < nth; i++)
        pthread_create(&th[i], NULL, rsat_worker, (void *)(uintptr_t)i);
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    struct lfpool_stats s = tstats(P);
    uint64_t rounds = s.hk_rounds - s0.hk_rounds;
    uint64_t f = (s.nfences - s.nbias_fences) - (s0.nfences - s0.nbias_fences);
    cr_log_info("%ld gets, %llu rounds, %llu fences (%llu bias), %llu closings, %llu waits",
                atomic_load(&R.got), (unsigned long long)rounds, (unsigned long long)f,
                (unsigned long long)s.nbias_fences, (unsigned long long)s.ncloses,
                (unsigned long long)s.nwaits);
    cr_assert_eq(atomic_load(&R.failed), 0, "every get served and returned");
    cr_assert_eq(atomic_load(&R.doubles), 0, "an object went to two holders");
    cr_assert_leq(atomic_load(&R.most), (int)n, "more than max_size out at once");
    cr_assert_eq(atomic_load(&R.got), (long)nth * 3000);
    cr_assert_leq(f, rounds + 3, "%llu fences for %llu rounds (%ld gets)", (unsigned long long)f,
                  (unsigned long long)rounds, atomic_load(&R.got));
    cr_assert_leq(s.ncloses - s0.ncloses, rounds + 1, "one closing per reopening, at most");
    cr_assert_leq(s.nbias_fences - s0.nbias_fences, rounds + 1, "bias fences: one per biased stretch");
    int made = atomic_load(&T.nobjs);
    lfpool_free(P);
    P = NULL;
    for (int k = 0; k < made && k < 4096; k++)
        cr_assert_eq(atomic_load(&T.objs[k]->closed), 1, "object %d closed %d times", k,
                     atomic_load(&T.objs[k]->closed));
}

/* Gets that keep looking keep the caches closed only until the budget's
 * window has passed: the next decision (a round, or the clock without
 * rounds) reopens them, and each window allows N open flushes and one
 * closing again - the pool is open while its budget lasts. */
static void budget_windows_while_wanted(bool rounds)
{
    size_t n = pool_size();
    C.max_size = n;
    C.max_fences = BUDGET;
    if (!rounds)
        C.delay = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    take_all(o, n);
    uint64_t f0 = fences();
    for (int i = 0; i < 100; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(fences(), f0 + BUDGET + 1);
    if (rounds) { /* same window, wanted: stays closed */
        cr_assert_eq(lfpool_housekeep(P), 0);
        for (int i = 0; i < 100; i++)
            cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
        cr_assert_eq(fences(), f0 + BUDGET + 1, "wanted within the window: closed, no fence");
    }
    for (int w = 0; w < 3; w++) {
        tclock_advance(&T, 1.5);
        if (rounds)
            cr_assert_eq(lfpool_housekeep(P), 0); /* wanted, but a new window: reopens */
        uint64_t fw = fences();
        for (int i = 0; i < 100; i++)
            cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
        cr_assert_eq(fences() - fw, BUDGET + 1, "window %d: %llu fences", w,
                     (unsigned long long)(fences() - fw));
    }
    ret_all(o, n);
    take_all(o, n);
    ret_all(o, n);
}

Test(fence, budget_reopens_each_window_rounds)
{
    budget_windows_while_wanted(true);
}

Test(fence, budget_reopens_each_window_clock)
{
    budget_windows_while_wanted(false);
}

/* ---- CAS mode: closed caches stay in use by their CPU's threads (locked
 * commits), and a get that must see every record takes from any of them
 * under its lock, with no fence (cache.c).  Threads are pinned to two
 * CPUs to put objects in a chosen cache (tpin, helpers.h). */

/* A pool closed by a miss on CPU 0, its objects returned there (into CPU
 * 0's closed cache, the rest into the shared stack). */
static void close_on_cpu0(void **o, size_t n)
{
    cr_assert(tpin(0));
    void *x;
    take_all(o, n);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN); /* closes the caches: one fence */
    ret_all(o, n);
}

struct other {
    size_t n;
    int got, eagain;
    void *o[64];
};

/* On CPU 1: gets with timeout 0 until one fails, then returns them. */
static void *other_cpu_takes_all(void *arg)
{
    struct other *t = arg;
    cr_assert(tpin(1));
    void *x;
    while (t->got < 64 && lfpool_get(P, &t->o[t->got], 0) == 0)
        t->got++;
    t->eagain = lfpool_get(P, &x, 0) == EAGAIN;
    for (int i = 0; i < t->got; i++)
        cr_assert_eq(lfpool_ret(P, t->o[i]), 0);
    return NULL;
}

/* Every object returned into CPU 0's closed cache is seen by gets with
 * timeout 0 on CPU 1 (the timeout-0 guarantee: they sweep the closed
 * caches), and neither side fences again while closed; with the fast
 * paths (no injected clock) and with the slow paths (the fake clock). */
static void other_cpu_sees_every_object(bool fast)
{
    size_t n = pool_size();
    C.max_size = n;
    if (fast)
        C.clock = NULL; /* delay 1000: rounds only by lfpool_housekeep */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache || !ttwo_cpus())
        skip_without_caches();
    void *o[64];
    uint64_t f0 = fences();
    for (int k = 0; k < 20; k++) {
        close_on_cpu0(o, n);
        struct other t = {.n = n};
        pthread_t th;
        pthread_create(&th, NULL, other_cpu_takes_all, &t);
        pthread_join(th, NULL);
        cr_assert_eq(t.got, (int)n, "round %d: CPU 1 got %d of %zu objects", k, t.got, n);
        cr_assert(t.eagain);
    }
    cr_assert_eq(fences(), f0 + 1, "closed: the sweeps and the CAS-mode gets and rets need no fence");
}

Test(fence, cas_mode_other_cpu_sees_every_object_fast)
{
    other_cpu_sees_every_object(true);
}

Test(fence, cas_mode_other_cpu_sees_every_object_slow)
{
    other_cpu_sees_every_object(false);
}

/* A waiter parked on CPU 1 while the caches are closed; a return on CPU 0
 * lands in CPU 0's closed cache, and must wake it (the locked commit, then
 * the waiter count: cache.c), and the waiter's look must find the object
 * there - no lost wake-up, no fence. */
static void *wait_on_cpu1(void *arg)
{
    struct tburst *b = arg;
    cr_assert(tpin(1));
    return tburst_get(b);
}

Test(fence, cas_mode_waiter_woken_from_a_closed_cache, .timeout = 60)
{
    size_t n = pool_size();
    C.max_size = n;
    C.clock = NULL; /* the fast paths */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache || !ttwo_cpus())
        skip_without_caches();
    void *o[64];
    close_on_cpu0(o, n);
    uint64_t f0 = fences();
    for (int k = 0; k < 20; k++) {
        take_all(o, n);
        struct tburst b = {.p = P};
        pthread_t th;
        pthread_create(&th, NULL, wait_on_cpu1, &b);
        while (tstats(P).waiting < 1)
            usleep(200);
        usleep(k % 2 ? 2000 : 0); /* parked, or about to */
        cr_assert_eq(lfpool_ret(P, o[0]), 0); /* CPU 0's closed cache */
        void *got;
        pthread_join(th, &got);
        cr_assert_eq(atomic_load(&b.got), 1, "round %d: the waiter missed the return", k);
        cr_assert_eq(got, o[0]);
        cr_assert_eq(lfpool_ret(P, got), 0);
        for (size_t i = 1; i < n; i++)
            cr_assert_eq(lfpool_ret(P, o[i]), 0);
    }
    cr_assert_eq(fences(), f0, "closed throughout: no fence");
}

/* Runtime control while objects sit in closed caches: a pause holds every
 * get (the objects in CPU 0's closed cache too), a resume gives them all
 * back, and LFPOOL_EVICT_ALL closes every one of them. */
Test(fence, cas_mode_pause_and_evict)
{
    size_t n = pool_size();
    C.max_size = n;
    C.min_size = 0;
    C.clock = NULL;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    if (!tstats(P).cpu_cache)
        skip_without_caches();
    void *o[64], *x;
    close_on_cpu0(o, n);
    cr_assert_eq(lfpool_pause(P), 0);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "paused: nothing handed out");
    cr_assert_eq(lfpool_resume(P), 0);
    take_all(o, n);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    ret_all(o, n);
    uint64_t e0 = tstats(P).nevicted;
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_ALL), 0);
    cr_assert_eq(tstats(P).nevicted - e0, n, "every available object evicted, cached ones too");
    cr_assert_eq(tstats(P).nobjs, 0);
}
