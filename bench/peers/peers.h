/*
 * peers.h - the object pools that the benchmarks compare, behind one small
 * C vtable, and the workload every one of them runs.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Peers (one C file each, built into the `bench_peers` static library by
 * tools/meson.build so that tools/lfpool-bench and bench/ share them):
 *
 *   lfpool  this project, over its public API only (peer_lfpool.c)
 *   mutex   a pthread mutex + POSIX semaphore pool: the seed's design
 *           transcribed to C, the baseline to beat (peer_mutex.c)
 *   apr     APR-util's apr_reslist (peer_apr.c, optional: -Dapr)
 *   dpdk    DPDK rte_mempool with a per-lcore cache of 64 (peer_dpdk.c,
 *           optional: -Ddpdk); it cannot wait for an object, so bounded
 *           contention (more threads than objects) is "n/a" for it
 *
 * Every harness runs the same loop on every peer:
 *
 *     get -> bench_use() (claim `held` 0->1, touch the payload, optional
 *     spin, release `held`) -> put
 *
 * and counts a double hand-out whenever `held` was already 1.
 */
#ifndef LFPOOL_BENCH_PEERS_H
#define LFPOOL_BENCH_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define BENCH_ATOMIC_INT int /* accessed through __atomic builtins only */
#else
#include <stdatomic.h>
#define BENCH_ATOMIC_INT _Atomic int
#endif

/* The pooled object: 64 bytes, allocated 64-byte aligned by every peer
 * (DPDK's mempool elements are cache-line aligned too). */
struct bench_obj {
    BENCH_ATOMIC_INT held; /* 1 while a harness thread owns it */
    char payload[56];
};

/* A pool implementation.  Every function returns 0 or a positive errno
 * value (except close/thread_fini).  `self` is the peer's pool handle.
 *
 *   open        create a pool: max_size 0 = unbounded, else at most
 *               max_size objects and get waits when they are all out;
 *               `prefill` objects are created up front (capped to max_size).
 *   get / put   take an object / give it back (get waits without limit).
 *   close       release the pool (every object must be back).
 *   thread_init / thread_fini
 *               called by each harness thread before its first get and
 *               after its last put (DPDK registers the thread as an lcore);
 *               may be NULL.
 */
struct bench_peer {
    const char *name;
    const char *desc;
    bool can_wait; /* get blocks at max_size (false: no blocking get) */
    int (*open)(void **self, size_t max_size, size_t prefill);
    int (*get)(void *self, void **obj);
    int (*put)(void *self, void *obj);
    void (*close)(void *self);
    int (*thread_init)(void *self);
    void (*thread_fini)(void *self);
    /* Can this peer run `threads` threads on a pool of max_size?  NULL:
     * always.  (DPDK: not when per-lcore caches can strand every free
     * object away from a thread that has no blocking get to wait with.) */
    bool (*supports)(size_t max_size, unsigned threads);
};

/* The tight loop (lfpool-bench --tight): one thread gets and at once puts,
 * `per` objects at a time, with nothing else in the timed loop (no claim,
 * no touch, no clock read).  loop() runs `iters` iterations on a pool the
 * peer's open() made (max_size 64, prefilled), on a thread its
 * thread_init() prepared; returns 0, or the first error. */
struct bench_tight {
    const char *name;
    const char *desc;
    const struct bench_peer *peer; /* open, close, thread_init/fini */
    unsigned per;                  /* objects per iteration */
    int (*loop)(void *self, uint64_t iters);
};
/* The tight loops compiled in, NULL-terminated. */
extern const struct bench_tight *const bench_tights[];

/* The peers compiled in, in display order (lfpool first), NULL-terminated. */
extern const struct bench_peer *const bench_peers[];
/* Look a peer up by name; NULL when unknown or not compiled in. */
const struct bench_peer *bench_peer_find(const char *name);
/* Is `name` a peer this source tree knows, compiled in or not? */
bool bench_peer_known(const char *name);

/* The objects of the lfpool, mutex and apr peers: 64-byte aligned, held 0. */
struct bench_obj *bench_obj_new(void);
void bench_obj_free(struct bench_obj *obj);

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

/* The harness's work on an object it holds: claim it (held 0 -> 1), touch
 * the payload, spin `hold` iterations, release it (held 1 -> 0).
 * Returns 1 when the object was already held (a double hand-out), else 0. */
static inline int bench_use(void *p, unsigned hold)
{
    struct bench_obj *o = (struct bench_obj *)p;
    int was;
#ifdef __cplusplus
    was = __atomic_exchange_n(&o->held, 1, __ATOMIC_ACQ_REL);
#else
    was = atomic_exchange_explicit(&o->held, 1, memory_order_acq_rel);
#endif
    o->payload[0]++;
    o->payload[sizeof o->payload - 1]++;
    for (unsigned i = 0; i < hold; i++)
        __asm__ __volatile__("" ::: "memory");
#ifdef __cplusplus
    __atomic_store_n(&o->held, 0, __ATOMIC_RELEASE);
#else
    atomic_store_explicit(&o->held, 0, memory_order_release);
#endif
    return was != 0;
}

#ifdef __cplusplus
}
#endif

#endif /* LFPOOL_BENCH_PEERS_H */
