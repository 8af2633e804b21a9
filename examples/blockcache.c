/*
 * blockcache.c - lfpool as a size-class cache: fixed-size 64-byte blocks
 * from aligned_alloc, handed out and taken back millions of times a second.
 *
 * Owns: the example's block cache (bc_*) and its demonstration.
 * Invariant: every block the cache made is freed exactly once, by the
 * pool's closer, at lfpool_free.
 *
 * The configuration is the point: a block needs no bookkeeping beyond what
 * the pool keeps anyway, so
 *   - fun = aligned_alloc(64, 64), closer = free: nothing else;
 *   - no opener, getter, retter, health, validate, tracer or clock hooks:
 *     get and ret take their fast paths (a block from this CPU's cache, an
 *     rseq pop and a few stores; a return by the thread that got the block
 *     with no locked instruction);
 *   - no housekeeper thread: no max_use, no max_avail_delay, no kill or
 *     warn thresholds, no max_lifetime, no health hook and delay 0, so
 *     lfpool_new starts no thread (stats: hk_rounds stays 0);
 *   - min_size 0 (no block made up front), max_size 0 (unbounded: a get
 *     never waits, it makes a block when none is free; set a bound to cap
 *     the memory, and a timeout of 0 to fail instead of waiting).
 * Blocks are never given back to malloc while the cache lives (as in any
 * size-class cache); lfpool_free frees them all.
 *
 * Usage: blockcache [THREADS [ROUNDS]] - each thread takes 32 blocks with
 * one lfpool_get_bulk, fills them, checks them, gives them back with
 * lfpool_ret_bulk, and between bulks takes and gives back single blocks
 * with lfpool_get/lfpool_ret.  Exit 0 when every block was intact.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <lfpool.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define BATCH 32

/* ---- the block cache: four calls over one pool */

static void *bc_make(void *ctx, uint64_t n)
{
    (void)ctx, (void)n;
    return aligned_alloc(BLOCK, BLOCK); /* NULL with errno ENOMEM: get reports it */
}

static int bc_unmake(void *ctx, void *block)
{
    (void)ctx;
    free(block);
    return 0;
}

/* A cache of BLOCK-byte blocks; NULL on failure (errno). */
static lfpool *bc_new(void)
{
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = bc_make;
    cfg.closer = bc_unmake;
    cfg.min_size = 0; /* nothing made up front */
    cfg.max_size = 0; /* unbounded: a get makes a block when none is free */
    /* everything else stays off: no hooks, no housekeeper thread */
    lfpool *pool;
    int err = lfpool_new(&pool, &cfg);
    if (err) {
        fprintf(stderr, "lfpool_new: %s\n", lfpool_strerror(err));
        return NULL;
    }
    return pool;
}

static void *bc_alloc(lfpool *pool)
{
    void *b;
    return lfpool_get(pool, &b, 0) == 0 ? b : NULL;
}

static void bc_free(lfpool *pool, void *b)
{
    (void)lfpool_ret(pool, b);
}

/* ---- the demonstration */

static lfpool *cache;
static int rounds = 20000;
static _Atomic long bad;

static void fill(unsigned char *b, unsigned char v)
{
    memset(b, v, BLOCK);
}

static int check(const unsigned char *b, unsigned char v)
{
    for (int i = 0; i < BLOCK; i++)
        if (b[i] != v)
            return 1;
    return 0;
}

static void *worker(void *arg)
{
    unsigned char tag = (unsigned char)(uintptr_t)arg;
    lfpool_handle hs[BATCH];
    for (int r = 0; r < rounds; r++) {
        /* a batch: all 32 or none (an unbounded cache always has them) */
        if (lfpool_get_bulk(cache, hs, BATCH, 0) != 0) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        for (int i = 0; i < BATCH; i++)
            fill(hs[i].obj, (unsigned char)(tag + i));
        for (int i = 0; i < BATCH; i++)
            if (check(hs[i].obj, (unsigned char)(tag + i)))
                atomic_fetch_add(&bad, 1); /* another thread wrote our block */
        if (lfpool_ret_bulk(cache, hs, BATCH) != 0)
            atomic_fetch_add(&bad, 1);
        /* and one at a time */
        unsigned char *b = bc_alloc(cache);
        if (!b) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        fill(b, tag);
        if (check(b, tag))
            atomic_fetch_add(&bad, 1);
        bc_free(cache, b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (threads < 1 || threads > 64 || rounds < 1) {
        fprintf(stderr, "usage: blockcache [THREADS (1-64) [ROUNDS]]\n");
        return 2;
    }
    cache = bc_new();
    if (!cache)
        return 1;
    pthread_t th[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i * 37));
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    struct lfpool_stats s;
    lfpool_stats(cache, &s);
    printf("blockcache: %d threads x %d rounds: %llu blocks made, %llu hand-outs, "
           "%llu in use, housekeeping rounds %llu, per-CPU cache %llu blocks, errors %ld\n",
           threads, rounds, (unsigned long long)s.ncreated, (unsigned long long)s.nuses,
           (unsigned long long)s.nusing, (unsigned long long)s.hk_rounds,
           (unsigned long long)s.cpu_cache, atomic_load(&bad));
    int status = atomic_load(&bad) || s.nusing || s.hk_rounds ? 1 : 0;
    lfpool_free(cache);
    return status;
}
