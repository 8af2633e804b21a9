/* unit_control.c - runtime control: lfpool_set_size, lfpool_pause and
 * lfpool_resume, lfpool_evict, and the shared housekeeper's configuration.
 * On the injected clock and lfpool_housekeep(); the few waits are for a
 * thread to block, never for time to pass in the pool. */
#include "helpers.h"

#include <criterion/criterion.h>

LFPOOL_TEST_FIXTURE(ctl, C.delay = 1000);

static int closed(void *o)
{
    return atomic_load(&((struct tobj *)o)->closed);
}

/* A get in a thread, with a timeout; its code and object. */
struct tget {
    lfpool *p;
    double timeout;
    _Atomic int started, done;
    int rc;
    void *obj;
    pthread_t th;
};
static void *tget_main(void *arg)
{
    struct tget *g = arg;
    atomic_store(&g->started, 1);
    g->rc = lfpool_get(g->p, &g->obj, g->timeout);
    atomic_store(&g->done, 1);
    return NULL;
}
static void tget_start(struct tget *g, lfpool *p, double timeout)
{
    memset(g, 0, sizeof *g);
    g->p = p;
    g->timeout = timeout;
    pthread_create(&g->th, NULL, tget_main, g);
    while (!atomic_load(&g->started))
        sched_yield();
    usleep(20000); /* let it reach its wait */
}
static int tget_join(struct tget *g)
{
    pthread_join(g->th, NULL);
    return g->rc;
}

/* ---- arguments */

Test(ctl, bad_arguments)
{
    cr_assert_eq(lfpool_set_size(NULL, 1, 2), EINVAL);
    cr_assert_eq(lfpool_pause(NULL), EINVAL);
    cr_assert_eq(lfpool_resume(NULL), EINVAL);
    cr_assert_eq(lfpool_evict(NULL, LFPOOL_EVICT_IDLE), EINVAL);
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_set_size(P, 3, 2), EINVAL, "min > max on a bounded pool");
    cr_assert_eq(tstats(P).max_size, 4, "a refused call changes nothing");
    cr_assert_eq(lfpool_set_size(P, 5, 0), 0, "min > max is fine when unbounded");
    cr_assert_eq(lfpool_evict(P, 0), EINVAL);
    cr_assert_eq(lfpool_evict(P, 3), EINVAL);
    cr_assert_eq(lfpool_evict(P, -1), EINVAL);
    cr_assert_eq(lfpool_shutdown(P, 0), 0);
    cr_assert_eq(lfpool_set_size(P, 1, 2), ESHUTDOWN);
    cr_assert_eq(lfpool_pause(P), ESHUTDOWN);
    cr_assert_eq(lfpool_resume(P), ESHUTDOWN);
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_ALL), ESHUTDOWN);
}

Test(ctl, housekeeper_field_validated)
{
    C.housekeeper = 2;
    cr_assert_eq(lfpool_new(&P, &C), EINVAL);
    C.housekeeper = -1;
    cr_assert_eq(lfpool_new(&P, &C), EINVAL);
    C.housekeeper = LFPOOL_HK_SHARED;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_config d;
    lfpool_config_init(&d);
    cr_assert_eq(d.housekeeper, LFPOOL_HK_OWN, "the default is a thread of its own");
}

/* ---- set_size */

Test(ctl, grow_gives_room_at_once)
{
    C.min_size = 0;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), EAGAIN);
    cr_assert_eq(lfpool_set_size(P, 0, 2), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(tstats(P).max_size, 2);
    cr_assert_eq(tstats(P).sem_init, 2);
    lfpool_ret(P, a);
    lfpool_ret(P, b);
}

Test(ctl, grow_wakes_a_waiter)
{
    C.min_size = 0;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct tget g;
    tget_start(&g, P, 5.0);
    cr_assert_eq(atomic_load(&g.done), 0, "waits at max_size");
    cr_assert_eq(lfpool_set_size(P, 0, 2), 0);
    cr_assert_eq(tget_join(&g), 0, "woken by the new room");
    lfpool_ret(P, g.obj);
    lfpool_ret(P, a);
}

Test(ctl, grow_to_unbounded_wakes_every_waiter)
{
    C.min_size = 0;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct tget g[3];
    for (int i = 0; i < 3; i++)
        tget_start(&g[i], P, 5.0);
    cr_assert_eq(lfpool_set_size(P, 0, 0), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tget_join(&g[i]), 0);
        lfpool_ret(P, g[i].obj);
    }
    cr_assert_eq(tstats(P).sem_init, -1, "unbounded");
    lfpool_ret(P, a);
}

Test(ctl, shrink_closes_surplus_available_at_once_and_returned_on_return)
{
    C.min_size = 0;
    C.max_size = 6;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    for (int i = 0; i < 3; i++) /* 3 available, 3 out */
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
    cr_assert_eq(lfpool_set_size(P, 0, 2), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.navail, 0, "surplus available objects closed in the call");
    cr_assert_eq(s.nobjs, 3, "objects out are never taken from their holder");
    cr_assert_eq(s.ndestroys, 3);
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "3 out of 2: no get succeeds");
    cr_assert_eq(lfpool_ret(P, o[3]), 0, "a surplus object's ret gives 0");
    cr_assert_eq(lfpool_housekeep(P), 0); /* its closer, if queued */
    cr_assert_eq(closed(o[3]), 1, "closed on return");
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "2 out of 2");
    cr_assert_eq(lfpool_ret(P, o[4]), 0);
    cr_assert_eq(closed(o[4]), 0, "within the bound: kept");
    cr_assert_eq(tstats(P).navail, 1);
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_eq(x, o[4]);
    cr_assert_eq(lfpool_get(P, &o[0], 0), EAGAIN);
    lfpool_ret(P, x);
    lfpool_ret(P, o[5]);
    s = tstats(P);
    cr_assert_eq(s.nobjs, 2);
    cr_assert_eq(s.max_size, 2);
}

Test(ctl, shrink_below_objects_out_makes_gets_wait_with_timeout)
{
    C.min_size = 0;
    C.max_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    cr_assert_eq(lfpool_set_size(P, 0, 1), 0);
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0.02), ETIMEDOUT);
    struct tget g;
    tget_start(&g, P, 5.0);
    cr_assert_eq(lfpool_ret(P, o[0]), 0);
    cr_assert_eq(lfpool_ret(P, o[1]), 0);
    usleep(20000);
    cr_assert_eq(atomic_load(&g.done), 0, "one out of 1: still waits");
    cr_assert_eq(lfpool_ret(P, o[2]), 0);
    cr_assert_eq(tget_join(&g), 0, "the last surplus return frees the room");
    cr_assert_eq(tstats(P).nobjs, 1);
    lfpool_ret(P, g.obj);
}

Test(ctl, min_size_change_refills_and_bounded_unbounded_both_ways)
{
    C.min_size = 1;
    C.max_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(tstats(P).nobjs, 1);
    cr_assert_eq(lfpool_set_size(P, 4, 0), 0);
    cr_assert_eq(tstats(P).nobjs, 4, "refilled to the new min_size");
    cr_assert_eq(tstats(P).min_size, 4);
    cr_assert_eq(lfpool_set_size(P, 2, 3), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nobjs, 3, "unbounded -> bounded: surplus available closed");
    cr_assert_eq(s.max_size, 3);
    cr_assert_eq(lfpool_set_size(P, 0, 0), 0);
    void *o[5];
    for (int i = 0; i < 5; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0, "bounded -> unbounded");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
}

Test(ctl, shrink_then_round_keeps_the_bound)
{
    C.min_size = 0;
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    cr_assert_eq(lfpool_set_size(P, 0, 1), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nobjs, 1);
    cr_assert_eq(s.ndestroys, 3);
    cr_assert_eq(s.ntodel, 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), EAGAIN);
    lfpool_ret(P, a);
}

/* ---- pause / resume */

Test(ctl, pause_holds_gets_even_with_objects_available)
{
    C.min_size = 2;
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *x;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_pause(P), 0);
    cr_assert_eq(lfpool_pause(P), 0, "idempotent");
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "available objects are not handed out");
    cr_assert_eq(lfpool_get(P, &x, 0.02), ETIMEDOUT, "the timeout holds");
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), EAGAIN);
    cr_assert_eq(lfpool_ret(P, a), 0, "returns go on");
    cr_assert_eq(lfpool_housekeep(P), 0, "rounds go on");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.navail, 2);
    cr_assert_eq(s.ncreated, 2, "nothing created for held gets");
    cr_assert_eq(lfpool_resume(P), 0);
    cr_assert_eq(lfpool_resume(P), 0, "idempotent");
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    lfpool_ret(P, x);
}

Test(ctl, pause_holds_the_fast_path_too)
{
    C.clock = NULL; /* the get and ret fast paths apply */
    C.clock_ctx = NULL;
    C.min_size = 0;
    C.max_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[4];
    cr_assert_eq(tget_ret_n(P, o, 4), 0); /* in this CPU's cache, where there is one */
    cr_assert_eq(lfpool_pause(P), 0);
    void *x;
    for (int i = 0; i < 8; i++)
        cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN);
    cr_assert_eq(tstats(P).ncreated, 4);
    cr_assert_eq(lfpool_resume(P), 0);
    cr_assert_eq(tget_ret_n(P, o, 4), 0);
    cr_assert_eq(tstats(P).ncreated, 4, "the cached objects are handed out again");
}

Test(ctl, resume_wakes_every_waiter)
{
    C.min_size = 3;
    C.max_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_pause(P), 0);
    struct tget g[3];
    for (int i = 0; i < 3; i++)
        tget_start(&g[i], P, 5.0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&g[i].done), 0, "held while paused");
    cr_assert_eq(lfpool_resume(P), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tget_join(&g[i]), 0);
    cr_assert_eq(tstats(P).ncreated, 3);
    for (int i = 0; i < 3; i++)
        lfpool_ret(P, g[i].obj);
}

Test(ctl, shutdown_while_paused_wakes_waiters_with_eshutdown)
{
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_pause(P), 0);
    struct tget g;
    tget_start(&g, P, LFPOOL_FOREVER);
    cr_assert_eq(lfpool_shutdown(P, 1.0), 0);
    cr_assert_eq(tget_join(&g), ESHUTDOWN);
}

Test(ctl, pause_then_grow_still_holds)
{
    C.min_size = 0;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_pause(P), 0);
    cr_assert_eq(lfpool_set_size(P, 0, 4), 0);
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), EAGAIN, "still paused");
    cr_assert_eq(lfpool_resume(P), 0);
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    lfpool_ret(P, x);
}

/* ---- evict */

Test(ctl, evict_idle_closes_available_objects_only)
{
    C.min_size = 0;
    C.max_size = 8;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    for (int i = 1; i < 4; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_IDLE), 0);
    for (int i = 1; i < 4; i++)
        cr_assert_eq(closed(o[i]), 1, "available object %d closed now", i);
    cr_assert_eq(closed(o[0]), 0, "an object out is left alone");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nevicted, 3);
    cr_assert_eq(s.nobjs, 1);
    cr_assert_eq(lfpool_ret(P, o[0]), 0);
    cr_assert_eq(closed(o[0]), 0, "IDLE: a returned object stays");
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_eq(x, o[0]);
    lfpool_ret(P, x);
    cr_assert_eq(tstats(P).nevicted, 3);
}

Test(ctl, evict_all_closes_objects_out_on_return_and_refills)
{
    C.min_size = 2;
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    cr_assert_eq(lfpool_ret(P, o[3]), 0);
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_ALL), 0);
    cr_assert_eq(closed(o[3]), 1);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nevicted, 1);
    cr_assert_eq(s.nobjs, 3, "3 out; the refill stops at max_size");
    cr_assert_eq(s.ncreated, 4);
    cr_assert_eq(lfpool_ret(P, o[0]), 0, "an evicted object's ret gives 0");
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(closed(o[0]), 1, "closed on return");
    cr_assert_eq(tstats(P).nevicted, 2);
    /* every object handed out now is new */
    void *x[2];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(lfpool_get(P, &x[k], 0), 0);
        for (int i = 0; i < 4; i++)
            cr_assert_neq(x[k], o[i], "an object created before the eviction came back");
    }
    cr_assert_eq(lfpool_ret(P, o[1]), 0);
    cr_assert_eq(lfpool_ret(P, o[2]), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    s = tstats(P);
    cr_assert_eq(s.nevicted, 4);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(s.ndestroys, 4, "each old object closed exactly once");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(closed(o[i]), 1);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(lfpool_ret(P, x[k]), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).ndestroys, 4, "new objects are kept once the eviction is over");
}

Test(ctl, evict_all_through_handles_and_the_fast_path)
{
    C.clock = NULL;
    C.clock_ctx = NULL;
    C.min_size = 0;
    C.max_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h[3];
    void *old[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(lfpool_get_handle(P, &h[i], 0), 0);
        old[i] = h[i].obj;
    }
    cr_assert_eq(lfpool_ret_handle(P, &h[0]), 0); /* available: closed by the eviction */
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_ALL), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h[1]), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h[1]), ENOENT, "a stale copy");
    void *x;
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(lfpool_get(P, &x, 0), 0);
        for (int i = 0; i < 3; i++)
            cr_assert_neq(x, old[i]);
        cr_assert_eq(lfpool_ret(P, x), 0);
    }
    cr_assert_eq(lfpool_ret_handle(P, &h[2]), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nevicted, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(closed(old[i]), 1);
}

Test(ctl, evict_all_while_a_health_check_holds_an_object)
{
    C.min_size = 1;
    C.max_size = 2;
    C.health = hung_health;
    hung_health_hold();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    pthread_t th;
    pthread_create(&th, NULL, round_in_thread, P);
    wait_hung_health_checking();
    void *old = T.objs[0];
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_ALL), 0);
    hung_health_release();
    pthread_join(th, NULL);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(closed(old), 1, "closed when its check ended");
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_neq(x, old);
    lfpool_ret(P, x);
    cr_assert_geq(tstats(P).nevicted, 1);
}

Test(ctl, stats_json_has_nevicted)
{
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_evict(P, LFPOOL_EVICT_IDLE), 0);
    char *j = lfpool_stats_json(P);
    cr_assert_not_null(j);
    cr_assert_not_null(strstr(j, "\"nevicted\":2"), "%s", j);
    free(j);
    lfpool *pools[1] = {P};
    const char *names[1] = {"p"};
    char *om = lfpool_stats_openmetrics(pools, names, 1);
    cr_assert_not_null(om);
    cr_assert_not_null(strstr(om, "lfpool_nevicted_total"), "%s", om);
    free(om);
}

/* ---- the shared housekeeper, through its public effects */

Test(ctl, shared_pool_closes_worn_out_objects_and_frees)
{
    C.housekeeper = LFPOOL_HK_SHARED;
    C.max_use = 1;
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0); /* worn out: the shared thread closes it */
    for (int i = 0; i < 300 && !closed(a); i++)
        usleep(10000); /* its next tick: at most a second */
    cr_assert_eq(closed(a), 1);
    cr_assert_eq(lfpool_housekeep(P), 0, "rounds on the caller work too");
}

Test(ctl, shared_pool_lazy_start)
{
    C.housekeeper = LFPOOL_HK_SHARED;
    C.lazy_start = true;
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(tstats(P).ncreated, 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(tstats(P).nobjs, 2);
    lfpool_ret(P, a);
}
