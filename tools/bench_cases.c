/*
 * bench_cases.c - lfpool-bench's two extra cases: the tight loop (--tight)
 * and the allocator case (--alloc).
 *
 * Owns: both cases' measurement and tables.  Invariant: every figure of a
 * table comes from the same run, peers interleaved round by round, the
 * median over rounds shown.
 *
 * Tight loop: one thread, a pool of max_size 64 (prefilled), get then put
 * at once, nothing else in the timed loop (bench_tights[], peers.h): the
 * library's own cost, without the harness work (claim, touch, clock reads)
 * that the main table adds to every peer alike.  ns per object pair: a
 * bulk loop of 32 counts 32 pairs per iteration.
 *
 * Allocator case: a program that uses a pool as a size-class cache of
 * 64-byte blocks (examples/blockcache.c: aligned_alloc'd blocks, no hooks,
 * no housekeeper) against general-purpose allocators.  Each thread takes
 * 32 blocks, writes one byte of each, and gives the 32 back, in a loop.
 * Every measurement runs in a child process (this program, re-executed
 * with --alloc-child), so that jemalloc and tcmalloc are each loaded on
 * their own with LD_PRELOAD (libjemalloc.so.2, libtcmalloc_minimal.so.4)
 * and glibc's malloc is measured without either; the child checks that
 * the allocator it was meant to measure is the one it got (n/a if not).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench_cases.h"
#include "peers.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <lfpool.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            v[k++] = v[i];
    if (k == 0)
        return NAN;
    qsort(v, k, sizeof *v, cmp_double);
    return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/* ---------------------------------------------------------- tight loop */

struct tight_job {
    const struct bench_tight *t;
    void *pool;
    double seconds;
    double ns; /* per object pair; NAN when it failed */
    int err;
};

static void *tight_thread(void *arg)
{
    struct tight_job *j = arg;
    const struct bench_peer *peer = j->t->peer;
    j->ns = NAN;
    if (peer->thread_init && (j->err = peer->thread_init(j->pool)) != 0)
        return NULL;
    /* warm-up: a tenth of the time, then the timed chunks */
    enum { CHUNK = 4096 };
    uint64_t chunk = CHUNK / j->t->per ? CHUNK / j->t->per : 1;
    uint64_t t0 = bench_now_ns(), warm = t0 + (uint64_t)(j->seconds * 1e8);
    while (bench_now_ns() < warm)
        if ((j->err = j->t->loop(j->pool, chunk)) != 0)
            goto out;
    uint64_t iters = 0, end = bench_now_ns() + (uint64_t)(j->seconds * 1e9);
    t0 = bench_now_ns();
    uint64_t t1;
    do {
        if ((j->err = j->t->loop(j->pool, chunk)) != 0)
            goto out;
        iters += chunk;
    } while ((t1 = bench_now_ns()) < end);
    j->ns = (double)(t1 - t0) / (double)(iters * j->t->per);
out:
    if (peer->thread_fini)
        peer->thread_fini(j->pool);
    return NULL;
}

int bench_tight_run(double seconds, unsigned rounds, bool quiet, FILE *out)
{
    size_t n = 0;
    while (bench_tights[n])
        n++;
    double *ns = calloc(n * rounds, sizeof *ns);
    void **pools = calloc(n, sizeof *pools);
    int *err = calloc(n, sizeof *err);
    if (!ns || !pools || !err)
        return 2;
    for (size_t i = 0; i < n; i++) {
        const struct bench_peer *peer = bench_tights[i]->peer;
        err[i] = peer->open(&pools[i], 64, 64);
        if (err[i])
            fprintf(stderr, "lfpool-bench: tight %s: open: %s\n", bench_tights[i]->name,
                    strerror(err[i]));
    }
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t k = 0; k < n; k++) {
            size_t i = (k + r) % n; /* rotate the order every round */
            ns[i * rounds + r] = NAN;
            if (err[i])
                continue;
            struct tight_job j = {.t = bench_tights[i], .pool = pools[i], .seconds = seconds};
            pthread_t th;
            if (pthread_create(&th, NULL, tight_thread, &j) != 0) {
                err[i] = EAGAIN;
                continue;
            }
            pthread_join(th, NULL);
            if (j.err) {
                fprintf(stderr, "lfpool-bench: tight %s: %s\n", bench_tights[i]->name,
                        strerror(j.err));
                err[i] = j.err;
            }
            ns[i * rounds + r] = j.ns;
        }
        if (!quiet)
            fprintf(stderr, "[tight round %u/%u]\n", r + 1, rounds);
    }
    double dp1 = NAN, dpb = NAN;
    double *med = calloc(n, sizeof *med);
    if (!med)
        return 2;
    for (size_t i = 0; i < n; i++) {
        med[i] = err[i] ? NAN : bench_median(&ns[i * rounds], rounds);
        if (strcmp(bench_tights[i]->name, "dpdk") == 0)
            dp1 = med[i];
        if (strcmp(bench_tights[i]->name, "dpdk-bulk32") == 0)
            dpb = med[i];
    }
    fprintf(out, "\nTight loop: 1 thread, max_size 64, get then put at once, nothing else "
                 "timed; ns per object pair, median of %u rounds\n", rounds);
    fprintf(out, "%-14s %-50s %8s %8s\n", "loop", "calls", "ns/pair", "vs-dpdk");
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bench_tight *t = bench_tights[i];
        double ref = t->per > 1 ? dpb : dp1;
        if (err[i]) {
            fprintf(out, "%-14s %-50s %8s %8s\n", t->name, t->desc, "n/a", "");
            status = 1;
            continue;
        }
        char ratio[16] = "";
        if (!isnan(ref) && ref > 0)
            snprintf(ratio, sizeof ratio, "%.2f", med[i] / ref);
        fprintf(out, "%-14s %-50s %8.2f %8s\n", t->name, t->desc, med[i], ratio);
    }
    for (size_t i = 0; i < n; i++)
        if (pools[i])
            bench_tights[i]->peer->close(pools[i]);
    free(med);
    free(ns);
    free(pools);
    free(err);
    return status;
}

/* ---------------------------------------------------- allocator case */

#define ALLOC_BATCH 32
#define ALLOC_BLOCK 64

enum akind { A_GLIBC, A_JEMALLOC, A_TCMALLOC, A_LFPOOL_H, A_LFPOOL_BULK, A_NKINDS };
static const char *const akind_name[A_NKINDS] = {"glibc", "jemalloc", "tcmalloc", "lfpool-h",
                                                 "lfpool-bulk"};
static const char *const akind_desc[A_NKINDS] = {
    "glibc malloc/free",
    "jemalloc malloc/free (LD_PRELOAD libjemalloc.so.2)",
    "tcmalloc malloc/free (LD_PRELOAD libtcmalloc_minimal.so.4)",
    "lfpool_get_handle/lfpool_ret_handle",
    "lfpool_get_bulk/lfpool_ret_bulk of 32",
};
static const char *const akind_preload[A_NKINDS] = {NULL, "libjemalloc.so.2",
                                                    "libtcmalloc_minimal.so.4", NULL, NULL};

/* the block cache's configuration (examples/blockcache.c) */
static void *blk_new(void *ctx, uint64_t n)
{
    (void)ctx, (void)n;
    return aligned_alloc(ALLOC_BLOCK, ALLOC_BLOCK); /* errno set on failure */
}
static int blk_free(void *ctx, void *b)
{
    (void)ctx;
    free(b);
    return 0;
}

struct aslot {
    _Atomic uint64_t pairs; /* written by its thread only, read by main */
} __attribute__((aligned(64)));

struct achild {
    enum akind kind;
    lfpool *pool;
    _Atomic bool go, stop;
    _Atomic int ready;
    _Atomic int errors;
    struct aslot slot[64];
    _Atomic unsigned next;
};

static inline void escape(void *p)
{
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

static void *achild_thread(void *arg)
{
    struct achild *c = arg;
    struct aslot *my = &c->slot[atomic_fetch_add(&c->next, 1)];
    void *b[ALLOC_BATCH];
    lfpool_handle hs[ALLOC_BATCH];
    uint64_t pairs = 0;
    int errors = 0;
    atomic_fetch_add(&c->ready, 1);
    while (!atomic_load_explicit(&c->go, memory_order_acquire))
        ;
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        switch (c->kind) {
        case A_LFPOOL_H:
            for (int i = 0; i < ALLOC_BATCH; i++) {
                errors += lfpool_get_handle(c->pool, &hs[i], LFPOOL_FOREVER) != 0;
                ((char *)hs[i].obj)[0] = (char)i;
            }
            for (int i = ALLOC_BATCH - 1; i >= 0; i--)
                errors += lfpool_ret_handle(c->pool, &hs[i]) != 0;
            break;
        case A_LFPOOL_BULK:
            errors += lfpool_get_bulk(c->pool, hs, ALLOC_BATCH, LFPOOL_FOREVER) != 0;
            for (int i = 0; i < ALLOC_BATCH; i++)
                ((char *)hs[i].obj)[0] = (char)i;
            errors += lfpool_ret_bulk(c->pool, hs, ALLOC_BATCH) != 0;
            break;
        default:
            for (int i = 0; i < ALLOC_BATCH; i++) {
                b[i] = malloc(ALLOC_BLOCK);
                escape(b[i]);
                ((char *)b[i])[0] = (char)i;
            }
            for (int i = ALLOC_BATCH - 1; i >= 0; i--) {
                escape(b[i]);
                free(b[i]);
            }
            break;
        }
        pairs += ALLOC_BATCH;
        atomic_store_explicit(&my->pairs, pairs, memory_order_relaxed); /* a plain store */
    }
    atomic_fetch_add(&c->errors, errors);
    return NULL;
}

static uint64_t achild_pairs(struct achild *c, unsigned threads)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < threads; i++)
        n += atomic_load_explicit(&c->slot[i].pairs, memory_order_relaxed);
    return n;
}

/* Which allocator this process got: the one the parent meant to load. */
static bool achild_allocator_ok(enum akind k)
{
    bool je = dlsym(RTLD_DEFAULT, "mallctl") != NULL;
    bool tc = dlsym(RTLD_DEFAULT, "tc_malloc") != NULL;
    switch (k) {
    case A_JEMALLOC:
        return je;
    case A_TCMALLOC:
        return tc;
    default:
        return !je && !tc;
    }
}

/* --alloc-child KIND:THREADS:SECONDS - prints "ns/pair" or "n/a why". */
int bench_alloc_child(const char *spec)
{
    char name[32];
    unsigned threads;
    double seconds;
    if (sscanf(spec, "%31[^:]:%u:%lf", name, &threads, &seconds) != 3 || threads < 1 ||
        threads > 64 || !(seconds > 0)) {
        fprintf(stderr, "lfpool-bench: bad --alloc-child '%s'\n", spec);
        return 2;
    }
    struct achild c = {.kind = A_NKINDS};
    for (int k = 0; k < A_NKINDS; k++)
        if (strcmp(name, akind_name[k]) == 0)
            c.kind = (enum akind)k;
    if (c.kind == A_NKINDS)
        return 2;
    if (!achild_allocator_ok(c.kind)) {
        printf("n/a not loaded\n");
        return 0;
    }
    if (c.kind == A_LFPOOL_H || c.kind == A_LFPOOL_BULK) {
        lfpool_config cfg;
        lfpool_config_init(&cfg);
        cfg.fun = blk_new;
        cfg.closer = blk_free;
        cfg.min_size = 0;
        int err = lfpool_new(&c.pool, &cfg);
        if (err) {
            printf("n/a lfpool_new: %s\n", strerror(err));
            return 0;
        }
    }
    pthread_t th[64];
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, achild_thread, &c);
    while (atomic_load(&c.ready) < (int)threads)
        sched_yield();
    atomic_store(&c.go, true);
    usleep((useconds_t)(seconds * 2e5)); /* warm-up: caches and pool fill */
    uint64_t p0 = achild_pairs(&c, threads), t0 = bench_now_ns();
    usleep((useconds_t)(seconds * 1e6));
    /* a loaded host may not have run a thread in a short window: go on
     * until every thread could have made some progress (bounded) */
    uint64_t p1, t1;
    while ((p1 = achild_pairs(&c, threads)) - p0 < (uint64_t)threads * ALLOC_BATCH * 64 &&
           (t1 = bench_now_ns()) - t0 < (uint64_t)(seconds * 20e9) + 1000000000u)
        usleep(1000);
    t1 = bench_now_ns();
    atomic_store(&c.stop, true);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    uint64_t pairs = p1 - p0;
    if (c.pool)
        lfpool_free(c.pool);
    if (atomic_load(&c.errors) || pairs == 0) {
        printf("n/a %d errors\n", atomic_load(&c.errors));
        return 1;
    }
    printf("%.3f\n", (double)(t1 - t0) / (double)pairs);
    return 0;
}

/* One child measurement: ns per pair, or NAN (*why says why). */
static double alloc_measure(const char *self, enum akind k, unsigned threads, double seconds,
                            char *why, size_t whylen, int *failed)
{
    char spec[96];
    snprintf(spec, sizeof spec, "%s:%u:%g", akind_name[k], threads, seconds);
    char *argv[] = {(char *)self, "--alloc-child", spec, NULL};
    /* the environment, without an LD_PRELOAD of ours, plus the allocator's */
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + 2, sizeof *env);
    char pre[128];
    if (!env)
        return NAN;
    size_t m = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[m++] = environ[i];
    if (akind_preload[k]) {
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", akind_preload[k]);
        env[m++] = pre;
    }
    env[m] = NULL;
    int fd[2];
    if (pipe(fd) != 0) {
        free(env);
        return NAN;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    /* a missing preload library: ld.so's complaint is the answer, quietly */
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int err = posix_spawn(&pid, self, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fd[1]);
    char buf[128] = "";
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    close(fd[0]);
    int st = 0;
    if (err == 0)
        waitpid(pid, &st, 0);
    buf[strcspn(buf, "\n")] = 0;
    if (err || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(why, whylen, "child failed (%.40s)", buf);
        *failed = 1;
        return NAN;
    }
    char *end;
    double v = strtod(buf, &end);
    if (end == buf) {
        snprintf(why, whylen, "%.60s", strncmp(buf, "n/a ", 4) == 0 ? buf + 4 : buf);
        return NAN;
    }
    return v;
}

int bench_alloc_run(const char *self, double seconds, unsigned rounds, bool quiet, FILE *out)
{
    static const unsigned tcounts[] = {1, 2};
    enum { NT = 2 };
    double *ns = calloc((size_t)A_NKINDS * NT * rounds, sizeof *ns);
    char why[A_NKINDS][NT][64];
    memset(why, 0, sizeof why);
    if (!ns)
        return 2;
    int failed = 0;
    for (unsigned r = 0; r < rounds; r++) {
        for (int t = 0; t < NT; t++)
            for (int kk = 0; kk < A_NKINDS; kk++) {
                int k = (kk + (int)r) % A_NKINDS; /* interleaved, rotated */
                ns[((size_t)k * NT + (size_t)t) * rounds + r] =
                    alloc_measure(self, (enum akind)k, tcounts[t], seconds, why[k][t],
                                  sizeof why[k][t], &failed);
            }
        if (!quiet)
            fprintf(stderr, "[alloc round %u/%u]\n", r + 1, rounds);
    }
    fprintf(out, "\nAllocator case: 64-byte blocks, each thread takes 32 then gives the 32 "
                 "back; ns per block (take + give back), wall time over all threads, median of "
                 "%u rounds; one child process per measurement\n", rounds);
    fprintf(out, "%-12s %-58s %10s %10s %10s %10s\n", "allocator", "calls", "1 thread", "vs-glibc",
            "2 threads", "vs-glibc");
    double glibc[NT] = {NAN, NAN};
    double med[A_NKINDS][NT];
    for (int k = 0; k < A_NKINDS; k++)
        for (int t = 0; t < NT; t++) {
            med[k][t] = bench_median(&ns[((size_t)k * NT + (size_t)t) * rounds], rounds);
            if (k == A_GLIBC)
                glibc[t] = med[k][t];
        }
    for (int k = 0; k < A_NKINDS; k++) {
        fprintf(out, "%-12s %-58s", akind_name[k], akind_desc[k]);
        for (int t = 0; t < NT; t++) {
            if (isnan(med[k][t])) {
                fprintf(out, " %10s %10s", "n/a", "");
                continue;
            }
            char ratio[16] = "";
            if (!isnan(glibc[t]) && glibc[t] > 0)
                snprintf(ratio, sizeof ratio, "%.2f", med[k][t] / glibc[t]);
            fprintf(out, " %10.2f %10s", med[k][t], ratio);
        }
        fprintf(out, "\n");
        for (int t = 0; t < NT; t++)
            if (isnan(med[k][t]) && why[k][t][0])
                fprintf(out, "  (%s, %u thread%s: %s)\n", akind_name[k], tcounts[t],
                        tcounts[t] > 1 ? "s" : "", why[k][t]);
    }
    free(ns);
    return failed ? 1 : 0;
}
