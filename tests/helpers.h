/* helpers.h - the unit tests' fixture, built on the shared one
 * (fixture/lfpool_fixture.h: counting hooks, fake clock, log capture).
 * What is the unit tests' own: their objects (`struct tobj`, created by
 * tfun()), the per-file Criterion fixture LFPOOL_TEST_FIXTURE, the hung
 * health hook and the bursts of the gate tests (tburst). */
#ifndef LFPOOL_TEST_HELPERS_H
#define LFPOOL_TEST_HELPERS_H

#include <lfpool.h>

#include "lfpool_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <time.h>
#include <unistd.h>

struct tobj {
    uint64_t n;
    _Atomic int held;    /* 1 while a test thread holds it */
    _Atomic int closed;  /* closer calls on it */
    _Atomic int handed;  /* a test saw it handed out (unit_loop's order check) */
    int healthy;         /* health hook answer */
    const char *trace;   /* tracer text */
};

/* The pool context: the shared counting hooks and fault knobs first (fx.n:
 * calls of each hook; fx.f: fail_next_fun + fun_errno, fail_hooks), the
 * fake clock, the log capture (log.text: every line), and the objects tfun
 * made. */
struct tctx {
    struct lfx_hooks fx; /* first: the counting hooks' ctx */
    struct lfx_clock clock;
    struct lfx_log log;
    uint64_t seen_n[64];
    _Atomic int nseen;
    struct tobj *objs[4096];
    _Atomic int nobjs;
};

static inline void tctx_init(struct tctx *t)
{
    memset(t, 0, sizeof *t);
    lfx_log_init(&t->log, "LFPOOL_TEST_LOG");
    lfx_clock_set(&t->clock, 1000.0);
}

/* fun: records n, fails as fx.f says, else a fresh tobj kept in objs[] */
static inline void *tfun(void *ctx, uint64_t n)
{
    struct tctx *t = ctx;
    int i = atomic_fetch_add(&t->nseen, 1);
    if (i < 64)
        t->seen_n[i] = n;
    if (lfx_fun_fails(&t->fx))
        return NULL;
    struct tobj *o = calloc(1, sizeof *o);
    o->n = n;
    o->healthy = 1;
    int k = atomic_fetch_add(&t->nobjs, 1);
    if (k < 4096)
        t->objs[k] = o;
    lfx_fun_created(&t->fx);
    return o;
}

/* closer: counts, marks closed; objects are freed by tctx_free_objs() so
 * that tests can inspect them after closing */
static inline int thook_close(void *ctx, void *o)
{
    struct tctx *t = ctx;
    atomic_fetch_add(&((struct tobj *)o)->closed, 1);
    lfx_count(&t->fx.n.closed);
    return lfx_closer_fault(&t->fx);
}
static inline int thealth(void *ctx, void *o)
{
    (void)ctx;
    return ((struct tobj *)o)->healthy;
}
/* the fake clock: set, advance, read */
static inline void tclock_set(struct tctx *t, double s)
{
    lfx_clock_set(&t->clock, s);
}
static inline void tclock_advance(struct tctx *t, double s)
{
    lfx_clock_advance(&t->clock, s);
}
static inline void tctx_free_objs(struct tctx *t)
{
    int n = atomic_load(&t->nobjs);
    for (int i = 0; i < n && i < 4096; i++)
        free(t->objs[i]);
    atomic_store(&t->nobjs, 0);
}

/* Pin the calling thread to CPU `cpu` (false: not allowed there), and
 * whether this process may run on CPUs 0 and 1: the tests that put
 * objects into a chosen CPU's cache (unit_cache, unit_fence) */
static inline bool tpin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}
static inline bool ttwo_cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_ISSET(0, &set) &&
           CPU_ISSET(1, &set);
}

/* Get n objects without waiting, then return them all (they end up
 * available, in the caller's CPU cache where there is one).  0, or the
 * first failing return code. */
static inline int tget_ret_n(lfpool *p, void **o, int n)
{
    for (int i = 0; i < n; i++) {
        int r = lfpool_get(p, &o[i], 0);
        if (r)
            return r;
    }
    for (int i = 0; i < n; i++) {
        int r = lfpool_ret(p, o[i]);
        if (r)
            return r;
    }
    return 0;
}

/* Per-CPU caches (and biased returns) are possible here: x86-64 and glibc
 * registered rseq (not under GLIBC_TUNABLES=glibc.pthread.rseq=0 or
 * valgrind). */
static inline bool trseq_here(void)
{
#if defined(__x86_64__)
    return __rseq_size >= 20;
#else
    return false;
#endif
}

/* A config with every counting hook, the fake clock and the log capture. */
static inline void tcfg(lfpool_config *c, struct tctx *t)
{
    lfpool_config_init(c);
    lfx_config(c, &t->fx, &t->log, &t->clock);
    c->fun = tfun;
    c->closer = thook_close;
    c->log_level = LFPOOL_LOG_WARNING;
}

static inline struct lfpool_stats tstats(lfpool *p)
{
    struct lfpool_stats s;
    lfpool_stats(p, &s);
    return s;
}

/* A health hook that holds its object until released: hung_health_hold(),
 * wait for hung_health_checking, then hung_health_release().  And a thread
 * body running one round (the round blocks in that hook). */
static _Atomic int hung_health_open, hung_health_checking;
static inline void hung_health_hold(void)
{
    atomic_store(&hung_health_open, 0);
    atomic_store(&hung_health_checking, 0);
}
static inline void hung_health_release(void)
{
    atomic_store(&hung_health_open, 1);
}
static inline int hung_health(void *ctx, void *o)
{
    (void)ctx;
    (void)o;
    atomic_store(&hung_health_checking, 1);
    while (!atomic_load(&hung_health_open))
        usleep(1000);
    return 1;
}
static inline void *round_in_thread(void *pool)
{
    lfpool_housekeep(pool);
    return NULL;
}
static inline void wait_hung_health_checking(void)
{
    while (!atomic_load(&hung_health_checking))
        usleep(1000);
}

/* One test file's fixture: the context T, the config C (every counting
 * hook, fake clock, log capture) and the pool P, freed after each test.
 * EXTRA is run after the config is made (file-specific defaults). */
/* A get that waits (5 s: a missed wake-up would end there) and keeps what
 * it got: the bursts of the gate tests (unit_core, unit_gate). */
struct tburst {
    lfpool *p;
    _Atomic int entered, got, timeouts, errors;
};

static inline void *tburst_get(void *arg)
{
    struct tburst *b = arg;
    void *o;
    atomic_fetch_add(&b->entered, 1);
    int r = lfpool_get(b->p, &o, 5.0);
    atomic_fetch_add(r == 0 ? &b->got : r == ETIMEDOUT ? &b->timeouts : &b->errors, 1);
    return r == 0 ? o : NULL;
}

/* One burst round on a pool at max_size n (n <= 64): take all n objects,
 * start n waiting gets, let them park for `park_us`, return the n objects
 * and check that every waiter got one well before its 5 s timeout, then
 * return theirs. */
static inline void tburst_round(lfpool *p, int n, int round, unsigned park_us)
{
    void *held[64], *got[64];
    pthread_t th[64];
    for (int i = 0; i < n; i++)
        cr_assert_eq(lfpool_get(p, &held[i], 0), 0);
    struct tburst b = {.p = p};
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, tburst_get, &b);
    while (atomic_load(&b.entered) < n)
        sched_yield();
    usleep(park_us); /* parked, or some still on their way */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(lfpool_ret(p, held[i]), 0);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], &got[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_assert_lt(took, 4.0, "round %d: a sleeper stayed asleep %.1f s with objects available",
                 round, took);
    cr_assert_eq(atomic_load(&b.timeouts), 0, "round %d: a sleeper missed a returned object", round);
    cr_assert_eq(atomic_load(&b.errors), 0);
    cr_assert_eq(atomic_load(&b.got), n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(lfpool_ret(p, got[i]), 0);
}

#define LFPOOL_TEST_FIXTURE(suite, EXTRA)                                     \
    static struct tctx T;                                                  \
    static lfpool_config C;                                                \
    static lfpool *P;                                                      \
    static void setup(void)                                                \
    {                                                                      \
        tctx_init(&T);                                                     \
        tcfg(&C, &T);                                                      \
        EXTRA;                                                             \
        P = NULL;                                                          \
    }                                                                      \
    static void teardown(void)                                             \
    {                                                                      \
        lfpool_free(P);                                                    \
        tctx_free_objs(&T);                                                \
    }                                                                      \
    TestSuite(suite, .init = setup, .fini = teardown)

#endif
