/*
 * bench_handles.c - what the handle calls buy: one thread holds K objects at
 * once (get K, then return the K), through lfpool_get/lfpool_ret and through
 * lfpool_get_handle/lfpool_ret_handle, on the same pool, interleaved round
 * by round; the median over rounds of ns per get+ret pair, and the ratio.
 *
 *   build/bench/bench_handles [ROUNDS]      (default 15)
 *
 * A plain ret finds its record through the getting thread's return hints
 * (8 direct-mapped entries) or else the hash table; a handle names it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <lfpool.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define KMAX 64

static void *mk(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    return malloc(64);
}

static int cl(void *ctx, void *o)
{
    (void)ctx;
    free(o);
    return 0;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ns per pair over `iters` batches of k, plain calls */
static double run_plain(lfpool *p, int k, long iters)
{
    void *o[KMAX];
    double t = now_ns();
    for (long i = 0; i < iters; i++) {
        for (int j = 0; j < k; j++)
            if (lfpool_get(p, &o[j], LFPOOL_FOREVER))
                abort();
        for (int j = 0; j < k; j++)
            if (lfpool_ret(p, o[j]))
                abort();
    }
    return (now_ns() - t) / ((double)iters * k);
}

static double run_handles(lfpool *p, int k, long iters)
{
    lfpool_handle h[KMAX];
    double t = now_ns();
    for (long i = 0; i < iters; i++) {
        for (int j = 0; j < k; j++)
            if (lfpool_get_handle(p, &h[j], LFPOOL_FOREVER))
                abort();
        for (int j = 0; j < k; j++)
            if (lfpool_ret_handle(p, &h[j]))
                abort();
    }
    return (now_ns() - t) / ((double)iters * k);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    if (rounds < 1 || rounds > 1000) {
        fprintf(stderr, "usage: bench_handles [ROUNDS 1..1000]\n");
        return 2;
    }
    static const int ks[] = {1, 8, 32};
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = mk;
    cfg.closer = cl;
    cfg.min_size = KMAX;
    lfpool *p;
    if (lfpool_new(&p, &cfg)) {
        fprintf(stderr, "bench_handles: lfpool_new failed\n");
        return 2;
    }
    printf("objects held  get/ret ns/pair  handles ns/pair  handles/plain   (median of %d rounds)\n",
           rounds);
    for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
        int k = ks[c];
        long iters = 2000000 / k;
        double *pl = calloc((size_t)rounds, sizeof *pl), *hd = calloc((size_t)rounds, sizeof *hd);
        double *ra = calloc((size_t)rounds, sizeof *ra);
        run_plain(p, k, iters / 10); /* warm-up */
        run_handles(p, k, iters / 10);
        for (int r = 0; r < rounds; r++) {
            pl[r] = run_plain(p, k, iters);
            hd[r] = run_handles(p, k, iters);
            ra[r] = hd[r] / pl[r];
        }
        qsort(pl, (size_t)rounds, sizeof *pl, cmp_d);
        qsort(hd, (size_t)rounds, sizeof *hd, cmp_d);
        qsort(ra, (size_t)rounds, sizeof *ra, cmp_d);
        printf("%12d  %15.1f  %15.1f  %13.2fx\n", k, pl[rounds / 2], hd[rounds / 2],
               ra[rounds / 2]);
        free(pl);
        free(hd);
        free(ra);
    }
    lfpool_free(p);
    return 0;
}
