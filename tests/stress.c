/* stress.c - many threads against one pool, invariants checked:
 * (half the workers use the handle calls, and now and then return a stale
 * copy of a handle, which must be refused without harm;)
 * no object held by two threads at once, none handed out after its closer
 * ran, max_size never exceeded, closer exactly once per created object, no
 * capacity slot leaked, counters consistent.  Kills, wear-out, health
 * checks and recycling fire during the run (a driver thread advances the
 * injected clock and runs rounds).  Now and then a worker leaves its object
 * in a mailbox and returns the one it finds there, got by another thread:
 * returns from other threads race with the getters' biased returns, kills
 * and the rounds that turn biased returns back on (src/bias.c).
 * Connection-pool runs add broken returns (lfpool_ret_broken, and its
 * handle form), validation on borrow that fails now and then, lifetimes
 * that expire (max_lifetime with jitter) and max_creating: the same
 * invariants hold, and each feature must have fired.  A ninth worker
 * takes its objects two at a time (one on a pool of two; 1 to 20 at a time
 * on an unbounded pool, more than a per-CPU cache's single-op slots) with
 * lfpool_get_bulk and returns them with lfpool_ret_bulk; now and then it
 * leaves one of its handles in a second mailbox, from which a handle
 * worker returns it: the bulk getter's biased commit races with another
 * thread's return of its hand-out.  Handle workers do the same among
 * themselves (a third mailbox): a handle names its getter, whose biased
 * commit races with the other thread's return of it (a stale copy of it,
 * afterwards).
 * With a control thread, lfpool_set_size (shrink and grow), lfpool_pause/
 * lfpool_resume and lfpool_evict run against the workers: on top of the
 * invariants above, no get that started after a shrink returned may bring
 * the objects out above the new max_size (the control thread's calls are
 * bracketed by a sequence count, so a worker knows its get saw no call in
 * progress).  Two workers get through an event loop (lfpool_get_async,
 * then poll(2) on the loop's descriptor), and now and then give a ticket
 * up, before or after it was handed an object (src/loop.c).
 * Fences (docs/DESIGN.md §4): the membarriers of flushes and closings stay
 * within one per housekeeping round (the round's flush while the caches
 * are open, or one closing of the caches by gets after a reopening), plus
 * two per control call - the default config, no fence budget; and for the
 * runs with an opt-in budget (a small one, so that the gets both flush
 * open and close), plus the gets' open flushes: max_fences per window of
 * the pool's clock (1 s) the run spanned; and the bias fences within one
 * per round - however many gets waited. */
#include <lfpool.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXOBJS (1 << 20)
#define THREADS 8

struct sobj {
    _Atomic int held;
    _Atomic int closed;
};

struct sctx {
    lfpool *p;
    size_t max_size;
    int kill_mode;
    bool kill;
    bool real_clock; /* no injected clock: the leaf fast paths run, kills by real time */
    bool conn;       /* ret_broken, validate, max_lifetime, max_creating */
    int iters;
    _Atomic double now;
    _Atomic int created, closed, stop, rounds, nchecks;
    _Atomic long gets, estale, enoent, errors, timeouts, e_get, e_double, e_closed, e_ret, e_hk, e_json, e_health, last_get_rc;
    _Atomic int in_hand, max_in_hand, max_nobjs, next_id;
    _Atomic long stale_h, e_stale_h;
    _Atomic long handoffs;
    _Atomic long ret_ok; /* returns that gave 0 through ret_result */
    _Atomic long async_gets, async_waits, async_cancels, e_async;
    _Atomic long broken, nvalidate, e_validate;
    _Atomic long e_hold_down; /* a read of the hold histogram below an earlier one */
    _Atomic long bulk_gets, bulk_timeouts;
    _Atomic(void *) mailbox; /* an object out, got by one worker, returned by another */
    _Atomic(lfpool_handle *) bulk_box; /* a bulk get's handle, returned by a handle worker */
    _Atomic(lfpool_handle *) handle_box; /* a handle worker's handle, returned by another */
    _Atomic long handle_handoffs;
    _Atomic long bulk_handoffs;
    bool control;             /* a control thread runs set_size, pause/resume, evict */
    _Atomic unsigned ctl_seq; /* odd while a control call runs */
    _Atomic size_t max_in_force;
    _Atomic long e_max, ctl_ops, max_checks;
    struct sobj *objs[MAXOBJS];
};

static void *sfun(void *ctx, uint64_t n)
{
    struct sctx *s = ctx;
    (void)n;
    int i = atomic_fetch_add(&s->created, 1);
    if (i >= MAXOBJS) {
        atomic_fetch_sub(&s->created, 1);
        errno = ENOSPC;
        return NULL;
    }
    struct sobj *o = calloc(1, sizeof *o);
    s->objs[i] = o;
    return o;
}
static int sclose(void *ctx, void *obj)
{
    struct sctx *s = ctx;
    if (atomic_fetch_add(&((struct sobj *)obj)->closed, 1) != 0)
        atomic_fetch_add(&s->errors, 1); /* closed twice */
    atomic_fetch_add(&s->closed, 1);
    return 0;
}
static int shealth(void *ctx, void *obj)
{
    struct sctx *s = ctx;
    if (atomic_load(&((struct sobj *)obj)->held))
        atomic_fetch_add(&s->errors, 1); /* health must only see available objects */
    int r = atomic_fetch_add(&s->nchecks, 1) % 6;
    return r == 0 ? 0 : r == 1 ? -1 : 1;
}
/* validate on borrow: only objects nobody holds, never closed ones; one in
 * eight fails (one in sixteen as an error) */
static int svalidate(void *ctx, void *obj)
{
    struct sctx *s = ctx;
    struct sobj *o = obj;
    if (atomic_load(&o->held) || atomic_load(&o->closed)) {
        atomic_fetch_add(&s->errors, 1);
        atomic_fetch_add(&s->e_validate, 1);
    }
    long n = atomic_fetch_add(&s->nvalidate, 1);
    return n % 16 == 0 ? -1 : n % 16 == 8 ? 0 : 1;
}
static double sclock(void *ctx)
{
    return atomic_load(&((struct sctx *)ctx)->now);
}

/* The pool's clock as the pool reads it: the injected one, or the coarse
 * monotonic clock of a pool without one. */
static double stress_clock(struct sctx *s)
{
    if (!s->real_clock)
        return sclock(s);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* cfg.max_fences of the stress pools: the default (the bound, no budget),
 * or for the tests that set stress_fences to STRESS_FENCES an opt-in
 * budget, small, so that the gets' open flushes run out and the caches
 * close within each window */
#define STRESS_FENCES 4
static size_t stress_fences = LFPOOL_FENCES_DEFAULT;
static void slog(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

/* Count a return's result: 0, or what a kill explains. */
/* a get that failed with anything but a timeout: an invariant violation */
static void get_failed(struct sctx *s, int r)
{
    atomic_fetch_add(&s->errors, 1);
    atomic_fetch_add(&s->e_get, 1);
    atomic_store(&s->last_get_rc, r);
}

static void ret_result(struct sctx *s, int r)
{
    if (r == 0)
        atomic_fetch_add(&s->ret_ok, 1);
    else if (r == ESTALE && s->kill && s->kill_mode == LFPOOL_KILL_DEFER)
        atomic_fetch_add(&s->estale, 1);
    else if (r == ENOENT && s->kill && s->kill_mode == LFPOOL_KILL_CLOSE)
        atomic_fetch_add(&s->enoent, 1);
    else if (r != 0) {
        atomic_fetch_add(&s->errors, 1);
        atomic_fetch_add(&s->e_ret, 1);
    }
}

/* A get through the worker's event loop: a ticket, then poll(2) on the
 * loop's descriptor for its event (the one ticket outstanding: its event
 * must name it).  Now and then the ticket is given up, at once or after a
 * moment (maybe handed an object by then: it must go to the next waiter). */
static int async_get(struct sctx *s, lfpool_loop *l, lfpool_handle *hd, unsigned *seed)
{
    for (;;) {
        lfpool_ticket *t;
        int r = lfpool_get_async(l, NULL, hd, &t);
        if (r != EINPROGRESS)
            return r;
        atomic_fetch_add(&s->async_waits, 1);
        struct pollfd pfd = {.fd = lfpool_loop_fd(l), .events = POLLIN};
        if (rand_r(seed) % 16 == 0) {
            if (rand_r(seed) % 2)
                poll(&pfd, 1, 1);
            if (lfpool_ticket_cancel(l, t) != 0)
                atomic_fetch_add(&s->e_async, 1);
            atomic_fetch_add(&s->async_cancels, 1);
            continue;
        }
        lfpool_loop_event ev;
        size_t got = 0;
        while (!got) {
            if (poll(&pfd, 1, 2000) != 1)
                return ETIMEDOUT;
            lfpool_loop_ready(l, &ev, 1, &got);
        }
        if (ev.ticket != t)
            atomic_fetch_add(&s->e_async, 1);
        if (ev.err)
            return ev.err;
        *hd = ev.h;
        return 0;
    }
}

/* Take an object as held: no other holder, not closed.  For the bulk
 * worker. */
static void hold(struct sctx *s, struct sobj *so)
{
    atomic_fetch_add(&s->gets, 1);
    int h = atomic_fetch_add(&s->in_hand, 1) + 1;
    int m = atomic_load(&s->max_in_hand);
    while (h > m && !atomic_compare_exchange_weak(&s->max_in_hand, &m, h))
        ;
    if (atomic_exchange(&so->held, 1) != 0) {
        atomic_fetch_add(&s->errors, 1);
        atomic_fetch_add(&s->e_double, 1);
    }
    if (atomic_load(&so->closed) != 0 && !(s->kill && s->kill_mode == LFPOOL_KILL_CLOSE))
        atomic_fetch_add(&s->errors, 1);
}

/* Release an object in hand (held -> 0) before its return. */
static void unhold(struct sctx *s, struct sobj *so)
{
    if (atomic_exchange(&so->held, 0) != 1)
        atomic_fetch_add(&s->errors, 1);
    atomic_fetch_sub(&s->in_hand, 1);
}

/* A handle the bulk worker left in bulk_box, still held: returned here,
 * from whichever thread found it. */
static void bulk_box_return(struct sctx *s, lfpool_handle *b)
{
    unhold(s, b->obj);
    ret_result(s, lfpool_ret_handle(s->p, b));
    free(b);
}

/* The bulk worker: n objects at once (all or none), returned together. */
#define BULK_MAX 20
static void *bulk_worker(struct sctx *s)
{
    unsigned seed = (unsigned)(uintptr_t)&seed;
    /* two at a time (one on a pool of two; up to BULK_MAX unbounded): a
     * failed try gives back what it took, also what a kill hit meanwhile,
     * and none of it is a use */
    size_t n = s->max_size == 0 || s->max_size >= 4 ? 2 : 1;
    lfpool_handle hs[BULK_MAX];
    for (int i = 0; (i < s->iters || atomic_load(&s->rounds) < 60) && i < 10 * s->iters; i++) {
        if (s->max_size == 0)
            n = 1 + (size_t)rand_r(&seed) % BULK_MAX;
        /* a bulk get is not served ahead of single gets: it may time out
         * under contention (counted, not an error) */
        int r = lfpool_get_bulk(s->p, hs, n, 2.0);
        if (r == ETIMEDOUT) {
            atomic_fetch_add(&s->bulk_timeouts, 1);
            continue;
        }
        if (r != 0) {
            get_failed(s, r);
            continue;
        }
        atomic_fetch_add(&s->bulk_gets, 1);
        for (size_t k = 0; k < n; k++)
            hold(s, hs[k].obj);
        if (rand_r(&seed) % 64 == 0)
            usleep(50);
        size_t back = n;
        if (n > 1 && rand_r(&seed) % 8 == 0) {
            /* the last one, still held, for a handle worker to return */
            lfpool_handle *b = malloc(sizeof *b);
            *b = hs[--back];
            b = atomic_exchange(&s->bulk_box, b);
            if (b) /* not taken yet: ours to return */
                bulk_box_return(s, b);
        }
        for (size_t k = 0; k < back; k++)
            unhold(s, hs[k].obj);
        /* the first failure (a kill) is reported, the rest still returned */
        ret_result(s, lfpool_ret_bulk(s->p, hs, back));
        if (rand_r(&seed) % 8 == 0) {
            atomic_fetch_add(&s->stale_h, 1);
            if (lfpool_ret_bulk(s->p, hs, back) != ENOENT)
                atomic_fetch_add(&s->e_stale_h, 1);
        }
    }
    return NULL;
}

static void *worker(void *arg)
{
    struct sctx *s = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    int id = atomic_fetch_add(&s->next_id, 1);
    if (id == THREADS) /* the ninth thread */
        return bulk_worker(s);
    bool async = id == 2 || id == 6;
    bool handles = id % 2 == 1 || async;
    lfpool_loop *l = NULL;
    if (async && lfpool_loop_new(s->p, &l) != 0)
        atomic_fetch_add(&s->errors, 1);
    /* run at least `iters` operations and until 60 rounds have happened */
    for (int i = 0; (i < s->iters || atomic_load(&s->rounds) < 60) && i < 10 * s->iters; i++) {
        void *o = NULL;
        lfpool_handle hd;
        unsigned seq0 = atomic_load(&s->ctl_seq);
        int r = l ? async_get(s, l, &hd, &seed)
                  : handles ? lfpool_get_handle(s->p, &hd, 2.0) : lfpool_get(s->p, &o, 2.0);
        if (l && r == 0)
            atomic_fetch_add(&s->async_gets, 1);
        if (handles && r == 0)
            o = hd.obj;
        if (r == ETIMEDOUT) {
            atomic_fetch_add(&s->timeouts, 1);
            continue;
        }
        if (r != 0) {
            get_failed(s, r);
            continue;
        }
        atomic_fetch_add(&s->gets, 1);
        struct sobj *so = o;
        int h = atomic_fetch_add(&s->in_hand, 1) + 1;
        int m = atomic_load(&s->max_in_hand);
        while (h > m && !atomic_compare_exchange_weak(&s->max_in_hand, &m, h))
            ;
        if (s->control) {
            /* no control call ran during this get: the bound in force is
             * the last call's, and objects out (h counts fewer) fit it */
            size_t bound = atomic_load(&s->max_in_force);
            if (atomic_load(&s->ctl_seq) == seq0 && !(seq0 & 1)) {
                atomic_fetch_add(&s->max_checks, 1);
                if ((size_t)h > bound) {
                    atomic_fetch_add(&s->errors, 1);
                    atomic_fetch_add(&s->e_max, 1);
                }
            }
        }
        if (atomic_exchange(&so->held, 1) != 0) {
            atomic_fetch_add(&s->errors, 1); /* handed to two holders */
            atomic_fetch_add(&s->e_double, 1);
        }
        if (atomic_load(&so->closed) != 0 && !(s->kill && s->kill_mode == LFPOOL_KILL_CLOSE))
            atomic_fetch_add(&s->errors, 1); /* handed out after close */
        if (s->kill && rand_r(&seed) % 512 == 0) {
            /* long hold across several rounds: lets kills fire */
            if (s->real_clock) {
                usleep(30000); /* the kill threshold is 20 ms */
            } else {
                double until = atomic_load(&s->now) + 4.0;
                for (int k = 0; k < 2000 && atomic_load(&s->now) < until; k++)
                    usleep(100);
            }
        } else if (rand_r(&seed) % 64 == 0) {
            usleep(50);
        }
        if (!handles && rand_r(&seed) % 64 == 0) {
            /* leave it (still held) in the mailbox; return what was there */
            o = atomic_exchange(&s->mailbox, o);
            if (!o)
                continue;
            so = o;
            atomic_fetch_add(&s->handoffs, 1);
        }
        if (handles && (s->max_size == 0 || s->max_size >= 4) && rand_r(&seed) % 64 == 0) {
            /* (not on a pool of two: with an object in each mailbox, no
             * get could succeed, and nobody would empty them)
             * leave the handle (still held) in the handle mailbox; return
             * the one there, got by another handle worker: its owner (or
             * none: an event loop's), whose biased commit races with
             * this thread's return of a stale copy */
            lfpool_handle *b = malloc(sizeof *b);
            *b = hd;
            b = atomic_exchange(&s->handle_box, b);
            if (!b)
                continue;
            hd = *b;
            free(b);
            o = hd.obj;
            so = o;
            atomic_fetch_add(&s->handle_handoffs, 1);
        }
        if (handles && rand_r(&seed) % 16 == 0) {
            /* a bulk get's hand-out, owned by the bulk worker */
            lfpool_handle *b = atomic_exchange(&s->bulk_box, NULL);
            if (b) {
                atomic_fetch_add(&s->bulk_handoffs, 1);
                bulk_box_return(s, b);
            }
        }
        if (atomic_exchange(&so->held, 0) != 1)
            atomic_fetch_add(&s->errors, 1); /* released by a non-holder */
        atomic_fetch_sub(&s->in_hand, 1);
        if (s->conn && rand_r(&seed) % 32 == 0) {
            /* found broken: destroyed, never handed out again */
            atomic_fetch_add(&s->broken, 1);
            r = handles ? lfpool_ret_broken_handle(s->p, &hd) : lfpool_ret_broken(s->p, o);
        } else {
            r = handles ? lfpool_ret_handle(s->p, &hd) : lfpool_ret(s->p, o);
        }
        ret_result(s, r);
        if (handles && rand_r(&seed) % 8 == 0) {
            /* the hand-out has ended (returned, or killed): a stale copy
             * must be refused, whoever holds the object now */
            atomic_fetch_add(&s->stale_h, 1);
            if (lfpool_ret_handle(s->p, &hd) != ENOENT)
                atomic_fetch_add(&s->e_stale_h, 1);
        }
    }
    lfpool_loop_free(l);
    return NULL;
}

static void *driver(void *arg)
{
    struct sctx *s = arg;
    int round = 0;
    uint64_t holds_seen = 0;
    while (!atomic_load(&s->stop)) {
        atomic_store(&s->now, atomic_load(&s->now) + 1.0);
        if (lfpool_housekeep(s->p) != 0)
            atomic_fetch_add(&s->errors, 1);
        atomic_fetch_add(&s->rounds, 1);
        struct lfpool_stats st;
        lfpool_stats(s->p, &st);
        int n = (int)st.nobjs;
        if (n > atomic_load(&s->max_nobjs))
            atomic_store(&s->max_nobjs, n);
        if (s->real_clock) { /* the hold histogram is on: a counter, never down */
            struct lfpool_histogram hh;
            if (lfpool_histogram(s->p, LFPOOL_HIST_HOLD, &hh) != 0 || hh.total < holds_seen)
                atomic_fetch_add(&s->e_hold_down, 1);
            holds_seen = hh.total;
        }
        if (++round % 16 == 0) {
            char *txt = lfpool_stats_json(s->p);
            json_error_t e;
            json_t *j = txt ? json_loads(txt, 0, &e) : NULL;
            if (!j)
                atomic_fetch_add(&s->errors, 1);
            json_decref(j);
            free(txt);
        }
        usleep(100);
    }
    return NULL;
}

/* The control thread: a shrink to 2, a grow back, a short pause, an
 * eviction of each kind, over and over; each call inside an odd ctl_seq. */
static void *controller(void *arg)
{
    struct sctx *s = arg;
    for (int i = 0; !atomic_load(&s->stop); i++) {
        int r = 0;
        atomic_fetch_add(&s->ctl_seq, 1);
        switch (i % 5) {
        case 0:
            r = lfpool_set_size(s->p, 1, 2);
            atomic_store(&s->max_in_force, 2);
            break;
        case 1:
            r = lfpool_set_size(s->p, 2, s->max_size);
            atomic_store(&s->max_in_force, s->max_size);
            break;
        case 2:
            r = lfpool_pause(s->p);
            usleep(200);
            r |= lfpool_resume(s->p);
            break;
        case 3:
            r = lfpool_evict(s->p, LFPOOL_EVICT_IDLE);
            break;
        case 4:
            r = lfpool_evict(s->p, LFPOOL_EVICT_ALL);
            break;
        }
        atomic_fetch_add(&s->ctl_seq, 1);
        if (r)
            atomic_fetch_add(&s->errors, 1);
        atomic_fetch_add(&s->ctl_ops, 1);
        usleep(300);
    }
    /* leave the pool as configured for the final checks */
    atomic_fetch_add(&s->ctl_seq, 1);
    if (lfpool_set_size(s->p, 2, s->max_size) || lfpool_resume(s->p))
        atomic_fetch_add(&s->errors, 1);
    atomic_fetch_add(&s->ctl_seq, 1);
    return NULL;
}

static void run_ctl(size_t max_size, uint64_t max_use, bool kill, int kill_mode, bool health,
                    double avail_delay, int iters, bool real_clock, bool conn, bool control)
{
    struct sctx *s = calloc(1, sizeof *s);
    s->control = control;
    atomic_store(&s->max_in_force, max_size);
    s->real_clock = real_clock;
    s->conn = conn;
    s->max_size = max_size;
    s->kill = kill;
    s->kill_mode = kill_mode;
    s->iters = iters;
    atomic_store(&s->now, 100.0);
    lfpool_config c;
    lfpool_config_init(&c);
    c.fun = sfun;
    c.ctx = s;
    c.closer = sclose;
    c.max_size = max_size;
    c.min_size = 2;
    c.max_use = max_use;
    c.max_using_delay_kill = kill ? 3.0 : 0;
    c.kill_mode = kill_mode;
    c.health = health ? shealth : NULL;
    c.max_avail_delay = avail_delay;
    c.delay = 1000; /* rounds are driven by the driver thread */
    c.max_fences = stress_fences; /* the default, or open flushes, then closings */
    if (real_clock) {
        c.max_using_delay_kill = kill ? 0.02 : 0;
        /* hold times recorded on the real clock: the returns' inline
         * recording (and its out-of-line rest for warned hand-outs and
         * holds of a tick or more) under every feature's traffic */
        c.hold_histogram = true;
    } else {
        c.clock = sclock;
        c.clock_ctx = s;
    }
    c.log = slog;
    if (conn) {
        c.validate = svalidate;
        c.validate_idle = 0;
        c.max_lifetime = real_clock ? 0.004 : 6.0;
        c.max_lifetime_jitter = real_clock ? 0.002 : 3.0;
        c.max_creating = 2;
    }
    cr_assert_eq(lfpool_new(&s->p, &c), 0);
    double t0 = stress_clock(s); /* the fence budget's windows: on the pool's clock */
    struct lfpool_stats st0;
    lfpool_stats(s->p, &st0);

    pthread_t th[THREADS + 1], drv, ctl; /* and the bulk worker */
    pthread_create(&drv, NULL, driver, s);
    if (control)
        pthread_create(&ctl, NULL, controller, s);
    for (int i = 0; i <= THREADS; i++)
        pthread_create(&th[i], NULL, worker, s);
    for (int i = 0; i <= THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&s->stop, 1);
    pthread_join(drv, NULL);
    if (control)
        pthread_join(ctl, NULL);
    lfpool_handle *left_h = atomic_exchange(&s->bulk_box, NULL);
    if (left_h)
        bulk_box_return(s, left_h);
    left_h = atomic_exchange(&s->handle_box, NULL);
    if (left_h) /* got by a handle worker, returned from this thread */
        bulk_box_return(s, left_h);
    void *left = atomic_exchange(&s->mailbox, NULL);
    if (left) { /* got by a worker, returned from this thread */
        atomic_store(&((struct sobj *)left)->held, 0);
        atomic_fetch_sub(&s->in_hand, 1);
        ret_result(s, lfpool_ret(s->p, left));
    }
    struct lfpool_stats st_run; /* the fences of the run (checked below) */
    lfpool_stats(s->p, &st_run);
    double t1 = stress_clock(s);

    cr_assert_eq(atomic_load(&s->errors), 0,
                 "invariant violations: %ld (get errors %ld, last rc %ld; double hand-outs %ld; "
                 "ret errors %ld; over the max_size in force %ld)",
                 atomic_load(&s->errors), atomic_load(&s->e_get), atomic_load(&s->last_get_rc),
                 atomic_load(&s->e_double), atomic_load(&s->e_ret), atomic_load(&s->e_max));
    if (control) {
        cr_assert_gt(atomic_load(&s->ctl_ops), 10, "control calls ran");
        cr_assert_gt(atomic_load(&s->max_checks), 0, "gets checked against the bound");
        cr_log_info("control calls %ld, gets checked against the bound %ld",
                    atomic_load(&s->ctl_ops), atomic_load(&s->max_checks));
    }
    cr_assert_eq(atomic_load(&s->e_stale_h), 0, "stale handles accepted: %ld of %ld",
                 atomic_load(&s->e_stale_h), atomic_load(&s->stale_h));
    cr_assert_gt(atomic_load(&s->stale_h), 0);
    cr_assert_eq(atomic_load(&s->e_async), 0, "event-loop gets: wrong ticket or failed cancel");
    cr_assert_gt(atomic_load(&s->async_gets), 0, "gets through event loops happened");
    cr_assert_gt(atomic_load(&s->handoffs), 0, "returns from other threads happened");
    if (s->max_size == 0 || s->max_size >= 4)
        cr_assert_gt(atomic_load(&s->handle_handoffs), 0, "handles returned by other threads");
    cr_assert_eq(atomic_load(&s->timeouts), 0);
    cr_assert_gt(atomic_load(&s->bulk_gets), 0, "bulk gets ran (%ld timed out)",
                 atomic_load(&s->bulk_timeouts));
    if (s->max_size == 0 || s->max_size >= 4) /* bulks of two or more */
        cr_assert_gt(atomic_load(&s->bulk_handoffs), 0, "bulk hand-outs returned by other threads");
    cr_log_info("bulk gets %ld, bulk timeouts %ld, bulk handoffs %ld", atomic_load(&s->bulk_gets),
                atomic_load(&s->bulk_timeouts), atomic_load(&s->bulk_handoffs));
    if (max_size) {
        cr_assert_leq((size_t)atomic_load(&s->max_nobjs), max_size);
        if (!kill)
            cr_assert_leq((size_t)atomic_load(&s->max_in_hand), max_size);
    }
    if (kill)
        cr_assert_gt(atomic_load(&s->estale) + atomic_load(&s->enoent), 0, "kills fired");

    if (conn) {
        /* every object still available is past its lifetime for the last
         * round, whatever the run's pace (on a loaded host the driver may
         * have run too few rounds for an object to reach its lifetime) */
        if (real_clock)
            usleep(10000);
        else
            atomic_store(&s->now, atomic_load(&s->now) + 10.0);
    }
    lfpool_housekeep(s->p);
    struct lfpool_stats st;
    lfpool_stats(s->p, &st);
    cr_assert_eq(st.nusing, 0);
    cr_assert_eq(st.ncreated, (uint64_t)atomic_load(&s->created));
    cr_assert_eq(st.nuses, (uint64_t)atomic_load(&s->gets));
    cr_assert_eq(st.ntodel, 0);
    cr_assert_eq(st.ndestroys, (uint64_t)atomic_load(&s->closed));
    cr_assert_eq(st.nobjs, st.navail);
    if (max_use)
        cr_assert_gt(st.nwornout, 0);
    if (real_clock) {
        /* one hold per hand-out ended by a return: at least every return
         * that gave 0 or ESTALE (some returns, bulk ones, are not counted
         * one by one here), never more than the hand-outs */
        struct lfpool_histogram hh;
        cr_assert_eq(lfpool_histogram(s->p, LFPOOL_HIST_HOLD, &hh), 0);
        uint64_t ended = (uint64_t)atomic_load(&s->ret_ok) + (uint64_t)atomic_load(&s->estale);
        cr_log_info("holds recorded %llu, returns counted %llu, hand-outs %llu",
                    (unsigned long long)hh.total, (unsigned long long)ended,
                    (unsigned long long)st.nuses);
        cr_assert_geq(hh.total, ended, "a return's hold lost");
        cr_assert_leq(hh.total, st.nuses, "a hold recorded twice");
        /* and exactly one per hand-out, but those a CLOSE kill ended (the
         * holder's return is refused: ENOENT, no hold; a bulk return
         * reports one ENOENT for all its refused handles, so the refused
         * are counted at least, not exactly) */
        if (!(kill && kill_mode == LFPOOL_KILL_CLOSE))
            cr_assert_eq(hh.total, st.nuses, "one hold per hand-out");
        else
            cr_assert_leq(hh.total + (uint64_t)atomic_load(&s->enoent), st.nuses,
                         "no hold for a refused return: %llu + %ld refused, %llu hand-outs",
                         (unsigned long long)hh.total, atomic_load(&s->enoent),
                         (unsigned long long)st.nuses);
        cr_assert_gt(hh.total - hh.count[0], 0, "holds of a tick or more were recorded");
        cr_assert_eq(atomic_load(&s->e_hold_down), 0, "the hold count went down between reads");
    }
    if (conn) {
        cr_assert_gt(st.nbroken, 0, "broken returns: %ld", atomic_load(&s->broken));
        cr_assert_leq(st.nbroken, (uint64_t)atomic_load(&s->broken));
        cr_assert_gt(st.nvalidate_failed, 0);
        cr_assert_gt(st.nvalidate_errors, 0);
        cr_assert_leq(st.nvalidate_errors, st.nvalidate_failed);
        cr_assert_gt(st.nexpired, 0);
        cr_assert_eq(atomic_load(&s->e_validate), 0, "validate saw a held or closed object");
    }
    if (st0.ret_biased) /* returns from other threads met biased hand-outs */
        cr_assert_gt(st.nbias_fences, 0);
    /* bounded fences, counted before the checks below (whose EAGAIN get
     * closes the caches once more): st_run was read right after the run */
    {
        uint64_t rounds = st_run.hk_rounds - st0.hk_rounds;
        uint64_t calls = (uint64_t)atomic_load(&s->ctl_ops) + (control ? 2 : 0);
        uint64_t flush_fences = (st_run.nfences - st_run.nbias_fences) - (st0.nfences - st0.nbias_fences);
        uint64_t bias_fences = st_run.nbias_fences - st0.nbias_fences;
        cr_log_info("fences: %llu of flushes and closings, %llu bias, for %llu rounds, %llu control "
                    "calls, %ld gets", (unsigned long long)flush_fences,
                    (unsigned long long)bias_fences, (unsigned long long)rounds,
                    (unsigned long long)calls, atomic_load(&s->gets));
        /* windows the run touched: each starts at least 1 s after the
         * previous one, and one may have started before t0 */
        uint64_t windows = (uint64_t)(t1 - t0) + 2;
        cr_log_info("fences: %.1f s on the pool's clock, %llu budget windows at most",
                    t1 - t0, (unsigned long long)windows);
        cr_assert_leq(flush_fences, rounds + 2 + 2 * calls + stress_fences * windows,
                      "%llu fences of flushes and closings for %llu rounds, %llu control calls "
                      "and %llu windows of %zu open flushes",
                      (unsigned long long)flush_fences, (unsigned long long)rounds,
                      (unsigned long long)calls, (unsigned long long)windows, stress_fences);
        cr_assert_leq(st_run.ncloses - st0.ncloses, rounds + 1 + 2 * calls,
                      "%llu closings for %llu rounds", (unsigned long long)(st_run.ncloses - st0.ncloses),
                      (unsigned long long)rounds);
        cr_assert_leq(bias_fences, rounds + 1, "%llu bias fences for %llu rounds",
                      (unsigned long long)bias_fences, (unsigned long long)rounds);
    }
    cr_log_info("handoffs %ld (handles %ld), bias fences %llu, rounds %d; event-loop gets %ld "
                "(%ld waited, %ld tickets cancelled)", atomic_load(&s->handoffs),
                atomic_load(&s->handle_handoffs),
                (unsigned long long)st.nbias_fences, atomic_load(&s->rounds),
                atomic_load(&s->async_gets), atomic_load(&s->async_waits),
                atomic_load(&s->async_cancels));
    if (health)
        cr_assert_gt(st.bad_health, 0, "nhealth %llu hc_rounds %llu hk_rounds %llu",
                     (unsigned long long)st.nhealth, (unsigned long long)st.hc_rounds,
                     (unsigned long long)st.hk_rounds);

    /* no capacity leaked: max_size objects can be out at once again */
    if (max_size) {
        void *o[64];
        for (size_t i = 0; i < max_size; i++)
            cr_assert_eq(lfpool_get(s->p, &o[i], 0), 0, "slot %zu leaked", i);
        void *extra;
        cr_assert_eq(lfpool_get(s->p, &extra, 0), EAGAIN);
        for (size_t i = 0; i < max_size; i++)
            cr_assert_eq(lfpool_ret(s->p, o[i]), 0);
    }
    lfpool_free(s->p);
    int created = atomic_load(&s->created);
    cr_assert_eq(atomic_load(&s->closed), created, "closer exactly once per created object");
    for (int i = 0; i < created; i++) {
        cr_assert_eq(atomic_load(&s->objs[i]->closed), 1, "object %d closed %d times", i,
                     atomic_load(&s->objs[i]->closed));
        free(s->objs[i]);
    }
    free(s);
}

static void run_clock(size_t max_size, uint64_t max_use, bool kill, int kill_mode, bool health,
                      double avail_delay, int iters, bool real_clock, bool conn)
{
    run_ctl(max_size, max_use, kill, kill_mode, health, avail_delay, iters, real_clock, conn, false);
}

static void run(size_t max_size, uint64_t max_use, bool kill, int kill_mode, bool health,
                double avail_delay, int iters)
{
    run_clock(max_size, max_use, kill, kill_mode, health, avail_delay, iters, false, false);
}

Test(stress, unbounded_wearout_health_recycle, .timeout = 120)
{
    run(0, 7, false, 0, true, 2.0, 20000);
}
/* the opt-in fence budget here and in control_thread; the default (the
 * bound) everywhere else */
Test(stress, bounded_kill_defer, .timeout = 120)
{
    stress_fences = STRESS_FENCES;
    run(4, 11, true, LFPOOL_KILL_DEFER, true, 0, 20000);
}
Test(stress, bounded_kill_close, .timeout = 120)
{
    run(4, 5, true, LFPOOL_KILL_CLOSE, true, 0, 20000);
}
Test(stress, bounded_two_slots_high_contention, .timeout = 120)
{
    run(2, 0, false, 0, false, 0, 20000);
}
/* the same without an injected clock, so that ret's leaf fast path (which
 * an injected clock turns off) races with kills fired by real time; get's
 * leaf path too in DEFER mode (a CLOSE-kill pool guards its gets on the
 * slow path) */
Test(stress, real_clock_kill_defer, .timeout = 120)
{
    run_clock(4, 11, true, LFPOOL_KILL_DEFER, true, 0, 5000, true, false);
}
Test(stress, real_clock_kill_close, .timeout = 120)
{
    run_clock(0, 0, true, LFPOOL_KILL_CLOSE, false, 0, 5000, true, false);
}
/* connection pools: broken returns, failing validations, expiry and
 * max_creating, with kills and health checks around them */
Test(stress, conn_bounded_kill_defer, .timeout = 120)
{
    run_clock(4, 0, true, LFPOOL_KILL_DEFER, true, 0, 20000, false, true);
}
Test(stress, conn_unbounded_recycle, .timeout = 120)
{
    run_clock(0, 9, false, 0, false, 2.0, 20000, false, true);
}
Test(stress, conn_real_clock_kill_close, .timeout = 120)
{
    run_clock(4, 0, true, LFPOOL_KILL_CLOSE, false, 0, 5000, true, true);
}
/* set_size, pause/resume and evict from a control thread against the
 * workers (no kills: a kill frees capacity its holder still uses, and the
 * bound check counts objects in hand); once on the injected clock, once on
 * the real one (the leaf fast paths) */
Test(stress, control_thread, .timeout = 120)
{
    stress_fences = STRESS_FENCES;
    run_ctl(6, 0, false, 0, true, 0, 30000, false, false, true);
}
Test(stress, control_thread_real_clock, .timeout = 120)
{
    run_ctl(6, 13, false, 0, false, 0, 30000, true, false, true);
}
