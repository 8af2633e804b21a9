/*
 * peers.c - the registry of compiled-in peers and small shared helpers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peers.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const struct bench_peer bench_peer_lfpool;
extern const struct bench_peer bench_peer_lfpool_h;
extern const struct bench_peer bench_peer_lfpool_hold;
extern const struct bench_peer bench_peer_lfpool_strict;
extern const struct bench_peer bench_peer_lfpool_budget;
extern const struct bench_peer bench_peer_lfpool_twin;
extern const struct bench_peer bench_peer_mutex;
#ifdef BENCH_HAVE_APR
extern const struct bench_peer bench_peer_apr;
#endif
#ifdef BENCH_HAVE_DPDK
extern const struct bench_peer bench_peer_dpdk;
#endif

const struct bench_peer *const bench_peers[] = {
    &bench_peer_lfpool,
    &bench_peer_lfpool_h,
    &bench_peer_lfpool_hold,
    &bench_peer_lfpool_strict,
    &bench_peer_lfpool_budget,
    &bench_peer_lfpool_twin,
    &bench_peer_mutex,
#ifdef BENCH_HAVE_APR
    &bench_peer_apr,
#endif
#ifdef BENCH_HAVE_DPDK
    &bench_peer_dpdk,
#endif
    NULL,
};

extern const struct bench_tight bench_tight_lfpool, bench_tight_lfpool_h, bench_tight_lfpool_bulk,
    bench_tight_floor_bulk, bench_tight_floor_state_bulk;
#ifdef BENCH_HAVE_DPDK
extern const struct bench_tight bench_tight_dpdk, bench_tight_dpdk_bulk;
#endif

const struct bench_tight *const bench_tights[] = {
    &bench_tight_lfpool,
    &bench_tight_lfpool_h,
    &bench_tight_lfpool_bulk,
#ifdef BENCH_HAVE_DPDK
    &bench_tight_dpdk,
    &bench_tight_dpdk_bulk,
#endif
    &bench_tight_floor_bulk,
    &bench_tight_floor_state_bulk,
    NULL,
};

const struct bench_peer *bench_peer_find(const char *name)
{
    for (size_t i = 0; bench_peers[i]; i++)
        if (strcmp(bench_peers[i]->name, name) == 0)
            return bench_peers[i];
    return NULL;
}

bool bench_peer_known(const char *name)
{
    static const char *const all[] = {"lfpool", "lfpool-h", "lfpool-hold", "lfpool-strict", "lfpool-twin", "mutex", "apr", "dpdk"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i], name) == 0)
            return true;
    return false;
}

struct bench_obj *bench_obj_new(void)
{
    struct bench_obj *o = aligned_alloc(64, sizeof(struct bench_obj) < 64 ? 64 : sizeof(struct bench_obj));
    if (o) {
        memset(o, 0, sizeof *o);
        atomic_init(&o->held, 0);
    }
    return o;
}

void bench_obj_free(struct bench_obj *obj)
{
    free(obj);
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
