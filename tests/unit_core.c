/* unit_core.c - §3.1 creation and §3.2 get/ret, bounded waits. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

LFPOOL_TEST_FIXTURE(core, (void)0);


Test(core, min_size_fill_with_creation_numbers)
{
    C.min_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 3);
    cr_assert_eq(s.navail, 3);
    cr_assert_eq(s.nobjs, 3);
    cr_assert_eq(atomic_load(&T.fx.n.opened), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(T.seen_n[i], (uint64_t)i, "call %d got n=%llu", i, (unsigned long long)T.seen_n[i]);
}

Test(core, creation_number_counts_successes_only)
{
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    atomic_store(&T.fx.f.fail_next_fun, 1);
    T.fx.f.fun_errno = ECONNREFUSED;
    cr_assert_eq(lfpool_get(P, &b, 0), ECONNREFUSED);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(T.seen_n[0], 0);
    cr_assert_eq(T.seen_n[1], 1); /* the failed attempt */
    cr_assert_eq(T.seen_n[2], 1); /* retried with the same number */
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreating, 3);
    cr_assert_eq(s.ncreated, 2);
}

Test(core, fill_survives_failing_fun_and_retries_later)
{
    C.min_size = 2;
    C.delay = 1000; /* housekeeper exists but we drive rounds by hand */
    atomic_store(&T.fx.f.fail_next_fun, 100);
    cr_assert_eq(lfpool_new(&P, &C), 0, "new must succeed while fun fails");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 0);
    cr_assert_geq(s.ncreating, 1);
    cr_assert(strstr(T.log.text, "creation failed") != NULL, "log: %s", T.log.text);
    atomic_store(&T.fx.f.fail_next_fun, 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    s = tstats(P);
    cr_assert_eq(s.ncreated, 2);
    cr_assert_eq(s.navail, 2);
}

Test(core, fun_errno_or_eio)
{
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o;
    atomic_store(&T.fx.f.fail_next_fun, 1);
    T.fx.f.fun_errno = 0;
    cr_assert_eq(lfpool_get(P, &o, 0), EIO);
    atomic_store(&T.fx.f.fail_next_fun, 1);
    T.fx.f.fun_errno = EMFILE;
    cr_assert_eq(lfpool_get(P, &o, 0), EMFILE);
    cr_assert_eq(tstats(P).nobjs, 0, "failed creations must not hold a slot");
}

Test(core, get_reuses_returned_object)
{
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(a, b);
    cr_assert_eq(lfpool_ret(P, b), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 1);
    cr_assert_eq(s.nuses, 2);
    cr_assert_eq(atomic_load(&T.fx.n.got), 2);
    cr_assert_eq(atomic_load(&T.fx.n.retted), 2);
}

Test(core, uses_and_times_recorded)
{
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    tclock_set(&T, 2000.0);
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    tclock_set(&T, 2005.0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    tclock_set(&T, 2010.0);
    char *js = lfpool_stats_json(P);
    cr_assert_not_null(js);
    cr_assert(strstr(js, "\"uses\":1,\"last_get\":-10,\"last_ret\":-5") != NULL, "%s", js);
    free(js);
}

Test(core, unbounded_pool_grows_on_demand)
{
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[50];
    for (int i = 0; i < 50; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    for (int i = 0; i < 50; i++)
        for (int k = 0; k < i; k++)
            cr_assert_neq(o[i], o[k]);
    cr_assert_eq(tstats(P).nusing, 50);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.navail, 50);
    cr_assert_eq(s.nusing, 0);
}

Test(core, bounded_try_get_and_timeout)
{
    C.max_size = 2;
    C.timeout = 0.05;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b, *c;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(lfpool_get(P, &c, 0), EAGAIN);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(lfpool_get(P, &c, LFPOOL_DEFAULT), ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_assert_geq(waited, 0.045, "waited only %g s", waited);
    cr_assert_eq(lfpool_get(P, &c, 0.01), ETIMEDOUT);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.sem_init, 2);
    cr_assert_eq(s.sem_value, 0);
    cr_assert_eq(s.nobjs, 2);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(tstats(P).sem_value, 1);
    cr_assert_eq(lfpool_get(P, &c, 0), 0);
    cr_assert_eq(c, a);
    lfpool_ret(P, b);
    lfpool_ret(P, c);
}

struct waiter {
    lfpool *p;
    double timeout;
    void *obj;
    int rc;
    _Atomic int done;
};
static void *wait_get(void *arg)
{
    struct waiter *w = arg;
    w->rc = lfpool_get(w->p, &w->obj, w->timeout);
    atomic_store(&w->done, 1);
    return NULL;
}

Test(core, waiter_woken_by_return)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct waiter w = {.p = P, .timeout = LFPOOL_FOREVER};
    pthread_t th;
    pthread_create(&th, NULL, wait_get, &w);
    usleep(50000);
    cr_assert_eq(atomic_load(&w.done), 0, "must wait while the pool is at max_size");
    cr_assert_eq(lfpool_ret(P, a), 0);
    pthread_join(th, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert_eq(w.obj, a);
    lfpool_ret(P, w.obj);
}

/* Several objects returned back to back while several threads sleep: every
 * sleeper must get one (the gate keeps a few grants in flight and a granted
 * waiter passes the turn on, gate.c), never sleep on while objects sit
 * available.  A missed wake-up would only end at the waiter's timeout (5 s;
 * its last look then finds the object), so a round is checked to end well
 * before that: a liveness bound, not a speed measurement. */
Test(core, burst_of_returns_wakes_every_sleeper, .timeout = 120)
{
    enum { N = 4 };
    C.max_size = N;
    C.getter = NULL;
    C.retter = NULL;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int round = 0; round < 20; round++)
        tburst_round(P, N, round, round % 2 ? 20000 : 200);
}

Test(core, waiter_woken_by_removal)
{
    C.max_size = 1;
    C.max_using_delay_kill = 10;
    C.delay = 1000;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct waiter w = {.p = P, .timeout = 5.0};
    pthread_t th;
    pthread_create(&th, NULL, wait_get, &w);
    usleep(30000);
    tclock_advance(&T, 11);
    cr_assert_eq(lfpool_housekeep(P), 0);
    pthread_join(th, NULL);
    cr_assert_eq(w.rc, 0, "kill must free capacity for the waiter (rc %d)", w.rc);
    cr_assert_neq(w.obj, a, "the killed object must not be handed out");
    cr_assert_eq(lfpool_ret(P, a), ESTALE);
    cr_assert_eq(lfpool_ret(P, w.obj), 0);
}

Test(core, waiters_woken_by_shutdown)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct waiter w[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){.p = P, .timeout = LFPOOL_FOREVER};
        pthread_create(&th[i], NULL, wait_get, &w[i]);
    }
    usleep(50000);
    cr_assert_eq(lfpool_shutdown(P, 1.0), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].rc, ESHUTDOWN);
    }
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
}

static struct tobj same_obj;
static _Atomic int same_calls;
static void *same_fun(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    atomic_fetch_add(&same_calls, 1);
    return &same_obj;
}

Test(core, duplicate_pointer_from_fun_is_refused)
{
    C.min_size = 0;
    C.fun = same_fun;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(a, (void *)&same_obj);
    cr_assert_eq(lfpool_get(P, &b, 0), EEXIST);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreating, 2);
    cr_assert_eq(s.ncreated, 1);
    cr_assert_eq(s.nobjs, 1);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 0, "closer must not run on the duplicate");
    cr_assert(strstr(T.log.text, "already holds") != NULL, "%s", T.log.text);
    cr_assert_eq(lfpool_ret(P, a), 0);
    lfpool_free(P);
    P = NULL;
    cr_assert_eq(atomic_load(&same_obj.closed), 1, "closer exactly once for the real one");
}

/* ret's per-thread hint must never be trusted blindly */
static void *ret_in_thread(void *arg)
{
    void **a = arg;
    *(int *)a[2] = lfpool_ret(a[0], a[1]);
    return NULL;
}

Test(core, stale_return_hints_are_refused)
{
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    /* returned by another thread: this thread's hint is now stale */
    int rc = -1;
    void *args[3] = {P, x, &rc};
    pthread_t th;
    pthread_create(&th, NULL, ret_in_thread, args);
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_eq(lfpool_ret(P, x), ENOENT, "double return through a stale hint");
    cr_assert_eq(tstats(P).navail, 1);
    /* a hint for a freed pool never matches a new pool */
    void *y;
    cr_assert_eq(lfpool_get(P, &y, 0), 0);
    lfpool_free(P);
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_ret(P, y), ENOENT);
    /* a record reused for another object: the hint's object no longer matches */
    void *z;
    cr_assert_eq(lfpool_get(P, &z, 0), 0);
    cr_assert_eq(lfpool_ret(P, z), 0);
    cr_assert_eq(lfpool_ret(P, z), ENOENT);
}

/* regression: a waiter woken by shutdown must leave with ESHUTDOWN, never
 * take or create an object (both threads on one CPU makes the race certain) */
static _Atomic int after_shutdown, down_flag;
static void *count_fun(void *ctx, uint64_t n)
{
    if (atomic_load(&down_flag))
        atomic_fetch_add(&after_shutdown, 1);
    return tfun(ctx, n);
}
static void pin0(void)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(0, &s);
    sched_setaffinity(0, sizeof s, &s);
}
static void *pinned_wait_get(void *arg)
{
    pin0();
    return wait_get(arg);
}

Test(core, shutdown_waiters_never_get_an_object)
{
    pin0();
    C.fun = count_fun;
    C.max_size = 1;
    for (int i = 0; i < 50; i++) {
        atomic_store(&down_flag, 0);
        cr_assert_eq(lfpool_new(&P, &C), 0);
        void *o;
        cr_assert_eq(lfpool_get(P, &o, 0), 0);
        struct waiter w = {.p = P, .timeout = LFPOOL_FOREVER};
        pthread_t th;
        pthread_create(&th, NULL, pinned_wait_get, &w);
        usleep(2000);
        atomic_store(&down_flag, 1);
        cr_assert_eq(lfpool_shutdown(P, 0), 0);
        cr_assert_eq(lfpool_ret(P, o), 0); /* frees capacity after shutdown */
        pthread_join(th, NULL);
        cr_assert_eq(w.rc, ESHUTDOWN, "iteration %d: waiter got %d", i, w.rc);
        lfpool_free(P);
        P = NULL;
    }
    cr_assert_eq(atomic_load(&after_shutdown), 0, "fun called after shutdown");
}

/* regression: while the health check holds the only available object, a
 * waiter at max_size sleeps (it does not spin) and still times out */
Test(core, waiter_sleeps_and_times_out_while_health_holds_the_object)
{
    C.max_size = 1;
    C.health = hung_health;
    C.delay = 1000;
    hung_health_hold();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    pthread_t th;
    pthread_create(&th, NULL, round_in_thread, P);
    wait_hung_health_checking();
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0.3), ETIMEDOUT);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
    cr_assert_lt(cpu, 0.15, "the waiter burnt %g s of CPU in a 0.3 s wait", cpu);
    hung_health_release();
    pthread_join(th, NULL);
    cr_assert_eq(lfpool_get(P, &o, 1.0), 0);
    lfpool_ret(P, o);
}
