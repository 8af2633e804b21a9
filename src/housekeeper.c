/*
 * housekeeper.c - housekeeping rounds (CONTRACT §3.3), kills (CONTRACT
 * §3.4) and destruction (CONTRACT §3.5), on the pool's housekeeper thread
 * or in lfpool_housekeep() (life.c).
 *
 * Owns: the housekeeper thread, the round lock (serialises rounds; never
 * taken by get or ret) and the destruction lists.  A round:
 *   1. walks the meta table inside one RCU read-side section, without
 *      calling user code: counts objects out longer than the warn threshold,
 *      kills those out longer than the kill threshold (CAS OUT->KILLED in
 *      DEFER mode, OUT->DEAD in CLOSE mode), recycles objects idle at least
 *      max_avail_delay while the pool holds more than min_size (CAS
 *      AVAIL->DEAD_SET); every removal frees a slot and wakes a waiter;
 *   2. every health_freq rounds, borrows each available object in place
 *      (CAS AVAIL->BORROWED, one at a time; the hook runs outside any
 *      read-side section): a hanging check holds one object, never get or
 *      ret;
 *   3. reaps: takes the pending (worn out, killed) and zombie lists under
 *      the round lock, then, with no lock held, waits for one grace period
 *      for the whole batch, runs closers and releases records - never
 *      inside a read-side section, never on call_rcu;
 *   4. refills to min_size (no lock held); 5. shrinks the meta table when
 *      it is mostly empty.
 * Before the walk, every per-CPU cache is flushed to the shared stack
 * (cache.c): the walk and the health check claim available records in
 * place, which only stack records allow; records cached again during the
 * round were just used and wait for the next round.
 * The thread also refreshes the pool's coarse time every tick, reaps
 * when a ret kicks it (an object wore out), and looks (and creates) for
 * event loops' tickets when the gate asks it to (loop.c; it is started on
 * demand by the first lfpool_loop_new of a pool that has none).
 * Calls objects.c (fill, close, slots), cache.c (flush), bias.c, meta.c
 * and gate.c; never handout.c or life.c, which call it (start, stop,
 * rounds, kicks).
 */
#include "cache.h"

#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdbool.h>


static int vec_reserve(struct lfpool_ptrvec *v, size_t n)
{
    if (n <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < n)
        cap *= 2;
    void **nv = realloc(v->v, cap * sizeof *nv);
    if (!nv)
        return ENOMEM;
    v->v = nv;
    v->cap = cap;
    return 0;
}

int lfpool_hk_init(struct lfpool *p)
{
    pthread_mutex_init(&p->hk.round_lock, NULL);
    p->hk.shared = p->cfg.housekeeper == LFPOOL_HK_SHARED;
    p->hk.tick = p->delay > 0 ? fmin(fmax(p->delay / 8.0, 0.001), 1.0) : 1.0;
    if (p->cfg.hold_histogram) /* the coarse time is the hold times' resolution */
        p->hk.tick = fmin(p->hk.tick, 0.001);
    return 0;
}

void lfpool_hk_fini(struct lfpool *p)
{
    free(p->hk.close_only.v);
    free(p->hk.scratch.v);
    memset(&p->hk.close_only, 0, sizeof p->hk.close_only);
    memset(&p->hk.scratch, 0, sizeof p->hk.scratch);
}

/* In a fork child (one thread): the parent's housekeeper thread is not
 * ours, its round lock may be held, and a round may have been mid-way
 * (its lists name parent objects). */
void lfpool_hk_fork_reset(struct lfpool *p)
{
    p->hk.has_thread = false;
    /* the child's registry is empty (reg_atfork_child): not registered */
    p->hk.registered = p->hk.running = p->hk.unregister = false;
    atomic_store(&p->hk.shared_on, false);
    pthread_mutex_init(&p->hk.round_lock, NULL);
    atomic_store(&p->hk.kick, 0);
    atomic_store(&p->hk.stop, false);
    /* work a parent thread had in flight (a round, a reap, a refill) is
     * nobody's in the child: lfpool_housekeep() must not wait for it */
    atomic_store(&p->hk.in_flight, 0);
    p->hk.close_only.n = 0;
    p->hk.scratch.n = 0;
}

/* A removal: slot freed, a waiter may create; count it for ntodel. */
static void removed(struct lfpool *p)
{
    lfpool_stat_inc(&p->c.todel);
    lfpool_unreserve(p);
}

/* The warn line names the long-running objects by their tracer text (the
 * tracer may run inside a read-side section: it must not call the pool). */
#define NAMES_MAX 8
struct names {
    char buf[600];
    size_t len;
    unsigned n;
};

static void names_add(struct lfpool *p, struct names *nm, void *obj, bool killed)
{
    if (nm->n++ >= NAMES_MAX)
        return;
    char t[64];
    lfpool_trace(p, obj, t, sizeof t);
    int k = snprintf(nm->buf + nm->len, sizeof nm->buf - nm->len, "%s%s%s", nm->n > 1 ? ", " : "",
                     t, killed ? " (killed)" : "");
    if (k > 0)
        nm->len += (size_t)k;
    if (nm->len >= sizeof nm->buf)
        nm->len = sizeof nm->buf - 1;
}

/* Per round, the long-running objects named in a line of their own. */
#define WARN_LINES 4
struct warn_line {
    char trace[256];
    double age;
    const void *caller;
};

/* Remove an available record in place (AVAIL -> DEAD_SET by a CAS that
 * expects the word `*w` the walk judged it by): out of the table, its
 * object to close after the round's grace period, counted in `counter`.
 * False when the record moved meanwhile, or no memory for the list. */
static bool retire_available(struct lfpool *p, struct lfpool_rec *rec, uint32_t *w,
                             _Atomic uint64_t *counter)
{
    if (vec_reserve(&p->hk.close_only, p->hk.close_only.n + 1)) {
        lfpool_stat_inc(&p->c.hk_errors);
        return false;
    }
    if (!rec_cas(rec, w, REC_AVAIL, REC_DEAD_SET))
        return false;
    lfpool_meta_del(p, rec);
    p->hk.close_only.v[p->hk.close_only.n++] = rec->obj;
    lfpool_stat_inc(counter);
    removed(p);
    return true;
}

/* Phase 1. */
static void walk(struct lfpool *p, double now)
{
    const lfpool_config *cfg = &p->cfg;
    struct names names = {.len = 0};
    struct warn_line lines[WARN_LINES];
    unsigned nlines = 0;
    uint64_t warned_out = 0;
    uint64_t long_run = 0, long_kill = 0;
    double long_time = 0;
    bool fenced = false;
    struct cds_lfht_iter iter;
    struct lfpool_rec *rec;

    rcu_read_lock();
    LFPOOL_FOR_EACH_REC(p->ht, &iter, rec) {
        uint32_t w = rec_load(rec), s = rec_st(w);
        /* a warned hand-out's tag left by a returner on the fast path
         * (handout.c): cleared once the record is available (this thread
         * is the only one that sets tags) */
        if (s == REC_AVAIL && atomic_load_explicit(&rec->warned, memory_order_relaxed))
            atomic_store_explicit(&rec->warned, 0, memory_order_relaxed);
        if (s == REC_OUT && p->warn > 0) {
            /* relaxed: the acquire load of the word above orders it after
             * the getter's store; the kill's CAS expects that word */
            double get_t = atomic_load_explicit(&rec->last_get, memory_order_relaxed);
            double running = now - get_t;
            if (running < p->warn)
                continue;
            void *obj = rec->obj; /* valid until the read-side section ends */
            long_run++;
            long_time += running;
            /* leak attribution: the hand-out is marked for its returner
             * (handout.c), the first few get a line with age and call
             * site below; the tracer may look at an object out because
             * its closer waits for a grace period after this section */
            lfpool_obs_warned(p, rec, w);
            warned_out++;
            if (nlines < WARN_LINES) {
                lfpool_trace(p, obj, lines[nlines].trace, sizeof lines[nlines].trace);
                lines[nlines].age = running;
                lines[nlines].caller = atomic_load_explicit(&rec->caller, memory_order_relaxed);
                nlines++;
            }
            bool killed = false;
            if (cfg->max_using_delay_kill > 0 && running >= cfg->max_using_delay_kill) {
                if (!fenced) { /* the holder may be returning it with a plain store (bias.c) */
                    lfpool_bias_fence(p);
                    fenced = true;
                }
                if (cfg->kill_mode == LFPOOL_KILL_DEFER) {
                    killed = rec_cas(rec, &w, REC_OUT, REC_KILLED);
                } else if ((killed = rec_cas(rec, &w, REC_OUT, REC_DEAD_UNCOUNTED))) {
                    lfpool_meta_del_uncounted(p, rec);
                    lfpool_list_push(&p->pending, rec);
                }
                if (killed) {
                    long_kill++;
                    lfpool_stat_inc(&p->c.nkilled);
                    removed(p);
                }
            }
            names_add(p, &names, obj, killed);
        } else if (s == REC_AVAIL && cfg->max_lifetime > 0 &&
                   now >= atomic_load_explicit(&rec->expires, memory_order_relaxed)) {
            /* past its lifetime: as a recycling, whatever the pool's size
             * (relaxed: written by the creator before the word's release
             * store that the acquire load above read) */
            if (!retire_available(p, rec, &w, &p->c.nexpired))
                continue;
            if (cfg->log_level >= LFPOOL_LOG_INFO) {
                char buf[256];
                lfpool_trace(p, rec->obj, buf, sizeof buf);
                lfpool_log(p, LFPOOL_LOG_INFO, "expired: %s", buf);
            }
        } else if (s == REC_AVAIL && cfg->max_avail_delay > 0 &&
                   (size_t)atomic_load_explicit(&p->nobjs, memory_order_relaxed) > lfpool_min_size(p)) {
            /* relaxed: a count and a time to judge by; the CAS below, which
             * expects the word read above, makes the decision */
            double ret_t = atomic_load_explicit(&rec->last_ret, memory_order_relaxed);
            if (now - ret_t < cfg->max_avail_delay)
                continue;
            (void)retire_available(p, rec, &w, &p->c.nrecycled);
        }
    }
    rcu_read_unlock();
    if (long_run || long_kill)
        lfpool_log(p, LFPOOL_LOG_WARNING,
                   "long running objects: %llu (%g seconds, %llu to kill): %s%s",
                   (unsigned long long)long_run, long_run ? long_time / (double)long_run : 0.0,
                   (unsigned long long)long_kill, names.buf, names.n > NAMES_MAX ? ", ..." : "");
    for (unsigned i = 0; i < nlines; i++) {
        char site[256];
        lfpool_obs_caller(lines[i].caller, site, sizeof site);
        lfpool_log(p, LFPOOL_LOG_WARNING, "long running object %s: held %g s, got at %s",
                   lines[i].trace, lines[i].age, site);
    }
    if (warned_out == 0)
        lfpool_obs_unwarned(p); /* returns need not look for warned hand-outs */
}

/* Phase 2. */
static void health(struct lfpool *p)
{
    struct lfpool_ptrvec *v = &p->hk.scratch;
    struct cds_lfht_iter iter;
    struct lfpool_rec *rec;
    char buf[256];

    lfpool_stat_inc(&p->c.hc_rounds);
    v->n = 0;
    rcu_read_lock();
    LFPOOL_FOR_EACH_REC(p->ht, &iter, rec) {
        if (rec_st(atomic_load_explicit(&rec->state, memory_order_relaxed)) != REC_AVAIL)
            continue;
        if (vec_reserve(v, v->n + 1)) {
            lfpool_stat_inc(&p->c.hk_errors);
            break;
        }
        v->v[v->n++] = rec->obj;
    }
    rcu_read_unlock();

    for (size_t i = 0; i < v->n && !atomic_load(&p->shutdown); i++) {
        void *obj = v->v[i];
        if (vec_reserve(&p->hk.close_only, p->hk.close_only.n + 1)) {
            lfpool_stat_inc(&p->c.hk_errors);
            break;
        }
        rcu_read_lock();
        rec = lfpool_meta_lookup(p, obj);
        uint32_t w = rec ? rec_load(rec) : 0;
        bool borrowed = rec && rec_cas(rec, &w, REC_AVAIL, REC_BORROWED);
        rcu_read_unlock();
        if (!borrowed)
            continue; /* taken meanwhile: skip, as the seed does */
        /* BORROWED pins rec: only this thread moves it out of that state */
        lfpool_stat_inc(&p->c.nborrows);
        lfpool_stat_inc(&p->c.nhealth);
        int h = p->cfg.health(p->cfg.ctx, obj);
        lfpool_now_fresh(p); /* a slow check must not freeze coarse time */
        if (h < 0) {
            lfpool_stat_inc(&p->c.hc_errors);
            lfpool_trace(p, obj, buf, sizeof buf);
            lfpool_log(p, LFPOOL_LOG_ERROR, "health check error (%d): %s", h, buf);
        } else if (h == 0) {
            lfpool_stat_inc(&p->c.bad_health);
            lfpool_trace(p, obj, buf, sizeof buf);
            lfpool_log(p, LFPOOL_LOG_ERROR, "bad health: %s", buf);
        }
        lfpool_stat_inc(&p->c.nreturns);
        rcu_read_lock();
        LFPOOL_ASSERT(rec_st(rec_load(rec)) == REC_BORROWED);
        /* borrowed across an eviction (lfpool_evict, control.c): it must
         * not be available again */
        bool evicted = lfpool_rec_stale(p, rec);
        if (evicted)
            lfpool_stat_inc(&p->c.nevicted);
        if (h == 0 || evicted || atomic_load(&p->shutdown)) {
            rec_store(rec, REC_DEAD_SET, memory_order_release);
            lfpool_meta_del(p, rec);
            p->hk.close_only.v[p->hk.close_only.n++] = obj;
            rcu_read_unlock();
            removed(p);
        } else {
            rec_store(rec, REC_AVAIL, memory_order_seq_cst);
            rcu_read_unlock();
            lfpool_gate_signal(&p->gate);
        }
    }
}

/* Phase 3, reaping, in two halves: what was removed is collected under the
 * round lock, then one grace period covers the whole batch and closers run
 * with no lock held (a closer may call back into the pool). */
struct reap_batch {
    struct lfpool_rec *pend, *zomb;
    struct lfpool_ptrvec objs; /* closer only: records still in the set */
};

/* Set while this thread runs closers of a batch (a closer that calls
 * lfpool_housekeep() must not wait for its own batch). */
static __thread bool in_hk_work __attribute__((tls_model("initial-exec")));

static void reap_collect(struct lfpool *p, struct reap_batch *b)
{
    b->pend = lfpool_list_take_all(&p->pending);
    b->zomb = lfpool_list_take_all(&p->zombies);
    b->objs = p->hk.close_only;
    memset(&p->hk.close_only, 0, sizeof p->hk.close_only);
    if (b->pend || b->zomb || b->objs.n)
        atomic_fetch_add(&p->hk.in_flight, 1);
}

static void reap_finish(struct lfpool *p, struct reap_batch *b)
{
    struct lfpool_rec *rec, *next;
    if (!b->pend && !b->zomb && b->objs.n == 0) {
        free(b->objs.v);
        return;
    }
    bool outer = in_hk_work;
    in_hk_work = true;
    synchronize_rcu();
    for (rec = b->pend; rec; rec = next) {
        next = lfpool_list_next(rec);
        if (rec_st(atomic_load_explicit(&rec->state, memory_order_relaxed)) == REC_DEAD_UNCOUNTED)
            lfpool_stat_add(&p->c.dead_uses, atomic_load_explicit(&rec->uses, memory_order_relaxed));
        lfpool_close_obj(p, rec->obj);
        lfpool_rec_release(p, rec);
        lfpool_stat_dec(&p->c.todel);
    }
    for (size_t i = 0; i < b->objs.n; i++) {
        lfpool_close_obj(p, b->objs.v[i]);
        lfpool_stat_dec(&p->c.todel);
    }
    free(b->objs.v);
    for (rec = b->zomb; rec; rec = next) {
        next = lfpool_list_next(rec);
        lfpool_rec_release(p, rec);
    }
    lfpool_now_fresh(p); /* closers may have been slow: keep coarse time moving */
    in_hk_work = outer;
    atomic_fetch_sub(&p->hk.in_flight, 1);
}

/* The housekeeper thread's own work (a round, or a reap and refill) counts
 * as in flight too, so that lfpool_housekeep() also waits for a refill the
 * thread is doing. */
static void hk_work_begin(struct lfpool *p)
{
    atomic_fetch_add(&p->hk.in_flight, 1);
    in_hk_work = true;
}

static void hk_work_end(struct lfpool *p)
{
    in_hk_work = false;
    atomic_fetch_sub(&p->hk.in_flight, 1);
}

/* lfpool_housekeep() is synchronous: once it returns, what any reaper had
 * already collected has been closed too, and a refill by the housekeeper
 * thread is complete (unless called from a hook of that work). */
void lfpool_hk_wait_in_flight(struct lfpool *p)
{
    while (!in_hk_work && atomic_load(&p->hk.in_flight) > 0)
        usleep(100);
}

/* Reap now.  try_lock: give up if a round holds the lock (shutdown must not
 * wait for a hook stuck on the housekeeper). */
void lfpool_hk_reap(struct lfpool *p, bool try_lock)
{
    struct reap_batch b;
    if (try_lock) {
        if (pthread_mutex_trylock(&p->hk.round_lock) != 0)
            return;
    } else {
        pthread_mutex_lock(&p->hk.round_lock);
    }
    reap_collect(p, &b);
    pthread_mutex_unlock(&p->hk.round_lock);
    reap_finish(p, &b);
}

/* One full round.  Takes the round lock for the walk and the health checks
 * (rounds are serialised), never for closers, `fun` or opener. */
int lfpool_hk_round(struct lfpool *p)
{
    struct reap_batch b;
    pthread_mutex_lock(&p->hk.round_lock);
    double t0 = lfpool_now_fresh(p);
    uint64_t round = atomic_fetch_add(&p->c.hk_rounds, 1) + 1;
    atomic_store(&p->hk_last, t0);
    /* cached records are nobody's to claim in place: to the stack first */
    lfpool_avail_flush(p); /* no fence while the caches are closed (cache.c) */
    walk(p, t0);
    if (p->cfg.health && round % p->cfg.health_freq == 0)
        health(p);
    reap_collect(p, &b);
    pthread_mutex_unlock(&p->hk.round_lock);

    reap_finish(p, &b);
    lfpool_bias_restore(p); /* back to biased returns after a quiet round */
    lfpool_avail_round(p); /* reopen caches closed for gets that waited, if they stopped */
    lfpool_ctl_round(p); /* surplus after a shrink, the end of an eviction */
    lfpool_log_flush(p, false); /* folded log lines whose second has passed */
    if (lfpool_life_started(p))
        lfpool_fill(p);
    lfpool_meta_resize(p, true);

    double t1 = lfpool_now_fresh(p);
    double took = t1 >= t0 ? t1 - t0 : 0;
    atomic_store(&p->hk_time, atomic_load(&p->hk_time) + took);
    return 0;
}

/* ---- the thread */

static long futex_wait_abs(_Atomic uint32_t *w, uint32_t seen, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, seen, ts, NULL,
                   FUTEX_BITSET_MATCH_ANY);
}

void lfpool_hk_kick(struct lfpool *p)
{
    atomic_fetch_add(&p->hk.kick, 1);
    if (p->hk.shared)
        return; /* the shared threads look at it on the pool's next tick */
    syscall(SYS_futex, (uint32_t *)&p->hk.kick, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *hk_main(void *arg)
{
    struct lfpool *p = arg;
    double next_round = p->delay > 0 ? lfpool_mono_now() + p->delay : INFINITY;
    uint32_t seen = 0; /* kick is 0 when the thread is created */
    lfpool_log(p, LFPOOL_LOG_INFO, "housekeeper running every %g s", p->delay);

    while (!atomic_load(&p->hk.stop)) {
        double now = lfpool_mono_now();
        atomic_store_explicit(&p->coarse_now, now, memory_order_relaxed);
        uint32_t k = atomic_load(&p->hk.kick);
        if (now >= next_round) {
            hk_work_begin(p);
            if (!atomic_load(&p->shutdown))
                lfpool_hk_round(p);
            hk_work_end(p);
            next_round = lfpool_mono_now() + p->delay;
            seen = k;
            continue;
        }
        /* tickets to look for (loop.c); then on to the reap, so that a
         * steady flow of tickets does not hold back closers and refills
         * (each schedule kicks: the wait below returns at once) */
        if (lfpool_loop_has_work(p))
            lfpool_loop_serve(p);
        if (k != seen || ck_pr_load_ptr(&p->pending.head) || ck_pr_load_ptr(&p->zombies.head)) {
            seen = k;
            hk_work_begin(p);
            lfpool_hk_reap(p, false);
            if (lfpool_life_started(p))
                lfpool_fill(p);
            hk_work_end(p);
            continue;
        }
        double wake = fmin(next_round, now + p->hk.tick);
        struct timespec ts = {0, 0};
        lfpool_timespec_add(&ts, wake); /* absolute CLOCK_MONOTONIC */
        futex_wait_abs(&p->hk.kick, k, &ts);
    }
    return NULL;
}

static int shared_start(struct lfpool *p);
static bool shared_stop(struct lfpool *p, double wait);

/* Work queued for the housekeeper is taken (a thread of its own, or the
 * shared threads): a removed record may go on the pending list. */
bool lfpool_hk_active(struct lfpool *p)
{
    return p->hk.has_thread || atomic_load(&p->hk.shared_on);
}

int lfpool_hk_start(struct lfpool *p)
{
    if (p->hk.shared)
        return shared_start(p);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    atomic_store(&p->hk.kick, 0);
    atomic_store(&p->hk.stop, false);
    int r = pthread_create(&p->hk.thread, &attr, hk_main, p);
    pthread_attr_destroy(&attr);
    if (r) {
            lfpool_log(p, LFPOOL_LOG_ERROR, "cannot start housekeeper thread: %s", strerror(r));
        return EAGAIN;
    }
    p->hk.has_thread = true;
    return 0;
}

/* Ask the thread to stop and wait up to `wait` seconds (LFPOOL_FOREVER:
 * until it is gone).  True when no thread is left. */
bool lfpool_hk_stop(struct lfpool *p, double wait)
{
    if (p->hk.shared)
        return shared_stop(p, wait);
    if (!p->hk.has_thread)
        return true;
    atomic_store(&p->hk.stop, true);
    lfpool_hk_kick(p);
    if (pthread_equal(pthread_self(), p->hk.thread))
        return false; /* called from a hook on the housekeeper itself */
    int r;
    if (isinf(wait)) {
        r = pthread_join(p->hk.thread, NULL);
    } else {
        struct timespec ts;
        lfpool_deadline_in(CLOCK_REALTIME, wait, &ts);
        r = pthread_timedjoin_np(p->hk.thread, NULL, &ts);
    }
    if (r == 0) {
        p->hk.has_thread = false;
        return true;
    }
    return false;
}

/* ---- the shared housekeeper (LFPOOL_HK_SHARED)
 *
 * A process-wide registry of the shared pools: a binary min-heap keyed by
 * each pool's next work time (`due`: its next round, or its next tick, when
 * it refreshes its coarse clock and reaps what returns left), under one
 * mutex, served by at most two threads.  A thread takes the earliest pool
 * whose time has come out of the heap (`running`), runs its work with no
 * registry lock held, and puts it back with its next time; otherwise it
 * waits on a condition variable (CLOCK_MONOTONIC) until the earliest time
 * or an insertion of an earlier one.
 *  - Isolation: a pool whose work runs is not in the heap, so it is never
 *    scheduled twice, and a hook that hangs holds one thread and that
 *    pool's round lock only; the other thread serves every other pool at
 *    its own period (a second thread starts with the second pool).  Both
 *    hanging would need hooks hanging in two pools.
 *  - lfpool_free (lfpool_hk_stop) takes its pool out of the heap, or, if
 *    its work is running, marks it and waits on `done` for that work only;
 *    the thread drops a marked pool instead of putting it back.  No pool's
 *    stop waits for another pool's round.
 *  - Kicks (a worn-out object to reap) do not wake the threads: the pool's
 *    next tick (at most its tick, a second at most, away) reaps.
 *  - Threads exit when the registry is empty and are started again by the
 *    next registration (under the registry lock: the count is exact).
 *  - fork: the child has none of the parent's threads; an atfork child
 *    handler empties the registry (prepare takes its lock, so the child
 *    inherits a consistent one), and each pool's reset in the child
 *    (lfpool_hk_fork_reset) forgets its registration: its start in the
 *    child registers it again and starts the child's own threads.
 * Fields of a pool's hk used here (registered, running, unregister,
 * heap_idx, due) are read and written under the registry lock; next_round
 * and seen_kick by the one thread running the pool's work.
 */
#define HK_SHARED_THREADS 2

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the threads: an earlier time, or a new pool */
    pthread_cond_t done; /* a marked pool's running work ended */
    struct lfpool **heap;
    size_t n, cap;
    int nthreads;
} reg;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_init_sync(void)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&reg.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&reg.wake, &ca);
    pthread_cond_init(&reg.done, &ca);
    pthread_condattr_destroy(&ca);
}

static void reg_atfork_prepare(void) { pthread_mutex_lock(&reg.lock); }
static void reg_atfork_parent(void) { pthread_mutex_unlock(&reg.lock); }
static void reg_atfork_child(void)
{
    /* one thread; the heap names the parent's registrations, which each
     * pool forgets in its own reset */
    reg.n = 0;
    reg.nthreads = 0;
    reg_init_sync();
}

static void reg_init(void)
{
    reg_init_sync();
    pthread_atfork(reg_atfork_prepare, reg_atfork_parent, reg_atfork_child);
}

static void heap_set(size_t i, struct lfpool *p)
{
    reg.heap[i] = p;
    p->hk.heap_idx = i;
}

static void heap_up(size_t i)
{
    struct lfpool *p = reg.heap[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (reg.heap[up]->hk.due <= p->hk.due)
            break;
        heap_set(i, reg.heap[up]);
        i = up;
    }
    heap_set(i, p);
}

static void heap_down(size_t i)
{
    struct lfpool *p = reg.heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= reg.n)
            break;
        if (c + 1 < reg.n && reg.heap[c + 1]->hk.due < reg.heap[c]->hk.due)
            c++;
        if (p->hk.due <= reg.heap[c]->hk.due)
            break;
        heap_set(i, reg.heap[c]);
        i = c;
    }
    heap_set(i, p);
}

static int heap_insert(struct lfpool *p)
{
    if (reg.n == reg.cap) {
        size_t cap = reg.cap ? 2 * reg.cap : 64;
        struct lfpool **h = realloc(reg.heap, cap * sizeof *h);
        if (!h)
            return ENOMEM;
        reg.heap = h;
        reg.cap = cap;
    }
    heap_set(reg.n++, p);
    heap_up(reg.n - 1);
    if (reg.heap[0] == p)
        pthread_cond_signal(&reg.wake);
    return 0;
}

static void heap_remove(struct lfpool *p)
{
    size_t i = p->hk.heap_idx;
    LFPOOL_ASSERT(i < reg.n && reg.heap[i] == p);
    struct lfpool *last = reg.heap[--reg.n];
    if (last != p) {
        heap_set(i, last);
        heap_up(i);
        heap_down(last->hk.heap_idx);
    }
}

/* One turn of a pool's housekeeping, as hk_main does it: the coarse time,
 * a round when its period has passed, else a reap and refill when returns
 * left work; then the time of the next turn. */
static void shared_work(struct lfpool *p)
{
    double now = lfpool_mono_now();
    atomic_store_explicit(&p->coarse_now, now, memory_order_relaxed);
    uint32_t k = atomic_load(&p->hk.kick);
    if (now >= p->hk.next_round) {
        hk_work_begin(p);
        if (!atomic_load(&p->shutdown))
            lfpool_hk_round(p);
        hk_work_end(p);
        p->hk.next_round = p->delay > 0 ? lfpool_mono_now() + p->delay : INFINITY;
        p->hk.seen_kick = k;
    } else if (k != p->hk.seen_kick || ck_pr_load_ptr(&p->pending.head) ||
               ck_pr_load_ptr(&p->zombies.head)) {
        p->hk.seen_kick = k;
        hk_work_begin(p);
        lfpool_hk_reap(p, false);
        if (lfpool_life_started(p))
            lfpool_fill(p);
        hk_work_end(p);
    }
}

static void *shared_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reg.lock);
    for (;;) {
        if (reg.n == 0)
            break;
        struct lfpool *p = reg.heap[0];
        double now = lfpool_mono_now();
        if (p->hk.due > now) {
            struct timespec ts = {0, 0};
            lfpool_timespec_add(&ts, p->hk.due); /* absolute CLOCK_MONOTONIC */
            pthread_cond_timedwait(&reg.wake, &reg.lock, &ts);
            continue;
        }
        heap_remove(p);
        p->hk.running = true;
        p->hk.runner = pthread_self();
        pthread_mutex_unlock(&reg.lock);

        shared_work(p);
        double due = fmin(p->hk.next_round, lfpool_mono_now() + p->hk.tick);

        pthread_mutex_lock(&reg.lock);
        p->hk.running = false;
        p->hk.due = due;
        if (p->hk.unregister || heap_insert(p) != 0) {
            p->hk.registered = false;
            p->hk.unregister = false;
            pthread_cond_broadcast(&reg.done);
        }
    }
    reg.nthreads--;
    pthread_mutex_unlock(&reg.lock);
    return NULL;
}

static int shared_start(struct lfpool *p)
{
    pthread_once(&reg_once, reg_init);
    pthread_mutex_lock(&reg.lock);
    double now = lfpool_mono_now();
    p->hk.next_round = p->delay > 0 ? now + p->delay : INFINITY;
    p->hk.due = fmin(p->hk.next_round, now + p->hk.tick);
    p->hk.seen_kick = atomic_load(&p->hk.kick);
    p->hk.unregister = false;
    if (heap_insert(p) != 0) {
        pthread_mutex_unlock(&reg.lock);
        return ENOMEM;
    }
    p->hk.registered = true;
    int want = reg.n < HK_SHARED_THREADS ? (int)reg.n : HK_SHARED_THREADS;
    while (reg.nthreads < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &attr, shared_main, NULL);
        pthread_attr_destroy(&attr);
        if (r) {
            lfpool_log(p, LFPOOL_LOG_ERROR, "cannot start shared housekeeper thread: %s", strerror(r));
            if (reg.nthreads > 0)
                break; /* one thread serves them all, without the isolation */
            heap_remove(p);
            p->hk.registered = false;
            pthread_mutex_unlock(&reg.lock);
            return EAGAIN;
        }
        reg.nthreads++;
    }
    atomic_store(&p->hk.shared_on, true);
    pthread_mutex_unlock(&reg.lock);
    lfpool_log(p, LFPOOL_LOG_INFO, "on the shared housekeeper, every %g s", p->delay);
    return 0;
}

/* Leave the registry; wait up to `wait` seconds for this pool's running
 * work, never for another pool's.  True once no thread will touch it. */
static bool shared_stop(struct lfpool *p, double wait)
{
    if (!atomic_load(&p->hk.shared_on))
        return true;
    pthread_mutex_lock(&reg.lock);
    if (p->hk.registered && !p->hk.running) {
        heap_remove(p);
        p->hk.registered = false;
    } else if (p->hk.registered) {
        p->hk.unregister = true;
        if (pthread_equal(p->hk.runner, pthread_self())) {
            pthread_mutex_unlock(&reg.lock); /* a hook of this pool's own work */
            return false;
        }
        struct timespec ts;
        if (!isinf(wait))
            lfpool_deadline_in(CLOCK_MONOTONIC, wait, &ts);
        while (p->hk.registered) {
            if (isinf(wait))
                pthread_cond_wait(&reg.done, &reg.lock);
            else if (pthread_cond_timedwait(&reg.done, &reg.lock, &ts) == ETIMEDOUT)
                break;
        }
    }
    bool gone = !p->hk.registered;
    pthread_mutex_unlock(&reg.lock);
    if (gone)
        atomic_store(&p->hk.shared_on, false);
    return gone;
}
