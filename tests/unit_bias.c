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

/* After returns from other threads: the stretch they ended is fenced, one
 * fence for all of them; the round that saw them keeps it fenced, the next
 * quiet one restores biased returns. */
static void stretch_fenced_once_then_restored(void)
{
    struct lfpool_stats s = tstats(P);
    cr_assert(!s.ret_biased);
    cr_assert_eq(s.nbias_fences, 1, "one fence per stretch");
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(!tstats(P).ret_biased, "returns from other threads in the last round");
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(tstats(P).ret_biased, "a quiet round restores biased returns");
}

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
    stretch_fenced_once_then_restored();

    /* a second return of a returned object is refused without a fence */
    cr_assert_eq(in_thread(ret_other, &x), ENOENT);
    s = tstats(P);
    cr_assert(s.ret_biased);
    cr_assert_eq(s.nbias_fences, 1);
    cr_assert_eq(s.navail, s.nobjs);
}

/* A handle names the thread that got it (the fast path's and the slow
 * path's, which creates): that thread's returns never fence; a return of
 * it from another thread fences once and ends the stretch, as a pointer's
 * does; the owner's returns then CAS; quiet rounds restore. */
Test(bias, handles_are_owned_by_their_getter)
{
    if (!bias_here())
        cr_skip_test("no biased returns here");
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h, h2;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
        cr_assert_eq(lfpool_ret_handle(P, &h), 0);
        cr_assert_eq(lfpool_ret_handle(P, &h), ENOENT, "a handle ends its hand-out once");
    }
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), 0, "creates: the slow path");
    cr_assert_eq(tstats(P).ncreated, 2);
    cr_assert_eq(lfpool_ret_handle(P, &h2), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert(s.ret_biased);
    cr_assert_eq(s.nbias_fences, 0, "the getter's own handle returns never fence");

    struct other x = {.p = P};
    cr_assert_eq(lfpool_get_handle(P, &x.h, 0), 0);
    cr_assert_eq(in_thread(ret_handle_other, &x), 0, "a return from another thread is accepted");
    s = tstats(P);
    cr_assert(!s.ret_biased, "a return of another thread's handle ends the stretch");
    cr_assert_eq(s.nbias_fences, 1);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(lfpool_ret_handle(P, &x.h), ENOENT, "the owner's copy is refused");

    /* while fenced, more of them cost no fence; the owner's returns CAS */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(lfpool_get_handle(P, &x.h, 0), 0);
        cr_assert_eq(in_thread(ret_handle_other, &x), 0);
        cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
        cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    }
    stretch_fenced_once_then_restored();

    /* a stale copy, from another thread or the owner, is refused without
     * a fence, and leaves the current hand-out of its record alone */
    cr_assert_eq(in_thread(ret_handle_other, &x), ENOENT);
    lfpool_handle now;
    cr_assert_eq(lfpool_get_handle(P, &now, 0), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h), ENOENT);
    x.h = h;
    cr_assert_eq(in_thread(ret_handle_other, &x), ENOENT);
    s = tstats(P);
    cr_assert(s.ret_biased);
    cr_assert_eq(s.nbias_fences, 1);
    cr_assert_eq(s.nusing, 1);
    cr_assert_eq(lfpool_ret_handle(P, &now), 0);

    /* the slow path's hint is dropped: a plain ret of a handle's object by
     * its getter is not an owner's (it fences), and ends it once */
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), 0);
    cr_assert_eq(lfpool_ret(P, h2.obj), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h2), ENOENT);
    cr_assert_eq(tstats(P).nbias_fences, 2);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs);
}

/* A thread's broken return of another thread's handle fences (the owner
 * may be returning it with a plain store), destroys it once. */
static void *ret_broken_handle_other(void *arg)
{
    struct other *o = arg;
    o->rc = lfpool_ret_broken_handle(o->p, &o->h);
    return NULL;
}

Test(bias, broken_return_of_another_threads_handle_fences)
{
    if (!bias_here())
        cr_skip_test("no biased returns here");
    cr_assert_eq(lfpool_new(&P, &C), 0);
    /* a thread takes its owner tag on its first return of a handle (or
     * its first get on the slow path): the handles it got before have no
     * owner (their returns CAS from anywhere, with no fence) */
    struct other x = {.p = P};
    cr_assert_eq(lfpool_get_handle(P, &x.h, 0), 0);
    cr_assert_eq(lfpool_ret_handle(P, &x.h), 0);
    cr_assert_eq(lfpool_get_handle(P, &x.h, 0), 0);
    cr_assert_eq(in_thread(ret_broken_handle_other, &x), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nbias_fences, 1);
    cr_assert_eq(s.nbroken, 1);
    cr_assert_eq(lfpool_ret_handle(P, &x.h), ENOENT, "destroyed: the owner's copy is refused");
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(((struct tobj *)x.h.obj)->closed, 1);
    /* the owner's own broken return needs no fence */
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(tstats(P).ret_biased);
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_ret_broken_handle(P, &h), 0);
    cr_assert_eq(tstats(P).nbias_fences, 1);
}

/* ---- races: the getter's return against another return or a kill */

struct race {
    lfpool *p;
    void *obj;
    _Atomic int go, done, stop;
    int rc;
    bool housekeep; /* the other side runs a round instead of a ret */
    bool handles;   /* both sides return a copy of handle h (not obj) */
    lfpool_handle h;
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
        r->rc = r->housekeep  ? lfpool_housekeep(r->p)
                : r->handles ? lfpool_ret_handle(r->p, &r->h)
                             : lfpool_ret(r->p, r->obj);
        atomic_store(&r->done, round);
    }
}

/* Without biased returns (no rseq, valgrind) these are CAS-against-CAS
 * races, which stress.c covers: fewer rounds. */
static unsigned iterations(void)
{
    return bias_here() ? 5000 : 500;
}

/* The getter's return (of a pointer, or of its handle) against a second
 * return from another thread (of the pointer, or of a copy of the
 * handle): exactly one wins, nothing is lost or put back twice. */
static void second_return_race(bool handles)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct race r = {.p = P, .handles = handles};
    /* this thread's tag (its first handle return takes it): its handles
     * name it from now on */
    cr_assert_eq(lfpool_get_handle(P, &r.h, 0), 0);
    cr_assert_eq(lfpool_ret_handle(P, &r.h), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_other, &r), 0);
    unsigned n = handles ? iterations() / 2 : iterations(), mine = 0, theirs = 0;
    for (unsigned i = 1; i <= n; i++) {
        if (handles)
            cr_assert_eq(lfpool_get_handle(P, &r.h, 0), 0);
        else
            cr_assert_eq(lfpool_get(P, &r.obj, 0), 0);
        lfpool_handle own = r.h;
        atomic_store(&r.go, (int)i);
        /* the other side's careful ret is a lookup away; a handle's return
         * from another thread is a fence away (or nothing, while fenced) */
        spin(jitter(i, handles ? 600 : 1500));
        int rc = handles ? lfpool_ret_handle(P, &own) : lfpool_ret(P, r.obj);
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
    cr_log_info("%s: getter won %u, other thread %u, fences %llu", handles ? "handles" : "pointers",
                mine, theirs, (unsigned long long)s.nbias_fences);
}

Test(bias, a_second_return_from_another_thread_loses_or_wins_alone, .timeout = 120)
{
    second_return_race(false);
}

Test(bias, a_handle_returned_by_another_thread_and_its_getter_one_wins, .timeout = 120)
{
    second_return_race(true);
}

static void advance(double sec)
{
    tclock_advance(&T, sec);
}

/* With the injected clock ret's careful path makes the owner's commit too
 * (handout.c), so the kill's fence meets it: the getter's return of its
 * pointer (its hint), or of its handle (which names it). */
static void kill_race(bool handles)
{
    C.clock = lfx_clock_fn;
    C.max_using_delay_kill = 10;
    C.kill_mode = LFPOOL_KILL_DEFER;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct race r = {.p = P, .housekeep = true};
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0); /* this thread's tag */
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_other, &r), 0);
    /* each kill creates an object: T.objs holds 4096 */
    unsigned n = bias_here() ? (handles ? 600 : 3000) : 300, kills = 0, rets = 0;
    for (unsigned i = 1; i <= n; i++) {
        void *obj;
        if (handles) {
            cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
            obj = h.obj;
        } else {
            cr_assert_eq(lfpool_get(P, &obj, 0), 0);
        }
        uint64_t killed = tstats(P).nkilled;
        advance(11);
        atomic_store(&r.go, (int)i);
        spin(jitter(i, 100000)); /* the kill is a flush (a membarrier) away */
        int rc = handles ? lfpool_ret_handle(P, &h) : lfpool_ret(P, obj);
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
    cr_log_info("%s: killed %u, returned first %u, fences %llu", handles ? "handles" : "pointers",
                kills, rets, (unsigned long long)s.nbias_fences);
}

Test(bias, a_kill_and_the_getters_return_exactly_one_wins, .timeout = 120)
{
    kill_race(false);
}

/* The same with the getter's handle (its owner: the biased commit). */
Test(bias, a_kill_and_the_getters_handle_return_exactly_one_wins, .timeout = 120)
{
    kill_race(true);
}

/* ---- many threads: handles got on one thread, returned on another */

#define XT_THREADS 4
#define XT_ROUNDS 200

struct xt {
    lfpool *p;
    _Atomic(lfpool_handle *) box; /* a held handle, for another thread to return */
    _Atomic int errors, double_held, passed, started;
    _Atomic bool stop;
};

static void xt_release(struct xt *x, lfpool_handle *h)
{
    if (atomic_exchange(&((struct tobj *)h->obj)->held, 0) != 1)
        atomic_fetch_add(&x->errors, 1); /* released by a non-holder */
    if (lfpool_ret_handle(x->p, h) != 0)
        atomic_fetch_add(&x->errors, 1);
}

static void *xt_worker(void *arg)
{
    struct xt *x = arg;
    unsigned seed = (unsigned)atomic_fetch_add(&x->started, 1) * 7919u + 1;
    for (unsigned i = 0; !atomic_load(&x->stop); i++) {
        lfpool_handle h;
        int r = lfpool_get_handle(x->p, &h, 5.0);
        if (r != 0) {
            atomic_fetch_add(&x->errors, 1);
            continue;
        }
        if (atomic_exchange(&((struct tobj *)h.obj)->held, 1) != 0)
            atomic_fetch_add(&x->double_held, 1); /* handed to two holders */
        if (rand_r(&seed) % (i % 2048 < 1024 ? 4 : 4096) == 0) {
            /* leave it, still held, for another thread; return what was
             * there (often, then rarely: rounds between passes restore
             * biased returns, and the passes meet them) */
            lfpool_handle *b = malloc(sizeof *b);
            *b = h;
            b = atomic_exchange(&x->box, b);
            if (!b)
                continue;
            h = *b;
            free(b);
            atomic_fetch_add(&x->passed, 1);
        }
        xt_release(x, &h);
        /* a copy of the ended hand-out is refused, whoever holds it now */
        if (rand_r(&seed) % 8 == 0 && lfpool_ret_handle(x->p, &h) != ENOENT)
            atomic_fetch_add(&x->errors, 1);
    }
    return NULL;
}

Test(bias, handles_returned_by_other_threads_while_biased, .timeout = 120)
{
    C.max_size = 8; /* fewer objects than handles in flight: gets wait too */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct xt x = {.p = P};
    pthread_t t[XT_THREADS];
    for (int i = 0; i < XT_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, xt_worker, &x), 0);
    /* rounds bring biased returns back while the workers run */
    unsigned rounds = 0;
    while (atomic_load(&x.started) < XT_THREADS)
        sched_yield();
    unsigned biased = 0;
    for (; rounds < XT_ROUNDS; rounds++) {
        cr_assert_eq(lfpool_housekeep(P), 0);
        biased += tstats(P).ret_biased;
        usleep(1000);
    }
    atomic_store(&x.stop, true);
    for (int i = 0; i < XT_THREADS; i++)
        pthread_join(t[i], NULL);
    lfpool_handle *b = atomic_exchange(&x.box, NULL);
    if (b) {
        xt_release(&x, b);
        free(b);
    }
    cr_assert_eq(atomic_load(&x.errors), 0);
    cr_assert_eq(atomic_load(&x.double_held), 0, "an object was handed to two holders");
    cr_assert_gt(atomic_load(&x.passed), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs, "nothing lost");
    cr_assert_leq(s.nobjs, 8);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 0, "nothing closed");
    cr_assert_eq(s.nbroken, 0);
    /* one fence per stretch: a stretch begins only after a quiet round */
    cr_assert_leq(s.nbias_fences, rounds + 1);
    /* every object is in the pool once: take them all, all distinct */
    lfpool_handle all[8];
    for (size_t i = 0; i < s.navail; i++) {
        cr_assert_eq(lfpool_get_handle(P, &all[i], 0), 0);
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(all[i].obj, all[j].obj, "an object was in the pool twice");
    }
    cr_assert_eq(tstats(P).ncreated, s.ncreated, "none created: all were available");
    for (size_t i = 0; i < s.navail; i++)
        cr_assert_eq(lfpool_ret_handle(P, &all[i]), 0);
    if (bias_here())
        cr_assert_gt(s.nbias_fences, 0, "the passes met biased hand-outs");
    cr_log_info("passed %d, rounds %u (biased after %u), fences %llu", atomic_load(&x.passed),
                rounds, biased, (unsigned long long)s.nbias_fences);
}
