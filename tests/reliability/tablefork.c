/*
 * tablefork.c - fork() while a parent thread resizes the meta table.
 *
 * liburcu's hash table holds its resize mutex across the grace periods of
 * a resize.  A child forked meanwhile inherits that mutex locked by a
 * thread that does not exist there; before the fix the child's next
 * housekeeping round tried to shrink the inherited table and hung in
 * pthread_mutex_lock (cds_lfht_resize).  The scenario, through the public
 * API only:
 *
 *  - a churn thread gets and returns 600 objects (the table grows to 1024
 *    buckets), moves the injected clock past max_avail_delay and runs
 *    lfpool_housekeep(): the round recycles 599 objects and ends with a
 *    shrink to 64 buckets;
 *  - two threads read lfpool_stats_json() through a `stats` hook that
 *    sleeps 30 ms once per call (a read-side section held open: allowed by
 *    the API), so that every grace period of the shrink is long;
 *  - the test thread forks during that round, after the recycled objects
 *    were closed (the reap is over, only the fill and the shrink are left),
 *    again and again until FORKS_WANTED children were forked there;
 *  - each child gets, returns, runs a round and frees the pool, and must
 *    exit within CHILD_LIMIT seconds with no ERROR logged; a child that
 *    does not is killed and the test fails.
 *
 * Self-contained: include/lfpool.h, Criterion and libc only.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <lfpool.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOBJS 600          /* objects per cycle: 1024 buckets at the peak */
#define HOOK_SLEEP_US 30000
/* children forked after the reap of a round; seconds a child may take
 * (normally milliseconds); seconds for the whole test.  Under valgrind
 * (LD_PRELOAD names its vgpreload libraries) or with REL_SLOW=1: fewer
 * forks, longer limits. */
static int FORKS_WANTED = 8;
static double CHILD_LIMIT = 5.0, TEST_LIMIT = 40.0;

static void slow_mode(void)
{
    const char *v = getenv("LD_PRELOAD"), *s = getenv("REL_SLOW");
    if ((v && strstr(v, "vgpreload")) || (s && *s && *s != '0')) {
        FORKS_WANTED = 3;
        CHILD_LIMIT = 60.0;
        TEST_LIMIT = 200.0;
    }
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the pool's hooks */

static _Atomic int64_t clock_us = 1000000;
static _Atomic uint64_t closed;
static _Atomic unsigned errors_logged;
static char last_error[256];

static double test_clock(void *ctx)
{
    (void)ctx;
    return (double)atomic_load(&clock_us) / 1e6;
}

static void *create(void *ctx, uint64_t n)
{
    (void)ctx;
    uint64_t *o = malloc(sizeof *o);
    if (o)
        *o = n;
    return o;
}

static int closer(void *ctx, void *obj)
{
    (void)ctx;
    free(obj);
    atomic_fetch_add(&closed, 1);
    return 0;
}

/* once per lfpool_stats_json call of a reader thread: hold the read-side
 * section open for a while */
static __thread bool slept;
static int slow_stats(void *ctx, void *obj, struct lfpool_json *out)
{
    (void)ctx;
    (void)obj;
    if (!slept) {
        slept = true;
        sleep_us(HOOK_SLEEP_US);
    }
    return lfpool_json_integer(out, 1);
}

static void log_hook(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level == LFPOOL_LOG_ERROR) {
        atomic_fetch_add(&errors_logged, 1);
        snprintf(last_error, sizeof last_error, "%s", msg);
    }
}

/* ---- the parent's threads */

enum { PH_IDLE, PH_ROUND };

struct world {
    lfpool *pool;
    _Atomic int stop;
    _Atomic int phase;          /* PH_ROUND while the churn thread is in lfpool_housekeep */
    _Atomic int forking;        /* the test thread is in fork() */
    _Atomic uint64_t round_seq; /* bumped as each round begins */
    _Atomic uint64_t closed_at_reap_end; /* `closed` once the round's reap is done */
    _Atomic uint64_t cycles, churn_errors;
};
static struct world W;

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&W.stop)) {
        slept = false;
        free(lfpool_stats_json(W.pool));
    }
    return NULL;
}

static void *churn(void *arg)
{
    (void)arg;
    void **objs = calloc(NOBJS, sizeof *objs);
    while (!atomic_load(&W.stop)) {
        int n = 0;
        for (; n < NOBJS; n++)
            if (lfpool_get(W.pool, &objs[n], 1.0) != 0) {
                atomic_fetch_add(&W.churn_errors, 1);
                break;
            }
        for (int i = 0; i < n; i++)
            if (lfpool_ret(W.pool, objs[i]) != 0)
                atomic_fetch_add(&W.churn_errors, 1);
        atomic_fetch_add(&clock_us, 2000000); /* past max_avail_delay: recycle */
        /* the round closes all but min_size (1) of the n objects */
        atomic_store(&W.closed_at_reap_end, atomic_load(&closed) + (uint64_t)(n > 0 ? n - 1 : 0));
        atomic_fetch_add(&W.round_seq, 1);
        atomic_store(&W.phase, PH_ROUND);
        if (lfpool_housekeep(W.pool) != 0)
            atomic_fetch_add(&W.churn_errors, 1);
        atomic_store(&W.phase, PH_IDLE);
        atomic_fetch_add(&W.cycles, 1);
        /* no new round while a fork() that saw this one is in flight: it
         * could land in the next round's reap, whose in-progress count a
         * child inherits (a different hang, not this test's subject).
         * seq_cst store phase / load forking here, store forking / load
         * phase in the test thread: one of the two sees the other. */
        while (atomic_load(&W.forking))
            sleep_us(100);
    }
    free(objs);
    return NULL;
}

/* ---- the child */

enum {
    C_GET = 1 << 0,
    C_RET = 1 << 1,
    C_HK = 1 << 2,
    C_ERRLOG = 1 << 3,
};

static int child_run(void)
{
    int fail = 0;
    atomic_store(&errors_logged, 0);
    for (int i = 0; i < 2; i++) {
        void *o = NULL;
        if (lfpool_get(W.pool, &o, 1.0) != 0) {
            fail |= C_GET;
            continue;
        }
        if (lfpool_ret(W.pool, o) != 0)
            fail |= C_RET;
        if (lfpool_housekeep(W.pool) != 0) /* the round that used to shrink and hang */
            fail |= C_HK;
    }
    lfpool_free(W.pool);
    if (atomic_load(&errors_logged))
        fail |= C_ERRLOG;
    return fail;
}

/* fork a child that runs child_run() if round `seq` is still running;
 * returns the child's failure mask, -1 if it had to be killed after
 * CHILD_LIMIT seconds, < -1 if it died otherwise, NO_FORK if the round was
 * over */
#define NO_FORK (-1000)
static int fork_child(bool *forked_in_round, uint64_t seq)
{
    fflush(NULL);
    atomic_store(&W.forking, 1);
    if (atomic_load(&W.phase) != PH_ROUND || atomic_load(&W.round_seq) != seq) {
        atomic_store(&W.forking, 0);
        *forked_in_round = false;
        return NO_FORK; /* the round is over */
    }
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        _exit(child_run());
    }
    /* fork() returned in the parent with the churn thread's round still
     * running: the child was forked during the fill or the shrink */
    *forked_in_round = atomic_load(&W.phase) == PH_ROUND && atomic_load(&W.round_seq) == seq;
    atomic_store(&W.forking, 0);
    double t0 = mono();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (mono() - t0 > CHILD_LIMIT) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_us(1000);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -100 - (WIFSIGNALED(status) ? WTERMSIG(status) : 0); /* > NO_FORK */
}

static lfpool_config config(void)
{
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = create;
    cfg.closer = closer;
    cfg.stats = slow_stats;
    cfg.clock = test_clock;
    cfg.log = log_hook;
    cfg.max_size = 0; /* unbounded */
    cfg.min_size = 1;
    cfg.max_avail_delay = 1.0;
    cfg.delay = 3600; /* the housekeeper thread runs no round of its own */
    return cfg;
}

TestSuite(tablefork, .timeout = 400);

Test(tablefork, fork_while_parent_shrinks_table)
{
    slow_mode();
    lfpool_config cfg = config();
    cr_assert_eq(lfpool_new(&W.pool, &cfg), 0);
    pthread_t rd[2], ch;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&rd[i], NULL, reader, NULL), 0);
    cr_assert_eq(pthread_create(&ch, NULL, churn, NULL), 0);

    int in_round = 0, total = 0, failed = 0, fail_mask = 0;
    double t0 = mono();
    while (in_round < FORKS_WANTED && !failed && mono() - t0 < TEST_LIMIT) {
        /* wait for a round whose reap is over */
        uint64_t seq = atomic_load(&W.round_seq);
        if (atomic_load(&W.phase) != PH_ROUND ||
            atomic_load(&closed) < atomic_load(&W.closed_at_reap_end)) {
            sleep_us(200);
            continue;
        }
        sleep_us(2000); /* past the reap's last steps */
        while (!failed && in_round < FORKS_WANTED && atomic_load(&W.phase) == PH_ROUND &&
               atomic_load(&W.round_seq) == seq) {
            bool during = false;
            int f = fork_child(&during, seq);
            if (f == NO_FORK)
                break;
            total++;
            in_round += during;
            if (f != 0) {
                failed = 1;
                fail_mask = f;
            }
        }
        /* on to the next round */
        while (atomic_load(&W.round_seq) == seq && mono() - t0 < TEST_LIMIT)
            sleep_us(500);
    }
    atomic_store(&W.stop, 1);
    pthread_join(ch, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    uint64_t cycles = atomic_load(&W.cycles), churn_errors = atomic_load(&W.churn_errors);
    lfpool_free(W.pool);

    cr_log_info("%d children forked during a round (after its reap), %d in all, %llu cycles",
                in_round, total, (unsigned long long)cycles);
    cr_assert_eq(failed, 0,
                 "child %d: %s (mask %d); a child forked during the parent's table resize must "
                 "not hang",
                 total, fail_mask == -1 ? "hung, killed" : fail_mask < -1 ? "died" : "failed",
                 fail_mask);
    cr_assert_eq(churn_errors, 0, "the parent's churn thread saw errors");
    cr_assert_eq(atomic_load(&errors_logged), 0, "ERROR logged in the parent: %s", last_error);
    cr_assert_geq(in_round, FORKS_WANTED,
                  "only %d of %d children were forked during a round (%d forks, %llu cycles): "
                  "the scenario did not happen",
                  in_round, FORKS_WANTED, total, (unsigned long long)cycles);
}
