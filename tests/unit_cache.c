/* unit_cache.c - the per-CPU caches (src/cache.c, src/percpu.h): when they
 * are on, that nothing cached is lost to a get on another CPU, to the
 * housekeeper, to shutdown or to a waiter.  Threads are pinned to CPUs to
 * put objects in a chosen cache. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <sched.h>
#include <sys/sysinfo.h>

LFPOOL_TEST_FIXTURE(cache, (void)0);

Test(cache, on_where_rseq_is_and_sized_by_max_size)
{
    unsigned ncpu = (unsigned)get_nprocs_conf();
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.cpu_cache, trseq_here() ? 14u : 0u, "unbounded: %llu",
                 (unsigned long long)s.cpu_cache);
    lfpool_free(P);

    /* a bounded pool caches at most half its objects over all CPUs */
    C.max_size = 8 * ncpu;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    s = tstats(P);
    cr_assert_eq(s.cpu_cache, trseq_here() ? 4u : 0u);
    lfpool_free(P);

    /* but one slot per CPU once there is an object per CPU (gate.c: parked
     * waiters are granted, and flush when they look) */
    C.max_size = 2 * ncpu - 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    s = tstats(P);
    cr_assert_eq(s.cpu_cache, trseq_here() ? 1u : 0u, "an object per CPU");
    if (ncpu > 1) {
        lfpool_free(P);
        C.max_size = ncpu - 1;
        cr_assert_eq(lfpool_new(&P, &C), 0);
        s = tstats(P);
        cr_assert_eq(s.cpu_cache, 0, "fewer objects than CPUs: no caches");
    }
}

struct xcpu {
    lfpool *p;
    int cpu, n, rc;
    void *objs[8];
};

static void *get_all(void *arg)
{
    struct xcpu *x = arg;
    if (!tpin(x->cpu))
        x->rc = -1;
    for (int i = 0; i < x->n && !x->rc; i++)
        x->rc = lfpool_get(x->p, &x->objs[i], 0);
    return NULL;
}

static void *ret_all(void *arg)
{
    struct xcpu *x = arg;
    if (!tpin(x->cpu))
        x->rc = -1;
    for (int i = 0; i < x->n && !x->rc; i++)
        x->rc = lfpool_ret(x->p, x->objs[i]);
    return NULL;
}

static void run_on(void *(*fn)(void *), struct xcpu *x)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, x), 0);
    pthread_join(t, NULL);
    cr_assert_eq(x->rc, 0);
}

/* Objects returned on CPU 0 sit in its cache; gets on CPU 1 must find them
 * (a flush) rather than create new ones. */
Test(cache, get_on_another_cpu_takes_cached_objects)
{
    if (!ttwo_cpus())
        cr_skip_test("needs CPUs 0 and 1");
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct xcpu x = {.p = P, .cpu = 0, .n = 8};
    run_on(get_all, &x);
    run_on(ret_all, &x);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 8);
    cr_assert_eq(s.navail, 8);
    uint64_t flushes = s.nflushes;

    struct xcpu y = {.p = P, .cpu = 1, .n = 8};
    run_on(get_all, &y);
    s = tstats(P);
    cr_assert_eq(s.ncreated, 8, "a get created while objects sat in another CPU's cache");
    cr_assert_eq(s.nusing, 8);
    /* a flush moved them, unless one before had closed the caches (a get
     * of the first thread that found the fill's objects in another CPU's
     * cache, cache.c): then the returns went to the shared stack */
    if (trseq_here() && flushes == 0)
        cr_assert_gt(s.nflushes, flushes);
    for (int i = 0; i < 8; i++) {
        bool found = false;
        for (int k = 0; k < 8; k++)
            found = found || y.objs[i] == x.objs[k];
        cr_assert(found, "object %d is new", i);
    }
    y.cpu = 0;
    run_on(ret_all, &y);
}

/* Recycling and health checks reach objects that sit in a cache: rounds
 * flush the caches first. */
Test(cache, housekeeping_reaches_cached_objects)
{
    C.min_size = 0;
    C.max_avail_delay = 5;
    C.health = thealth;
    C.health_freq = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[4];
    cr_assert_eq(tget_ret_n(P, o, 4), 0);
    ((struct tobj *)o[0])->healthy = 0;
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nhealth, 4, "every cached object checked");
    cr_assert_eq(s.bad_health, 1);
    cr_assert_eq(((struct tobj *)o[0])->closed, 1);

    tclock_advance(&T, 10);
    cr_assert_eq(lfpool_housekeep(P), 0);
    s = tstats(P);
    cr_assert_eq(s.nrecycled, 3);
    cr_assert_eq(s.nobjs, 0);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 4);
}

Test(cache, shutdown_closes_cached_objects)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[5];
    cr_assert_eq(tget_ret_n(P, o, 5), 0);
    cr_assert_eq(lfpool_shutdown(P, 0), 0);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(((struct tobj *)o[i])->closed, 1);
}

/* A waiter on CPU 1 and one return on CPU 0, many times over, the return
 * landing before, during or after the waiter's registration: a return
 * that pushes into CPU 0's cache must still reach the waiter (woken by the
 * return's check of the waiter count, or found by the waiter's flush).  A
 * lost wake-up shows as a timeout.  (The store-buffer window that the
 * flush's membarrier closes is nanoseconds wide; this test exercises the
 * protocol around it, the argument in cache.c covers the window itself.) */
struct handoff {
    lfpool *p;
    _Atomic int phase, stop;
    _Atomic long timeouts, errors, got;
};

static void *waiter(void *arg)
{
    struct handoff *h = arg;
    tpin(1);
    while (!atomic_load(&h->stop)) {
        int ph = atomic_load(&h->phase);
        if (ph % 2 == 0) {
            sched_yield();
            continue;
        }
        void *o;
        int r = lfpool_get(h->p, &o, 2.0);
        if (r == ETIMEDOUT)
            atomic_fetch_add(&h->timeouts, 1);
        else if (r)
            atomic_fetch_add(&h->errors, 1);
        else {
            atomic_fetch_add(&h->got, 1);
            lfpool_ret(h->p, o);
        }
        atomic_store(&h->phase, ph + 1);
    }
    return NULL;
}

Test(cache, waiter_on_another_cpu_never_misses_a_cached_return, .timeout = 120)
{
    if (!ttwo_cpus())
        cr_skip_test("needs CPUs 0 and 1");
    C.max_size = 4 * (size_t)get_nprocs_conf(); /* 2 records per cache */
    C.retter = NULL;                             /* the hinted fast ret */
    C.getter = NULL;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct handoff h = {.p = P};
    pthread_t w;
    cr_assert(tpin(0));
    pthread_create(&w, NULL, waiter, &h);
    size_t n = C.max_size;
    void *o[64];
    unsigned seed = 7;
    for (int it = 0; it < 3000; it++) {
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
        atomic_fetch_add(&h.phase, 1); /* odd: the waiter gets (and waits) */
        for (volatile unsigned spin = rand_r(&seed) % 3000; spin; spin--)
            ;
        /* one object only: a later return would mask a lost wake-up */
        cr_assert_eq(lfpool_ret(P, o[0]), 0);
        while (atomic_load(&h.phase) % 2)
            sched_yield();
        for (size_t i = 1; i < n; i++)
            cr_assert_eq(lfpool_ret(P, o[i]), 0);
    }
    atomic_store(&h.stop, 1);
    pthread_join(w, NULL);
    cr_assert_eq(atomic_load(&h.timeouts), 0, "lost wake-ups");
    cr_assert_eq(atomic_load(&h.errors), 0);
    cr_assert_eq(atomic_load(&h.got), 3000);
}

/* A consumer on CPU 1 gets what a producer on CPU 0 returns, one object at
 * a time: the gets that have to take from CPU 0's cache flush it open
 * while the fence budget lasts (max_fences, 5 here), then one closes the
 * caches (cache.c, bounded fences), so CPU 0's returns go to the shared
 * stack and the consumer does not pay a flush (a system call) per object;
 * on the fake clock that stands still (no rounds, one budget window) they
 * stay closed, and the run fences at most 5 + 1 times. */
struct pingpong {
    lfpool *p;
    _Atomic(void *) box; /* consumer -> producer */
    _Atomic int returned, stop;
    _Atomic long errors;
};

static void *producer(void *arg)
{
    struct pingpong *pp = arg;
    tpin(0);
    while (!atomic_load(&pp->stop)) {
        void *o = atomic_exchange(&pp->box, NULL);
        if (!o) {
            sched_yield();
            continue;
        }
        if (lfpool_ret(pp->p, o) != 0)
            atomic_fetch_add(&pp->errors, 1);
        atomic_fetch_add(&pp->returned, 1);
    }
    return NULL;
}

Test(cache, consumer_on_another_cpu_does_not_flush_per_object, .timeout = 120)
{
    if (!ttwo_cpus())
        cr_skip_test("needs CPUs 0 and 1");
    C.min_size = 0;
    C.getter = NULL;
    C.retter = NULL;
    C.max_fences = 5;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct pingpong pp = {.p = P};
    pthread_t t;
    cr_assert(tpin(1));
    pthread_create(&t, NULL, producer, &pp);
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        void *o;
        cr_assert_eq(lfpool_get(P, &o, 0), 0);
        atomic_store(&pp.box, o);
        while (atomic_load(&pp.returned) <= i)
            sched_yield();
    }
    atomic_store(&pp.stop, 1);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&pp.errors), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_leq(s.ncreated, 4, "the consumer created instead of taking returned objects");
    if (trseq_here())
        cr_assert_lt(s.nflushes, N / 8, "%llu flushes for %d objects",
                     (unsigned long long)s.nflushes, N);
    cr_assert_leq(s.nfences - s.nbias_fences, 2 + 5,
                  "%llu fences for %d objects (the probe, 5 open flushes, a closing)",
                  (unsigned long long)(s.nfences - s.nbias_fences), N);
}

/* Signals aborting the restartable sequences: each of two threads is hit by
 * its own timer every 20 us while it gets and returns (pointers, handles
 * and bulks) on a pool of 8, so that many signals land inside a section
 * (the cache's pop and push, the biased commit) and the kernel restarts it
 * at its abort handler.  No object may be handed out twice or lost, and
 * every use must be counted once. */
#include <signal.h>
#include <time.h>
#ifndef sigev_notify_thread_id /* glibc < 2.35 spells it only this way */
#define sigev_notify_thread_id _sigev_un._tid
#endif
static _Atomic long sig_hits;
static void sig_count(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&sig_hits, 1, memory_order_relaxed);
}
struct sigworker {
    lfpool *p;
    _Atomic long *errors;
    long pairs;
};
static void *sig_worker(void *arg)
{
    struct sigworker *w = arg;
    timer_t tm;
    struct sigevent ev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGURG};
    ev.sigev_notify_thread_id = gettid();
    if (timer_create(CLOCK_MONOTONIC, &ev, &tm) != 0) {
        atomic_fetch_add(w->errors, 1000);
        return NULL;
    }
    struct itimerspec its = {.it_interval = {0, 20000}, .it_value = {0, 20000}};
    timer_settime(tm, 0, &its, NULL);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lfpool_handle hs[3];
    for (long i = 0;; i++) {
        void *o;
        int k = (int)(i % 3);
        if (k == 0) {
            if (lfpool_get(w->p, &o, 5.0) != 0 || lfpool_ret(w->p, o) != 0)
                atomic_fetch_add(w->errors, 1);
            w->pairs++;
        } else if (k == 1) {
            if (lfpool_get_handle(w->p, &hs[0], 5.0) != 0 || lfpool_ret_handle(w->p, &hs[0]) != 0)
                atomic_fetch_add(w->errors, 1);
            w->pairs++;
        } else {
            if (lfpool_get_bulk(w->p, hs, 3, 5.0) != 0)
                atomic_fetch_add(w->errors, 1);
            else {
                for (int j = 0; j < 3; j++)
                    if (atomic_exchange(&((struct tobj *)hs[j].obj)->held, 1) != 0)
                        atomic_fetch_add(w->errors, 1);
                for (int j = 0; j < 3; j++)
                    atomic_store(&((struct tobj *)hs[j].obj)->held, 0);
                if (lfpool_ret_bulk(w->p, hs, 3) != 0)
                    atomic_fetch_add(w->errors, 1);
                w->pairs += 3;
            }
        }
        if ((i & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            /* at least 0.3 s and enough signals for the check below (a
             * loaded host, or valgrind, delivers fewer in a fixed time),
             * 20 s at most */
            long ns = (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec);
            if ((ns > 300000000L && atomic_load(&sig_hits) > 1100) || ns > 20000000000L)
                break;
        }
    }
    timer_delete(tm);
    return NULL;
}

Test(cache, sections_survive_signals, .timeout = 60)
{
    C.getter = NULL;
    C.retter = NULL;
    C.clock = NULL;
    C.clock_ctx = NULL;
    C.max_size = 8;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    struct sigaction sa = {.sa_handler = sig_count};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGURG, &sa, NULL);
    _Atomic long errors = 0;
    struct sigworker w[2] = {{.p = P, .errors = &errors}, {.p = P, .errors = &errors}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, sig_worker, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    signal(SIGURG, SIG_DFL);
    cr_assert_eq(atomic_load(&errors), 0);
    struct lfpool_stats s = tstats(P);
    /* enough signals that many land inside sections; without per-CPU caches
     * (no rseq: valgrind, the _norseq run) there are no sections to abort,
     * and valgrind delivers a few hundred in the same time */
    cr_assert_gt(atomic_load(&sig_hits), s.cpu_cache ? 1000 : 100, "signals delivered: %ld",
                 atomic_load(&sig_hits));
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, s.nobjs);
    cr_assert_eq(s.nuses, (uint64_t)(w[0].pairs + w[1].pairs), "uses %llu, pairs %ld",
                 (unsigned long long)s.nuses, w[0].pairs + w[1].pairs);
    cr_log_info("signals %ld, pairs %ld", atomic_load(&sig_hits), w[0].pairs + w[1].pairs);
}

/* ---- the ret paths by pool (handout.c: the inline path applies to a pool
 * with per-CPU caches, biased returns, no wear and nothing observed; the
 * others take the same steps out of line) */

/* A pool with max_use: every return checks the wear (out of line), and
 * each object ends at its max_use-th return, through either API. */
Test(cache, wear_returns_end_objects_at_max_use)
{
    C.getter = NULL;
    C.retter = NULL;
    C.clock = NULL;
    C.max_size = 1;
    C.max_use = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int i = 0; i < 12; i++) {
        if (i % 2) {
            lfpool_handle h;
            cr_assert_eq(lfpool_get_handle(P, &h, 1.0), 0);
            cr_assert_eq(lfpool_ret_handle(P, &h), 0);
        } else {
            void *o;
            cr_assert_eq(lfpool_get(P, &o, 1.0), 0);
            cr_assert_eq(lfpool_ret(P, o), 0);
        }
    }
    lfpool_housekeep(P); /* reaps the worn-out ones */
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nuses, 12);
    cr_assert_eq(s.nwornout, 4, "12 uses of objects worn out at 3: %llu",
                 (unsigned long long)s.nwornout);
    cr_assert_eq(s.ncreated, 4 + s.nobjs, "created %llu, %llu left", (unsigned long long)s.ncreated,
                 (unsigned long long)s.nobjs);
}

/* Returns observed (hold_histogram): each return of either API records its
 * hold, none takes the unobserved inline path. */
Test(cache, observed_returns_record_every_hold)
{
    C.getter = NULL;
    C.retter = NULL;
    C.clock = NULL;
    C.hold_histogram = true;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int i = 0; i < 200; i++) {
        if (i % 2) {
            lfpool_handle h;
            cr_assert_eq(lfpool_get_handle(P, &h, 1.0), 0);
            cr_assert_eq(lfpool_ret_handle(P, &h), 0);
        } else {
            void *o;
            cr_assert_eq(lfpool_get(P, &o, 1.0), 0);
            cr_assert_eq(lfpool_ret(P, o), 0);
        }
    }
    struct lfpool_histogram hg;
    cr_assert_eq(lfpool_histogram(P, LFPOOL_HIST_HOLD, &hg), 0);
    cr_assert_eq(hg.total, 200, "holds recorded: %llu", (unsigned long long)hg.total);
}

/* Returns racing shutdown: the inline ret does not read the shutdown flag
 * before its commit; one that passed the admission word before shutdown
 * cleared it reads the flag after its push and closes what is available.
 * Two threads get and return (pointers, handles) on the fast paths while
 * the main thread shuts the pool down: when they stop, every object was
 * closed once, none is left available. */
struct shutworker {
    lfpool *p;
    _Atomic long *pairs;
    _Atomic long *errors;
};
static void *shut_worker(void *arg)
{
    struct shutworker *w = arg;
    for (long i = 0;; i++) {
        int r, rr;
        if (i % 2) {
            lfpool_handle h;
            r = lfpool_get_handle(w->p, &h, 0);
            rr = r ? 0 : lfpool_ret_handle(w->p, &h);
        } else {
            void *o;
            r = lfpool_get(w->p, &o, 0);
            rr = r ? 0 : lfpool_ret(w->p, o);
        }
        if (r == ESHUTDOWN)
            break;
        if ((r && r != EAGAIN) || rr) /* a return after shutdown closes: 0 */
            atomic_fetch_add(w->errors, 1);
        atomic_fetch_add_explicit(w->pairs, 1, memory_order_relaxed);
    }
    return NULL;
}

Test(cache, returns_racing_shutdown_close_everything, .timeout = 60)
{
    C.getter = NULL;
    C.retter = NULL;
    C.clock = NULL;
    C.max_size = 8;
    C.min_size = 8;
    uint64_t created = 0; /* over the rounds: T counts every close */
    for (int round = 0; round < 20; round++) {
        cr_assert_eq(lfpool_new(&P, &C), 0);
        _Atomic long pairs = 0, errors = 0;
        struct shutworker w = {.p = P, .pairs = &pairs, .errors = &errors};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            cr_assert_eq(pthread_create(&th[i], NULL, shut_worker, &w), 0);
        long at = 2000 + 997 * round; /* a different moment each round */
        while (atomic_load(&pairs) < at)
            sched_yield();
        cr_assert_eq(lfpool_shutdown(P, 0), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        cr_assert_eq(atomic_load(&errors), 0);
        struct lfpool_stats s = tstats(P);
        cr_assert_eq(s.nusing, 0);
        cr_assert_eq(s.navail, 0, "round %d: %llu objects left available after shutdown", round,
                     (unsigned long long)s.navail);
        created += s.ncreated;
        cr_assert_eq((uint64_t)atomic_load(&T.fx.n.closed), created,
                     "round %d: closed %llu of %llu", round,
                     (unsigned long long)atomic_load(&T.fx.n.closed), (unsigned long long)created);
        lfpool_free(P);
        P = NULL;
    }
    cr_assert_leq(atomic_load(&T.nobjs), 4096);
}
