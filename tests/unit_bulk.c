/* unit_bulk.c - lfpool_get_bulk and lfpool_ret_bulk: all n or none, nothing
 * held while waiting, every valid handle returned with the first error
 * reported.  Each behaviour runs with the fixture's hooks and fake clock
 * (the careful paths) and without (the fast paths); the _norseq run of this
 * file (meson.build) repeats both without per-CPU caches. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <math.h>

LFPOOL_TEST_FIXTURE(bulk, (void)0);

/* no hooks, no injected clock: the fast paths apply */
static void plain_cfg(void)
{
    C.getter = NULL;
    C.retter = NULL;
    C.clock = NULL;
    C.clock_ctx = NULL;
}

/* n hand-outs of distinct objects, each counted once */
static void all_distinct(const lfpool_handle *hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(hs[i].obj);
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(hs[i].obj, hs[j].obj, "handles %zu and %zu name one object", i, j);
    }
}

static void round_trip(bool hooks)
{
    if (!hooks)
        plain_cfg();
    C.max_size = 40;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[32];
    cr_assert_eq(lfpool_get_bulk(P, hs, 32, 0), 0);
    all_distinct(hs, 32);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 32);
    cr_assert_eq(s.nuses, 32);
    if (hooks)
        cr_assert_eq(atomic_load(&T.fx.n.got), 32, "getter once per object");
    cr_assert_eq(lfpool_ret_bulk(P, hs, 32), 0);
    s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs);
    if (hooks)
        cr_assert_eq(atomic_load(&T.fx.n.retted), 32, "retter once per object");
    /* again: the objects come back from the set, not created anew */
    uint64_t created = s.ncreated;
    cr_assert_eq(lfpool_get_bulk(P, hs, 32, 0), 0);
    all_distinct(hs, 32);
    cr_assert_eq(tstats(P).ncreated, created);
    cr_assert_eq(tstats(P).nuses, 64);
    /* handles from a bulk get work one by one, and by pointer */
    cr_assert_eq(lfpool_ret(P, hs[0].obj), 0);
    for (int i = 1; i < 32; i++)
        cr_assert_eq(lfpool_ret_handle(P, &hs[i]), 0);
    cr_assert_eq(tstats(P).nusing, 0);
}

Test(bulk, round_trip_with_hooks_and_clock) { round_trip(true); }
Test(bulk, round_trip_fast_path) { round_trip(false); }

/* Fewer objects than asked for: none is taken, and what the failed try took
 * is back, not counted as a use and without getter or retter calls. */
static void all_or_none(bool hooks)
{
    if (!hooks)
        plain_cfg();
    C.max_size = 8;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle held[3], hs[8];
    cr_assert_eq(lfpool_get_bulk(P, held, 3, 0), 0);
    uint64_t got = atomic_load(&T.fx.n.got), retted = atomic_load(&T.fx.n.retted);
    struct lfpool_stats s0 = tstats(P);
    cr_assert_eq(lfpool_get_bulk(P, hs, 6, 0), EAGAIN, "5 of 6 there: none");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 3, "nothing kept");
    cr_assert_eq(s.nuses, s0.nuses, "the failed try's takes are not uses");
    cr_assert_eq(s.nobjs, 8, "the try created the missing objects, then gave them back");
    cr_assert_eq(s.navail, 5);
    cr_assert_eq(atomic_load(&T.fx.n.got), got, "no getter for a failed bulk get");
    cr_assert_eq(atomic_load(&T.fx.n.retted), retted, "no retter for the give-back");
    cr_assert_eq(lfpool_get_bulk(P, hs, 5, 0), 0, "exactly what is left");
    all_distinct(hs, 5);
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0), EAGAIN);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 5), 0);
    cr_assert_eq(lfpool_ret_bulk(P, held, 3), 0);
    cr_assert_eq(lfpool_get_bulk(P, hs, 8, 0), 0, "the whole pool");
    all_distinct(hs, 8);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 8), 0);
}

Test(bulk, all_or_none_with_hooks_and_clock) { all_or_none(true); }
Test(bulk, all_or_none_fast_path) { all_or_none(false); }

/* A bounded wait with some objects available times out holding nothing:
 * a single get made meanwhile by another thread is served at once. */
struct single_get {
    lfpool *p;
    int rc;
    void *o;
};
static void *single_get(void *arg)
{
    struct single_get *g = arg;
    g->rc = lfpool_get(g->p, &g->o, 2.0);
    return NULL;
}

static void timeout_holds_nothing(bool hooks)
{
    if (!hooks)
        plain_cfg();
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle held[2], hs[4];
    cr_assert_eq(lfpool_get_bulk(P, held, 2, 0), 0);
    cr_assert_eq(lfpool_get_bulk(P, hs, 3, 0.05), ETIMEDOUT, "2 of 3 there for the whole wait");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ntimeouts, 1, "counted as a get's timeout");
    cr_assert_eq(s.nwaits, 1, "and as one wait");
    cr_assert_eq(s.nusing, 2, "nothing kept after the timeout");
    cr_assert_eq(s.navail + s.nusing, s.nobjs);
    cr_assert_eq(s.nuses, 2);
    /* while a bulk get of 3 waits, a single get takes one of the 2 there */
    struct single_get g = {.p = P};
    pthread_t th;
    pthread_create(&th, NULL, single_get, &g);
    cr_assert_eq(lfpool_get_bulk(P, hs, 3, 0.1), ETIMEDOUT);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0, "a single get was served while a bulk get waited");
    cr_assert_eq(lfpool_ret(P, g.o), 0);
    cr_assert_eq(lfpool_ret_bulk(P, held, 2), 0);
    cr_assert_eq(tstats(P).nusing, 0);
}

Test(bulk, timeout_holds_nothing_with_hooks_and_clock) { timeout_holds_nothing(true); }
Test(bulk, timeout_holds_nothing_fast_path) { timeout_holds_nothing(false); }

/* A waiting bulk get completes once enough objects come back. */
struct late_ret {
    lfpool *p;
    lfpool_handle *hs;
    size_t n;
};
static void *late_ret(void *arg)
{
    struct late_ret *l = arg;
    usleep(20000);
    for (size_t i = 0; i < l->n; i++) {
        lfpool_ret_handle(l->p, &l->hs[i]);
        usleep(2000);
    }
    return NULL;
}

static void wait_completes(bool hooks)
{
    if (!hooks)
        plain_cfg();
    C.max_size = 6;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle held[4], hs[6];
    cr_assert_eq(lfpool_get_bulk(P, held, 4, 0), 0);
    struct late_ret l = {.p = P, .hs = held, .n = 4};
    pthread_t th;
    pthread_create(&th, NULL, late_ret, &l);
    cr_assert_eq(lfpool_get_bulk(P, hs, 6, 5.0), 0, "all 6 once they are back");
    pthread_join(th, NULL);
    all_distinct(hs, 6);
    cr_assert_eq(tstats(P).nusing, 6);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 6), 0);
}

Test(bulk, wait_completes_with_hooks_and_clock, .timeout = 30) { wait_completes(true); }
Test(bulk, wait_completes_fast_path, .timeout = 30) { wait_completes(false); }

/* n > max_size: EINVAL at once (never possible); n = 0; NULL arguments;
 * bad timeouts; shutdown. */
Test(bulk, bad_arguments)
{
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[8];
    cr_assert_eq(lfpool_get_bulk(P, hs, 5, LFPOOL_FOREVER), EINVAL, "n > max_size: at once");
    cr_assert_eq(lfpool_get_bulk(P, hs, 0, 0), 0, "n = 0");
    cr_assert_eq(lfpool_get_bulk(P, NULL, 0, 0), 0, "n = 0, no array");
    cr_assert_eq(lfpool_ret_bulk(P, NULL, 0), 0);
    cr_assert_eq(lfpool_get_bulk(P, NULL, 1, 0), EINVAL);
    cr_assert_eq(lfpool_get_bulk(NULL, hs, 1, 0), EINVAL);
    cr_assert_eq(lfpool_get_bulk(P, hs, 1, -2.0), EINVAL);
    cr_assert_eq(lfpool_get_bulk(P, hs, 1, NAN), EINVAL);
    cr_assert_eq(lfpool_ret_bulk(P, NULL, 1), EINVAL);
    cr_assert_eq(lfpool_ret_bulk(NULL, hs, 1), EINVAL);
    cr_assert_eq(tstats(P).nusing, 0, "bad calls change nothing");
    cr_assert_eq(lfpool_get_bulk(P, hs, 4, LFPOOL_DEFAULT), 0, "n = max_size");
    cr_assert_eq(lfpool_ret_bulk(P, hs, 4), 0);
    cr_assert_eq(lfpool_shutdown(P, 1.0), 0);
    cr_assert_eq(lfpool_get_bulk(P, hs, 2, 0), ESHUTDOWN);
    cr_assert_eq(lfpool_get_bulk(P, hs, 0, 0), ESHUTDOWN, "n = 0 after shutdown");
}

Test(bulk, unbounded_pool_creates)
{
    plain_cfg();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[100];
    cr_assert_eq(lfpool_get_bulk(P, hs, 100, 0), 0);
    all_distinct(hs, 100);
    cr_assert_eq(tstats(P).nusing, 100);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 100), 0);
}

/* A creation failure in the middle: none kept, fun's errno reported. */
Test(bulk, creation_failure_gives_back)
{
    C.max_size = 8;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[8];
    cr_assert_eq(lfpool_get_bulk(P, hs, 2, 0), 0);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 2), 0);
    T.fx.f.fail_next_fun = 1;
    T.fx.f.fun_errno = ECONNREFUSED;
    cr_assert_eq(lfpool_get_bulk(P, hs, 3, 0), ECONNREFUSED);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, 2);
}

/* ret_bulk with stale, foreign and NULL handles mixed in: every valid one
 * is returned, the first error is reported. */
static void mixed_stale(bool hooks)
{
    if (!hooks)
        plain_cfg();
    C.max_size = 8;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[4], mix[7];
    cr_assert_eq(lfpool_get_bulk(P, hs, 4, 0), 0);
    lfpool_handle stale = hs[1];
    cr_assert_eq(lfpool_ret_handle(P, &hs[1]), 0, "hs[1] ended before the bulk return");
    lfpool_handle noobj = hs[0];
    noobj.obj = NULL;
    mix[0] = hs[0];
    mix[1] = stale;    /* ENOENT: the first error */
    mix[2] = hs[2];
    mix[3] = noobj;    /* EINVAL */
    mix[4] = hs[3];
    mix[5] = hs[0];    /* returned twice within the call: ENOENT */
    mix[6] = stale;
    cr_assert_eq(lfpool_ret_bulk(P, mix, 7), ENOENT, "the first failure");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0, "every valid handle was returned");
    cr_assert_eq(s.navail, s.nobjs);
    mix[1] = noobj;
    cr_assert_eq(lfpool_get_bulk(P, hs, 4, 0), 0);
    mix[0] = hs[0];
    mix[2] = hs[1];
    mix[3] = hs[2];
    cr_assert_eq(lfpool_ret_bulk(P, mix, 4), EINVAL, "the first failure, EINVAL this time");
    cr_assert_eq(tstats(P).nusing, 1, "hs[3] was not in the call");
    cr_assert_eq(lfpool_ret_handle(P, &hs[3]), 0);
}

Test(bulk, ret_mixed_stale_with_hooks_and_clock) { mixed_stale(true); }
Test(bulk, ret_mixed_stale_fast_path) { mixed_stale(false); }

/* A DEFER-killed object in a bulk return: ESTALE, closed; the others back. */
Test(bulk, ret_killed_reports_estale)
{
    C.max_using_delay_kill = 5;
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[3];
    cr_assert_eq(lfpool_get_bulk(P, hs, 3, 0), 0);
    tclock_advance(&T, 10);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nkilled, 3);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 3), ESTALE);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(((struct tobj *)hs[i].obj)->closed, 1);
    cr_assert_eq(tstats(P).nusing, 0);
}

/* Threads each taking bulks of 3 from a pool of 8 while a single-get thread
 * competes: no object is ever held twice, nothing is lost. */
#define MT_THREADS 3
#define MT_ROUNDS 300
static _Atomic int mt_errors;
static void *mt_bulk(void *arg)
{
    (void)arg;
    lfpool_handle hs[3];
    for (int r = 0; r < MT_ROUNDS; r++) {
        int rc = lfpool_get_bulk(P, hs, 3, 5.0);
        if (rc) {
            atomic_fetch_add(&mt_errors, 1);
            continue;
        }
        for (int i = 0; i < 3; i++)
            if (atomic_exchange(&((struct tobj *)hs[i].obj)->held, 1) != 0)
                atomic_fetch_add(&mt_errors, 1);
        for (int i = 0; i < 3; i++)
            atomic_store(&((struct tobj *)hs[i].obj)->held, 0);
        if (lfpool_ret_bulk(P, hs, 3) != 0)
            atomic_fetch_add(&mt_errors, 1);
    }
    return NULL;
}
static void *mt_single(void *arg)
{
    (void)arg;
    for (int r = 0; r < MT_ROUNDS; r++) {
        void *o;
        if (lfpool_get(P, &o, 5.0) != 0) {
            atomic_fetch_add(&mt_errors, 1);
            continue;
        }
        if (atomic_exchange(&((struct tobj *)o)->held, 1) != 0)
            atomic_fetch_add(&mt_errors, 1);
        atomic_store(&((struct tobj *)o)->held, 0);
        lfpool_ret(P, o);
    }
    return NULL;
}

Test(bulk, threads_never_share, .timeout = 60)
{
    plain_cfg();
    C.max_size = 8;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    atomic_store(&mt_errors, 0);
    pthread_t th[MT_THREADS + 1];
    for (int i = 0; i < MT_THREADS; i++)
        pthread_create(&th[i], NULL, mt_bulk, NULL);
    pthread_create(&th[MT_THREADS], NULL, mt_single, NULL);
    for (int i = 0; i <= MT_THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&mt_errors), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_leq(s.nobjs, 8);
    cr_assert_eq(s.nuses, (uint64_t)MT_THREADS * MT_ROUNDS * 3 + MT_ROUNDS);
}

/* Runtime control: a paused pool holds bulk gets too (also from this CPU's
 * cache), a bulk get waiting through the pause completes after the resume,
 * and n is checked against the max_size in force. */
struct resume_later {
    lfpool *p;
};
static void *resume_later(void *arg)
{
    usleep(30000);
    lfpool_resume(((struct resume_later *)arg)->p);
    return NULL;
}

static void pause_and_resize(bool hooks)
{
    if (!hooks)
        plain_cfg();
    C.max_size = 8;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[8];
    cr_assert_eq(lfpool_get_bulk(P, hs, 4, 0), 0);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 4), 0); /* in this CPU's cache, where there is one */
    cr_assert_eq(lfpool_pause(P), 0);
    cr_assert_eq(lfpool_get_bulk(P, hs, 2, 0), EAGAIN, "paused: nothing handed out");
    cr_assert_eq(lfpool_get_bulk(P, hs, 2, 0.02), ETIMEDOUT);
    cr_assert_eq(tstats(P).nusing, 0);
    struct resume_later r = {.p = P};
    pthread_t th;
    pthread_create(&th, NULL, resume_later, &r);
    cr_assert_eq(lfpool_get_bulk(P, hs, 4, 5.0), 0, "served once resumed");
    pthread_join(th, NULL);
    all_distinct(hs, 4);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 4), 0);
    cr_assert_eq(lfpool_set_size(P, 0, 3), 0);
    cr_assert_eq(lfpool_get_bulk(P, hs, 4, 0), EINVAL, "more than the max_size in force");
    cr_assert_eq(lfpool_get_bulk(P, hs, 3, 1.0), 0);
    cr_assert_leq(tstats(P).nobjs, 3);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 3), 0);
}

Test(bulk, pause_and_resize_with_hooks_and_clock, .timeout = 30) { pause_and_resize(true); }
Test(bulk, pause_and_resize_fast_path, .timeout = 30) { pause_and_resize(false); }

/* ---- runs through the per-CPU caches, owned hand-outs (DESIGN §4.2) */

/* A bulk ret leaves its run in this CPU's cache and the next bulk get takes
 * it back: every object's bookkeeping is kept on that path - each use is
 * counted on its object (max_use 2 wears all 32 out at the second return,
 * none at the first), and nothing is created anew. */
Test(bulk, run_keeps_each_objects_uses)
{
    plain_cfg();
    C.max_size = 64;
    C.min_size = 0;
    C.max_use = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[32];
    cr_assert_eq(lfpool_get_bulk(P, hs, 32, 0), 0);
    all_distinct(hs, 32);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 32), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 32);
    cr_assert_eq(s.nwornout, 0, "one use each: none worn out");
    cr_assert_eq(s.navail, 32);
    cr_assert_eq(lfpool_get_bulk(P, hs, 32, 0), 0);
    all_distinct(hs, 32);
    cr_assert_eq(tstats(P).ncreated, 32, "the same 32 again");
    cr_assert_eq(lfpool_ret_bulk(P, hs, 32), 0);
    s = tstats(P);
    cr_assert_eq(s.nwornout, 32, "two uses each: every one worn out");
    cr_assert_eq(s.nuses, 64);
    cr_assert_eq(s.nusing, 0);
}

/* Runs of every length mod 8 through this CPU's cache: the runs' copies
 * (percpu.h) move an odd first record alone, then a pair, then four, then
 * eight a step (runs up to 20: every remainder mod 8, and two steps).
 * A bulk ret leaves each run on the cache, the next bulk get takes it back
 * (the whole pool: the set is exactly these objects): all distinct, every
 * one of the pool's, no creation, every use counted. */
Test(bulk, runs_of_every_length)
{
    plain_cfg();
    C.max_size = 40; /* a run of up to 20 stays in one CPU's cache */
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[20];
    uint64_t uses = 0;
    for (size_t n = 1; n <= 20; n++) {
        for (int round = 0; round < 2; round++) {
            cr_assert_eq(lfpool_get_bulk(P, hs, n, 0), 0, "n %zu", n);
            all_distinct(hs, n);
            uses += n;
            struct lfpool_stats s = tstats(P);
            cr_assert_eq(s.nusing, n);
            cr_assert_eq(s.ncreated, n, "one created for each longer run");
            cr_assert_eq(s.nuses, uses);
            cr_assert_eq(lfpool_ret_bulk(P, hs, n), 0);
        }
    }
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 20, "the largest run's objects, created once");
    cr_assert_eq(s.navail, 20);
    cr_assert_eq(s.nusing, 0);
}

/* More objects than a CPU's cache holds (62 slots, and a run stops at half
 * a bounded pool): the rest goes through the shared stack both ways, all n
 * or none still, the counts exact. */
static void larger_than_cache(size_t max_size, size_t n)
{
    plain_cfg();
    C.max_size = max_size;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle *hs = calloc(n, sizeof *hs);
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(lfpool_get_bulk(P, hs, n, 0), 0, "round %d", round);
        all_distinct(hs, n);
        struct lfpool_stats s = tstats(P);
        cr_assert_eq(s.nusing, n);
        cr_assert_eq(s.ncreated, n, "created once, then taken back from the set");
        cr_assert_eq(s.nuses, (uint64_t)(round + 1) * n);
        cr_assert_eq(lfpool_ret_bulk(P, hs, n), 0);
        s = tstats(P);
        cr_assert_eq(s.nusing, 0);
        cr_assert_eq(s.navail, s.nobjs);
    }
    if (max_size) { /* one more than the pool has: none, and all still there */
        lfpool_handle more[1];
        cr_assert_eq(lfpool_get_bulk(P, more, 1, 0), 0);
        cr_assert_eq(lfpool_get_bulk(P, hs, n, 0), EAGAIN);
        cr_assert_eq(tstats(P).nusing, 1);
        cr_assert_eq(lfpool_ret_bulk(P, more, 1), 0);
        cr_assert_eq(lfpool_get_bulk(P, hs, n, 0), 0);
        cr_assert_eq(lfpool_ret_bulk(P, hs, n), 0);
    }
    free(hs);
}
Test(bulk, larger_than_cache_unbounded) { larger_than_cache(0, 150); }
Test(bulk, larger_than_cache_bounded) { larger_than_cache(100, 100); }

/* A get parked at max_size is woken by a bulk return of `back` of the
 * `max` objects out: the wake after the run's push, once per record put,
 * while a waiter is seen.  With back <= half of max (bulk_cap) the whole
 * run goes into this CPU's cache, nothing to the shared stack (whose push
 * signals a waiter itself), so without that wake the waiter, which waits
 * without limit and parked after its look, would never return and the
 * test would time out.  The long run (more than a cache's slots: the
 * chunked path) overflows to the stack after its first chunk. */
struct parked_get {
    lfpool *p;
    int rc;
    void *o;
};
static void *parked_get(void *arg)
{
    struct parked_get *g = arg;
    g->rc = lfpool_get(g->p, &g->o, LFPOOL_FOREVER);
    return NULL;
}
static void wakes_parked(size_t max, size_t back)
{
    plain_cfg();
    C.max_size = max;
    C.min_size = 0;
    /* a budget of fences: the waiter's flush leaves the caches open (by
     * default a waiter closes them, and a run then goes to the stack) */
    C.max_fences = LFPOOL_FENCES_BUDGET;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle *hs = calloc(max, sizeof *hs);
    cr_assert_eq(lfpool_get_bulk(P, hs, max, 0), 0, "the whole pool");
    struct parked_get g = {.p = P};
    pthread_t th;
    pthread_create(&th, NULL, parked_get, &g);
    while (tstats(P).waiting < 1)
        usleep(1000);
    usleep(20000); /* past its look: parked */
    cr_assert_eq(lfpool_ret_bulk(P, hs, back), 0);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0);
    bool ours = false;
    for (size_t i = 0; i < back; i++)
        ours = ours || hs[i].obj == g.o;
    cr_assert(ours, "one of the returned objects");
    cr_assert_eq(lfpool_ret(P, g.o), 0);
    cr_assert_eq(lfpool_ret_bulk(P, hs + back, max - back), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs);
    free(hs);
}
Test(bulk, ret_wakes_parked_get, .timeout = 30) { wakes_parked(16, 8); }
Test(bulk, ret_wakes_parked_get_long_run, .timeout = 30) { wakes_parked(200, 100); }

/* Handles from a bulk get name the thread that got them.  Their owner ends
 * them with the biased commit - through lfpool_ret_bulk and one by one
 * through lfpool_ret_handle - with no fence; another thread's return of
 * one fences first (bias.c), and works through either call. */
struct foreign_ret {
    lfpool_handle *hs;
    size_t n;
    int rc_bulk, rc_single;
};
static void *foreign_ret(void *arg)
{
    struct foreign_ret *f = arg;
    f->rc_bulk = lfpool_ret_bulk(P, f->hs, f->n - 1);
    f->rc_single = lfpool_ret_handle(P, &f->hs[f->n - 1]);
    return NULL;
}
Test(bulk, owned_handles)
{
    plain_cfg();
    C.max_size = 64;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[16], copy[16];
    cr_assert_eq(lfpool_get_bulk(P, hs, 16, 0), 0);
    memcpy(copy, hs, sizeof hs);
    struct lfpool_stats s0 = tstats(P);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 8), 0);
    for (int i = 8; i < 16; i++)
        cr_assert_eq(lfpool_ret_handle(P, &hs[i]), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.nbias_fences, s0.nbias_fences, "the owner's returns do not fence");
    /* stale copies: refused, nothing returned twice */
    cr_assert_eq(lfpool_ret_bulk(P, copy, 16), ENOENT);
    cr_assert_eq(lfpool_ret_handle(P, &copy[3]), ENOENT);
    cr_assert_eq(tstats(P).navail, tstats(P).nobjs);

    /* another thread returns them */
    cr_assert_eq(lfpool_get_bulk(P, hs, 16, 0), 0);
    all_distinct(hs, 16);
    s0 = tstats(P);
    struct foreign_ret f = {.hs = hs, .n = 16};
    pthread_t th;
    pthread_create(&th, NULL, foreign_ret, &f);
    pthread_join(th, NULL);
    cr_assert_eq(f.rc_bulk, 0);
    cr_assert_eq(f.rc_single, 0);
    s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.nuses, 32);
    if (s0.ret_biased) /* a foreign return of an owned hand-out fenced */
        cr_assert_gt(s.nbias_fences, s0.nbias_fences);
    /* and the owner's copies are stale now */
    cr_assert_eq(lfpool_ret_bulk(P, hs, 16), ENOENT);
    cr_assert_eq(tstats(P).navail, tstats(P).nobjs);
}

/* Bulk and single gets and returns at once, bulks of more than a cache's
 * single-op slots, some bulk hand-outs returned by another thread (a
 * mailbox) and stale copies returned again: no object held twice, every
 * use counted once, nothing lost. */
#define MIX_ROUNDS 400
static _Atomic int mix_errors;
static _Atomic long mix_gets;
static _Atomic(lfpool_handle *) mix_box;
static void mix_hold(void *o)
{
    if (atomic_exchange(&((struct tobj *)o)->held, 1) != 0)
        atomic_fetch_add(&mix_errors, 1);
}
static void mix_release(void *o)
{
    if (atomic_exchange(&((struct tobj *)o)->held, 0) != 1)
        atomic_fetch_add(&mix_errors, 1);
}
static void mix_return_boxed(void)
{
    lfpool_handle *b = atomic_exchange(&mix_box, NULL);
    if (!b)
        return;
    mix_release(b->obj);
    if (lfpool_ret_handle(P, b) != 0)
        atomic_fetch_add(&mix_errors, 1);
    free(b);
}
static void *mix_bulk(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    lfpool_handle hs[24];
    for (int r = 0; r < MIX_ROUNDS; r++) {
        size_t n = 1 + (size_t)rand_r(&seed) % 24;
        if (lfpool_get_bulk(P, hs, n, 5.0) != 0) {
            atomic_fetch_add(&mix_errors, 1);
            continue;
        }
        atomic_fetch_add(&mix_gets, (long)n);
        for (size_t i = 0; i < n; i++)
            mix_hold(hs[i].obj);
        size_t back = n;
        if (n > 1 && rand_r(&seed) % 4 == 0) { /* one for another thread to return */
            lfpool_handle *b = malloc(sizeof *b);
            *b = hs[--back];
            b = atomic_exchange(&mix_box, b);
            if (b) {
                mix_release(b->obj);
                if (lfpool_ret_handle(P, b) != 0)
                    atomic_fetch_add(&mix_errors, 1);
                free(b);
            }
        }
        for (size_t i = 0; i < back; i++)
            mix_release(hs[i].obj);
        if (lfpool_ret_bulk(P, hs, back) != 0)
            atomic_fetch_add(&mix_errors, 1);
        if (rand_r(&seed) % 8 == 0 && lfpool_ret_bulk(P, hs, back) != ENOENT)
            atomic_fetch_add(&mix_errors, 1); /* a stale copy must be refused */
    }
    return NULL;
}
static void *mix_single(void *arg)
{
    (void)arg;
    for (int r = 0; r < 4 * MIX_ROUNDS; r++) {
        void *o;
        if (lfpool_get(P, &o, 5.0) != 0) {
            atomic_fetch_add(&mix_errors, 1);
            continue;
        }
        atomic_fetch_add(&mix_gets, 1);
        mix_hold(o);
        mix_release(o);
        if (lfpool_ret(P, o) != 0)
            atomic_fetch_add(&mix_errors, 1);
        if (r % 16 == 0)
            mix_return_boxed();
    }
    return NULL;
}
static void bulk_and_single(size_t max_size)
{
    plain_cfg();
    C.max_size = max_size;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    atomic_store(&mix_errors, 0);
    atomic_store(&mix_gets, 0);
    pthread_t th[4];
    pthread_create(&th[0], NULL, mix_bulk, (void *)1);
    pthread_create(&th[1], NULL, mix_bulk, (void *)2);
    pthread_create(&th[2], NULL, mix_single, NULL);
    pthread_create(&th[3], NULL, mix_single, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    mix_return_boxed();
    cr_assert_eq(atomic_load(&mix_errors), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.nuses, (uint64_t)atomic_load(&mix_gets), "every use counted once");
    cr_assert_eq(s.navail, s.nobjs, "nothing lost");
    if (max_size)
        cr_assert_leq(s.nobjs, max_size);
}
Test(bulk, bulk_and_single_bounded, .timeout = 60) { bulk_and_single(64); }
Test(bulk, bulk_and_single_unbounded, .timeout = 60) { bulk_and_single(0); }
