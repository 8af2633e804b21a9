/*
 * peer_lfpool.c - the "lfpool" peer: this project's pool, through its public
 * API only (lfpool_get with LFPOOL_FOREVER, lfpool_ret); and "lfpool-h",
 * the same pool through the handle calls (lfpool_get_handle,
 * lfpool_ret_handle), the handle kept beside the object as a caller would
 * keep it in its own request state (here: per thread, one object held).
 *
 * Default configuration, i.e. all bookkeeping on (use counts, last get/ret
 * times, counters); unbounded when max_size is 0, bounded otherwise.  And
 * "lfpool-hold": the "lfpool" peer with cfg.hold_histogram on, so that one
 * run prices the hold histogram (every return records its hold time); and
 * "lfpool-strict": the "lfpool" peer with cfg.max_fences = 0 set explicitly
 * (the caches close at once when a get must look into all of them: the CAS
 * mode), which is also the default now; "lfpool-budget": the "lfpool" peer
 * with cfg.max_fences = LFPOOL_FENCES_BUDGET (open flushes up to 65536 / CPUs
 * a second, then the closing: the default before), so that one run compares
 * the bound with the budget; and "lfpool-twin": the "lfpool" peer again, a
 * pool of its own with the same configuration, whose ratio to "lfpool" in
 * one run is that run's noise (what a difference between two peers must
 * exceed to be one).  `fun`
 * allocates a bench_obj, `closer` frees it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peers.h"

#include <errno.h>
#include <lfpool.h>

static void *lf_create(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    return bench_obj_new(); /* errno ENOMEM on failure */
}

static int lf_close_obj(void *ctx, void *obj)
{
    (void)ctx;
    bench_obj_free(obj);
    return 0;
}

static int lf_open_cfg(void **self, size_t max_size, size_t prefill, bool hold_histogram,
                       size_t max_fences)
{
    lfpool_config cfg;
    lfpool *pool = NULL;

    lfpool_config_init(&cfg);
    cfg.fun = lf_create;
    cfg.closer = lf_close_obj;
    cfg.max_size = max_size;
    if (max_size && prefill > max_size)
        prefill = max_size;
    /* min_size: the objects created at start (and kept) */
    cfg.min_size = prefill;
    cfg.hold_histogram = hold_histogram;
    cfg.max_fences = max_fences;
    int err = lfpool_new(&pool, &cfg);
    if (err)
        return err;
    *self = pool;
    return 0;
}

static int lf_open(void **self, size_t max_size, size_t prefill)
{
    return lf_open_cfg(self, max_size, prefill, false, LFPOOL_FENCES_DEFAULT);
}

static int lf_open_hold(void **self, size_t max_size, size_t prefill)
{
    return lf_open_cfg(self, max_size, prefill, true, LFPOOL_FENCES_DEFAULT);
}

static int lf_open_strict(void **self, size_t max_size, size_t prefill)
{
    return lf_open_cfg(self, max_size, prefill, false, 0);
}

static int lf_open_budget(void **self, size_t max_size, size_t prefill)
{
    return lf_open_cfg(self, max_size, prefill, false, LFPOOL_FENCES_BUDGET);
}

static int lf_get(void *self, void **obj)
{
    return lfpool_get(self, obj, LFPOOL_FOREVER);
}

static int lf_put(void *self, void *obj)
{
    return lfpool_ret(self, obj);
}

static void lf_close(void *self)
{
    lfpool_free(self);
}

/* lfpool-h: the handle of the one object this thread holds */
static __thread lfpool_handle lfh_held;

static int lfh_get(void *self, void **obj)
{
    int r = lfpool_get_handle(self, &lfh_held, LFPOOL_FOREVER);
    if (r == 0)
        *obj = lfh_held.obj;
    return r;
}

static int lfh_put(void *self, void *obj)
{
    if (lfh_held.obj != obj) /* not the one held: the harness never does this */
        return lfpool_ret(self, obj);
    int r = lfpool_ret_handle(self, &lfh_held);
    lfh_held.obj = NULL;
    return r;
}

/* The peers of this file differ in name, open (the configuration) and, for
 * lfpool-h, get and put; the rest is the same. */
#define LF_PEER(NAME, DESC, OPEN, GET, PUT)                                   \
    {                                                                         \
        .name = NAME, .desc = DESC, .can_wait = true, .open = OPEN, .get = GET, \
        .put = PUT, .close = lf_close, .thread_init = NULL, .thread_fini = NULL, \
        .supports = NULL,                                                     \
    }

const struct bench_peer bench_peer_lfpool_h =
    LF_PEER("lfpool-h", "this project through handles (lfpool_get_handle/lfpool_ret_handle)",
            lf_open, lfh_get, lfh_put);

const struct bench_peer bench_peer_lfpool =
    LF_PEER("lfpool", "this project: lock-free hot path (lfpool_get/lfpool_ret)", lf_open, lf_get,
            lf_put);

const struct bench_peer bench_peer_lfpool_hold =
    LF_PEER("lfpool-hold", "lfpool (lfpool_get/lfpool_ret) with cfg.hold_histogram on",
            lf_open_hold, lf_get, lf_put);

const struct bench_peer bench_peer_lfpool_twin =
    LF_PEER("lfpool-twin", "lfpool again, the same configuration: the noise of a ratio to lfpool",
            lf_open, lf_get, lf_put);

const struct bench_peer bench_peer_lfpool_strict =
    LF_PEER("lfpool-strict", "lfpool (lfpool_get/lfpool_ret) with cfg.max_fences = 0",
            lf_open_strict, lf_get, lf_put);

const struct bench_peer bench_peer_lfpool_budget =
    LF_PEER("lfpool-budget",
            "lfpool (lfpool_get/lfpool_ret) with cfg.max_fences = LFPOOL_FENCES_BUDGET (the old default)",
            lf_open_budget, lf_get, lf_put);

/* ---- the tight loops (peers.h): get then ret at once, nothing else */

static int lf_tight(void *self, uint64_t iters)
{
    lfpool *p = self;
    int err = 0;
    for (uint64_t i = 0; i < iters; i++) {
        void *o;
        int r = lfpool_get(p, &o, LFPOOL_FOREVER);
        if (r)
            return r;
        err |= lfpool_ret(p, o);
    }
    return err;
}

static int lfh_tight(void *self, uint64_t iters)
{
    lfpool *p = self;
    int err = 0;
    for (uint64_t i = 0; i < iters; i++) {
        lfpool_handle h;
        int r = lfpool_get_handle(p, &h, LFPOOL_FOREVER);
        if (r)
            return r;
        err |= lfpool_ret_handle(p, &h);
    }
    return err;
}

#define LF_BULK 32
static int lfb_tight(void *self, uint64_t iters)
{
    lfpool *p = self;
    int err = 0;
    lfpool_handle hs[LF_BULK];
    for (uint64_t i = 0; i < iters; i++) {
        int r = lfpool_get_bulk(p, hs, LF_BULK, LFPOOL_FOREVER);
        if (r)
            return r;
        err |= lfpool_ret_bulk(p, hs, LF_BULK);
    }
    return err;
}

const struct bench_tight bench_tight_lfpool = {
    .name = "lfpool",
    .desc = "lfpool_get + lfpool_ret",
    .peer = &bench_peer_lfpool,
    .per = 1,
    .loop = lf_tight,
};
const struct bench_tight bench_tight_lfpool_h = {
    .name = "lfpool-h",
    .desc = "lfpool_get_handle + lfpool_ret_handle",
    .peer = &bench_peer_lfpool,
    .per = 1,
    .loop = lfh_tight,
};
const struct bench_tight bench_tight_lfpool_bulk = {
    .name = "lfpool-bulk32",
    .desc = "lfpool_get_bulk + lfpool_ret_bulk, 32 handles",
    .peer = &bench_peer_lfpool,
    .per = LF_BULK,
    .loop = lfb_tight,
};
