/*
 * manypools.c - 1000 pools in one process (issue 4, part 6).
 *
 * 1000 pools of mixed configurations (a quarter with a housekeeper thread,
 * bounded and unbounded, lazy and not) live together; 4 threads use them
 * all at random, objects must never cross pools, ids are unique, and every
 * pool frees cleanly with every closer run once.
 * The housekeeper modes: 1000 pools with rounds are 1000 threads with a
 * housekeeper of their own, at most two with the shared one (threads
 * counted in /proc/self/task); shared pools keep their own periods, and a
 * health hook that hangs in one delays no other pool's rounds, nor the
 * lfpool_free of another pool.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rel_common.h"

#include <criterion/criterion.h>
#include <dirent.h>

#define NPOOLS 1000

struct mp {
    lfpool *pool[NPOOLS];
    struct rel_world w[NPOOLS];
    lfpool_config cfg[NPOOLS];
    _Atomic int stop;
    _Atomic uint64_t ops, wrong;
};
static struct mp M;
static struct lfx_log L;

static void *user(void *arg)
{
    (void)arg;
    while (!atomic_load(&M.stop)) {
        unsigned i = (unsigned)(lfx_rand() % NPOOLS);
        void *o[3];
        int n = 0;
        for (; n < 3; n++) {
            int rc = lfpool_get(M.pool[i], &o[n], 0);
            if (rc == EAGAIN)
                break;
            if (rc != 0) {
                atomic_fetch_add(&M.wrong, 1);
                break;
            }
            if (!rel_is_obj(&M.w[i], o[n])) {
                atomic_fetch_add(&M.wrong, 1); /* object of another pool */
                n++;
                break;
            }
        }
        /* a foreign ret on a neighbour pool */
        if (n > 0) {
            unsigned j = (i + 1) % NPOOLS;
            if (lfpool_ret(M.pool[j], o[0]) != ENOENT)
                atomic_fetch_add(&M.wrong, 1);
        }
        for (int k = 0; k < n; k++)
            if (lfpool_ret(M.pool[i], o[k]) != 0)
                atomic_fetch_add(&M.wrong, 1);
        atomic_fetch_add(&M.ops, 1);
    }
    return NULL;
}

Test(manypools, thousand_pools, .timeout = 120)
{
    lfx_log_init(&L, "REL_LOG");
    bool slow = rel_slow_env();
    for (int i = 0; i < NPOOLS; i++) {
        rel_world_init(&M.w[i], 256);
        lfpool_config *c = &M.cfg[i];
        rel_config(c, &M.w[i], &L, NULL);
        c->max_size = i % 3 == 0 ? 0 : (size_t)(1 + i % 5);
        c->min_size = c->max_size ? (size_t)(i % 2) : 1;
        c->lazy_start = i % 7 == 0;
        if (i % 4 == 0) {
            c->delay = 0.5;          /* a housekeeper thread */
            c->max_avail_delay = 0.2;
        }
        int rc = lfpool_new(&M.pool[i], c);
        cr_assert_eq(rc, 0, "pool %d: %d", i, rc);
    }
    uint64_t prev_id = 0;
    for (int i = 0; i < NPOOLS; i++) {
        struct lfpool_stats st;
        cr_assert_eq(lfpool_stats(M.pool[i], &st), 0);
        cr_expect_gt(st.id, prev_id, "pool ids not unique and increasing");
        prev_id = st.id;
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, user, NULL);
    rel_sleep(slow ? 3.0 : 1.5);
    atomic_store(&M.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_expect_eq(atomic_load(&M.wrong), 0);
    uint64_t created = 0, closed = 0, twice = 0;
    for (int i = 0; i < NPOOLS; i++) {
        struct lfpool_stats st;
        cr_assert_eq(lfpool_stats(M.pool[i], &st), 0);
        cr_expect_eq(st.nusing, 0, "pool %d", i);
        cr_expect_eq(st.ncreated, atomic_load(&M.w[i].hk.n.created), "pool %d", i);
        if (M.cfg[i].max_size)
            cr_expect_eq(st.sem_value, (int64_t)M.cfg[i].max_size, "pool %d leaked a token", i);
        lfpool_free(M.pool[i]);
        created += atomic_load(&M.w[i].hk.n.created);
        closed += atomic_load(&M.w[i].hk.n.closed);
        twice += atomic_load(&M.w[i].closer_twice);
        rel_world_fini(&M.w[i]);
    }
    cr_expect_eq(closed, created);
    cr_expect_eq(twice, 0);
    fprintf(stderr, "thousand_pools: %d pools, %llu get/ret batches, %llu objects\n", NPOOLS,
            (unsigned long long)atomic_load(&M.ops), (unsigned long long)created);
}

/* create and free pools in a loop (with housekeepers): no thread or
 * memory left behind, ids keep increasing */
Test(manypools, churn, .timeout = 60)
{
    lfx_log_init(&L, "REL_LOG");
    static struct rel_world w;
    rel_world_init(&w, 1u << 16);
    int n = rel_slow_env() ? 200 : 2000;
    uint64_t prev = 0;
    for (int i = 0; i < n; i++) {
        lfpool_config c;
        rel_config(&c, &w, &L, NULL);
        c.max_size = 2;
        c.min_size = 1;
        if (i % 2)
            c.delay = 10;
        lfpool *p;
        cr_assert_eq(lfpool_new(&p, &c), 0);
        void *o;
        cr_expect_eq(lfpool_get(p, &o, 0), 0);
        struct lfpool_stats st;
        cr_expect_eq(lfpool_stats(p, &st), 0);
        cr_expect_gt(st.id, prev);
        prev = st.id;
        if (i % 3 == 0)
            lfpool_ret(p, o); /* else freed with the object out */
        if (i % 5 == 0)
            lfpool_shutdown(p, 0.5);
        lfpool_free(p);
    }
    cr_expect_eq(atomic_load(&w.hk.n.closed), atomic_load(&w.hk.n.created));
    cr_expect_eq(atomic_load(&w.closer_twice), 0);
    rel_world_fini(&w);
}

/* ---- housekeeper modes */

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* poll until the thread count is at most `want` (threads exit on their own) */
static int wait_threads_at_most(int want, double secs)
{
    int n = count_threads();
    for (double t = 0; n > want && t < secs; t += 0.01) {
        rel_sleep(0.01);
        n = count_threads();
    }
    return n;
}

static lfpool *HP[NPOOLS];
static struct rel_world HW;

static void make_pools(int n, int mode, double delay, lfpool_health_fn health0)
{
    for (int i = 0; i < n; i++) {
        lfpool_config c;
        rel_config(&c, &HW, &L, NULL);
        c.max_size = 2;
        c.min_size = 1;
        c.delay = delay;
        c.housekeeper = mode;
        if (i == 0 && health0)
            c.health = health0;
        int rc = lfpool_new(&HP[i], &c);
        cr_assert_eq(rc, 0, "pool %d: %d", i, rc);
    }
}

static void free_pools(int n)
{
    for (int i = 0; i < n; i++)
        lfpool_free(HP[i]);
}

Test(manypools, thread_count_own_and_shared, .timeout = 120)
{
    lfx_log_init(&L, "REL_LOG");
    rel_world_init(&HW, 1u << 14);
    int base = count_threads();
    cr_assert_gt(base, 0);

    make_pools(NPOOLS, LFPOOL_HK_OWN, 10.0, NULL);
    int own = count_threads() - base;
    free_pools(NPOOLS);
    int after_own = wait_threads_at_most(base, 5.0) - base;

    make_pools(NPOOLS, LFPOOL_HK_SHARED, 10.0, NULL);
    int shared = count_threads() - base;
    /* every shared pool is served: a get, a ret, and one round each */
    for (int i = 0; i < NPOOLS; i++) {
        void *o;
        cr_assert_eq(lfpool_get(HP[i], &o, 0), 0);
        cr_assert_eq(lfpool_ret(HP[i], o), 0);
    }
    free_pools(NPOOLS);
    int after_shared = wait_threads_at_most(base, 5.0) - base;
    fprintf(stderr, "housekeeping threads for %d pools: own %d, shared %d (after free: %d, %d)\n",
            NPOOLS, own, shared, after_own, after_shared);
    cr_expect_eq(own, NPOOLS, "a thread per pool of its own");
    cr_expect_leq(shared, 2, "at most two shared housekeeping threads");
    cr_expect_geq(shared, 1);
    cr_expect_eq(after_own, 0);
    cr_expect_eq(after_shared, 0, "shared threads exit with the last shared pool");
    cr_expect_eq(atomic_load(&HW.hk.n.closed), atomic_load(&HW.hk.n.created));
    rel_world_fini(&HW);
}

static _Atomic int hang_open, hang_in;
static int hang_health(void *ctx, void *o)
{
    (void)ctx;
    (void)o;
    atomic_store(&hang_in, 1);
    while (!atomic_load(&hang_open))
        rel_sleep(0.001);
    return 1;
}
static void *release_later(void *arg)
{
    (void)arg;
    rel_sleep(0.2);
    atomic_store(&hang_open, 1);
    return NULL;
}

#define NSHARED 100
Test(manypools, shared_rounds_at_own_period_and_a_hung_hook_isolated, .timeout = 120)
{
    lfx_log_init(&L, "REL_LOG");
    rel_world_init(&HW, 1u << 14);
    double period = rel_slow_env() ? 0.4 : 0.2;
    atomic_store(&hang_open, 0);
    atomic_store(&hang_in, 0);
    make_pools(NSHARED, LFPOOL_HK_SHARED, period, hang_health);
    /* pool 0's first round hangs in its health hook */
    for (int i = 0; i < 500 && !atomic_load(&hang_in); i++)
        rel_sleep(0.01);
    cr_assert(atomic_load(&hang_in), "pool 0's round started");
    uint64_t r0[NSHARED];
    for (int i = 1; i < NSHARED; i++) {
        struct lfpool_stats st;
        lfpool_stats(HP[i], &st);
        r0[i] = st.hk_rounds;
    }
    double window = 10 * period;
    rel_sleep(window);
    uint64_t least = UINT64_MAX;
    for (int i = 1; i < NSHARED; i++) {
        struct lfpool_stats st;
        lfpool_stats(HP[i], &st);
        uint64_t d = st.hk_rounds - r0[i];
        if (d < least)
            least = d;
    }
    /* 10 periods: no pool may lose more than about two of them */
    cr_expect_geq(least, 7, "a pool had only %llu rounds in %g periods while another hung",
                  (unsigned long long)least, window / period);
    cr_expect_leq(least, 11, "rounds come at the pool's own period, not faster");
    cr_expect_leq(count_threads(), 3 + 2, "main + criterion's + two shared");

    /* freeing another pool does not wait for the hung round */
    double t0 = rel_mono();
    lfpool_free(HP[1]);
    double took = rel_mono() - t0;
    cr_expect_lt(took, 0.1, "lfpool_free of pool 1 took %g s while pool 0 hung", took);
    /* pool 0's free waits for its own round, which ends when released */
    pthread_t rel;
    pthread_create(&rel, NULL, release_later, NULL);
    lfpool_free(HP[0]);
    pthread_join(rel, NULL);
    for (int i = 2; i < NSHARED; i++)
        lfpool_free(HP[i]);
    cr_expect_eq(atomic_load(&HW.hk.n.closed), atomic_load(&HW.hk.n.created));
    rel_world_fini(&HW);
}
