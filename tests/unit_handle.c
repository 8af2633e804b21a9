/* unit_handle.c - the handle calls (lfpool_get_handle, lfpool_ret_handle):
 * the same behaviour as lfpool_get/lfpool_ret, and a handle ends exactly
 * the hand-out it came from.  Each test runs with the fixture's hooks and
 * fake clock (the careful paths) and, where it says so, with neither (the
 * fast paths, which leave the CPU cache alone only through a tail call). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <math.h>

LFPOOL_TEST_FIXTURE(handle, (void)0);

/* no hooks, no injected clock: the fast paths apply */
static void plain_cfg(void)
{
    C.getter = NULL;
    C.retter = NULL;
    C.clock = NULL;
    C.clock_ctx = NULL;
}

static void get_ret_round_trip(void)
{
    lfpool_handle h;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_not_null(h.obj);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 1);
    cr_assert_eq(s.nuses, 1);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs);

    /* the object comes back, with its use counted */
    lfpool_handle h2;
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), 0);
    cr_assert_eq(h2.obj, h.obj);
    cr_assert_eq(tstats(P).nuses, 2);
    cr_assert_eq(lfpool_ret_handle(P, &h2), 0);
}

Test(handle, get_and_ret_with_hooks_and_clock)
{
    get_ret_round_trip();
    cr_assert_eq(atomic_load(&T.fx.n.got), 2, "getter once per get");
    cr_assert_eq(atomic_load(&T.fx.n.retted), 2, "retter once per ret");
}

Test(handle, get_and_ret_fast_path)
{
    plain_cfg();
    get_ret_round_trip();
}

/* a copy of a handle used again after its hand-out ended is refused, also
 * when the object is out again for someone else, and that holder keeps it */
static void stale_copy_refused(void)
{
    lfpool_handle h, copy, again;
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    copy = h;
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    cr_assert_eq(lfpool_ret_handle(P, &copy), ENOENT, "returned twice");

    cr_assert_eq(lfpool_get_handle(P, &again, 0), 0);
    cr_assert_eq(again.obj, h.obj, "max_size 1: the same object");
    cr_assert_eq(lfpool_ret_handle(P, &copy), ENOENT, "an earlier hand-out of a held object");
    cr_assert_eq(tstats(P).nusing, 1, "still held by its holder");
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0), EAGAIN, "and not available");
    cr_assert_eq(lfpool_ret_handle(P, &again), 0);
    cr_assert_eq(lfpool_get(P, &o, 0), 0);
    cr_assert_eq(lfpool_ret(P, o), 0);
}

Test(handle, stale_copy_refused)
{
    stale_copy_refused();
    cr_assert_eq(atomic_load(&T.fx.n.retted), 3, "no retter for refused handles");
}

Test(handle, stale_copy_refused_fast_path)
{
    plain_cfg();
    stale_copy_refused();
}

Test(handle, mixes_with_plain_ret)
{
    plain_cfg();
    lfpool_handle h, copy;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    copy = h;
    cr_assert_eq(lfpool_ret(P, h.obj), 0, "a handle's object may be returned by pointer");
    cr_assert_eq(lfpool_ret_handle(P, &copy), ENOENT);
    cr_assert_eq(tstats(P).nusing, 0);
}

struct cross {
    lfpool_handle h;
    int rc;
};
static void *ret_in_thread(void *arg)
{
    struct cross *c = arg;
    c->rc = lfpool_ret_handle(P, &c->h);
    return NULL;
}

Test(handle, returned_by_another_thread)
{
    plain_cfg();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct cross c;
    cr_assert_eq(lfpool_get_handle(P, &c.h, 0), 0);
    pthread_t th;
    pthread_create(&th, NULL, ret_in_thread, &c);
    pthread_join(th, NULL);
    cr_assert_eq(c.rc, 0);
    cr_assert_eq(tstats(P).nusing, 0);
    cr_assert_eq(lfpool_ret_handle(P, &c.h), ENOENT);
}

/* A pool that kills objects held over 5 s in `mode`, and the handle of an
 * object held 10 s and killed by a round. */
static lfpool_handle held_and_killed(int mode)
{
    C.max_using_delay_kill = 5;
    C.kill_mode = mode;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    tclock_advance(&T, 10);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nkilled, 1);
    return h;
}

Test(handle, killed_defer_gives_estale_and_closes)
{
    lfpool_handle h = held_and_killed(LFPOOL_KILL_DEFER);
    cr_assert_eq(((struct tobj *)h.obj)->closed, 0, "DEFER: closed at its return");
    cr_assert_eq(lfpool_ret_handle(P, &h), ESTALE);
    cr_assert_eq(((struct tobj *)h.obj)->closed, 1);
    cr_assert_eq(lfpool_ret_handle(P, &h), ENOENT);
}

Test(handle, worn_out_is_destroyed)
{
    C.max_use = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(tstats(P).nwornout, 1);
    cr_assert_eq(((struct tobj *)h.obj)->closed, 1);
}

Test(handle, after_shutdown)
{
    plain_cfg();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h, h2;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_shutdown(P, 1.0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), ESHUTDOWN);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0, "returned after shutdown: closed");
    cr_assert_eq(((struct tobj *)h.obj)->closed, 1);
}

Test(handle, bounded_waits_and_bad_arguments)
{
    C.max_size = 1;
    C.timeout = 0.01;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h, h2;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h2, 0), EAGAIN);
    cr_assert_eq(lfpool_get_handle(P, &h2, 0.01), ETIMEDOUT);
    cr_assert_eq(lfpool_get_handle(P, &h2, -2.0), EINVAL);
    cr_assert_eq(lfpool_get_handle(P, &h2, NAN), EINVAL);
    cr_assert_eq(lfpool_get_handle(P, &h2, LFPOOL_DEFAULT), ETIMEDOUT,
                 "LFPOOL_DEFAULT: the configured timeout");
    cr_assert_eq(lfpool_get_handle(P, NULL, 0), EINVAL);
    cr_assert_eq(lfpool_get_handle(NULL, &h2, 0), EINVAL);
    cr_assert_eq(lfpool_ret_handle(P, NULL), EINVAL);
    lfpool_handle noobj = h;
    noobj.obj = NULL;
    cr_assert_eq(lfpool_ret_handle(P, &noobj), EINVAL, "a handle without its object");
    cr_assert_eq(lfpool_ret_handle(NULL, &h), EINVAL);
    cr_assert_eq(tstats(P).nusing, 1, "bad calls change nothing");
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
}

/* Two threads return copies of one handle at once, many times: exactly one
 * of each pair succeeds (the other gets ENOENT), and nothing is lost. */
static lfpool_handle race_h;
static _Atomic int race_go, race_ok, race_enoent, race_other;
static void *race_ret(void *arg)
{
    (void)arg;
    lfpool_handle mine = race_h;
    while (!atomic_load(&race_go))
        ;
    int r = lfpool_ret_handle(P, &mine);
    atomic_fetch_add(r == 0 ? &race_ok : r == ENOENT ? &race_enoent : &race_other, 1);
    return NULL;
}

Test(handle, concurrent_double_return_one_wins, .timeout = 60)
{
    plain_cfg();
    C.max_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(lfpool_get_handle(P, &race_h, 0), 0);
        atomic_store(&race_go, 0);
        pthread_t a, b;
        pthread_create(&a, NULL, race_ret, NULL);
        pthread_create(&b, NULL, race_ret, NULL);
        atomic_store(&race_go, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        cr_assert_eq(atomic_load(&race_ok), i + 1, "round %d: exactly one return wins", i);
        cr_assert_eq(atomic_load(&race_enoent), i + 1);
        cr_assert_eq(atomic_load(&race_other), 0);
        cr_assert_eq(tstats(P).nusing, 0);
    }
    /* capacity intact: both objects can be out at once, once each */
    lfpool_handle x, y;
    cr_assert_eq(lfpool_get_handle(P, &x, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &y, 0), 0);
    cr_assert_neq(x.obj, y.obj);
    cr_assert_eq(lfpool_ret_handle(P, &x), 0);
    cr_assert_eq(lfpool_ret_handle(P, &y), 0);
}

/* A stale handle whose record was released and reused for another object
 * (wear-out, reaped after a grace period) is refused: the generation moved. */
Test(handle, stale_handle_after_record_reuse)
{
    plain_cfg();
    C.max_use = 1;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle h, copy, held[200];
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    copy = h;
    cr_assert_eq(lfpool_ret_handle(P, &h), 0, "worn out");
    /* reaping puts the worn-out record on the free list (after a grace
     * period, maybe on the housekeeper thread); get new objects, holding
     * them so that no other record is released meanwhile, until one gets
     * the stale handle's record */
    int n = 0;
    for (;;) {
        cr_assert_eq(lfpool_housekeep(P), 0);
        cr_assert_lt(n, 200, "the record was never reused");
        cr_assert_eq(lfpool_get_handle(P, &held[n], 0), 0);
        cr_assert_neq(held[n].obj, h.obj);
        if (held[n++].priv_rec == copy.priv_rec)
            break;
        usleep(1000);
    }
    cr_assert_eq(lfpool_ret_handle(P, &copy), ENOENT);
    cr_assert_eq(tstats(P).nusing, (uint64_t)n, "the new holders keep theirs");
    for (int i = 0; i < n; i++)
        cr_assert_eq(lfpool_ret_handle(P, &held[i]), 0);
}

/* CLOSE kill: the holder's handle is refused, the object closed once. */
Test(handle, killed_close_gives_enoent)
{
    lfpool_handle h = held_and_killed(LFPOOL_KILL_CLOSE);
    cr_assert_eq(((struct tobj *)h.obj)->closed, 1, "CLOSE: closed by the round");
    cr_assert_eq(lfpool_ret_handle(P, &h), ENOENT);
    cr_assert_eq(((struct tobj *)h.obj)->closed, 1);
}
