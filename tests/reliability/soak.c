/*
 * soak.c - opt-in soak test (issue 4, part 6): `meson test --suite soak`.
 *
 * Runs LFPOOL_SOAK_SECONDS (default 120; the meson test sets it) of epochs:
 * each epoch makes a pool (bounded 4 or 16, or unbounded; kill mode
 * alternating), runs 8 workers with injected faults (fun 20 %, hooks 5 %,
 * health bad/err 2 %, kills, recycling, wear-out), an injected clock and a
 * housekeeping helper (half the workers get and return through handles),
 * then checks the invariants (exclusivity, closer exactly once, ncreated
 * == fun successes, no capacity leak) and frees the pool.  Objects come from a fixed arena recycled through a quarantine, so
 * that memory stays flat; RSS is sampled every second and must not grow
 * after the warm-up (first epoch).
 *
 * Exit status 0 when every invariant held, 1 otherwise.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rel_common.h"

#define NW 8
#define ARENA (1u << 16)
#define QUARANTINE 8192 /* a closed slot is reused after this many other closes */

static struct rel_world W;
static struct rel_viol V;
static struct lfx_log L;
static struct lfx_clock C;
static lfpool *P;
static lfpool_config CFG;
static _Atomic int STOP, STOP_HELPERS;
static _Atomic uint64_t OPS, GET_OTHER, RET_KILLED, WORNOUT_EXP, GETS_OK, HELD_OVER;
static _Atomic int64_t HELD;
/* The held count and the killable slots are read as one snapshot: a worker
 * changes HELD under this lock.  (Read apart, a killed holder could leave
 * between the two reads - counted in HELD, no longer active - and the check
 * fired with the pool innocent: a TSan soak in CI did.) */
static pthread_mutex_t HELD_LOCK = PTHREAD_MUTEX_INITIALIZER;
static uint64_t failures;

/* slot recycling: a ring of closed slots */
static pthread_mutex_t QMU = PTHREAD_MUTEX_INITIALIZER;
static uint32_t QRING[ARENA];
static uint32_t QHEAD, QLEN;

static void *soak_fun(void *ctx, uint64_t n)
{
    struct rel_world *w = ctx;
    atomic_fetch_add(&w->hk.n.fun, 1);
    if (lfx_chance(atomic_load(&w->hk.f.fun_permille))) {
        atomic_fetch_add(&w->hk.n.fun_failed, 1);
        errno = ECONNREFUSED;
        return NULL;
    }
    uint32_t i = UINT32_MAX;
    pthread_mutex_lock(&QMU);
    if (QLEN > QUARANTINE) {
        i = QRING[QHEAD];
        QHEAD = (QHEAD + 1) % ARENA;
        QLEN--;
    }
    pthread_mutex_unlock(&QMU);
    if (i == UINT32_MAX) {
        i = atomic_fetch_add(&w->next, 1);
        if (i >= w->cap) {
            atomic_fetch_add(&w->hk.n.fun_failed, 1);
            errno = ENOMEM;
            return NULL;
        }
    }
    return rel_obj_make(w, i, n);
}

static int soak_closer(void *ctx, void *obj)
{
    int r = rel_closer(ctx, obj);
    struct rel_obj *o = obj;
    if (rel_is_obj(&W, obj) && !atomic_load(&o->held)) {
        pthread_mutex_lock(&QMU);
        QRING[(QHEAD + QLEN) % ARENA] = o->index;
        QLEN++;
        pthread_mutex_unlock(&QMU);
    }
    /* a slot closed while held (KILL_CLOSE) is never reused: the holder
     * still has the pointer */
    return r;
}

struct slot {
    _Atomic int active;
    _Atomic uint64_t t0;
} SLOTS[NW];

static uint64_t killable(void)
{
    if (CFG.max_using_delay_kill <= 0)
        return 0;
    uint64_t now = atomic_load(&C.us), k = 0, kill = (uint64_t)(CFG.max_using_delay_kill * 1e6);
    for (int i = 0; i < NW; i++)
        if (atomic_load(&SLOTS[i].active) && now - atomic_load(&SLOTS[i].t0) >= kill)
            k++;
    return k;
}

static void *worker(void *arg)
{
    struct slot *s = arg;
    bool handles = (s - SLOTS) % 2 == 1; /* half the workers use handles */
    unsigned it = 0;
    while (!atomic_load(&STOP)) {
        it++;
        atomic_store(&s->t0, atomic_load(&C.us));
        atomic_store(&s->active, 1);
        void *p = NULL;
        lfpool_handle hd;
        int rc = handles ? lfpool_get_handle(P, &hd, it % 2 ? 0.05 : 0)
                         : lfpool_get(P, &p, it % 2 ? 0.05 : 0);
        if (handles && rc == 0)
            p = hd.obj;
        if (rc != 0) {
            atomic_store(&s->active, 0);
            if (rc != ETIMEDOUT && rc != EAGAIN && rc != ECONNREFUSED && rc != ENOMEM)
                atomic_fetch_add(&GET_OTHER, 1);
            continue;
        }
        atomic_fetch_add(&GETS_OK, 1);
        if (!rel_take(&W, &V, p)) {
            atomic_store(&s->active, 0);
            continue;
        }
        struct rel_obj *o = p;
        pthread_mutex_lock(&HELD_LOCK);
        int64_t h = atomic_fetch_add(&HELD, 1) + 1;
        uint64_t k = killable();
        if (CFG.max_size && (uint64_t)h > CFG.max_size + k) {
            atomic_fetch_add(&HELD_OVER, 1);
            printf("held %lld > max_size %zu + killable %llu\n", (long long)h, CFG.max_size,
                   (unsigned long long)k);
        }
        pthread_mutex_unlock(&HELD_LOCK);
        if (lfx_chance(5))
            rel_sleep(0.03);
        int closed_before = atomic_load(&o->closed);
        uint64_t uses = atomic_load(&o->uses);
        pthread_mutex_lock(&HELD_LOCK);
        atomic_fetch_sub(&HELD, 1);
        pthread_mutex_unlock(&HELD_LOCK);
        rel_release(o);
        rc = handles ? lfpool_ret_handle(P, &hd) : lfpool_ret(P, o);
        atomic_store(&s->active, 0);
        if (rc == 0) {
            if (closed_before)
                atomic_fetch_add(&V.ret_ok_after_close, 1);
            if (CFG.max_use && uses >= CFG.max_use)
                atomic_fetch_add(&WORNOUT_EXP, 1);
        } else if ((rc == ESTALE && CFG.kill_mode == LFPOOL_KILL_DEFER) ||
                   (rc == ENOENT && CFG.kill_mode == LFPOOL_KILL_CLOSE)) {
            atomic_fetch_add(&RET_KILLED, 1);
        } else {
            atomic_fetch_add(&V.bad_ret, 1);
        }
        atomic_fetch_add(&OPS, 1);
        if (lfx_chance(5))
            rel_sleep(0.01);
    }
    return NULL;
}

static void *helper(void *arg)
{
    (void)arg;
    unsigned n = 0;
    while (!atomic_load(&STOP_HELPERS)) {
        lfx_clock_advance(&C, 0.1);
        if (++n % 2 == 0)
            lfpool_housekeep(P);
        if (n % 200 == 0)
            free(lfpool_stats_json(P));
        rel_sleep(0.001);
    }
    return NULL;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = -1;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            printf("FAIL epoch %d: ", epoch);                                  \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
        }                                                                      \
    } while (0)

int main(void)
{
    double total = 120;
    const char *e = getenv("LFPOOL_SOAK_SECONDS");
    if (e && atof(e) > 0)
        total = atof(e);
    double epoch_s = total / 6 < 20 ? total / 6 : 20;
    if (epoch_s < 1)
        epoch_s = 1;
    rel_world_init(&W, ARENA);
    lfx_log_init(&L, "REL_LOG");
    atomic_store(&C.us, 1000000);
    double t_start = rel_mono(), next_sample = t_start;
    long rss_base = -1, rss_max = 0, rss_last = 0, rss_first = rss_kb();
    int epoch = 0, nsamples = 0;
    uint64_t total_ops = 0;
    static const size_t sizes[] = {4, 16, 0};
    while (rel_mono() - t_start < total) {
        memset(&V, 0, sizeof V);
        atomic_store(&RET_KILLED, 0);
        atomic_store(&WORNOUT_EXP, 0);
        atomic_store(&GETS_OK, 0);
        uint64_t fun_ok0 = atomic_load(&W.hk.n.created), fun_calls0 = atomic_load(&W.hk.n.fun);
        uint64_t hb0 = atomic_load(&W.health_bad_count), he0 = atomic_load(&W.health_err_count);
        rel_config(&CFG, &W, &L, &C);
        CFG.fun = soak_fun;
        CFG.closer = soak_closer;
        CFG.health = rel_health;
        CFG.stats = rel_stats_hook;
        CFG.max_size = sizes[epoch % 3];
        CFG.min_size = 2;
        CFG.timeout = 0.1;
        CFG.max_use = 30;
        CFG.max_avail_delay = 1.5;
        CFG.max_using_delay_kill = 2.5;
        CFG.delay = 0.05;
        CFG.kill_mode = epoch % 2 ? LFPOOL_KILL_CLOSE : LFPOOL_KILL_DEFER;
        V.close_kills = CFG.kill_mode == LFPOOL_KILL_CLOSE && CFG.max_using_delay_kill > 0;
        atomic_store(&W.hk.f.fun_permille, 200);
        atomic_store(&W.hk.f.opener_permille, 50);
        atomic_store(&W.hk.f.getter_permille, 50);
        atomic_store(&W.hk.f.retter_permille, 50);
        atomic_store(&W.hk.f.closer_permille, 50);
        atomic_store(&W.health_bad, 20);
        atomic_store(&W.health_err, 20);
        atomic_store(&W.slow_closer, 5);
        atomic_store(&W.slow_closer_us, 5000);
        if (lfpool_new(&P, &CFG) != 0) {
            printf("FAIL: lfpool_new\n");
            return 1;
        }
        atomic_store(&STOP, 0);
        atomic_store(&STOP_HELPERS, 0);
        atomic_store(&HELD_OVER, 0); /* per epoch */
        pthread_t th[NW], hk;
        for (int i = 0; i < NW; i++)
            pthread_create(&th[i], NULL, worker, &SLOTS[i]);
        pthread_create(&hk, NULL, helper, NULL);
        double t0 = rel_mono();
        while (rel_mono() - t0 < epoch_s) {
            rel_sleep(0.05);
            if (rel_mono() >= next_sample) {
                next_sample += 1.0;
                long r = rss_kb();
                nsamples++;
                rss_last = r;
                if (epoch >= 1 && rss_base < 0)
                    rss_base = r;
                if (rss_base >= 0 && r > rss_max)
                    rss_max = r;
            }
        }
        atomic_store(&STOP, 1);
        for (int i = 0; i < NW; i++)
            pthread_join(th[i], NULL);
        atomic_store(&STOP_HELPERS, 1);
        pthread_join(hk, NULL);
        /* quiesce and check */
        atomic_store(&W.hk.f.fun_permille, 0);
        atomic_store(&W.hk.f.opener_permille, 0);
        atomic_store(&W.hk.f.getter_permille, 0);
        atomic_store(&W.hk.f.retter_permille, 0);
        atomic_store(&W.hk.f.closer_permille, 0);
        atomic_store(&W.health_bad, 0);
        atomic_store(&W.health_err, 0);
        lfpool_housekeep(P);
        lfpool_housekeep(P);
        size_t want = CFG.max_size ? CFG.max_size : 8;
        void *objs[16] = {0};
        for (size_t i = 0; i < want; i++) {
            int rc = lfpool_get(P, &objs[i], 2.0);
            CHECK(rc == 0, "capacity check get %zu: %d", i, rc);
            if (rc == 0 && rel_take(&W, &V, objs[i]))
                atomic_fetch_add(&GETS_OK, 1);
            else
                objs[i] = NULL;
        }
        if (CFG.max_size) {
            void *x;
            int rc = lfpool_get(P, &x, 0);
            CHECK(rc == EAGAIN, "get beyond max_size: %d", rc);
            if (rc == 0)
                lfpool_ret(P, x);
        }
        for (size_t i = 0; i < want; i++) {
            if (!objs[i])
                continue;
            struct rel_obj *o = objs[i];
            uint64_t uses = atomic_load(&o->uses);
            rel_release(o);
            CHECK(lfpool_ret(P, o) == 0, "ret in capacity check");
            if (uses >= CFG.max_use)
                atomic_fetch_add(&WORNOUT_EXP, 1);
        }
        struct lfpool_stats st;
        lfpool_stats(P, &st);
        CHECK(st.ncreated == atomic_load(&W.hk.n.created) - fun_ok0, "ncreated %llu != fun ok %llu",
              (unsigned long long)st.ncreated,
              (unsigned long long)(atomic_load(&W.hk.n.created) - fun_ok0));
        CHECK(st.ncreating == atomic_load(&W.hk.n.fun) - fun_calls0, "ncreating");
        CHECK(st.nuses == atomic_load(&GETS_OK), "nuses %llu != gets %llu",
              (unsigned long long)st.nuses, (unsigned long long)atomic_load(&GETS_OK));
        CHECK(st.nkilled == atomic_load(&RET_KILLED), "nkilled %llu != %llu",
              (unsigned long long)st.nkilled, (unsigned long long)atomic_load(&RET_KILLED));
        CHECK(st.nwornout == atomic_load(&WORNOUT_EXP), "nwornout %llu != %llu",
              (unsigned long long)st.nwornout, (unsigned long long)atomic_load(&WORNOUT_EXP));
        CHECK(st.bad_health == atomic_load(&W.health_bad_count) - hb0, "bad_health");
        CHECK(st.hc_errors == atomic_load(&W.health_err_count) - he0, "hc_errors");
        CHECK(st.nusing == 0, "nusing %llu", (unsigned long long)st.nusing);
        if (CFG.max_size)
            CHECK(st.sem_value == (int64_t)CFG.max_size, "sem %lld", (long long)st.sem_value);
        lfpool_shutdown(P, 1.0);
        lfpool_free(P);
        P = NULL;
        CHECK(atomic_load(&W.live) == 0, "created - closed = %lld after free",
              (long long)atomic_load(&W.live));
        CHECK(atomic_load(&W.closer_twice) == 0, "closer twice");
        CHECK(rel_viol_total(&V) == 0,
              "violations: double %llu closed %llu foreign %llu badret %llu okafterclose %llu",
              (unsigned long long)V.double_handout, (unsigned long long)V.closed_handout,
              (unsigned long long)V.foreign_handout, (unsigned long long)V.bad_ret,
              (unsigned long long)V.ret_ok_after_close);
        CHECK(atomic_load(&V.closed_by_kill_at_take) <= st.nkilled,
              "%llu objects closed at take, only %llu kills",
              (unsigned long long)atomic_load(&V.closed_by_kill_at_take),
              (unsigned long long)st.nkilled);
        CHECK(atomic_load(&W.health_on_held) == 0, "health on a held object");
        CHECK(atomic_load(&HELD_OVER) == 0, "more than max_size held");
        CHECK(atomic_load(&GET_OTHER) == 0, "unexpected get code");
        if (CFG.kill_mode == LFPOOL_KILL_DEFER)
            CHECK(atomic_load(&W.closer_on_held) == 0, "closer on held object (defer)");
        atomic_store(&W.closer_on_held, 0);
        total_ops += atomic_load(&OPS);
        printf("epoch %d: max_size %zu kill %s: %llu ops, created %llu, killed %llu, "
               "recycled %llu, wornout %llu, rss %ld kB\n",
               epoch, CFG.max_size, CFG.kill_mode ? "close" : "defer",
               (unsigned long long)atomic_load(&OPS), (unsigned long long)st.ncreated,
               (unsigned long long)st.nkilled, (unsigned long long)st.nrecycled,
               (unsigned long long)st.nwornout, rss_kb());
        fflush(stdout);
        atomic_store(&OPS, 0);
        epoch++;
    }
    long rss_end = rss_kb();
    printf("soak: %.0f s, %d epochs, %llu get/ret pairs, %u arena slots used; RSS first %ld kB, "
           "after warm-up %ld kB, max %ld kB, last %ld kB, end %ld kB (%d samples)\n",
           rel_mono() - t_start, epoch, (unsigned long long)total_ops, atomic_load(&W.next),
           rss_first, rss_base, rss_max, rss_last, rss_end, nsamples);
    /* under ThreadSanitizer/valgrind the tool's own memory grows: the RSS
     * check is for normal builds (LFPOOL_SOAK_NO_RSS=1 skips it) */
    const char *no_rss = getenv("LFPOOL_SOAK_NO_RSS");
    if (no_rss && *no_rss && *no_rss != '0')
        rss_base = -1;
    if (rss_base > 0 && rss_max - rss_base > 16 * 1024) {
        printf("FAIL: RSS grew by %ld kB after warm-up\n", rss_max - rss_base);
        failures++;
    }
    printf("soak: %s (%llu failed checks)\n", failures ? "FAILED" : "ok",
           (unsigned long long)failures);
    rel_world_fini(&W);
    return failures ? 1 : 0;
}
