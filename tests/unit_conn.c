/* unit_conn.c - connection pools: lfpool_ret_broken (and its handle form),
 * validation on borrow, max_lifetime with jitter, creation control
 * (max_creating, create_backoff), max_waiters, and the quiet logs (repeated
 * lines folded, errno text, tracer text).  Time is the injected clock and
 * lfpool_housekeep(); the only real waits are the bounded ones of gets that
 * must wait (a few ms to let a thread park). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>

LFPOOL_TEST_FIXTURE(conn, (void)0);

static void advance(double s)
{
    tclock_advance(&T, s);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        n++;
    return n;
}

/* ---- validate hook: counts calls, answers the object's `healthy` */
static _Atomic int nvalidated;
static int tvalidate(void *ctx, void *o)
{
    (void)ctx;
    atomic_fetch_add(&nvalidated, 1);
    return ((struct tobj *)o)->healthy;
}

/* ---- a creator that can be held inside `fun` (creation control tests) */
static _Atomic int fun_hold, fun_inside, fun_inside_max;
static void *tfun_held(void *ctx, uint64_t n)
{
    int in = atomic_fetch_add(&fun_inside, 1) + 1;
    int m = atomic_load(&fun_inside_max);
    while (in > m && !atomic_compare_exchange_weak(&fun_inside_max, &m, in))
        ;
    while (atomic_load(&fun_hold) && in == 1) /* a second call at once is not held */
        usleep(1000);
    void *o = tfun(ctx, n);
    atomic_fetch_sub(&fun_inside, 1);
    return o;
}
static void fun_hold_reset(void)
{
    atomic_store(&fun_hold, 0);
    atomic_store(&fun_inside, 0);
    atomic_store(&fun_inside_max, 0);
}
static void wait_fun_inside(int n)
{
    for (int i = 0; i < 5000 && atomic_load(&fun_inside) < n; i++)
        usleep(1000);
    cr_assert_geq(atomic_load(&fun_inside), n, "fun not entered");
}

struct getter_arg {
    lfpool *p;
    double timeout;
    _Atomic int started;
    int rc;
    void *obj;
};
static void *getter_thread(void *arg)
{
    struct getter_arg *g = arg;
    atomic_store(&g->started, 1);
    g->rc = lfpool_get(g->p, &g->obj, g->timeout);
    return NULL;
}
static void start_getter(pthread_t *th, struct getter_arg *g, lfpool *p, double timeout)
{
    memset(g, 0, sizeof *g);
    g->p = p;
    g->timeout = timeout;
    pthread_create(th, NULL, getter_thread, g);
    while (!atomic_load(&g->started))
        sched_yield();
    usleep(30000); /* let it reach its wait (a late one just does not wait) */
}

/* ------------------------------------------------------------ configuration */

Test(conn, config_init_keeps_the_seed_and_sets_the_new_defaults)
{
    lfpool_config c;
    lfpool_config_init(&c);
    cr_assert_null(c.validate);
    cr_assert_float_eq(c.validate_idle, 0.5, 1e-12);
    cr_assert_eq(c.max_lifetime, 0);
    cr_assert_eq(c.max_lifetime_jitter, 0);
    cr_assert_eq(c.max_creating, 0);
    cr_assert_eq(c.create_backoff, 0);
    cr_assert_float_eq(c.create_backoff_max, 30, 1e-12);
    cr_assert_eq(c.max_waiters, 0);
    cr_assert_eq(c.min_size, 1);
    cr_assert(isinf(c.timeout));
    cr_assert_eq(c.health_freq, 1);
}

static const char *bad_case(lfpool_config *c, int i)
{
    switch (i) {
    case 0: c->validate_idle = -1; return "validate_idle";
    case 1: c->validate_idle = NAN; return "validate_idle";
    case 2: c->max_lifetime = -0.5; return "max_lifetime";
    case 3: c->max_lifetime = NAN; return "max_lifetime";
    case 4: c->max_lifetime_jitter = -1; return "max_lifetime_jitter";
    case 5: c->max_lifetime = 10; c->max_lifetime_jitter = 11; return "max_lifetime_jitter";
    case 6: c->max_lifetime_jitter = 1; return "max_lifetime_jitter"; /* > max_lifetime 0 */
    case 7: c->create_backoff = -2; return "create_backoff";
    case 8: c->create_backoff = NAN; return "create_backoff";
    case 9: c->create_backoff_max = NAN; return "create_backoff_max";
    case 10: c->create_backoff_max = -1; return "create_backoff_max";
    case 11: c->create_backoff = 5; c->create_backoff_max = 4; return "create_backoff_max";
    default: return NULL;
    }
}

Test(conn, bad_configuration_is_einval_with_the_reason_logged)
{
    for (int i = 0;; i++) {
        lfpool_config c;
        tcfg(&c, &T);
        lfx_log_clear(&T.log);
        const char *field = bad_case(&c, i);
        if (!field)
            break;
        lfpool *p = (lfpool *)&c; /* must be reset to NULL */
        cr_assert_eq(lfpool_new(&p, &c), EINVAL, "case %d", i);
        cr_assert_null(p);
        cr_assert(strstr(T.log.text, field) != NULL, "case %d: reason not logged: %s", i, T.log.text);
    }
    /* the edges are valid */
    lfpool_config c;
    tcfg(&c, &T);
    c.validate_idle = 0;
    c.max_lifetime = 10;
    c.max_lifetime_jitter = 10;
    c.create_backoff = 5;
    c.create_backoff_max = 5;
    c.max_creating = 1;
    c.max_waiters = 1;
    cr_assert_eq(lfpool_new(&P, &c), 0);
}

/* ------------------------------------------------------------ ret_broken */

Test(conn, ret_broken_destroys_without_retter_and_refills)
{
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    int retted = (int)atomic_load(&T.fx.n.retted);
    cr_assert_eq(lfpool_ret_broken(P, a), 0);
    cr_assert_eq((int)atomic_load(&T.fx.n.retted), retted, "retter must not run");
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1, "closer exactly once");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nbroken, 1);
    cr_assert_eq(s.ndestroys, 1);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(s.nobjs, 1, "min_size refilled");
    cr_assert_eq(s.navail, 1);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.ncreated, 2);
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_neq(b, a, "a broken object is never handed out again");
    cr_assert_eq(lfpool_ret(P, b), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
}

Test(conn, ret_broken_with_a_housekeeper_thread_closes_there)
{
    C.delay = 1000; /* a thread; its rounds never come in the test */
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret_broken(P, a), 0);
    for (int i = 0; i < 2000 && atomic_load(&((struct tobj *)a)->closed) == 0; i++)
        usleep(1000);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nbroken, 1);
    cr_assert_eq(s.nobjs, 2);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1, "closer exactly once");
}

Test(conn, ret_broken_return_codes)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret_broken(NULL, a), EINVAL);
    cr_assert_eq(lfpool_ret_broken(P, NULL), EINVAL);
    struct tobj foreign = {0};
    cr_assert_eq(lfpool_ret_broken(P, &foreign), ENOENT);
    cr_assert_eq(lfpool_ret_broken(P, a), 0);
    cr_assert_eq(lfpool_ret_broken(P, a), ENOENT, "twice");
    cr_assert_eq(lfpool_ret(P, a), ENOENT, "ret after ret_broken");
    /* an available object is not out either */
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(lfpool_ret(P, b), 0);
    cr_assert_eq(lfpool_ret_broken(P, b), ENOENT);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    cr_assert_eq(atomic_load(&((struct tobj *)b)->closed), 0);
    cr_assert_eq(tstats(P).nbroken, 1);
}

Test(conn, ret_broken_of_a_killed_object_is_estale)
{
    C.max_using_delay_kill = 10;
    C.delay = 1000;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    advance(11);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nkilled, 1);
    int retted = (int)atomic_load(&T.fx.n.retted);
    cr_assert_eq(lfpool_ret_broken(P, a), ESTALE);
    cr_assert_eq((int)atomic_load(&T.fx.n.retted), retted);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1, "closed in the call");
    cr_assert_eq(lfpool_ret_broken(P, a), ENOENT);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nbroken, 0, "a kill, not a broken return");
    cr_assert_eq(s.ntodel, 0);
}

Test(conn, ret_broken_after_shutdown_closes)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_shutdown(P, 1), 0);
    cr_assert_eq(lfpool_ret_broken(P, a), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    cr_assert_eq(tstats(P).nobjs, 0);
}

Test(conn, ret_broken_handle)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h, copy;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    copy = h;
    cr_assert_eq(lfpool_ret_broken_handle(P, NULL), EINVAL);
    cr_assert_eq(lfpool_ret_broken_handle(NULL, &h), EINVAL);
    lfpool_handle bad = h;
    bad.obj = NULL;
    cr_assert_eq(lfpool_ret_broken_handle(P, &bad), EINVAL);
    cr_assert_eq(lfpool_ret_broken_handle(P, &h), 0);
    cr_assert_eq(lfpool_ret_broken_handle(P, &copy), ENOENT, "stale copy");
    cr_assert_eq(lfpool_ret_handle(P, &copy), ENOENT);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)h.obj)->closed), 1);
    cr_assert_eq(tstats(P).nbroken, 1);
    /* a stale handle of a record handed out again ends nothing */
    lfpool_handle h2, h3;
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), 0);
    copy = h2;
    cr_assert_eq(lfpool_ret_handle(P, &h2), 0);
    cr_assert_eq(lfpool_get_handle(P, &h3, 0), 0);
    cr_assert_eq(h3.obj, h2.obj);
    cr_assert_eq(lfpool_ret_broken_handle(P, &copy), ENOENT);
    cr_assert_eq(atomic_load(&((struct tobj *)h3.obj)->closed), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h3), 0);
}

Test(conn, a_waiter_woken_by_ret_broken_creates)
{
    C.max_size = 1;
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    pthread_t th;
    struct getter_arg g;
    start_getter(&th, &g, P, 5.0);
    cr_assert_eq(lfpool_ret_broken(P, a), 0);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0, "the waiter got %d", g.rc);
    cr_assert_neq(g.obj, a);
    cr_assert_eq(atomic_load(&((struct tobj *)g.obj)->closed), 0);
    cr_assert_eq(lfpool_ret(P, g.obj), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nobjs, 1, "max_size held");
    cr_assert_eq(s.ncreated, 2);
}

/* ------------------------------------------------------------ validate */

Test(conn, validate_idle_zero_validates_every_get_of_an_available_object)
{
    atomic_store(&nvalidated, 0);
    C.validate = tvalidate;
    C.validate_idle = 0;
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int i = 0; i < 5; i++) {
        void *a;
        cr_assert_eq(lfpool_get(P, &a, 0), 0);
        cr_assert_eq(lfpool_ret(P, a), 0);
    }
    cr_assert_eq(atomic_load(&nvalidated), 5);
    /* an object created for the get was never available: not validated */
    void *x, *y;
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_eq(lfpool_get(P, &y, 0), 0);
    cr_assert_eq(atomic_load(&nvalidated), 6);
    lfpool_ret(P, x);
    lfpool_ret(P, y);
    cr_assert_eq(tstats(P).nvalidate_failed, 0);
}

Test(conn, validate_only_after_validate_idle)
{
    atomic_store(&nvalidated, 0);
    C.validate = tvalidate;
    C.validate_idle = 10;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    advance(11); /* the filled object has been available 11 s */
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(atomic_load(&nvalidated), 1);
    cr_assert_eq(lfpool_ret(P, a), 0);
    advance(9.5);
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(atomic_load(&nvalidated), 1, "available 9.5 s only");
    advance(30); /* held: time out does not count as idle */
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(atomic_load(&nvalidated), 1);
    cr_assert_eq(lfpool_ret(P, a), 0);
    advance(10);
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(atomic_load(&nvalidated), 2);
    cr_assert_eq(lfpool_ret(P, a), 0);
}

Test(conn, failed_validation_destroys_and_goes_on)
{
    atomic_store(&nvalidated, 0);
    C.validate = tvalidate;
    C.validate_idle = 0;
    C.min_size = 3;
    C.max_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[3];
    cr_assert_eq(tget_ret_n(P, o, 3), 0);
    cr_assert_eq(atomic_load(&nvalidated), 3);
    ((struct tobj *)o[0])->healthy = 0;  /* dead */
    ((struct tobj *)o[1])->healthy = -1; /* the check failed */
    int retted = (int)atomic_load(&T.fx.n.retted);
    void *got[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_get(P, &got[i], 0), 0, "get %d", i);
    cr_assert_eq((int)atomic_load(&T.fx.n.retted), retted);
    for (int i = 0; i < 3; i++) {
        cr_assert_neq(got[i], o[0]);
        cr_assert_neq(got[i], o[1]);
    }
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nvalidate_failed, 2);
    cr_assert_eq(s.nvalidate_errors, 1);
    cr_assert_eq(s.nobjs, 3, "max_size held");
    cr_assert_eq(s.ncreated, 5, "two replacements, created within the get");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_ret(P, got[i]), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)o[0])->closed), 1);
    cr_assert_eq(atomic_load(&((struct tobj *)o[1])->closed), 1);
    cr_assert_eq(atomic_load(&((struct tobj *)o[2])->closed), 0);
    cr_assert_eq(tstats(P).ntodel, 0);
}

Test(conn, failed_validation_then_creation_failure_reports_its_errno)
{
    /* the only object fails, and `fun` fails: the get reports fun's errno */
    atomic_store(&nvalidated, 0);
    C.validate = tvalidate;
    C.validate_idle = 0;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    ((struct tobj *)a)->healthy = 0;
    atomic_store(&T.fx.f.fail_next_fun, 1);
    T.fx.f.fun_errno = ECONNREFUSED;
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), ECONNREFUSED);
    cr_assert_eq(tstats(P).nvalidate_failed, 1);
    cr_assert_eq(lfpool_get(P, &b, 0), 0, "capacity was released");
    cr_assert_neq(b, a);
    cr_assert_eq(lfpool_ret(P, b), 0);
}

Test(conn, validate_without_hook_is_off)
{
    atomic_store(&nvalidated, 0);
    C.validate_idle = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(atomic_load(&nvalidated), 0);
}

/* ------------------------------------------------------------ max_lifetime */

Test(conn, available_objects_expire_at_the_next_round)
{
    C.max_lifetime = 100;
    C.min_size = 2;
    C.delay = 1000;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[2];
    cr_assert_eq(tget_ret_n(P, o, 2), 0);
    advance(99);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nexpired, 0);
    advance(1.5);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nexpired, 2);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(s.nobjs, 2, "refilled");
    cr_assert_eq(s.ncreated, 4);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(atomic_load(&((struct tobj *)o[i])->closed), 1);
    void *n[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(lfpool_get(P, &n[i], 0), 0);
        cr_assert(n[i] != o[0] && n[i] != o[1], "an expired object was handed out");
    }
    for (int i = 0; i < 2; i++)
        cr_assert_eq(lfpool_ret(P, n[i]), 0);
}

Test(conn, an_object_out_past_its_lifetime_is_destroyed_when_returned)
{
    C.max_lifetime = 100;
    C.delay = 1000;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    advance(101);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nexpired, 0, "out: not touched");
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nexpired, 1);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(s.nwornout, 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_neq(b, a);
    cr_assert_eq(lfpool_ret(P, b), 0);
}

Test(conn, expired_on_the_fast_return_path)
{
    /* no hooks, real clock: lfpool_ret's fast path must see the lifetime */
    C.retter = NULL;
    C.getter = NULL;
    C.clock = NULL;
    C.max_lifetime = 0.05;
    C.delay = 1000; /* no round comes during the test */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    usleep(100000);
    (void)tstats(P); /* refreshes the pool's coarse time */
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_neq(b, a, "an expired object went back to the pool");
    cr_assert_eq(lfpool_ret(P, b), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_geq(tstats(P).nexpired, 1);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
}

Test(conn, jitter_draws_distinct_lifetimes)
{
    enum { N = 16 };
    C.max_lifetime = 100;
    C.max_lifetime_jitter = 50;
    C.min_size = N;
    C.delay = 1000;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[N];
    cr_assert_eq(tget_ret_n(P, o, N), 0);
    double died[N];
    for (int i = 0; i < N; i++)
        died[i] = -1;
    for (int t = 1; t <= 101; t++) {
        advance(1);
        cr_assert_eq(lfpool_housekeep(P), 0);
        for (int i = 0; i < N; i++)
            if (died[i] < 0 && atomic_load(&((struct tobj *)o[i])->closed))
                died[i] = t;
    }
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_geq(died[i], 50, "object %d died at %g: lifetime below max - jitter", i, died[i]);
        cr_assert_leq(died[i], 101, "object %d outlived max_lifetime", i);
        bool seen = false;
        for (int k = 0; k < i; k++)
            seen |= died[k] == died[i];
        distinct += !seen;
    }
    cr_assert_geq(distinct, 3, "16 draws of U(0, 50) fell into %d one-second rounds", distinct);
    cr_assert_geq(tstats(P).nexpired, N);
}

Test(conn, expiry_refills_at_most_max_creating_at_a_time)
{
    enum { N = 6 };
    fun_hold_reset();
    C.fun = tfun_held;
    C.max_lifetime = 100;
    C.min_size = N;
    C.max_creating = 2;
    C.delay = 1000;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    advance(101);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nexpired, N);
    cr_assert_eq(s.nobjs, N);
    cr_assert_leq(atomic_load(&fun_inside_max), 2);
}

/* ------------------------------------------------------------ creation control */

Test(conn, max_creating_makes_gets_wait_for_a_slot)
{
    fun_hold_reset();
    C.fun = tfun_held;
    C.min_size = 0;
    C.max_creating = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    atomic_store(&fun_hold, 1);
    pthread_t th1, th2;
    struct getter_arg g1, g2;
    start_getter(&th1, &g1, P, 5.0);
    wait_fun_inside(1);
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "no slot, no wait");
    cr_assert_eq(lfpool_get(P, &x, 0.02), ETIMEDOUT, "no slot within the deadline");
    start_getter(&th2, &g2, P, 5.0);
    cr_assert_eq(atomic_load(&fun_inside), 1, "a second fun call started");
    atomic_store(&fun_hold, 0);
    pthread_join(th1, NULL);
    pthread_join(th2, NULL);
    cr_assert_eq(g1.rc, 0);
    cr_assert_eq(g2.rc, 0, "the waiter for a slot created when the first ended");
    cr_assert_neq(g1.obj, g2.obj);
    cr_assert_eq(atomic_load(&fun_inside_max), 1);
    cr_assert_eq(lfpool_ret(P, g1.obj), 0);
    cr_assert_eq(lfpool_ret(P, g2.obj), 0);
    cr_assert_eq(tstats(P).nobjs, 2);
}

Test(conn, max_creating_still_hands_out_available_objects)
{
    fun_hold_reset();
    C.fun = tfun_held;
    C.min_size = 1;
    C.max_creating = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    atomic_store(&fun_hold, 1);
    pthread_t th;
    struct getter_arg g;
    start_getter(&th, &g, P, 5.0);
    wait_fun_inside(1);
    cr_assert_eq(lfpool_ret(P, a), 0);
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), 0, "an available object needs no slot");
    cr_assert_eq(b, a);
    atomic_store(&fun_hold, 0);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0);
    lfpool_ret(P, b);
    lfpool_ret(P, g.obj);
}

Test(conn, backoff_fails_fast_doubles_and_caps)
{
    C.min_size = 0;
    C.create_backoff = 1;
    C.create_backoff_max = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    atomic_store(&T.fx.f.fail_next_fun, 1000);
    T.fx.f.fun_errno = ECONNREFUSED;
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
    int calls = atomic_load(&T.nseen);
    cr_assert_eq(calls, 1);
    cr_assert_eq(lfpool_get(P, &x, LFPOOL_FOREVER), ECONNREFUSED, "at once, even with no limit");
    cr_assert_eq(atomic_load(&T.nseen), calls, "no fun call during the backoff");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreate_failed, 1);
    cr_assert_eq(s.ncreate_skipped, 1);
    /* backoffs 1, 2, 4, 4: just before each ends, refused; at its end, one probe */
    double lengths[] = {1, 2, 4, 4, 4};
    for (int i = 0; i < 5; i++) {
        advance(lengths[i] - 0.25);
        cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
        cr_assert_eq(atomic_load(&T.nseen), calls, "backoff %d: fun called early", i);
        advance(0.25);
        cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
        cr_assert_eq(atomic_load(&T.nseen), ++calls, "backoff %d: the probe", i);
        cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
        cr_assert_eq(atomic_load(&T.nseen), calls, "backoff %d: one probe only", i);
    }
    s = tstats(P);
    cr_assert_eq(s.ncreate_failed, 6);
    cr_assert_eq(s.ncreate_skipped, 1 + 5 * 2);
    /* the server is back: the probe succeeds and ends the backoff */
    atomic_store(&T.fx.f.fail_next_fun, 0);
    advance(4);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0, "creation normal again");
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_ret(P, b), 0);
    /* a new failure starts again from create_backoff */
    atomic_store(&T.fx.f.fail_next_fun, 1000);
    T.fx.f.fun_errno = EHOSTUNREACH;
    void *h[3];
    cr_assert_eq(lfpool_get(P, &h[0], 0), 0);
    cr_assert_eq(lfpool_get(P, &h[1], 0), 0);
    cr_assert_eq(lfpool_get(P, &h[2], 0), EHOSTUNREACH);
    calls = atomic_load(&T.nseen);
    advance(0.9);
    cr_assert_eq(lfpool_get(P, &h[2], 0), EHOSTUNREACH);
    cr_assert_eq(atomic_load(&T.nseen), calls);
    advance(0.1);
    cr_assert_eq(lfpool_get(P, &h[2], 0), EHOSTUNREACH);
    cr_assert_eq(atomic_load(&T.nseen), calls + 1);
    lfpool_ret(P, h[0]);
    lfpool_ret(P, h[1]);
}

Test(conn, backoff_still_hands_out_available_objects)
{
    C.min_size = 1;
    C.create_backoff = 10;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    atomic_store(&T.fx.f.fail_next_fun, 1000);
    T.fx.f.fun_errno = ECONNRESET;
    cr_assert_eq(lfpool_get(P, &b, 0), ECONNRESET);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(b, a);
    cr_assert_eq(lfpool_ret(P, b), 0);
}

Test(conn, backoff_without_config_retries_every_get)
{
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    atomic_store(&T.fx.f.fail_next_fun, 3);
    T.fx.f.fun_errno = ECONNREFUSED;
    void *x;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
    cr_assert_eq(atomic_load(&T.nseen), 3);
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_eq(lfpool_ret(P, x), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreate_failed, 3);
    cr_assert_eq(s.ncreate_skipped, 0);
}

static _Atomic int probe_fail_errno;
static void *tfun_probe(void *ctx, uint64_t n)
{
    void *o = tfun_held(ctx, n);
    if (o && atomic_load(&probe_fail_errno)) {
        errno = atomic_load(&probe_fail_errno);
        return NULL; /* the tobj stays in T.objs and is freed there */
    }
    return o;
}

Test(conn, one_probe_while_the_others_fail_fast)
{
    fun_hold_reset();
    atomic_store(&probe_fail_errno, ECONNREFUSED);
    C.fun = tfun_probe;
    C.min_size = 0;
    C.create_backoff = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
    advance(1);
    atomic_store(&fun_hold, 1);
    atomic_store(&probe_fail_errno, 0);
    pthread_t th;
    struct getter_arg g;
    start_getter(&th, &g, P, 5.0); /* the probe, held inside fun */
    wait_fun_inside(1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_get(P, &x, 5.0), ECONNREFUSED, "a second probe");
    cr_assert_eq(atomic_load(&fun_inside_max), 1);
    atomic_store(&fun_hold, 0);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0, "the probe succeeded");
    cr_assert_eq(lfpool_get(P, &x, 0), 0, "backoff over");
    lfpool_ret(P, x);
    lfpool_ret(P, g.obj);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreate_failed, 1);
    cr_assert_eq(s.ncreate_skipped, 3);
}

/* ------------------------------------------------------------ max_waiters */

Test(conn, max_waiters_refuses_with_ebusy_at_once)
{
    C.max_size = 1;
    C.max_waiters = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *x;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    pthread_t th;
    struct getter_arg g;
    start_getter(&th, &g, P, 5.0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(lfpool_get(P, &x, 5.0), EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9, 1.0);
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "timeout 0 never waits: EAGAIN as before");
    cr_assert_eq(lfpool_ret(P, a), 0);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0);
    /* nobody waits now: a get may wait again */
    void *held = g.obj;
    start_getter(&th, &g, P, 5.0);
    cr_assert_eq(lfpool_ret(P, held), 0);
    pthread_join(th, NULL);
    cr_assert_eq(g.rc, 0);
    cr_assert_eq(lfpool_ret(P, g.obj), 0);
}

/* ------------------------------------------------------------ logs */

Test(conn, repeated_lines_are_folded)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct tobj foreign = {0};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(lfpool_ret(P, &foreign), ENOENT);
    cr_assert_eq(count_of(T.log.text, "unexpected object returned"), 1, "%s", T.log.text);
    advance(0.5);
    cr_assert_eq(lfpool_ret(P, &foreign), ENOENT);
    cr_assert_eq(count_of(T.log.text, "unexpected object returned"), 1, "%s", T.log.text);
    advance(0.6); /* a second after the first line */
    cr_assert_eq(lfpool_ret(P, &foreign), ENOENT);
    cr_assert_eq(count_of(T.log.text, "unexpected object returned"), 2, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "(repeated 6 times)") != NULL, "%s", T.log.text);
    /* another message is not held back by the first */
    struct tobj other = {0};
    cr_assert_eq(lfpool_ret(P, &other), ENOENT);
    cr_assert_eq(count_of(T.log.text, "unexpected object returned"), 3, "%s", T.log.text);
    /* and a different pool is not folded with this one */
    lfpool *q;
    lfpool_config c2 = C;
    cr_assert_eq(lfpool_new(&q, &c2), 0);
    cr_assert_eq(lfpool_ret(q, &foreign), ENOENT);
    cr_assert_eq(count_of(T.log.text, "unexpected object returned"), 4, "%s", T.log.text);
    lfpool_free(q);
}

Test(conn, folded_lines_are_counted_when_another_line_comes)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct tobj foreign = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lfpool_ret(P, &foreign), ENOENT);
    advance(2);
    /* the pending count is not lost: it is written before a new line */
    cr_assert_eq(lfpool_ret(P, NULL), EINVAL);
    cr_assert(strstr(T.log.text, "(repeated 3 times)") != NULL, "%s", T.log.text);
}

static int ttrace(void *ctx, void *o, char *buf, size_t size)
{
    (void)ctx;
    return snprintf(buf, size, "conn#%llu", (unsigned long long)((struct tobj *)o)->n);
}

Test(conn, creation_failures_name_the_errno_text)
{
    C.min_size = 0;
    C.log_level = LFPOOL_LOG_ERROR;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    atomic_store(&T.fx.f.fail_next_fun, 1);
    T.fx.f.fun_errno = ECONNREFUSED;
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), ECONNREFUSED);
    cr_assert(strstr(T.log.text, strerror(ECONNREFUSED)) != NULL, "%s", T.log.text);
}

Test(conn, warn_and_kill_lines_name_the_objects)
{
    C.tracer = ttrace;
    C.max_using_delay = 5;
    C.max_using_delay_kill = 10;
    C.delay = 1000;
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    advance(6);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    char name[32];
    snprintf(name, sizeof name, "conn#%llu", (unsigned long long)((struct tobj *)a)->n);
    cr_assert(strstr(T.log.text, name) != NULL, "warn line without %s: %s", name, T.log.text);
    lfx_log_clear(&T.log);
    advance(5);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(strstr(T.log.text, name) != NULL, "kill line without %s: %s", name, T.log.text);
    lfx_log_clear(&T.log);
    cr_assert_eq(lfpool_ret(P, a), ESTALE);
    cr_assert(strstr(T.log.text, name) != NULL, "killed-return line without %s: %s", name,
              T.log.text);
    cr_assert_eq(lfpool_ret(P, b), 0);
}

/* ------------------------------------------------------------ stats */

Test(conn, counters_in_stats_and_json)
{
    atomic_store(&nvalidated, 0);
    C.validate = tvalidate;
    C.validate_idle = 0;
    C.min_size = 0;
    C.create_backoff = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[2];
    cr_assert_eq(tget_ret_n(P, o, 2), 0);
    ((struct tobj *)o[0])->healthy = -1;
    ((struct tobj *)o[1])->healthy = 0;
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0); /* both fail, one created */
    cr_assert_eq(lfpool_ret_broken(P, a), 0);
    atomic_store(&T.fx.f.fail_next_fun, 1000);
    T.fx.f.fun_errno = ECONNREFUSED;
    cr_assert_eq(lfpool_get(P, &a, 0), ECONNREFUSED);
    cr_assert_eq(lfpool_get(P, &a, 0), ECONNREFUSED);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nbroken, 1);
    cr_assert_eq(s.nvalidate_failed, 2);
    cr_assert_eq(s.nvalidate_errors, 1);
    cr_assert_eq(s.nexpired, 0);
    cr_assert_eq(s.ncreate_failed, 1);
    cr_assert_eq(s.ncreate_skipped, 1);
    char *txt = lfpool_stats_json(P);
    cr_assert_not_null(txt);
    json_error_t err;
    json_t *j = json_loads(txt, 0, &err);
    cr_assert_not_null(j, "%s", txt);
    struct { const char *k; uint64_t v; } keys[] = {
        {"nbroken", s.nbroken},
        {"nvalidate_failed", s.nvalidate_failed},
        {"nvalidate_errors", s.nvalidate_errors},
        {"nexpired", s.nexpired},
        {"ncreate_failed", s.ncreate_failed},
        {"ncreate_skipped", s.ncreate_skipped},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(j, keys[i].k);
        cr_assert(json_is_integer(v), "missing key %s", keys[i].k);
        cr_assert_eq((uint64_t)json_integer_value(v), keys[i].v, "%s", keys[i].k);
    }
    json_decref(j);
    free(txt);
}
