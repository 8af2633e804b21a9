/* unit_bias.c - the biased return (src/bias.c): the thread that got an
 * object returns it without a locked instruction while nobody else
 * touches hand-outs; a return from another thread or a kill fences once
 * and turns that off; quiet housekeeping rounds turn it back on.  And the
 * races the CAS used to decide: an owner's return against a second return
 * from another thread, and against a kill - exactly one of them wins. */
#include "helpers.h"

#include <criterion/criterion.h>

/* no hooks around get/ret (they take the careful path), no injected clock
 * unless a test sets one, and no housekeeping rounds but the test's own */
LFPOOL_TEST_FIXTURE(bias, (C.getter = NULL, C.retter = NULL, C.clock = NULL, C.delay = 1000));

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* Biased returns are possible here: rseq (trseq_here), and not
 * ThreadSanitizer (which cannot see their commit store). */
static bool bias_here(void)
{
#if defined(UNDER_TSAN)
    return false;
#else
    return trseq_here();
#endif
}

struct other {
    lfpool *p;
    void *obj;
    lfpool_handle h;
    int rc;
};

static void *ret_other(void *arg)
{
    struct other *o = arg;
    o->rc = lfpool_ret(o->p, o->obj);
    return NULL;
}

static void *ret_handle_other(void *arg)
{
    struct other *o = arg;
    o->rc = lfpool_ret_handle(o->p, &o->h);
    return NULL;
}

static int in_thread(void *(*fn)(void *), struct other *o)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, o), 0);
    pthread_join(t, NULL);
    return o->rc;
}

Test(bias, on_where_rseq_is)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ret_biased, bias_here());
    cr_assert_eq(s.nbias_fences, 0);
    void *o;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(tget_ret_n(P, &o, 1), 0);
    cr_assert_eq(tstats(P).ret_biased, bias_here(), "own returns keep it");
    cr_assert_eq(tstats(P).nbias_fences, 0);
}

Test(bias, another_threads_return_fences_once_quiet_rounds_restore)
{
    if (!bias_here())
        cr_skip_test("no biased returns here");
    cr_assert_eq(lfpool_new(&P, &C), 0);
    /* one object at a time: a thread's return hints are a small
     * direct-mapped table, and a return whose hint was evicted cannot show
     * it is the getter's (it fences, like one from another thread) */
    void *o[1];
    for (int i = 0; i < 100; i++)
        cr_assert_eq(tget_ret_n(P, o, 1), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert(s.ret_biased);
    cr_assert_eq(s.nbias_fences, 0, "the getter's own returns never fence");

    struct other x = {.p = P};
    cr_assert_eq(lfpool_get(P, &x.obj, 0), 0);
    cr_assert_eq(in_thread(ret_other, &x), 0, "a return from another thread is accepted");
    s = tstats(P);
    cr_assert(!s.ret_biased, "a return from another thread ends the stretch");
    cr_assert_eq(s.nbias_fences, 1);
    cr_assert_eq(s.nusing, 0);

    /* while fenced, more of them cost no fence; own returns CAS */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(lfpool_get(P, &x.obj, 0), 0);
        cr_assert_eq(in_thread(ret_other, &x), 0);
    }
    cr_assert_eq(tget_ret_n(P, o, 1), 0);
    s = tstats(P);
    cr_assert(!s.ret_biased);
    cr_assert_eq(s.nbias_fences, 1, "one fence per stretch");

    /* the round that saw them keeps it fenced; the next quiet one restores */
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(!tstats(P).ret_biased, "returns from other threads in the last round");
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(tstats(P).ret_biased, "a quiet round restores biased returns");

    /* a second return of a returned object is refused without a fence */
    cr_assert_eq(in_thread(ret_other, &x), ENOENT);
    s = tstats(P);
    cr_assert(s.ret_biased);
    cr_assert_eq(s.nbias_fences, 1);
    cr_assert_eq(s.navail, s.nobjs);
}

/* A handle's hand-out has no owner: its returns CAS, from any thread, and
 * never need a fence (also when the get created the object, the slow path
 * that leaves a return hint for lfpool_get). */
Test(bias, handles_have_no_owner)
{
    if (!bias_here())
        cr_skip_test("no biased returns here");
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct other x = {.p = P};
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(lfpool_get_handle(P, &x.h, 0), 0);
        cr_assert_eq(in_thread(ret_handle_other, &x), 0);
        cr_assert_eq(lfpool_ret_handle(P, &x.h), ENOENT, "a handle ends its hand-out once");
    }
    struct lfpool_stats s = tstats(P);
    cr_assert(s.ret_biased);
    cr_assert_eq(s.nbias_fences, 0);
    cr_assert_eq(s.ncreated, 1);

    /* the slow path's hint is dropped: a plain ret of a handle's object by
     * its getter is not an owner's (it fences), and ends it once */
    lfpool_handle h2;
    cr_assert_eq(lfpool_get_handle(P, &x.h, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), 0, "creates: the slow path");
    cr_assert_eq(tstats(P).ncreated, 2);
    cr_assert_eq(lfpool_ret(P, h2.obj), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h2), ENOENT);
    cr_assert_eq(tstats(P).nbias_fences, 1);
    cr_assert_eq(lfpool_ret_handle(P, &x.h), 0);
}

/* ---- races: the getter's return against another return or a kill */

struct race {
    lfpool *p;
    void *obj;
    _Atomic int go, done, stop;
    int rc;
    bool housekeep; /* the other side runs a round instead of a ret */
};

static void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

/* A spin of 0..range-1 steps, varied per iteration, so that either side
 * of a race comes first in some of them. */
static unsigned jitter(unsigned i, unsigned range)
{
    return (unsigned)(((uint64_t)i * 2654435761u) >> 7) % range;
}

static void *race_other(void *arg)
{
    struct race *r = arg;
    for (int round = 1;; round++) {
        while (atomic_load(&r->go) < round && !atomic_load(&r->stop))
            ;
        if (atomic_load(&r->stop))
            return NULL;
        r->rc = r->housekeep ? lfpool_housekeep(r->p) : lfpool_ret(r->p, r->obj);
        atomic_store(&r->done, round);
    }
}

/* Without biased returns (no rseq, valgrind) these are CAS-against-CAS
 * races, which stress.c covers: fewer rounds. */
static unsigned iterations(void)
{
    return bias_here() ? 5000 : 500;
}

Test(bias, a_second_return_from_another_thread_loses_or_wins_alone, .timeout = 120)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct race r = {.p = P};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_other, &r), 0);
    unsigned n = iterations(), mine = 0, theirs = 0;
    for (unsigned i = 1; i <= n; i++) {
        cr_assert_eq(lfpool_get(P, &r.obj, 0), 0);
        atomic_store(&r.go, (int)i);
        spin(jitter(i, 1500)); /* the other side's careful ret is a lookup away */
        int rc = lfpool_ret(P, r.obj);
        while (atomic_load(&r.done) < (int)i)
            ;
        cr_assert((rc == 0) != (r.rc == 0), "iteration %u: exactly one return wins (%d, %d)", i,
                  rc, r.rc);
        cr_assert(rc == 0 || rc == ENOENT);
        cr_assert(r.rc == 0 || r.rc == ENOENT);
        mine += rc == 0;
        theirs += r.rc == 0;
        if (i % 2 == 0) { /* back to BIASED now and then: a quiet round, twice */
            lfpool_housekeep(P);
            lfpool_housekeep(P);
        }
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.nobjs, s.navail, "nothing lost");
    /* every object is in the pool once: take them all, all distinct */
    void *all[64];
    size_t k = s.navail;
    cr_assert_leq(k, 64);
    for (size_t i = 0; i < k; i++) {
        cr_assert_eq(lfpool_get(P, &all[i], 0), 0);
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(all[i], all[j], "an object was in the pool twice");
    }
    cr_assert_eq(tstats(P).ncreated, s.ncreated, "none created: all were available");
    for (size_t i = 0; i < k; i++)
        cr_assert_eq(lfpool_ret(P, all[i]), 0);
    if (bias_here())
        cr_assert_gt(s.nbias_fences, 0, "the other thread met biased hand-outs");
    cr_log_info("getter won %u, other thread %u, fences %llu", mine, theirs,
                (unsigned long long)s.nbias_fences);
}

static void advance(double sec)
{
    tclock_advance(&T, sec);
}

/* With the injected clock ret's careful path makes the owner's commit too
 * (handout.c), so the kill's fence meets it. */
Test(bias, a_kill_and_the_getters_return_exactly_one_wins, .timeout = 120)
{
    C.clock = lfx_clock_fn;
    C.max_using_delay_kill = 10;
    C.kill_mode = LFPOOL_KILL_DEFER;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct race r = {.p = P, .housekeep = true};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_other, &r), 0);
    /* each kill creates an object: T.objs holds 4096 */
    unsigned n = bias_here() ? 3000 : 300, kills = 0, rets = 0;
    for (unsigned i = 1; i <= n; i++) {
        void *obj;
        cr_assert_eq(lfpool_get(P, &obj, 0), 0);
        uint64_t killed = tstats(P).nkilled;
        advance(11);
        atomic_store(&r.go, (int)i);
        spin(jitter(i, 100000)); /* the kill is a flush (a membarrier) away */
        int rc = lfpool_ret(P, obj);
        while (atomic_load(&r.done) < (int)i)
            ;
        cr_assert_eq(r.rc, 0);
        bool was_killed = tstats(P).nkilled == killed + 1;
        cr_assert_leq(tstats(P).nkilled, killed + 1);
        if (was_killed)
            cr_assert_eq(rc, ESTALE, "iteration %u: killed, and its return was accepted", i);
        else
            cr_assert_eq(rc, 0, "iteration %u: not killed, and its return was refused (%d)", i,
                         rc);
        kills += was_killed;
        rets += !was_killed;
        lfpool_housekeep(P); /* a quiet round now and then: BIASED again */
        lfpool_housekeep(P);
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(s.nkilled, kills);
    cr_assert_eq((uint64_t)atomic_load(&T.fx.n.closed) + s.nobjs, s.ncreated,
                 "every object closed once or still in the pool");
    cr_assert_leq(atomic_load(&T.nobjs), 4096);
    for (int i = 0; i < atomic_load(&T.nobjs); i++)
        cr_assert_leq(atomic_load(&T.objs[i]->closed), 1, "closed twice");
    cr_log_info("killed %u, returned first %u, fences %llu", kills, rets,
                (unsigned long long)s.nbias_fences);
}
