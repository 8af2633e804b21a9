/* unit_gate.c - regression tests of the capacity gate (src/gate.c): the
 * FIFO of parked gets, the bounded number of grants in flight, records
 * handed over with a grant, timeouts and shutdown racing all of these.
 *
 * Waits use real time (a missed wake-up only ends at a waiter's timeout),
 * so every check below is a liveness bound or an exact count, never a
 * speed figure. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <time.h>

LFPOOL_TEST_FIXTURE(gate, (C.getter = NULL, C.retter = NULL));

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

/* More sleepers than grants may be in flight (8 on 2 CPUs): a burst of
 * returns must reach every one of them through the passing-on of grants. */
Test(gate, burst_wider_than_the_grants_in_flight, .timeout = 120)
{
    enum { N = 40 };
    C.max_size = N;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int round = 0; round < 20; round++)
        tburst_round(P, N, round, round % 6 == 5 ? 30000 : (unsigned)(round % 5) * 50);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nobjs, N);
    cr_assert_eq(s.navail, N);
}

/* P3's shape: many threads, two objects, a short hold.  Every thread must
 * finish its quota (a get that waits 5 s means a lost wake-up), no object
 * may be held twice, and at the end both objects are back. */
struct crowd {
    lfpool *p;
    int quota;
    double timeout;
    unsigned hold, nap; /* nap: µs held on every 16th pair (0: never) */
    _Atomic int doubles, errors, timeouts, short_timeouts, done, ok;
};

static void *crowd_worker(void *arg)
{
    struct crowd *c = arg;
    for (int i = 0; i < c->quota; i++) {
        void *o;
        double t0 = mono();
        int r = lfpool_get(c->p, &o, c->timeout);
        if (r == ETIMEDOUT) {
            atomic_fetch_add(&c->timeouts, 1);
            if (mono() - t0 < c->timeout * 0.999)
                atomic_fetch_add(&c->short_timeouts, 1);
            continue;
        }
        if (r) {
            atomic_fetch_add(&c->errors, 1);
            continue;
        }
        struct tobj *to = o;
        if (atomic_exchange(&to->held, 1))
            atomic_fetch_add(&c->doubles, 1);
        spin(c->hold);
        if (c->nap && i % 16 == 0)
            usleep(c->nap); /* long holds: gets behind them time out */
        atomic_store(&to->held, 0);
        if (lfpool_ret(c->p, o))
            atomic_fetch_add(&c->errors, 1);
        atomic_fetch_add(&c->ok, 1);
    }
    atomic_fetch_add(&c->done, 1);
    return NULL;
}

static void run_crowd(struct crowd *c, int nthreads)
{
    pthread_t th[64];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, crowd_worker, c);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&c->done), nthreads);
    cr_assert_eq(atomic_load(&c->doubles), 0, "an object was handed to two holders");
    cr_assert_eq(atomic_load(&c->errors), 0);
    cr_assert_eq(atomic_load(&c->short_timeouts), 0, "a get gave up before its timeout");
}

/* after a crowd: no record lost in a parked get's hands, no token leaked */
static void assert_all_back(size_t max_size)
{
    struct lfpool_stats s = tstats(P);
    cr_assert_leq(s.nobjs, max_size);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs);
    void *o[8];
    for (size_t i = 0; i < max_size; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0, "object %zu of %zu cannot be had", i, max_size);
    for (size_t i = 0; i < max_size; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
}

Test(gate, crowd_on_two_objects_everyone_finishes, .timeout = 240)
{
    C.max_size = 2;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct crowd c = {.p = P, .quota = 3000, .timeout = 5.0, .hold = 50};
    run_crowd(&c, 32);
    cr_assert_eq(atomic_load(&c.timeouts), 0, "a wake-up was lost");
    cr_assert_eq(atomic_load(&c.ok), 32 * 3000);
    assert_all_back(2);
    struct lfpool_stats s = tstats(P);
    cr_assert_leq(s.ncreated, 2);
}

/* Short timeouts racing grants and hand-overs: a get that times out just
 * as a record is handed to it must publish that record again. */
Test(gate, timeouts_racing_grants_lose_nothing, .timeout = 240)
{
    C.max_size = 2;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int k = 0; k < 3; k++) {
        struct crowd c = {
            .p = P, .quota = 1000, .timeout = 0.0002 * (k + 1), .hold = 3000, .nap = 1000};
        run_crowd(&c, 24);
        cr_assert_gt(atomic_load(&c.timeouts), 0, "the case must make gets time out");
        cr_assert_gt(atomic_load(&c.ok), 0);
        assert_all_back(2);
    }
}

/* Shutdown while a crowd is parked and records are being handed over: every
 * thread leaves (with ESHUTDOWN once the pool is down), nothing hangs. */
struct down {
    lfpool *p;
    _Atomic int stop, after, left, got_after;
};

static void *down_worker(void *arg)
{
    struct down *d = arg;
    for (;;) {
        void *o;
        bool was_down = atomic_load(&d->after);
        int r = lfpool_get(d->p, &o, LFPOOL_FOREVER);
        if (r == ESHUTDOWN)
            break;
        if (r == 0) {
            if (was_down)
                atomic_fetch_add(&d->got_after, 1);
            spin(200);
            lfpool_ret(d->p, o);
        }
    }
    atomic_fetch_add(&d->left, 1);
    return NULL;
}

Test(gate, shutdown_releases_a_parked_crowd, .timeout = 120)
{
    for (int round = 0; round < 10; round++) {
        C.max_size = 2;
        C.min_size = 0;
        cr_assert_eq(lfpool_new(&P, &C), 0);
        struct down d = {.p = P};
        pthread_t th[24];
        for (int i = 0; i < 24; i++)
            pthread_create(&th[i], NULL, down_worker, &d);
        usleep(2000 + 1000 * round);
        cr_assert_eq(lfpool_shutdown(P, 1.0), 0);
        atomic_store(&d.after, 1);
        for (int i = 0; i < 24; i++)
            pthread_join(th[i], NULL);
        cr_assert_eq(atomic_load(&d.left), 24);
        cr_assert_eq(atomic_load(&d.got_after), 0, "a get begun after shutdown got an object");
        lfpool_free(P);
        P = NULL;
        cr_assert_eq(atomic_load(&T.fx.n.closed), atomic_load(&T.fx.n.created),
                     "round %d: closer not run exactly once per object", round);
        tctx_free_objs(&T);
        tctx_init(&T);
        tcfg(&C, &T);
        C.getter = NULL;
        C.retter = NULL;
    }
}

/* Regression: a waiter whose look reserves a unit must leave the FIFO
 * before `fun` runs.  W is granted capacity and blocks in `fun`; a second
 * unit freed meanwhile must reach W2, not W's node (W2 would sleep to its
 * timeout, or, had `fun` got from the same pool, W would wait on itself). */
static _Atomic int slow_calls, slow_block = -1, slow_released;

static void *slow_fun(void *ctx, uint64_t n)
{
    if (atomic_fetch_add(&slow_calls, 1) == atomic_load(&slow_block))
        for (int i = 0; i < 10000 && !atomic_load(&slow_released); i++)
            usleep(1000);
    return tfun(ctx, n);
}

Test(gate, a_creating_waiter_holds_no_grant, .timeout = 60)
{
    C.max_size = 2;
    C.min_size = 0;
    C.max_use = 1; /* every ret wears its object out: frees a unit, no object */
    C.fun = slow_fun;
    atomic_store(&slow_calls, 0);
    atomic_store(&slow_block, 2); /* W's creation */
    atomic_store(&slow_released, 0);
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    struct tburst w = {.p = P}, w2 = {.p = P};
    pthread_t tw, tw2;
    pthread_create(&tw, NULL, tburst_get, &w); /* 5 s timeout */
    while (!atomic_load(&w.entered))
        sched_yield();
    usleep(50000); /* W parked */
    pthread_create(&tw2, NULL, tburst_get, &w2);
    usleep(50000); /* W2 parked behind it */
    cr_assert_eq(lfpool_ret(P, a), 0); /* worn out: W creates, blocked in fun */
    while (atomic_load(&slow_calls) < 3)
        usleep(1000);
    usleep(20000);
    double t0 = mono();
    cr_assert_eq(lfpool_ret(P, b), 0); /* worn out: a unit for W2 */
    void *got2;
    pthread_join(tw2, &got2);
    cr_assert_eq(atomic_load(&w2.got), 1, "W2 slept while W's creation held the grant");
    cr_assert_lt(mono() - t0, 2.5);
    atomic_store(&slow_released, 1);
    void *got;
    pthread_join(tw, &got);
    cr_assert_eq(atomic_load(&w.got), 1);
    cr_assert_eq(lfpool_ret(P, got), 0);
    cr_assert_eq(lfpool_ret(P, got2), 0);
}
