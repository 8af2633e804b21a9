/*
 * manypools.c - 1000 pools in one process (issue 4, part 6).
 *
 * 1000 pools of mixed configurations (a quarter with a housekeeper thread,
 * bounded and unbounded, lazy and not) live together; 4 threads use them
 * all at random, objects must never cross pools, ids are unique, and every
 * pool frees cleanly with every closer run once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rel_common.h"

#include <criterion/criterion.h>

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
