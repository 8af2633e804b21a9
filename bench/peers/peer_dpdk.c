/*
 * peer_dpdk.c - the "dpdk" peer: DPDK's rte_mempool (libdpdk 22.11) with a
 * per-lcore cache of 64 objects: the fastest fixed-size object pool around,
 * the reference for lfpool's hot path (docs/CONTRACT.md §5, P1/P2/P6).
 *
 * EAL is started once per process, on the first open, with
 *     -l <first CPU of the caller's affinity> --no-huge --no-pci -m 128
 *     --no-shconf --no-telemetry --log-level=error
 * (no hugepages, no devices, no files shared with other processes; the
 * LFPOOL_BENCH_EAL_ARGS environment variable, split on spaces, replaces
 * that list).  rte_eal_init() pins the calling thread to the main lcore's
 * CPU: its affinity is saved before and restored after.  Harness threads
 * register themselves with rte_thread_register() (thread_init) so that they
 * get an lcore id and therefore a mempool cache; thread_fini flushes that
 * cache back to the ring and unregisters.
 *
 * Pools: unbounded (max_size 0) is a mempool of max(prefill, 16383)
 * objects; bounded is a mempool of exactly max_size objects, whose cache
 * is then min(64, max_size / 1.5) (DPDK refuses a larger one).  DPDK has no
 * blocking get: get spins (rte_pause) while the pool is empty and gives
 * ETIMEDOUT after one second.  Objects parked in other lcores' caches are
 * out of reach, so `supports` declines thread counts at which that could
 * starve a thread forever (bounded contention is reported n/a).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_pause.h>

#define DPDK_CACHE 64u
#define DPDK_UNBOUNDED_N 16383u /* 2^q - 1 is the mempool's optimum */
#define DPDK_SPIN_NS 1000000000ull

static pthread_once_t eal_once = PTHREAD_ONCE_INIT;
static int eal_status = 0; /* 0 or errno */
static _Thread_local int registered;

static void eal_start(void)
{
    cpu_set_t saved;
    bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
    int first_cpu = 0;
    if (have_saved)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &saved)) {
                first_cpu = c;
                break;
            }

    char lcores[16];
    snprintf(lcores, sizeof lcores, "%d", first_cpu);
    char *argv[40];
    int argc = 0;
    argv[argc++] = "lfpool-bench";
    char *env = getenv("LFPOOL_BENCH_EAL_ARGS");
    char *envcopy = env ? strdup(env) : NULL;
    if (envcopy) {
        char *save = NULL;
        for (char *tok = strtok_r(envcopy, " ", &save); tok && argc < 39;
             tok = strtok_r(NULL, " ", &save))
            argv[argc++] = tok;
    } else {
        static char *defaults[] = {"--no-huge", "--no-pci", "-m", "128", "--no-shconf",
                                   "--no-telemetry", "--log-level=error"};
        argv[argc++] = "-l";
        argv[argc++] = lcores;
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            argv[argc++] = defaults[i];
    }
    argv[argc] = NULL;

    if (rte_eal_init(argc, argv) < 0) {
        eal_status = rte_errno ? rte_errno : EIO;
        fprintf(stderr, "dpdk peer: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
    }
    /* EAL pinned this thread to the main lcore's CPU: undo that. */
    if (have_saved)
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    /* (argv strings must outlive EAL: envcopy is kept) */
}

struct dpdk_peer {
    struct rte_mempool *mp;
};

static unsigned dpdk_cache_for(size_t n)
{
    unsigned c = (unsigned)(n * 2 / 3); /* cache * 1.5 <= n */
    return c < DPDK_CACHE ? c : DPDK_CACHE;
}

static void obj_init(struct rte_mempool *mp, void *opaque, void *obj, unsigned idx)
{
    (void)mp;
    (void)opaque;
    (void)idx;
    memset(obj, 0, sizeof(struct bench_obj));
}

static int dp_open(void **self, size_t max_size, size_t prefill)
{
    static unsigned counter;
    pthread_once(&eal_once, eal_start);
    if (eal_status)
        return eal_status;
    size_t n = max_size ? max_size : (prefill > DPDK_UNBOUNDED_N ? prefill : DPDK_UNBOUNDED_N);
    if (n > UINT32_MAX)
        return EINVAL;
    unsigned cache = max_size ? dpdk_cache_for(n) : DPDK_CACHE;

    struct dpdk_peer *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    char name[RTE_MEMPOOL_NAMESIZE];
    snprintf(name, sizeof name, "bench%u", __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    p->mp = rte_mempool_create(name, (unsigned)n, sizeof(struct bench_obj), cache, 0, NULL,
                               NULL, obj_init, NULL, SOCKET_ID_ANY, 0);
    if (!p->mp) {
        int err = rte_errno ? rte_errno : ENOMEM;
        fprintf(stderr, "dpdk peer: rte_mempool_create(%zu, cache %u): %s\n", n, cache,
                rte_strerror(rte_errno));
        free(p);
        return err;
    }
    *self = p;
    return 0;
}

static int dp_get(void *self, void **obj)
{
    struct dpdk_peer *p = self;
    if (rte_mempool_get(p->mp, obj) == 0)
        return 0;
    /* empty (or everything parked in other lcores' caches): spin */
    uint64_t deadline = bench_now_ns() + DPDK_SPIN_NS;
    for (unsigned i = 1;; i++) {
        rte_pause();
        if (rte_mempool_get(p->mp, obj) == 0)
            return 0;
        if ((i & 1023) == 0 && bench_now_ns() > deadline)
            return ETIMEDOUT;
    }
}

static int dp_put(void *self, void *obj)
{
    struct dpdk_peer *p = self;
    rte_mempool_put(p->mp, obj);
    return 0;
}

static void dp_close(void *self)
{
    struct dpdk_peer *p = self;
    /* objects cached by the main lcore are still the pool's: just free */
    rte_mempool_free(p->mp);
    free(p);
}

static int dp_thread_init(void *self)
{
    (void)self;
    if (rte_lcore_id() != LCORE_ID_ANY)
        return 0; /* EAL thread (the main lcore) or already registered */
    if (rte_thread_register() != 0)
        return rte_errno ? rte_errno : EAGAIN;
    if (rte_lcore_id() == LCORE_ID_ANY) { /* no lcore id left: no cache */
        rte_thread_unregister();
        return EAGAIN;
    }
    registered = 1;
    return 0;
}

static void dp_thread_fini(void *self)
{
    struct dpdk_peer *p = self;
    unsigned lcore = rte_lcore_id();
    if (lcore != LCORE_ID_ANY) {
        struct rte_mempool_cache *c = rte_mempool_default_cache(p->mp, lcore);
        if (c)
            rte_mempool_cache_flush(c, p->mp);
    }
    if (registered) {
        rte_thread_unregister();
        registered = 0;
    }
}

/* Can every one of `threads` threads get an object?  A thread's first get
 * finds its cache empty: it takes cache + 1 objects from the ring when the
 * ring has that many (and keeps `cache` of them for good: its cache never
 * drains nor overflows afterwards, as it only gets and puts one at a time),
 * else one object, else nothing, and then, with no blocking get, it spins
 * forever.  Simulate the worst case (the caches start empty: thread_fini
 * flushes them back). */
static bool dp_supports(size_t max_size, unsigned threads)
{
    if (threads >= RTE_MAX_LCORE) /* one lcore id per thread */
        return false;
    if (threads <= 1)
        return true;
    size_t n = max_size ? max_size : DPDK_UNBOUNDED_N;
    size_t take = (max_size ? dpdk_cache_for(n) : DPDK_CACHE) + 1, ring = n;
    for (unsigned t = 0; t < threads; t++) {
        if (ring >= take)
            ring -= take;
        else if (ring >= 1)
            ring -= 1;
        else
            return false;
    }
    return true;
}

const struct bench_peer bench_peer_dpdk = {
    .name = "dpdk",
    .desc = "DPDK rte_mempool, per-lcore cache 64 (no blocking get)",
    .can_wait = false,
    .open = dp_open,
    .get = dp_get,
    .put = dp_put,
    .close = dp_close,
    .thread_init = dp_thread_init,
    .thread_fini = dp_thread_fini,
    .supports = dp_supports,
};

/* ---- the tight loops (peers.h): get then put at once, nothing else */

static int dp_tight(void *self, uint64_t iters)
{
    struct dpdk_peer *p = self;
    for (uint64_t i = 0; i < iters; i++) {
        void *o;
        if (rte_mempool_get(p->mp, &o) != 0)
            return EAGAIN;
        rte_mempool_put(p->mp, o);
    }
    return 0;
}

#define DP_BULK 32
static int dpb_tight(void *self, uint64_t iters)
{
    struct dpdk_peer *p = self;
    void *objs[DP_BULK];
    for (uint64_t i = 0; i < iters; i++) {
        if (rte_mempool_get_bulk(p->mp, objs, DP_BULK) != 0)
            return EAGAIN;
        rte_mempool_put_bulk(p->mp, objs, DP_BULK);
    }
    return 0;
}

const struct bench_tight bench_tight_dpdk = {
    .name = "dpdk",
    .desc = "rte_mempool_get + rte_mempool_put",
    .peer = &bench_peer_dpdk,
    .per = 1,
    .loop = dp_tight,
};
const struct bench_tight bench_tight_dpdk_bulk = {
    .name = "dpdk-bulk32",
    .desc = "rte_mempool_get_bulk + rte_mempool_put_bulk, 32",
    .peer = &bench_peer_dpdk,
    .per = DP_BULK,
    .loop = dpb_tight,
};
