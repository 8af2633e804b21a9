/*
 * review.c - regression tests for the review's findings (fork children that
 * hang, shutdown with a huge delay, a refill that lands after shutdown, a
 * non-waiting get that misses an available object).  Each fails on the
 * code before its fix; docs/RELIABILITY.md ("Findings") says what was
 * wrong.  Public API only.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <lfpool.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REVIEW_HAS_ASAN 1
#endif
#endif
#ifndef REVIEW_HAS_ASAN
#define REVIEW_HAS_ASAN 0
#endif

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void quiet_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

/* objects: malloc'd ints, counted */
static _Atomic int created, closed;
static void *mk(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    int *o = malloc(sizeof *o);
    if (o)
        atomic_fetch_add(&created, 1);
    return o;
}
static int cl(void *ctx, void *o)
{
    (void)ctx;
    atomic_fetch_add(&closed, 1);
    free(o);
    return 0;
}

/* Wait for a child with a deadline; kill it when it overstays.  Returns
 * its exit status, or -1 when it hung. */
static int wait_child(pid_t pid, double limit)
{
    double until = mono() + limit;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        if (mono() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_s(0.005);
    }
}

/* The child's work after fork: get, ret, one round; exit 0 when all
 * three succeed. */
static void child_get_ret_round(lfpool *p)
{
    void *o = NULL;
    int e = lfpool_get(p, &o, 1.0);
    if (e)
        _exit(10);
    if (lfpool_ret(p, o))
        _exit(11);
    if (lfpool_housekeep(p))
        _exit(12);
    lfpool_free(p);
    _exit(0);
}

/* ---- 1. fork while the housekeeper is inside a round (a slow health
 * check): the child inherited the in-flight count and waited forever for
 * work that no thread of the child would finish. */

static _Atomic int health_running;
static int slow_health(void *ctx, void *o)
{
    (void)ctx;
    (void)o;
    atomic_store(&health_running, 1);
    sleep_s(0.4);
    atomic_store(&health_running, 0);
    return 1;
}

Test(review, fork_during_a_round_does_not_hang_the_child, .timeout = 30)
{
#if defined(__SANITIZE_ADDRESS__) || REVIEW_HAS_ASAN
    /* ASan's allocator is not fork-safe (RELIABILITY.md, "Fork tests and
     * AddressSanitizer"): the plain and valgrind runs cover this test */
    cr_skip_test("fork under AddressSanitizer");
#endif
    lfpool_config c;
    lfpool_config_init(&c);
    c.fun = mk;
    c.closer = cl;
    c.health = slow_health;
    c.delay = 0.05;
    c.min_size = 2;
    c.max_size = 4;
    c.log = quiet_log;
    lfpool *p;
    cr_assert_eq(lfpool_new(&p, &c), 0);
    int hung = 0;
    for (int i = 0; i < 3; i++) {
        double until = mono() + 5;
        while (!atomic_load(&health_running) && mono() < until)
            sleep_s(0.001);
        cr_assert(atomic_load(&health_running), "the health check never ran");
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            child_get_ret_round(p);
        int st = wait_child(pid, 5.0);
        if (st < 0)
            hung++;
        else
            cr_expect_eq(st, 0, "child exit status %d", st);
        while (atomic_load(&health_running))
            sleep_s(0.001);
    }
    cr_expect_eq(hung, 0, "%d of 3 children hung", hung);
    lfpool_free(p);
}

/* ---- 4. lfpool_shutdown(p, 1e300): the seconds-to-timespec conversion was
 * undefined behaviour (float-cast-overflow) and the call returned at once
 * instead of waiting for the housekeeper. */

Test(review, shutdown_with_a_huge_delay_waits_for_the_housekeeper, .timeout = 30)
{
    lfpool_config c;
    lfpool_config_init(&c);
    c.fun = mk;
    c.closer = cl;
    c.health = slow_health;
    c.delay = 0.02;
    c.min_size = 1;
    c.log = quiet_log;
    lfpool *p;
    cr_assert_eq(lfpool_new(&p, &c), 0);
    double until = mono() + 5;
    while (!atomic_load(&health_running) && mono() < until)
        sleep_s(0.001);
    cr_assert(atomic_load(&health_running), "the health check never ran");
    const double delays[] = {1e300, 1e20, 9.3e18, (double)INT64_MAX};
    cr_assert_eq(lfpool_shutdown(p, delays[0]), 0);
    /* it waited for the round (and its check) to end */
    cr_expect_eq(atomic_load(&health_running), 0, "shutdown returned while the check ran");
    for (size_t i = 1; i < sizeof delays / sizeof delays[0]; i++)
        cr_expect_eq(lfpool_shutdown(p, delays[i]), 0);
    lfpool_free(p);
}

/* bounded waits with huge timeouts are not undefined either: a get at
 * max_size with timeout 1e300 sleeps until an object comes back */
static void *ret_later(void *arg)
{
    void **a = arg;
    sleep_s(0.05);
    lfpool_ret(a[0], a[1]);
    return NULL;
}

Test(review, a_get_with_a_huge_timeout_waits, .timeout = 30)
{
    lfpool_config c;
    lfpool_config_init(&c);
    c.fun = mk;
    c.closer = cl;
    c.max_size = 1;
    c.timeout = 1e300;
    c.log = quiet_log;
    lfpool *p;
    cr_assert_eq(lfpool_new(&p, &c), 0);
    void *o, *o2;
    cr_assert_eq(lfpool_get(p, &o, 0), 0);
    void *arg[2] = {p, o};
    pthread_t t;
    pthread_create(&t, NULL, ret_later, arg);
    cr_expect_eq(lfpool_get(p, &o2, 1e300), 0);
    cr_expect_eq(o2, o);
    pthread_join(t, NULL);
    cr_expect_eq(lfpool_ret(p, o2), 0);
    cr_expect_eq(lfpool_get(p, &o2, LFPOOL_DEFAULT), 0);
    cr_expect_eq(lfpool_ret(p, o2), 0);
    lfpool_free(p);
}

/* ---- 7. a refill's `fun` still running on the housekeeper when
 * lfpool_shutdown(p, 0) gave up on it: the new object went into the
 * available set and stayed there, unclosed, until lfpool_free. */

static _Atomic int fun_calls, fun_blocking, fun_release;
static void *blocking_mk(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    int call = atomic_fetch_add(&fun_calls, 1);
    if (call == 0) { /* lfpool_new's fill: fail, the round retries */
        errno = ECONNREFUSED;
        return NULL;
    }
    if (call == 1) { /* the round's refill: wait for the test */
        atomic_store(&fun_blocking, 1);
        while (!atomic_load(&fun_release))
            sleep_s(0.001);
    }
    return mk(ctx, n);
}

Test(review, a_refill_that_lands_after_shutdown_is_closed, .timeout = 30)
{
    atomic_store(&created, 0);
    atomic_store(&closed, 0);
    lfpool_config c;
    lfpool_config_init(&c);
    c.fun = blocking_mk;
    c.closer = cl;
    c.min_size = 1;
    c.delay = 0.01;
    c.log = quiet_log;
    lfpool *p;
    cr_assert_eq(lfpool_new(&p, &c), 0);
    double until = mono() + 5;
    while (!atomic_load(&fun_blocking) && mono() < until)
        sleep_s(0.001);
    cr_assert(atomic_load(&fun_blocking), "no refill ran");
    cr_assert_eq(lfpool_shutdown(p, 0), 0); /* gives up on the housekeeper */
    atomic_store(&fun_release, 1);
    until = mono() + 5;
    while ((atomic_load(&created) < 1 || atomic_load(&closed) < atomic_load(&created)) &&
           mono() < until)
        sleep_s(0.001);
    cr_expect_eq(atomic_load(&created), 1);
    cr_expect_eq(atomic_load(&closed), 1, "the late object was not closed before lfpool_free");
    struct lfpool_stats s;
    cr_assert_eq(lfpool_stats(p, &s), 0);
    cr_expect_eq(s.navail, 0);
    cr_expect_eq(s.nobjs, 0);
    void *o;
    cr_expect_eq(lfpool_get(p, &o, 0), ESHUTDOWN);
    lfpool_free(p);
    cr_expect_eq(atomic_load(&closed), 1, "closer ran twice");
}

/* ---- 6. a get with timeout 0 missed an object available in another CPU's
 * cache when another thread was flushing the caches at the same time (its
 * flush skipped the cache the other flusher held): EAGAIN at max_size with
 * an object available.  Two threads on two CPUs pass one object back and
 * forth while a third flushes (housekeeping rounds) all the time; the
 * getter holds the pool's other object, so the passed one is available
 * whenever the getter asks for it. */

#include <sched.h>
#include <stdbool.h>

struct pingpong {
    lfpool *p;
    _Atomic int turn; /* 0: the returner's, 1: the getter's, 2: stop */
    void *obj;
    _Atomic int stop_hk;
};

/* valgrind runs one thread at a time: a bare spin would wait for its
 * time slice on every hand-over */
static bool slow_env(void)
{
    const char *v = getenv("LD_PRELOAD");
    return (v && strstr(v, "vgpreload")) || getenv("REL_SLOW");
}
static bool slow;
static void spin_pause(void)
{
    if (slow)
        sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    else
        __builtin_ia32_pause();
#endif
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    (void)sched_setaffinity(0, sizeof s, &s);
}

static void *returner(void *arg)
{
    struct pingpong *pp = arg;
    pin(0);
    for (;;) {
        int t;
        while ((t = atomic_load(&pp->turn)) == 1)
            spin_pause();
        if (t == 2)
            return NULL;
        lfpool_ret(pp->p, pp->obj); /* into CPU 0's cache (or the stack) */
        atomic_store(&pp->turn, 1);
    }
}

static void *flusher(void *arg)
{
    struct pingpong *pp = arg;
    while (!atomic_load(&pp->stop_hk))
        lfpool_housekeep(pp->p); /* a round starts with a flush of every cache */
    return NULL;
}

Test(review, a_non_waiting_get_sees_an_object_in_another_cpus_cache, .timeout = 60)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        cr_skip_test("needs two CPUs");
    lfpool_config c;
    lfpool_config_init(&c);
    c.fun = mk;
    c.closer = cl;
    c.max_size = 2;
    c.min_size = 2;
    c.log = quiet_log;
    lfpool *p;
    cr_assert_eq(lfpool_new(&p, &c), 0);
    struct lfpool_stats st;
    cr_assert_eq(lfpool_stats(p, &st), 0);
    if (st.cpu_cache == 0) { /* no rseq (valgrind, the _norseq runs): no caches */
        lfpool_free(p);
        cr_skip_test("no per-CPU caches here");
    }
    void *held;
    cr_assert_eq(lfpool_get(p, &held, 0), 0);
    struct pingpong pp = {.p = p};
    cr_assert_eq(lfpool_get(p, &pp.obj, 0), 0);
    pthread_t rt, ft;
    pthread_create(&rt, NULL, returner, &pp);
    pthread_create(&ft, NULL, flusher, &pp);
    pin(1);
    slow = slow_env();
    int misses = 0, rounds = slow ? 300 : 20000;
    for (int i = 0; i < rounds; i++) {
        while (atomic_load(&pp.turn) != 1)
            spin_pause();
        void *o;
        int e = lfpool_get(p, &o, 0);
        if (e) {
            misses++;
            /* the object is available: a waiting get must find it */
            cr_assert_eq(lfpool_get(p, &o, 5.0), 0);
        }
        pp.obj = o;
        atomic_store(&pp.turn, 0);
    }
    while (atomic_load(&pp.turn) != 1)
        spin_pause();
    atomic_store(&pp.turn, 2);
    atomic_store(&pp.stop_hk, 1);
    pthread_join(rt, NULL);
    pthread_join(ft, NULL);
    cr_expect_eq(misses, 0, "%d of %d non-waiting gets missed the available object", misses, rounds);
    lfpool_ret(p, held);
    struct lfpool_stats s;
    lfpool_stats(p, &s);
    cr_expect_eq(s.nobjs, 2);
    lfpool_free(p);
}
