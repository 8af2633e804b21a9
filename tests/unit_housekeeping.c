/* unit_housekeeping.c - §3.3 rounds, §3.4 kill, §3.5 destruction, driven
 * by the injected clock and lfpool_housekeep() (no sleeps). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <unistd.h>

LFPOOL_TEST_FIXTURE(hk, C.delay = 1000);
static void advance(double s)
{
    tclock_advance(&T, s);
}


Test(hk, default_delay_as_the_seed)
{
    struct { double avail, warn, kill, delay; bool health; double want; } cases[] = {
        {0, 0, 0, 0, false, 0},    {10, 0, 0, 0, false, 5}, {10, 4, 0, 0, false, 2},
        {3, 8, 0, 0, false, 1.5},  {0, 0, 6, 0, false, 3},  {0, 0, 0, 0, true, 60},
        {10, 0, 0, 7, false, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lfpool_config c;
        tcfg(&c, &T);
        c.max_avail_delay = cases[i].avail;
        c.max_using_delay = cases[i].warn;
        c.max_using_delay_kill = cases[i].kill;
        c.delay = cases[i].delay;
        c.health = cases[i].health ? thealth : NULL;
        lfpool *p;
        cr_assert_eq(lfpool_new(&p, &c), 0);
        cr_assert_float_eq(tstats(p).delay, cases[i].want, 1e-9, "case %zu", i);
        lfpool_free(p);
    }
}

Test(hk, max_use_wears_objects_out)
{
    C.max_use = 2;
    C.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(a, b);
    cr_assert_eq(lfpool_ret(P, b), 0); /* second use: worn out */
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nwornout, 1);
    cr_assert_eq(s.ndestroys, 1);
    cr_assert_eq(s.ntodel, 0);
    cr_assert_eq(s.ncreated, 2, "refilled to min_size");
    cr_assert_eq(s.nobjs, 1);
    void *c;
    cr_assert_eq(lfpool_get(P, &c, 0), 0);
    cr_assert_neq(c, a);
    lfpool_ret(P, c);
}

Test(hk, worn_out_objects_are_reaped_by_the_housekeeper_thread)
{
    C.max_use = 1;
    C.delay = 0; /* no rounds: the thread only reaps */
    C.log = NULL;
    C.log_level = LFPOOL_LOG_DEBUG;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    for (int i = 0; i < 200 && atomic_load(&T.fx.n.closed) == 0; i++)
        usleep(5000);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 1);
}

Test(hk, idle_objects_recycled_down_to_min_size)
{
    C.min_size = 1;
    C.max_avail_delay = 10;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[4];
    cr_assert_eq(tget_ret_n(P, o, 4), 0);
    advance(5);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nrecycled, 0, "not idle long enough yet");
    advance(6);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nrecycled, 3);
    cr_assert_eq(s.nobjs, 1);
    cr_assert_eq(s.navail, 1);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 3);
    /* the survivor still works; the recycled ones are never handed out */
    void *x;
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)x)->closed), 0);
    void *y;
    cr_assert_eq(lfpool_get(P, &y, 0), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)y)->closed), 0);
    lfpool_ret(P, x);
    lfpool_ret(P, y);
}

Test(hk, warn_about_long_held_objects)
{
    C.max_using_delay = 5;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    advance(6);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(strstr(T.log.text, "long running objects: 1") != NULL, "%s", T.log.text);
    cr_assert_eq(tstats(P).nkilled, 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
}

Test(hk, kill_defer_closes_on_return)
{
    C.max_using_delay_kill = 10;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    advance(9);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nkilled, 0);
    advance(2);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nkilled, 1);
    cr_assert_eq(s.nobjs, 1, "killed object left the accounting; min_size refilled");
    cr_assert_eq(s.ntodel, 1);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 0, "DEFER: not closed while held");
    cr_assert(strstr(T.log.text, "1 to kill") != NULL, "%s", T.log.text);
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), 0, "capacity released by the kill");
    cr_assert_neq(a, b);
    cr_assert_eq(lfpool_ret(P, a), ESTALE);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    cr_assert_eq(tstats(P).ntodel, 0);
    cr_assert_eq(lfpool_ret(P, a), ENOENT, "second ret refused");
    cr_assert_eq(lfpool_ret(P, b), 0);
}

Test(hk, kill_close_closes_at_once)
{
    C.max_using_delay_kill = 10;
    C.kill_mode = LFPOOL_KILL_CLOSE;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    uint64_t retted = atomic_load(&T.fx.n.retted);
    advance(11);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nkilled, 1);
    cr_assert_eq(s.nobjs, 0);
    cr_assert_eq(s.ndestroys, 1);
    cr_assert_eq(lfpool_ret(P, a), ENOENT);
    cr_assert_eq(atomic_load(&T.fx.n.retted), retted, "retter not called on a refused ret");
}

Test(hk, inconsistent_warn_above_kill_is_accepted_with_warning)
{
    C.max_using_delay = 20;
    C.max_using_delay_kill = 10;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert(strstr(T.log.text, "inconsistent") != NULL, "%s", T.log.text);
    cr_assert_float_eq(tstats(P).max_using_delay_warn, 20, 1e-9);
}

Test(hk, health_removes_unhealthy_and_counts_errors)
{
    C.min_size = 3;
    C.health = thealth;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(atomic_load(&T.nobjs), 3);
    T.objs[0]->healthy = 0;  /* unhealthy: removed */
    T.objs[1]->healthy = -1; /* check failed: kept */
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.hc_rounds, 1);
    cr_assert_eq(s.nhealth, 3);
    cr_assert_eq(s.bad_health, 1);
    cr_assert_eq(s.hc_errors, 1);
    cr_assert_eq(s.nborrows, 3);
    cr_assert_eq(s.nreturns, 3);
    cr_assert_eq(atomic_load(&T.objs[0]->closed), 1);
    cr_assert_eq(atomic_load(&T.objs[1]->closed), 0);
    cr_assert_eq(s.nobjs, 3, "refilled to min_size");
    cr_assert_eq(s.ncreated, 4);
    cr_assert(strstr(T.log.text, "bad health") != NULL, "%s", T.log.text);
    /* the unhealthy object is never handed out again */
    void *o[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
        cr_assert_neq(o[i], (void *)T.objs[0]);
    }
    for (int i = 0; i < 3; i++)
        lfpool_ret(P, o[i]);
}

Test(hk, health_every_health_freq_rounds_and_skips_busy)
{
    C.min_size = 2;
    C.health = thealth;
    C.health_freq = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *busy;
    cr_assert_eq(lfpool_get(P, &busy, 0), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nhealth, 0, "round 1: no check");
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.hc_rounds, 1);
    cr_assert_eq(s.nhealth, 1, "only the available object is checked");
    lfpool_ret(P, busy);
}

Test(hk, hanging_health_check_blocks_neither_get_nor_ret)
{
    C.min_size = 2;
    C.max_size = 3;
    C.health = hung_health;
    hung_health_hold();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    pthread_t th;
    pthread_create(&th, NULL, round_in_thread, P);
    wait_hung_health_checking();
    /* one object is borrowed; it counts as in use, as in the seed */
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 1);
    for (int i = 0; i < 1000; i++) {
        void *a, *b;
        cr_assert_eq(lfpool_get(P, &a, 0), 0);
        cr_assert_eq(lfpool_get(P, &b, 0), 0);
        cr_assert_eq(lfpool_ret(P, a), 0);
        cr_assert_eq(lfpool_ret(P, b), 0);
    }
    void *a, *b, *c;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(lfpool_get(P, &c, 0), EAGAIN, "the borrowed object holds a slot");
    hung_health_release();
    pthread_join(th, NULL);
    cr_assert_eq(lfpool_get(P, &c, 1.0), 0);
    lfpool_ret(P, a);
    lfpool_ret(P, b);
    lfpool_ret(P, c);
}

Test(hk, hook_failures_are_logged_not_propagated)
{
    atomic_store(&T.fx.f.fail_hooks, 1);
    C.max_use = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(strstr(T.log.text, "opener hook failed") != NULL, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "getter hook failed") != NULL, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "retter hook failed") != NULL, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "closer hook failed") != NULL, "%s", T.log.text);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
}

Test(hk, rounds_are_counted_and_timed)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.hk_rounds, 2);
    cr_assert_float_eq(s.rel_hk_last, 0, 1e-9);
    advance(3);
    cr_assert_float_eq(tstats(P).rel_hk_last, -3, 1e-9);
}

Test(hk, background_rounds_run_every_delay)
{
    C.delay = 0.01;
    C.clock = NULL; /* real time for this one */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int i = 0; i < 200 && tstats(P).hk_rounds < 3; i++)
        usleep(5000);
    cr_assert_geq(tstats(P).hk_rounds, 3);
}
