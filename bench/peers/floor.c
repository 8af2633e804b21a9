/*
 * floor.c - the tight loop "floor-bulk32": the per-object bookkeeping of
 * lfpool's bulk pair (lfpool_get_bulk + lfpool_ret_bulk of 32) and nothing
 * else, on lfpool's own record type: a lower bound for the bulk calls, not
 * a pool.
 *
 * Owns: the figure of docs/PERFORMANCE.md that says how close the bulk
 * calls can come to DPDK's get_bulk/put_bulk while every object's
 * bookkeeping is kept (issue 19).
 * Invariant: per object, exactly the memory operations the bulk calls make
 * on a record and a handle (their helpers from src/internal.h, the same
 * record layout), and none of the pool's other work.
 *
 * Per object, as the bulk get's loop (handout.c, bulk_take_cached): the
 * record's pointer read from the cache (here straight from the array:
 * lfpool's pop copies the run out of an rseq section first), its state
 * loaded (acquire) and tested CACHED, last_get and the call site in one
 * 16-byte store, the new generation | OUT stored (release), the use
 * counted (one add to memory), the handle's four words stored.  As the
 * bulk ret's loop (ret_bulk_quick): the handle's pool id | owned, owner tag
 * and object tested, the record's state compared with the handle's word,
 * last_ret stored, CACHED stored (release), the pointer put back in the
 * cache.  Left out, and so what the real calls pay on top: argument
 * checks, the life and shutdown words, the pool's mode (biased returns)
 * and the rseq sections with their per-CPU cache choice, the cache's
 * own length, the run copies, and the call overhead of the library (the
 * two functions here are not inlined into the loop either).
 *
 * "floor-state32" is the same loop without the usage record's fields
 * (last_get, the call site, uses, last_ret): the state word (the double
 * return check) and the handle only, i.e. what dropping the bookkeeping
 * the issue asks to keep would leave.
 *
 * One thread only, as the tight loop runs it: the "cache" is a plain
 * array owned by that thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peers.h"

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FLOOR_N 64
#define FLOOR_BULK 32

struct floor {
    struct lfpool_rec *cache[FLOOR_N];
    uint32_t len;
    uint32_t tag;      /* the owner tag of the handles (any non-zero value) */
    uint64_t owned_id; /* the handles' pool id | LFPOOL_HANDLE_OWNED */
    double now;        /* the coarse clock's value, read once a call */
    struct lfpool_rec *recs[FLOOR_N];
};

static int floor_open(void **self, size_t max_size, size_t prefill)
{
    (void)prefill;
    if (max_size == 0 || max_size > FLOOR_N)
        return EINVAL;
    struct floor *f = calloc(1, sizeof *f);
    if (!f)
        return ENOMEM;
    f->tag = 1;
    f->owned_id = 1 | LFPOOL_HANDLE_OWNED;
    f->now = 1.0;
    for (size_t i = 0; i < max_size; i++) {
        /* as meta.c allocates a record (calloc: a 96-byte chunk) */
        struct lfpool_rec *r = calloc(1, sizeof *r);
        struct bench_obj *o = r ? bench_obj_new() : NULL;
        if (!o) {
            free(r);
            for (size_t j = 0; j < i; j++) {
                bench_obj_free(f->recs[j]->obj);
                free(f->recs[j]);
            }
            free(f);
            return ENOMEM;
        }
        r->obj = o;
        atomic_store_explicit(&r->state, REC_CACHED, memory_order_relaxed);
        f->recs[i] = f->cache[f->len++] = r;
    }
    *self = f;
    return 0;
}

static void floor_close(void *self)
{
    struct floor *f = self;
    for (size_t i = 0; i < FLOOR_N && f->recs[i]; i++) {
        bench_obj_free(f->recs[i]->obj);
        free(f->recs[i]);
    }
    free(f);
}

static int floor_get(void *self, void **obj)
{
    (void)self, (void)obj;
    return ENOTSUP; /* a tight loop only, not a peer of the table */
}

static int floor_put(void *self, void *obj)
{
    (void)self, (void)obj;
    return ENOTSUP;
}

static const struct bench_peer floor_peer = {
    .name = "floor",
    .desc = "the bulk calls' per-object bookkeeping alone (a lower bound, not a pool)",
    .can_wait = false,
    .open = floor_open,
    .get = floor_get,
    .put = floor_put,
    .close = floor_close,
};

/* The bulk get's per-object work over the top n of the cache; `stamps`
 * false leaves out the usage record's fields (last_get, the call site,
 * uses), keeping the state word and the handle. */
static inline __attribute__((always_inline)) int
floor_get_run(struct floor *f, lfpool_handle *hs, uint32_t n, const void *caller, bool stamps)
{
    if (f->len < n)
        return EAGAIN;
    struct lfpool_rec **r = &f->cache[f->len - n];
    uint64_t pool = f->owned_id, owner = (uint64_t)f->tag << 32;
    struct rec_get_stamp stamp = rec_get_stamp_make(f->now, caller);
    for (uint32_t i = 0; i < n; i++) {
        struct lfpool_rec *rec = r[i];
        uint32_t w = rec_load(rec);
        if (__builtin_expect(!rec_st_cached_fast(w), 0))
            return EPROTO;
        uint32_t out = w + ((1u << 4) + REC_OUT - REC_CACHED);
        if (stamps)
            rec_stamp_get(rec, stamp);
        atomic_store_explicit(&rec->state, out, memory_order_release);
        if (stamps)
            rec_count_use(rec);
        lfpool_handle *h = &hs[i];
        __atomic_store_n(&h->obj, rec->obj, __ATOMIC_RELAXED);
        __atomic_store_n(&h->priv_rec, (void *)rec, __ATOMIC_RELAXED);
        __atomic_store_n(&h->priv_pool, pool, __ATOMIC_RELAXED);
        uint64_t wo = owner | out;
        memcpy((char *)h + offsetof(lfpool_handle, priv_word), &wo, sizeof wo);
    }
    f->len -= n;
    return 0;
}

/* The bulk ret's per-object work, the records pushed back on the cache
 * (`stamps` false: without last_ret). */
static inline __attribute__((always_inline)) int
floor_ret_run(struct floor *f, const lfpool_handle *hs, uint32_t n, bool stamps)
{
    struct lfpool_rec **slot = &f->cache[f->len];
    uint64_t mine = f->owned_id, stamp = lfpool_dbits(f->now);
    uint32_t tag = f->tag;
    for (uint32_t i = 0; i < n; i++) {
        const lfpool_handle *h = &hs[i];
        struct lfpool_rec *rec = h->priv_rec;
        uint32_t word = h->priv_word;
        if (__builtin_expect(h->priv_pool != mine || h->priv_owner != tag || h->obj == NULL, 0))
            return EINVAL;
        if (__builtin_expect(atomic_load_explicit(&rec->state, memory_order_relaxed) != word, 0))
            return EINVAL;
        if (stamps)
            __atomic_store_n((uint64_t *)&rec->last_ret, stamp, __ATOMIC_RELAXED);
        atomic_store_explicit(&rec->state, word + (REC_CACHED - REC_OUT), memory_order_release);
        slot[i] = rec;
    }
    f->len += n;
    return 0;
}

/* The calls, not inlined into the loop (as the library's are not). */
static __attribute__((noinline)) int floor_get_bulk(struct floor *f, lfpool_handle *hs, uint32_t n)
{
    return floor_get_run(f, hs, n, __builtin_return_address(0), true);
}
static __attribute__((noinline)) int floor_ret_bulk(struct floor *f, const lfpool_handle *hs,
                                                    uint32_t n)
{
    return floor_ret_run(f, hs, n, true);
}
static __attribute__((noinline)) int floor_get_bulk_state(struct floor *f, lfpool_handle *hs,
                                                          uint32_t n)
{
    return floor_get_run(f, hs, n, NULL, false);
}
static __attribute__((noinline)) int floor_ret_bulk_state(struct floor *f, const lfpool_handle *hs,
                                                          uint32_t n)
{
    return floor_ret_run(f, hs, n, false);
}

/* The tight loop over one pair of calls (inlined into each loop below with
 * its calls known: direct calls, as the other tight loops make). */
static inline __attribute__((always_inline)) int
floor_loop(struct floor *f, uint64_t iters,
           int (*get)(struct floor *, lfpool_handle *, uint32_t),
           int (*ret)(struct floor *, const lfpool_handle *, uint32_t))
{
    lfpool_handle hs[FLOOR_BULK];
    int err = 0;
    for (uint64_t i = 0; i < iters; i++) {
        int r = get(f, hs, FLOOR_BULK);
        if (r)
            return r;
        err |= ret(f, hs, FLOOR_BULK);
    }
    return err;
}

static int floor_tight(void *self, uint64_t iters)
{
    return floor_loop(self, iters, floor_get_bulk, floor_ret_bulk);
}

static int floor_state_tight(void *self, uint64_t iters)
{
    return floor_loop(self, iters, floor_get_bulk_state, floor_ret_bulk_state);
}

const struct bench_tight bench_tight_floor_bulk = {
    .name = "floor-bulk32",
    .desc = "the bulk pair's bookkeeping alone, 32 (a bound)",
    .peer = &floor_peer,
    .per = FLOOR_BULK,
    .loop = floor_tight,
};
const struct bench_tight bench_tight_floor_state_bulk = {
    .name = "floor-state32",
    .desc = "the same, state word and handle only, 32",
    .peer = &floor_peer,
    .per = FLOOR_BULK,
    .loop = floor_state_tight,
};
