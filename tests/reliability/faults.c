/*
 * faults.c - fault injection under threads (issue 4, part 1).
 *
 * 8 worker threads loop get -> hold -> ret on a bounded pool while:
 *   - `fun` fails at random (30 %), with various errnos;
 *   - opener, getter, retter, closer fail at random (10-20 %);
 *   - health answers unhealthy (5 %), fails (< 0, 5 %), and hangs once for
 *     1.5 s of real time while the workers keep going;
 *   - closers are sometimes slow (20 ms);
 *   - an injected clock runs 100x faster than real time, so that holds of a
 *     few tens of ms get killed (max_using_delay_kill) and idle objects get
 *     recycled (max_avail_delay), in both kill modes;
 *   - a helper thread calls lfpool_housekeep() every 2 ms and samples stats
 *     (and the JSON stats) next to the library's own housekeeper.
 * At the end, with faults off: exclusivity, no hand-out after close, closer
 * exactly once per created object, ncreated == non-NULL fun returns, no
 * capacity leaked (max_size gets succeed, one more gives EAGAIN), the
 * counters agree with what the hooks and the callers saw.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rel_common.h"

#include <criterion/criterion.h>

#ifdef REL_HAVE_JANSSON
#include <jansson.h>
#endif

#define NWORKERS 8
#define MAXW 16

struct slot {
    _Atomic int active;
    _Atomic uint64_t t0_us;
};

struct run {
    lfpool *pool;
    struct rel_world w;
    struct lfx_log log;
    struct lfx_clock clk;
    struct rel_viol v;
    lfpool_config cfg;
    int nworkers;
    double kill_s;
    _Atomic int stop;
    _Atomic int stop_helpers;
    _Atomic int quiet; /* workers pause (holding nothing): objects go idle */
    struct slot slots[MAXW];

    _Atomic int64_t held_now;
    _Atomic uint64_t held_over;     /* users held more than max_size (+ killable) */
    _Atomic uint64_t nobjs_over;    /* stats said nobjs > max_size */
    _Atomic uint64_t gets_ok, get_timeout, get_again, get_funerr, get_other;
    _Atomic int get_other_code;
    _Atomic uint64_t rets_ok, rets_stale, rets_noent;
    _Atomic uint64_t stale_not_closed; /* ESTALE but the closer had not run */
    _Atomic uint64_t wornout_expected;
    _Atomic uint64_t ops_during_hang;
    _Atomic uint64_t hk_calls, hk_errors, stats_samples, json_samples, json_bad;
    _Atomic uint64_t long_holds;
};

static uint64_t killable(struct run *r)
{
    if (r->kill_s <= 0)
        return 0;
    uint64_t now = atomic_load(&r->clk.us), k = 0, kill_us = (uint64_t)(r->kill_s * 1e6);
    for (int i = 0; i < r->nworkers; i++)
        if (atomic_load(&r->slots[i].active) && now - atomic_load(&r->slots[i].t0_us) >= kill_us)
            k++;
    return k;
}

struct warg {
    struct run *r;
    int id;
};

static void *worker(void *arg)
{
    struct warg *a = arg;
    struct run *r = a->r;
    struct slot *s = &r->slots[a->id];
    unsigned iter = 0;
    while (!atomic_load(&r->stop)) {
        iter++;
        while (atomic_load(&r->quiet) && !atomic_load(&r->stop))
            rel_sleep(0.002);
        double timeout = (iter % 3 == 0) ? 0.0 : (iter % 3 == 1) ? 0.05 : LFPOOL_DEFAULT;
        atomic_store(&s->t0_us, atomic_load(&r->clk.us));
        atomic_store(&s->active, 1);
        void *p = NULL;
        int rc = lfpool_get(r->pool, &p, timeout);
        if (rc != 0) {
            atomic_store(&s->active, 0);
            if (rc == ETIMEDOUT)
                atomic_fetch_add(&r->get_timeout, 1);
            else if (rc == EAGAIN)
                atomic_fetch_add(&r->get_again, 1);
            else if (rc == ECONNREFUSED || rc == EHOSTUNREACH || rc == EIO || rc == ENOMEM)
                atomic_fetch_add(&r->get_funerr, 1);
            else {
                atomic_fetch_add(&r->get_other, 1);
                atomic_store(&r->get_other_code, rc);
            }
            if (p != NULL)
                atomic_fetch_add(&r->v.bad_ret, 1); /* *obj set on failure */
            if (iter % 64 == 0)
                rel_sleep(0.0005);
            continue;
        }
        atomic_fetch_add(&r->gets_ok, 1);
        if (atomic_load(&r->w.hanging))
            atomic_fetch_add(&r->ops_during_hang, 1);
        if (!rel_take(&r->w, &r->v, p)) {
            atomic_store(&s->active, 0);
            continue; /* violation recorded; do not touch it further */
        }
        struct rel_obj *o = p;
        int64_t h = atomic_fetch_add(&r->held_now, 1) + 1;
        if (r->cfg.max_size && (uint64_t)h > r->cfg.max_size + killable(r))
            atomic_fetch_add(&r->held_over, 1);

        /* hold: mostly a short spin, sometimes long enough to be killed */
        uint64_t x = lfx_rand() % 1000;
        if (x < 15) {
            atomic_fetch_add(&r->long_holds, 1);
            rel_sleep(0.03 + (double)(lfx_rand() % 50) * 0.001);
        } else if (x < 40) {
            rel_sleep(0.001);
        } else {
            for (volatile int k = 0; k < 200; k++)
                ;
        }
        int closed_before = atomic_load(&o->closed);
        uint64_t uses = atomic_load(&o->uses);
        atomic_fetch_sub(&r->held_now, 1);
        rel_release(o);
        rc = lfpool_ret(r->pool, o);
        atomic_store(&s->active, 0);
        if (rc == 0) {
            atomic_fetch_add(&r->rets_ok, 1);
            if (closed_before)
                atomic_fetch_add(&r->v.ret_ok_after_close, 1);
            if (r->cfg.max_use && uses >= r->cfg.max_use)
                atomic_fetch_add(&r->wornout_expected, 1);
        } else if (rc == ESTALE && r->cfg.kill_mode == LFPOOL_KILL_DEFER) {
            atomic_fetch_add(&r->rets_stale, 1);
            if (atomic_load(&o->closed) != 1)
                atomic_fetch_add(&r->stale_not_closed, 1);
        } else if (rc == ENOENT && r->cfg.kill_mode == LFPOOL_KILL_CLOSE) {
            atomic_fetch_add(&r->rets_noent, 1);
        } else {
            atomic_fetch_add(&r->v.bad_ret, 1);
        }
        /* pause now and then so that objects sit idle and get recycled */
        if (lfx_chance(10))
            rel_sleep(0.02);
    }
    return NULL;
}

static void *clock_thread(void *arg)
{
    struct run *r = arg;
    while (!atomic_load(&r->stop_helpers)) {
        lfx_clock_advance(&r->clk, 0.1); /* 100 fake s per real s */
        rel_sleep(0.001);
    }
    return NULL;
}

#ifdef REL_HAVE_JANSSON
static bool json_ok(const char *txt, const struct run *r)
{
    json_error_t err;
    json_t *root = json_loads(txt, 0, &err);
    if (!root)
        return false;
    bool ok = json_is_object(root) && json_is_array(json_object_get(root, "avail")) &&
              json_is_array(json_object_get(root, "using")) &&
              json_is_integer(json_object_get(root, "ncreated"));
    json_t *mx = json_object_get(root, "max_size");
    ok = ok && json_is_integer(mx) && (uint64_t)json_integer_value(mx) == r->cfg.max_size;
    json_decref(root);
    return ok;
}
#endif

static void *hk_thread(void *arg)
{
    struct run *r = arg;
    unsigned n = 0;
    while (!atomic_load(&r->stop_helpers)) {
        int rc = lfpool_housekeep(r->pool);
        atomic_fetch_add(&r->hk_calls, 1);
        if (rc != 0)
            atomic_fetch_add(&r->hk_errors, 1);
        struct lfpool_stats st;
        if (lfpool_stats(r->pool, &st) == 0) {
            atomic_fetch_add(&r->stats_samples, 1);
            if (r->cfg.max_size && (st.nobjs > r->cfg.max_size || st.nusing > r->cfg.max_size))
                atomic_fetch_add(&r->nobjs_over, 1);
        }
        if (++n % 25 == 0) {
            char *js = lfpool_stats_json(r->pool);
            atomic_fetch_add(&r->json_samples, 1);
            if (!js)
                atomic_fetch_add(&r->json_bad, 1);
#ifdef REL_HAVE_JANSSON
            else if (!json_ok(js, r))
                atomic_fetch_add(&r->json_bad, 1);
#endif
            free(js);
        }
        rel_sleep(0.002);
    }
    return NULL;
}

static void run_faults(int kill_mode, size_t max_size, double seconds)
{
    static struct run R; /* large; zeroed per test (one test per process) */
    struct run *r = &R;
    memset(r, 0, sizeof *r);
    bool slow = rel_slow_env();
    rel_world_init(&r->w, 1u << 17);
    lfx_log_init(&r->log, "REL_LOG");
    r->nworkers = NWORKERS;
    atomic_store(&r->clk.us, 1000000);

    lfpool_config *cfg = &r->cfg;
    rel_config(cfg, &r->w, &r->log, &r->clk);
    cfg->health = rel_health;
    cfg->stats = rel_stats_hook;
    cfg->max_size = max_size;
    cfg->min_size = 2;
    cfg->timeout = 0.1;
    cfg->max_use = 40;
    cfg->max_avail_delay = 1.5;     /* fake seconds */
    cfg->max_using_delay = 1.0;     /* warn */
    cfg->max_using_delay_kill = 2.5;
    cfg->delay = 0.02;              /* the library's own housekeeper runs too */
    cfg->health_freq = 1;
    cfg->kill_mode = kill_mode;
    r->kill_s = cfg->max_using_delay_kill;

    atomic_store(&r->w.hk.f.fun_permille, 300);
    atomic_store(&r->w.hk.f.opener_permille, 150);
    atomic_store(&r->w.hk.f.getter_permille, 150);
    atomic_store(&r->w.hk.f.retter_permille, 150);
    atomic_store(&r->w.hk.f.closer_permille, 200);
    atomic_store(&r->w.health_bad, 50);
    atomic_store(&r->w.health_err, 50);
    atomic_store(&r->w.stats_fail, 200);
    atomic_store(&r->w.slow_closer, 20);
    r->w.hang_s = 1.5;

    cr_assert_eq(lfpool_new(&r->pool, cfg), 0, "lfpool_new");

    pthread_t th[MAXW], ck, hk;
    struct warg wa[MAXW];
    for (int i = 0; i < r->nworkers; i++) {
        wa[i] = (struct warg){r, i};
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &wa[i]), 0);
    }
    cr_assert_eq(pthread_create(&ck, NULL, clock_thread, r), 0);
    cr_assert_eq(pthread_create(&hk, NULL, hk_thread, r), 0);

    /* arm the health hang after a warm-up; run until it happened and the
     * planned time is over (bounded) */
    double t0 = rel_mono();
    rel_sleep(seconds * 0.25);
    atomic_store(&r->w.hang_armed, 1);
    double next_quiet = rel_mono() + 0.3;
    while (rel_mono() - t0 < seconds ||
           (atomic_load(&r->w.hang_armed) || atomic_load(&r->w.hanging))) {
        if (rel_mono() - t0 > seconds + 6.0)
            break;
        rel_sleep(0.01);
        /* every 0.6 s a quiet phase of 150 ms real (15 fake s > max_avail_delay)
         * so that idle objects get recycled; not during the health hang,
         * whose point is that the workers keep going */
        if (rel_mono() >= next_quiet && !atomic_load(&r->w.hanging)) {
            atomic_store(&r->quiet, 1);
            rel_sleep(0.15);
            atomic_store(&r->quiet, 0);
            next_quiet = rel_mono() + 0.6;
        }
    }
    bool hang_happened = !atomic_load(&r->w.hang_armed);
    atomic_store(&r->stop, 1);
    for (int i = 0; i < r->nworkers; i++)
        pthread_join(th[i], NULL);
    atomic_store(&r->stop_helpers, 1);
    pthread_join(ck, NULL);
    pthread_join(hk, NULL);

    /* ---- quiesce: faults off, clock frozen */
    atomic_store(&r->w.hk.f.fun_permille, 0);
    atomic_store(&r->w.hk.f.opener_permille, 0);
    atomic_store(&r->w.hk.f.getter_permille, 0);
    atomic_store(&r->w.hk.f.retter_permille, 0);
    atomic_store(&r->w.hk.f.closer_permille, 0);
    atomic_store(&r->w.health_bad, 0);
    atomic_store(&r->w.health_err, 0);
    atomic_store(&r->w.slow_closer, 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(lfpool_housekeep(r->pool), 0);

    /* ---- no capacity leaked: max_size gets succeed, one more does not */
    if (max_size) {
        void **objs = calloc(max_size, sizeof *objs);
        for (size_t i = 0; i < max_size; i++) {
            int rc = lfpool_get(r->pool, &objs[i], 2.0);
            cr_expect_eq(rc, 0, "capacity check: get %zu of %zu gave %d (%s)", i + 1, max_size,
                         rc, lfpool_strerror(rc));
            if (rc == 0 && rel_take(&r->w, &r->v, objs[i])) {
                atomic_fetch_add(&r->gets_ok, 1);
            } else {
                objs[i] = NULL;
            }
        }
        void *extra = NULL;
        int rc = lfpool_get(r->pool, &extra, 0);
        cr_expect_eq(rc, EAGAIN, "get beyond max_size gave %d", rc);
        if (rc == 0)
            lfpool_ret(r->pool, extra);
        for (size_t i = 0; i < max_size; i++) {
            if (!objs[i])
                continue;
            struct rel_obj *o = objs[i];
            uint64_t uses = atomic_load(&o->uses);
            rel_release(o);
            cr_expect_eq(lfpool_ret(r->pool, o), 0);
            if (cfg->max_use && uses >= cfg->max_use)
                atomic_fetch_add(&r->wornout_expected, 1);
        }
        free(objs);
    }
    cr_expect_eq(lfpool_housekeep(r->pool), 0);
    /* ---- recycling, deterministically: whether the run's quiet phases
     * caught idle objects above min_size depends on scheduling, so after
     * the capacity check (max_size objects exist and are all back) let them
     * idle past max_avail_delay once more */
    if (cfg->max_avail_delay > 0) {
        lfx_clock_advance(&r->clk, cfg->max_avail_delay * 2);
        cr_expect_eq(lfpool_housekeep(r->pool), 0);
    }

    /* ---- counters against what the hooks and callers saw */
    struct lfpool_stats st;
    cr_assert_eq(lfpool_stats(r->pool, &st), 0);
    uint64_t fun_ok = atomic_load(&r->w.hk.n.created);
    uint64_t killed_seen = atomic_load(&r->rets_stale) + atomic_load(&r->rets_noent);
    cr_expect_eq(st.ncreated, fun_ok, "ncreated %llu != non-NULL fun returns %llu",
                 (unsigned long long)st.ncreated, (unsigned long long)fun_ok);
    cr_expect_eq(st.ncreating, atomic_load(&r->w.hk.n.fun), "ncreating %llu != fun calls %llu",
                 (unsigned long long)st.ncreating,
                 (unsigned long long)atomic_load(&r->w.hk.n.fun));
    cr_expect_eq(st.nuses, atomic_load(&r->gets_ok), "nuses %llu != successful gets %llu",
                 (unsigned long long)st.nuses, (unsigned long long)atomic_load(&r->gets_ok));
    cr_expect_eq(st.nkilled, killed_seen, "nkilled %llu != kills seen by holders %llu",
                 (unsigned long long)st.nkilled, (unsigned long long)killed_seen);
    cr_expect_eq(st.nwornout, atomic_load(&r->wornout_expected), "nwornout %llu != %llu",
                 (unsigned long long)st.nwornout,
                 (unsigned long long)atomic_load(&r->wornout_expected));
    cr_expect_eq(st.nhealth, atomic_load(&r->w.hk.n.health), "nhealth %llu != health calls %llu",
                 (unsigned long long)st.nhealth,
                 (unsigned long long)atomic_load(&r->w.hk.n.health));
    cr_expect_eq(st.bad_health, atomic_load(&r->w.health_bad_count), "bad_health");
    cr_expect_eq(st.hc_errors, atomic_load(&r->w.health_err_count), "hc_errors");
    cr_expect_eq(st.nusing, 0, "nusing %llu after all returns", (unsigned long long)st.nusing);
    cr_expect_leq(st.nobjs, max_size ? max_size : st.nobjs);
    cr_expect_eq((int64_t)st.nobjs + (int64_t)st.ntodel, atomic_load(&r->w.live),
                 "nobjs %llu + ntodel %llu != created - closed %lld",
                 (unsigned long long)st.nobjs, (unsigned long long)st.ntodel,
                 (long long)atomic_load(&r->w.live));
    if (max_size)
        cr_expect_eq(st.sem_value, (int64_t)max_size, "sem_value %lld after all returns",
                     (long long)st.sem_value);

    /* ---- shutdown closes everything, exactly once */
    cr_expect_eq(lfpool_shutdown(r->pool, 2.0), 0);
    cr_expect_eq(lfpool_shutdown(r->pool, 2.0), 0, "second shutdown");
    void *p = NULL;
    cr_expect_eq(lfpool_get(r->pool, &p, 0), ESHUTDOWN);
    lfpool_free(r->pool);
    r->pool = NULL;
    uint32_t created = atomic_load(&r->w.next);
    if (created > r->w.cap)
        created = r->w.cap;
    uint64_t not_closed = 0, closed_twice = 0;
    for (uint32_t i = 0; i < created; i++) {
        int c = atomic_load(&r->w.objs[i].closed);
        if (c == 0)
            not_closed++;
        else if (c > 1)
            closed_twice++;
    }
    cr_expect_eq(created, fun_ok);
    cr_expect_eq(not_closed, 0, "%llu created objects never closed", (unsigned long long)not_closed);
    cr_expect_eq(closed_twice, 0, "%llu objects closed twice", (unsigned long long)closed_twice);
    cr_expect_eq(atomic_load(&r->w.hk.n.closed), fun_ok, "closer calls %llu != created %llu",
                 (unsigned long long)atomic_load(&r->w.hk.n.closed), (unsigned long long)fun_ok);
    cr_expect_eq(atomic_load(&r->w.closer_foreign), 0);

    /* ---- safety, during the run */
    cr_expect_eq(atomic_load(&r->v.double_handout), 0, "object handed out twice concurrently");
    cr_expect_eq(atomic_load(&r->v.closed_handout), 0, "object handed out after close");
    cr_expect_eq(atomic_load(&r->v.foreign_handout), 0, "get returned a foreign pointer");
    cr_expect_eq(atomic_load(&r->v.bad_ret), 0, "unexpected ret code");
    cr_expect_eq(atomic_load(&r->v.ret_ok_after_close), 0, "ret 0 of an object closed while held");
    cr_expect_eq(atomic_load(&r->w.health_on_held), 0, "health check on a held or closed object");
    cr_expect_eq(atomic_load(&r->w.closer_on_borrowed), 0, "closer during a health check");
    cr_expect_eq(atomic_load(&r->held_over), 0, "more than max_size objects held at once");
    cr_expect_eq(atomic_load(&r->nobjs_over), 0, "stats showed nobjs/nusing over max_size");
    cr_expect_eq(atomic_load(&r->get_other), 0, "get gave an unexpected code %d",
                 atomic_load(&r->get_other_code));
    cr_expect_eq(atomic_load(&r->stale_not_closed), 0, "ESTALE without the closer having run");
    if (kill_mode == LFPOOL_KILL_DEFER)
        cr_expect_eq(atomic_load(&r->w.closer_on_held), 0, "closer ran on a held object in DEFER mode");
    else
        cr_expect_leq(atomic_load(&r->w.closer_on_held), atomic_load(&r->rets_noent),
                      "closer on held objects not matched by ENOENT rets");
    cr_expect_eq(atomic_load(&r->hk_errors), 0);
    cr_expect_eq(atomic_load(&r->json_bad), 0, "invalid JSON stats under load");

    /* ---- the faults actually fired */
    cr_expect(hang_happened, "the health hang never happened");
    uint64_t floor = slow ? 5 : 50;
    cr_expect_gt(atomic_load(&r->ops_during_hang), floor,
                 "only %llu gets completed during the 1.5 s health hang",
                 (unsigned long long)atomic_load(&r->ops_during_hang));
    cr_expect_gt(atomic_load(&r->w.hk.n.fun_failed), 0);
    cr_expect_gt(killed_seen, 0, "no kill fired");
    cr_expect_gt(st.nrecycled, 0, "no recycle fired");
    cr_expect_gt(st.nwornout, 0, "no object wore out");
    cr_expect_gt(atomic_load(&r->w.health_bad_count), 0);
    cr_expect_gt(atomic_load(&r->w.health_err_count), 0);

    fprintf(stderr,
            "faults[%s,max=%zu]: gets %llu (timeout %llu, again %llu, fun errors %llu), "
            "rets ok %llu, stale %llu, enoent %llu; created %llu of %llu fun calls; "
            "killed %llu recycled %llu wornout %llu; health %llu (bad %llu, err %llu); "
            "ops during hang %llu; hk calls %llu, json %llu; log lines %llu\n",
            kill_mode == LFPOOL_KILL_DEFER ? "defer" : "close", max_size,
            (unsigned long long)atomic_load(&r->gets_ok),
            (unsigned long long)atomic_load(&r->get_timeout),
            (unsigned long long)atomic_load(&r->get_again),
            (unsigned long long)atomic_load(&r->get_funerr),
            (unsigned long long)atomic_load(&r->rets_ok),
            (unsigned long long)atomic_load(&r->rets_stale),
            (unsigned long long)atomic_load(&r->rets_noent), (unsigned long long)fun_ok,
            (unsigned long long)atomic_load(&r->w.hk.n.fun), (unsigned long long)st.nkilled,
            (unsigned long long)st.nrecycled, (unsigned long long)st.nwornout,
            (unsigned long long)st.nhealth, (unsigned long long)st.bad_health,
            (unsigned long long)st.hc_errors,
            (unsigned long long)atomic_load(&r->ops_during_hang),
            (unsigned long long)atomic_load(&r->hk_calls),
            (unsigned long long)atomic_load(&r->json_samples),
            (unsigned long long)lfx_log_total(&r->log));
    rel_world_fini(&r->w);
}

Test(faults, kill_defer, .timeout = 60)
{
    run_faults(LFPOOL_KILL_DEFER, 6, 3.0);
}

Test(faults, kill_close, .timeout = 60)
{
    run_faults(LFPOOL_KILL_CLOSE, 6, 3.0);
}

/* ------------------------------------------------------------------
 * A kill releases the capacity token: a waiter blocked at max_size
 * proceeds once the holders are killed (both modes).
 */
struct waiter_arg {
    lfpool *pool;
    double timeout;
    int rc;
    void *obj;
    double waited;
};

static void *waiter(void *arg)
{
    struct waiter_arg *a = arg;
    double t = rel_mono();
    a->rc = lfpool_get(a->pool, &a->obj, a->timeout);
    a->waited = rel_mono() - t;
    return NULL;
}

static void kill_frees_capacity(int kill_mode)
{
    static struct rel_world w;
    struct lfx_log log;
    struct lfx_clock clk = {1000000};
    rel_world_init(&w, 64);
    lfx_log_init(&log, "REL_LOG");
    lfpool_config cfg;
    rel_config(&cfg, &w, &log, &clk);
    cfg.max_size = 2;
    cfg.min_size = 0;
    cfg.max_using_delay_kill = 10;
    cfg.delay = 1000; /* the library's own rounds never come: we drive them */
    cfg.kill_mode = kill_mode;
    lfpool *pool;
    cr_assert_eq(lfpool_new(&pool, &cfg), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(pool, &a, 0), 0);
    cr_assert_eq(lfpool_get(pool, &b, 0), 0);
    struct waiter_arg wa[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        wa[i] = (struct waiter_arg){pool, i == 2 ? 0.3 : 5.0, -1, NULL, 0};
        pthread_create(&th[i], NULL, waiter, &wa[i]);
    }
    rel_sleep(0.1);
    lfx_clock_advance(&clk, 11);
    cr_assert_eq(lfpool_housekeep(pool), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    /* two tokens came back: the two 5 s waiters proceed; the 0.3 s one may
     * time out or win, but exactly two of three got an object */
    int got = 0;
    for (int i = 0; i < 3; i++) {
        if (wa[i].rc == 0) {
            got++;
            cr_expect_neq(wa[i].obj, a);
            cr_expect_neq(wa[i].obj, b);
        } else {
            cr_expect_eq(wa[i].rc, ETIMEDOUT, "waiter %d: %d", i, wa[i].rc);
        }
    }
    cr_expect_eq(got, 2, "waiters served after the kill: %d", got);
    int want = kill_mode == LFPOOL_KILL_DEFER ? ESTALE : ENOENT;
    cr_expect_eq(lfpool_ret(pool, a), want);
    cr_expect_eq(lfpool_ret(pool, b), want);
    cr_expect_eq(lfpool_ret(pool, a), ENOENT, "second ret of a killed object");
    for (int i = 0; i < 3; i++)
        if (wa[i].rc == 0)
            cr_expect_eq(lfpool_ret(pool, wa[i].obj), 0);
    struct lfpool_stats st;
    cr_assert_eq(lfpool_stats(pool, &st), 0);
    cr_expect_eq(st.nkilled, 2);
    cr_expect_eq(st.sem_value, 2);
    lfpool_free(pool);
    cr_expect_eq(atomic_load(&w.hk.n.closed), atomic_load(&w.hk.n.created));
    cr_expect_eq(atomic_load(&w.closer_twice), 0);
    rel_world_fini(&w);
}

Test(faults, kill_frees_capacity_defer, .timeout = 30)
{
    kill_frees_capacity(LFPOOL_KILL_DEFER);
}

Test(faults, kill_frees_capacity_close, .timeout = 30)
{
    kill_frees_capacity(LFPOOL_KILL_CLOSE);
}

/* ------------------------------------------------------------------
 * shutdown wakes every waiter with ESHUTDOWN; the object still out is
 * closed when it comes back (ret gives 0).
 */
Test(faults, shutdown_wakes_waiters, .timeout = 30)
{
    static struct rel_world w;
    struct lfx_log log;
    rel_world_init(&w, 64);
    lfx_log_init(&log, "REL_LOG");
    lfpool_config cfg;
    rel_config(&cfg, &w, &log, NULL);
    cfg.max_size = 1;
    lfpool *pool;
    cr_assert_eq(lfpool_new(&pool, &cfg), 0);
    void *a;
    cr_assert_eq(lfpool_get(pool, &a, 0), 0);
    struct waiter_arg wa[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        wa[i] = (struct waiter_arg){pool, i % 2 ? LFPOOL_FOREVER : 30.0, -1, NULL, 0};
        pthread_create(&th[i], NULL, waiter, &wa[i]);
    }
    rel_sleep(0.2);
    double t = rel_mono();
    cr_expect_eq(lfpool_shutdown(pool, 1.0), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    double waited = rel_mono() - t;
    for (int i = 0; i < 6; i++)
        cr_expect_eq(wa[i].rc, ESHUTDOWN, "waiter %d: %d", i, wa[i].rc);
    cr_expect_lt(waited, 5.0, "waiters took %.2f s to wake", waited);
    struct rel_obj *o = a;
    cr_expect_eq(atomic_load(&o->closed), 0, "object out was closed by shutdown");
    cr_expect_eq(lfpool_ret(pool, a), 0);
    cr_expect_eq(atomic_load(&o->closed), 1, "object out not closed when returned after shutdown");
    lfpool_free(pool);
    cr_expect_eq(atomic_load(&w.hk.n.closed), atomic_load(&w.hk.n.created));
    rel_world_fini(&w);
}

/* ------------------------------------------------------------------
 * Objects got by one set of threads and returned by another (any thread
 * may return), unbounded pool, with fun failures.
 */
struct xq {
    _Atomic(void *) box[64];
    _Atomic int stop;
    _Atomic uint64_t moved, rets_bad, gets;
    lfpool *pool;
    struct rel_world *w;
    struct rel_viol *v;
};

static void *producer(void *arg)
{
    struct xq *q = arg;
    while (!atomic_load(&q->stop)) {
        void *p;
        if (lfpool_get(q->pool, &p, 0.05) != 0)
            continue;
        atomic_fetch_add(&q->gets, 1);
        if (!rel_take(q->w, q->v, p))
            continue;
        unsigned i = (unsigned)(lfx_rand() % 64);
        void *expect = NULL;
        while (!atomic_compare_exchange_weak(&q->box[i], &expect, p)) {
            expect = NULL;
            i = (i + 1) % 64;
            if (atomic_load(&q->stop)) {
                rel_release(p);
                lfpool_ret(q->pool, p);
                return NULL;
            }
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct xq *q = arg;
    for (;;) {
        /* stop is read before the scan: once it is 2 every producer has
         * been joined, so an empty scan begun after that read saw every
         * box.  (Read after the scan, a scan that passed a box before its
         * producer filled it could end the consumer with the object left
         * in the box, held by nobody: nusing 1 at rest.) */
        bool last = atomic_load(&q->stop) == 2;
        bool any = false;
        for (int i = 0; i < 64; i++) {
            void *p = atomic_exchange(&q->box[i], NULL);
            if (!p)
                continue;
            any = true;
            rel_release(p);
            if (lfpool_ret(q->pool, p) != 0)
                atomic_fetch_add(&q->rets_bad, 1);
            atomic_fetch_add(&q->moved, 1);
        }
        if (!any && last)
            return NULL;
    }
}

Test(faults, cross_thread_return, .timeout = 30)
{
    static struct rel_world w;
    static struct rel_viol v;
    static struct xq q;
    struct lfx_log log;
    rel_world_init(&w, 1u << 20);
    lfx_log_init(&log, "REL_LOG");
    memset(&v, 0, sizeof v);
    memset(&q, 0, sizeof q);
    atomic_store(&w.hk.f.fun_permille, 250);
    lfpool_config cfg;
    rel_config(&cfg, &w, &log, NULL);
    cfg.max_size = 0; /* unbounded: creation fills what is in the boxes */
    cfg.min_size = 4;
    lfpool *pool;
    cr_assert_eq(lfpool_new(&pool, &cfg), 0);
    q.pool = pool;
    q.w = &w;
    q.v = &v;
    pthread_t pt[5], ct[4];
    for (int i = 0; i < 5; i++)
        pthread_create(&pt[i], NULL, producer, &q);
    for (int i = 0; i < 4; i++)
        pthread_create(&ct[i], NULL, consumer, &q);
    rel_sleep(rel_slow_env() ? 3.0 : 1.5);
    atomic_store(&q.stop, 1);
    for (int i = 0; i < 5; i++)
        pthread_join(pt[i], NULL);
    atomic_store(&q.stop, 2);
    for (int i = 0; i < 4; i++)
        pthread_join(ct[i], NULL);
    int left = 0;
    for (int i = 0; i < 64; i++)
        left += atomic_load(&q.box[i]) != NULL;
    cr_expect_eq(left, 0, "%d objects left in the boxes after the consumers ended", left);
    cr_expect_eq(atomic_load(&q.rets_bad), 0);
    cr_expect_eq(rel_viol_total(&v), 0, "exclusivity violations");
    struct lfpool_stats st;
    cr_assert_eq(lfpool_stats(pool, &st), 0);
    cr_expect_eq(st.nusing, 0);
    cr_expect_eq(st.ncreated, atomic_load(&w.hk.n.created));
    cr_expect_eq(st.nuses, atomic_load(&q.gets));
    cr_expect_eq(st.navail, st.nobjs, "navail %llu != nobjs %llu: object stranded?",
                 (unsigned long long)st.navail, (unsigned long long)st.nobjs);
    /* every object is reachable again: get them all without creating */
    uint64_t nobjs = st.nobjs, before = atomic_load(&w.hk.n.fun);
    void **all = calloc(nobjs, sizeof *all);
    for (uint64_t i = 0; i < nobjs; i++)
        cr_expect_eq(lfpool_get(pool, &all[i], 0), 0);
    cr_expect_eq(atomic_load(&w.hk.n.fun), before, "an available object was stranded");
    for (uint64_t i = 0; i < nobjs; i++)
        if (all[i])
            lfpool_ret(pool, all[i]);
    free(all);
    fprintf(stderr, "cross_thread_return: %llu objects moved between threads, %llu created\n",
            (unsigned long long)atomic_load(&q.moved), (unsigned long long)st.ncreated);
    lfpool_free(pool);
    cr_expect_eq(atomic_load(&w.hk.n.closed), atomic_load(&w.hk.n.created));
    rel_world_fini(&w);
}
