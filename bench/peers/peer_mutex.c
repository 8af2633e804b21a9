/*
 * peer_mutex.c - the "mutex" peer: BASELINE, the seed's design (the Python
 * Pool of seed/Pool.py.txt) transcribed plainly to C.  It is what lfpool is
 * measured against (docs/CONTRACT.md §5: "a mutex+semaphore pool"); it is
 * not meant to be clever, only a faithful and reasonably written C version
 * of that design:
 *
 *   - one pthread mutex guards every attribute (the seed's RLock);
 *   - a POSIX semaphore (sem_t) initialised to max_size gates gets on a
 *     bounded pool (the seed's BoundedSemaphore): taken in get, given back
 *     at the end of ret;
 *   - the available objects are a plain array used as a stack (the seed's
 *     `_avail` set), "using" is a flag in the object's record (`_using`);
 *   - one use record per object (uses, last_get, last_ret: the seed's
 *     `UseInfo`), found through a small open-addressing hash table keyed by
 *     the object pointer (the seed's `_uses` dict), looked up on get and ret;
 *   - objects are created on demand, under the lock, when a get finds none
 *     available (the seed's `_new()` inside `get()`);
 *   - times come from the coarse monotonic clock (the seed calls
 *     datetime.now(); a C port would use a cheap clock).
 *
 * Left out, as the benchmark never exercises them: housekeeping (the
 * workload has no thresholds), max_use, hooks, stats, timeouts.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peers.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mp_rec {
    void *obj;
    uint64_t uses;
    double last_get, last_ret;
    bool using;
};

struct mpool {
    pthread_mutex_t lock;
    sem_t sem;
    bool bounded;
    /* available objects (stack) */
    void **avail;
    size_t navail, avail_cap;
    /* obj -> record, open addressing, linear probing, power-of-two size */
    struct mp_rec **table;
    size_t table_cap, nobjs;
    /* counters, as in the seed */
    size_t nusing;
    uint64_t ncreating, ncreated, nuses, nreturns;
};

static double mp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t mp_hash(const void *p, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static struct mp_rec *mp_lookup(struct mpool *mp, const void *obj)
{
    for (size_t i = mp_hash(obj, mp->table_cap);; i = (i + 1) & (mp->table_cap - 1)) {
        struct mp_rec *r = mp->table[i];
        if (r == NULL)
            return NULL;
        if (r->obj == obj)
            return r;
    }
}

static void mp_table_put(struct mp_rec **table, size_t cap, struct mp_rec *rec)
{
    size_t i = mp_hash(rec->obj, cap);
    while (table[i])
        i = (i + 1) & (cap - 1);
    table[i] = rec;
}

/* Create one available object; under the lock (as the seed's get does). */
static int mp_new(struct mpool *mp)
{
    mp->ncreating++;
    if ((mp->nobjs + 1) * 2 > mp->table_cap) { /* keep load <= 1/2 */
        size_t cap = mp->table_cap * 2;
        struct mp_rec **t = calloc(cap, sizeof *t);
        if (!t)
            return ENOMEM;
        for (size_t i = 0; i < mp->table_cap; i++)
            if (mp->table[i])
                mp_table_put(t, cap, mp->table[i]);
        free(mp->table);
        mp->table = t;
        mp->table_cap = cap;
    }
    if (mp->nobjs + 1 > mp->avail_cap) { /* room for every object */
        size_t cap = mp->avail_cap * 2;
        void **a = realloc(mp->avail, cap * sizeof *a);
        if (!a)
            return ENOMEM;
        mp->avail = a;
        mp->avail_cap = cap;
    }
    struct mp_rec *rec = calloc(1, sizeof *rec);
    struct bench_obj *obj = bench_obj_new();
    if (!rec || !obj) {
        free(rec);
        bench_obj_free(obj);
        return ENOMEM;
    }
    rec->obj = obj;
    rec->last_get = rec->last_ret = mp_now();
    mp_table_put(mp->table, mp->table_cap, rec);
    mp->nobjs++;
    mp->ncreated++;
    mp->avail[mp->navail++] = obj;
    return 0;
}

static void mp_close(void *self);

static int mp_open(void **self, size_t max_size, size_t prefill)
{
    struct mpool *mp = calloc(1, sizeof *mp);
    if (!mp)
        return ENOMEM;
    pthread_mutex_init(&mp->lock, NULL);
    mp->bounded = max_size != 0;
    if (mp->bounded) {
        if (max_size > (size_t)SEM_VALUE_MAX) {
            free(mp);
            return EINVAL;
        }
        sem_init(&mp->sem, 0, (unsigned)max_size);
        if (prefill > max_size)
            prefill = max_size;
    }
    mp->avail_cap = 64;
    mp->table_cap = 128;
    mp->avail = malloc(mp->avail_cap * sizeof *mp->avail);
    mp->table = calloc(mp->table_cap, sizeof *mp->table);
    if (!mp->avail || !mp->table) {
        mp_close(mp);
        return ENOMEM;
    }
    for (size_t i = 0; i < prefill; i++) {
        int err = mp_new(mp);
        if (err) {
            mp_close(mp);
            return err;
        }
    }
    *self = mp;
    return 0;
}

static int mp_get(void *self, void **obj)
{
    struct mpool *mp = self;
    if (mp->bounded)
        while (sem_wait(&mp->sem) != 0)
            if (errno != EINTR)
                return errno;
    pthread_mutex_lock(&mp->lock);
    if (mp->navail == 0) {
        int err = mp_new(mp);
        if (err) {
            pthread_mutex_unlock(&mp->lock);
            if (mp->bounded)
                sem_post(&mp->sem);
            return err;
        }
    }
    void *o = mp->avail[--mp->navail];
    struct mp_rec *rec = mp_lookup(mp, o);
    rec->using = true;
    mp->nusing++;
    mp->nuses++;
    rec->uses++;
    rec->last_get = mp_now();
    pthread_mutex_unlock(&mp->lock);
    *obj = o;
    return 0;
}

static int mp_put(void *self, void *obj)
{
    struct mpool *mp = self;
    pthread_mutex_lock(&mp->lock);
    struct mp_rec *rec = mp_lookup(mp, obj);
    if (!rec || !rec->using) { /* not out of this pool: refused */
        pthread_mutex_unlock(&mp->lock);
        return ENOENT;
    }
    rec->using = false;
    mp->nusing--;
    mp->avail[mp->navail++] = obj; /* capacity: avail_cap >= nobjs */
    rec->last_ret = mp_now();
    mp->nreturns++;
    pthread_mutex_unlock(&mp->lock);
    if (mp->bounded)
        sem_post(&mp->sem);
    return 0;
}

static void mp_close(void *self)
{
    struct mpool *mp = self;
    if (!mp)
        return;
    if (mp->table) {
        for (size_t i = 0; i < mp->table_cap; i++) {
            if (mp->table[i]) {
                bench_obj_free(mp->table[i]->obj);
                free(mp->table[i]);
            }
        }
    }
    free(mp->table);
    free(mp->avail);
    if (mp->bounded)
        sem_destroy(&mp->sem);
    pthread_mutex_destroy(&mp->lock);
    free(mp);
}

const struct bench_peer bench_peer_mutex = {
    .name = "mutex",
    .desc = "baseline: the seed's design in C (pthread mutex + sem_t + hash of use records)",
    .can_wait = true,
    .open = mp_open,
    .get = mp_get,
    .put = mp_put,
    .close = mp_close,
    .thread_init = NULL,
    .thread_fini = NULL,
    .supports = NULL,
};
