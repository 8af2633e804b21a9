/*
 * objects.c - the objects themselves: their slots, creation, hooks and
 * closing.
 *
 * Owns: the slot count nobjs (lfpool_reserve / lfpool_unreserve), object
 * creation (CONTRACT §3.1: `fun`, the table insert, the opener), the
 * min_size fill, the user hooks' calls, and closing (the closer, for one
 * object, for a record that left the table, for the whole available set).
 * Used by the hand-out (handout.c), the life cycle (life.c) and the
 * housekeeper (housekeeper.c); calls none of them.
 *
 * Also creation control (connection pools): at most max_creating calls of
 * `fun` at once, the backoff after a failure (create_backoff), and each
 * object's lifetime (max_lifetime - U(0, max_lifetime_jitter), drawn at
 * creation).
 *
 * Invariants: nobjs never exceeds max_size (a slot is reserved by CAS
 * before `fun` runs and released on every failure path); every release of
 * a slot signals the gate; an object is closed only after its record left
 * the table and an RCU grace period passed (no reader still sees it);
 * create.running never exceeds max_creating (a creation slot is taken by
 * CAS after the object slot, and every end of a `fun` call releases it and
 * signals the gate).
 *
 * Why a get that waits for a creation slot is never forgotten: it registers
 * on the gate (seq_cst) and then looks at create.running (seq_cst) before
 * it sleeps; a creation's end decrements create.running (seq_cst) and then
 * reads the waiter count (lfpool_gate_signal): one of the two sees the
 * other.  A get checks for a free creation slot before it reserves an
 * object slot (lfpool_create_check), and takes it by CAS only after: a
 * woken get that finds no creation slot does not touch nobjs, so gets
 * waiting for a slot do not wake each other in turn.  When the CAS loses a
 * race the object slot goes back with a signal (lfpool_unreserve), as any
 * release does.
 *
 * The backoff: err != 0 while it runs; until = when the next probe may
 * start; length doubles on each failed probe, capped.  The fields are read
 * and written separately (relaxed): a race between a failure and a success
 * at the same moment may cost one extra probe or one extra refusal, never
 * a slot or an object.  Only the thread that wins `probing` by CAS calls
 * `fun` once `until` has passed; everybody else is refused at once.
 */
#include "cache.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

bool lfpool_reserve(struct lfpool *p, size_t limit)
{
    int64_t n = atomic_load_explicit(&p->nobjs, memory_order_relaxed);
    do {
        if ((uint64_t)n >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->nobjs, &n, n + 1, memory_order_seq_cst,
                                                    memory_order_relaxed));
    /* lfpool_set_size may have lowered max_size meanwhile.  A shrink
     * stores max_size, then reads nobjs; this CAS, then this read of
     * max_size (all seq_cst): a store-buffering pair, one side sees the
     * other.  Either the shrink counts this slot (and sheds the surplus,
     * control.c), or this get sees the new bound and gives the slot back. */
    size_t max = lfpool_max_size(p);
    if (lfpool_unlikely(max && (uint64_t)n + 1 > max)) {
        lfpool_unreserve(p);
        return false;
    }
    return true;
}

/* Give back a reserved or removed slot; a waiter may now create. */
void lfpool_unreserve(struct lfpool *p)
{
    atomic_fetch_sub_explicit(&p->nobjs, 1, memory_order_seq_cst);
    lfpool_gate_signal(&p->gate);
}

void lfpool_call_hook(struct lfpool *p, lfpool_hook_fn fn, void *obj, const char *what)
{
    if (!fn)
        return;
    int r = fn(p->cfg.ctx, obj);
    if (r != 0)
        lfpool_log(p, LFPOOL_LOG_ERROR, "%s hook failed (%d) on %p", what, r, obj);
}

void lfpool_close_obj(struct lfpool *p, void *obj)
{
    if (p->cfg.log_level >= LFPOOL_LOG_DEBUG) {
        char buf[256];
        lfpool_trace(p, obj, buf, sizeof buf);
        lfpool_log(p, LFPOOL_LOG_DEBUG, "close %s", buf);
    }
    lfpool_call_hook(p, p->cfg.closer, obj, "closer");
    lfpool_stat_inc(&p->c.ndestroys);
}

/* ---- creation control */

/* A creation backoff is running (or its probe may start) */
static bool backoff_on(struct lfpool *p)
{
    return p->cfg.create_backoff > 0 && atomic_load_explicit(&p->create.err, memory_order_acquire);
}

int lfpool_create_check(struct lfpool *p)
{
    if (lfpool_unlikely(backoff_on(p))) {
        int err = atomic_load_explicit(&p->create.err, memory_order_relaxed);
        if (err && (lfpool_now_fresh(p) < atomic_load_explicit(&p->create.until, memory_order_relaxed) || atomic_load_explicit(&p->create.probing, memory_order_relaxed))) {
            lfpool_stat_inc(&p->c.ncreate_skipped);
            return err;
        }
    }
    if (p->cfg.max_creating &&
        atomic_load_explicit(&p->create.running, memory_order_seq_cst) >= p->cfg.max_creating)
        return LFPOOL_CREATE_BUSY;
    return 0;
}

/* Take a creation slot (max_creating) and, during a backoff, the probe.
 * 0: go ahead (*probe: this call is the probe); LFPOOL_CREATE_BUSY; or the
 * backoff's errno (refused). */
static int create_begin(struct lfpool *p, bool *probe)
{
    *probe = false;
    if (lfpool_unlikely(backoff_on(p))) {
        int err = atomic_load_explicit(&p->create.err, memory_order_relaxed);
        bool no = false;
        if (err && (lfpool_now_fresh(p) < atomic_load_explicit(&p->create.until, memory_order_relaxed) ||
                    !atomic_compare_exchange_strong(&p->create.probing, &no, true))) {
            lfpool_stat_inc(&p->c.ncreate_skipped);
            return err;
        }
        *probe = err != 0;
    }
    if (p->cfg.max_creating) {
        uint32_t n = atomic_load_explicit(&p->create.running, memory_order_relaxed);
        do {
            if (n >= p->cfg.max_creating) {
                if (*probe)
                    atomic_store(&p->create.probing, false);
                return LFPOOL_CREATE_BUSY;
            }
        } while (!atomic_compare_exchange_weak_explicit(&p->create.running, &n, n + 1,
                                                        memory_order_seq_cst, memory_order_relaxed));
    }
    return 0;
}

/* A `fun` call ended: `e` its errno (0: success; < 0: `fun` was not
 * called after all, the backoff stays as it is).  Returns the backoff now
 * running, in seconds (0: none). */
static double create_end(struct lfpool *p, bool probe, int e)
{
    double len = 0;
    if (p->cfg.create_backoff > 0) {
        if (e < 0) {
            /* no call: nothing learnt */
        } else if (e) {
            /* the first failure starts the backoff, a failed probe doubles
             * it; failures of calls that were already running when it
             * started leave it */
            int was = atomic_load(&p->create.err);
            if (probe || !was) {
                len = probe ? fmin(2 * atomic_load_explicit(&p->create.length, memory_order_relaxed), p->cfg.create_backoff_max)
                            : p->cfg.create_backoff;
                atomic_store_explicit(&p->create.length, len, memory_order_relaxed);
                atomic_store_explicit(&p->create.until, lfpool_now_fresh(p) + len,
                                      memory_order_relaxed);
            } else {
                len = atomic_load_explicit(&p->create.length, memory_order_relaxed);
            }
            atomic_store_explicit(&p->create.err, e, memory_order_release);
        } else if (atomic_load_explicit(&p->create.err, memory_order_relaxed)) {
            atomic_store_explicit(&p->create.err, 0, memory_order_release);
            atomic_store_explicit(&p->create.length, 0.0, memory_order_relaxed);
            atomic_store_explicit(&p->create.until, 0.0, memory_order_relaxed);
        }
        if (probe)
            atomic_store_explicit(&p->create.probing, false, memory_order_release);
    }
    if (p->cfg.max_creating) {
        /* a get may wait for this slot: seq_cst, then the waiter count */
        atomic_fetch_sub_explicit(&p->create.running, 1, memory_order_seq_cst);
        lfpool_gate_signal(&p->gate);
    }
    return len;
}

void lfpool_create_fork_reset(struct lfpool *p)
{
    atomic_store(&p->create.running, 0);
    atomic_store(&p->create.probing, false);
    atomic_store(&p->create.err, 0);
    atomic_store(&p->create.until, 0.0);
    atomic_store(&p->create.length, 0.0);
}

/* This object's end of life: now + max_lifetime - U(0, jitter), or
 * INFINITY.  The draw: a per-thread xorshift64*, seeded from the thread's
 * address space and the clock - lifetimes need spread, not secrecy. */
static __thread uint64_t jitter_state __attribute__((tls_model("initial-exec")));

static double lifetime_end(struct lfpool *p, double now)
{
    if (p->cfg.max_lifetime <= 0)
        return INFINITY;
    double life = p->cfg.max_lifetime;
    if (p->cfg.max_lifetime_jitter > 0) {
        uint64_t x = jitter_state;
        if (!x)
            x = ((uint64_t)(uintptr_t)&jitter_state ^ (uint64_t)(lfpool_mono_now() * 1e9) ^ p->id) | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        jitter_state = x;
        double u = (double)((x * 0x2545f4914f6cdd1dULL) >> 11) * 0x1.0p-53; /* [0, 1) */
        life -= u * p->cfg.max_lifetime_jitter;
    }
    return now + life;
}

/* Create one object (a slot of nobjs is already reserved and is released
 * here on failure).  The record enters the table as NEW while `opener`
 * runs, then becomes OUT for the getter (for_get: one use) or AVAIL and
 * goes into the set (fill).
 * Returns 0 with *out, or the creator's errno / EIO / ENOMEM / EEXIST, or
 * (the slot released, `fun` not called) LFPOOL_CREATE_BUSY or the errno of
 * a running creation backoff. */
int lfpool_create(struct lfpool *p, struct lfpool_rec **out, void **obj_out, uint32_t *word_out,
                  bool for_get)
{
    bool probe;
    int r = create_begin(p, &probe);
    if (r) {
        lfpool_unreserve(p);
        return r;
    }
    struct lfpool_rec *rec = lfpool_rec_alloc(p);
    if (!rec) {
        create_end(p, probe, -1);
        lfpool_unreserve(p);
        return ENOMEM;
    }
    lfpool_stat_inc(&p->c.ncreating);
    uint64_t n = lfpool_stat_read(&p->c.ncreated);
    double t0 = lfpool_now_fresh(p);
    errno = 0;
    void *obj = p->cfg.fun(p->cfg.ctx, n);
    int fun_errno = errno;
    double now = lfpool_now_fresh(p);
    lfpool_hist_add_shared(&p->obs.create, now - t0); /* every call of fun */
    errno = fun_errno;
    if (!obj) {
        int e = errno ? errno : EIO;
        lfpool_stat_inc(&p->c.ncreate_failed);
        double backoff = create_end(p, probe, e);
        if (backoff > 0)
            lfpool_log(p, LFPOOL_LOG_ERROR, "object creation failed: %s, backing off %g s",
                       strerror(e), backoff);
        else
            lfpool_log(p, LFPOOL_LOG_ERROR, "object creation failed: %s", strerror(e));
        lfpool_rec_release(p, rec);
        lfpool_unreserve(p);
        return e;
    }
    create_end(p, probe, 0);
    __atomic_store_n(&rec->obj, obj, __ATOMIC_RELAXED);
    atomic_store_explicit(&rec->caller, NULL, memory_order_relaxed); /* a get sets its own */
    atomic_store_explicit(&rec->warned, 0, memory_order_relaxed);
    rec_store(rec, REC_NEW, memory_order_release);
    atomic_store_explicit(&rec->uses, for_get ? 1 : 0, memory_order_relaxed);
    atomic_init(&rec->last_get, now);
    atomic_init(&rec->last_ret, now);
    atomic_store_explicit(&rec->expires, lifetime_end(p, now), memory_order_relaxed);
    rcu_read_lock();
    r = lfpool_meta_insert(p, rec);
    rcu_read_unlock();
    if (r) {
        lfpool_log(p, LFPOOL_LOG_ERROR, "fun returned %p, which the pool already holds", obj);
        lfpool_rec_release(p, rec);
        lfpool_unreserve(p);
        return EEXIST;
    }
    lfpool_stat_inc(&p->c.ncreated);
    lfpool_meta_resize(p, false);
    lfpool_call_hook(p, p->cfg.opener, obj, "opener");
    now = lfpool_now_fresh(p);
    atomic_store_explicit(&rec->last_get, now, memory_order_relaxed);
    atomic_store_explicit(&rec->last_ret, now, memory_order_relaxed);
    /* only this thread moves a NEW record; the word is the hand-out's (a
     * CLOSE kill may release and reuse the record as soon as it is OUT, so
     * it is not read back later) */
    uint32_t w = rec_word(atomic_load_explicit(&rec->state, memory_order_relaxed),
                          for_get ? REC_OUT : REC_CACHED);
    rec->born = lfpool_ctl_epoch(p); /* published by the state store */
    atomic_store_explicit(&rec->state, w, memory_order_release);
    if (!for_get) {
        /* the flags' read and the put in one read-side section, which an
         * eviction's grace period waits for (control.c) */
        rcu_read_lock();
        if (lfpool_unlikely(lfpool_ctl_flags(p))) {
            rcu_read_unlock();
            lfpool_ctl_put(p, rec);
        } else {
            lfpool_avail_put(p, rec);
            rcu_read_unlock();
        }
        /* A fill whose `fun` outlived lfpool_shutdown() (which gave up
         * waiting for the housekeeper, or raced with this fill): the
         * shutdown's drain may be over, so drain again.  Either this load
         * sees the flag, or the drain's flush (its membarrier, or the
         * stack push's locked instruction) saw the record: the same
         * argument as a ret that races with shutdown (handout.c). */
        if (lfpool_unlikely(atomic_load(&p->shutdown)))
            lfpool_close_available(p);
    }
    *out = rec;
    if (word_out)
        *word_out = w;
    if (obj_out)
        *obj_out = obj;
    return 0;
}

/* Create available objects up to min_size; a failure stops the fill (it
 * is retried on the next round: the pool stays usable meanwhile), and so
 * do max_creating calls of `fun` running and a creation backoff. */
void lfpool_fill(struct lfpool *p)
{
    size_t limit = lfpool_min_size(p), max = lfpool_max_size(p);
    if (max && max < limit)
        limit = max;
    /* relaxed: a hint; lfpool_reserve's CAS decides */
    while (!atomic_load(&p->shutdown) &&
           (size_t)atomic_load_explicit(&p->nobjs, memory_order_relaxed) < limit) {
        struct lfpool_rec *rec;
        if (lfpool_create_check(p) != 0 || !lfpool_reserve(p, limit))
            break;
        if (lfpool_create(p, &rec, NULL, NULL, false) != 0)
            break;
    }
}


/* Close an object after its record left the table (not on the hot path):
 * wait for readers that might still see it, then closer and free. */
void lfpool_close_removed(struct lfpool *p, struct lfpool_rec *rec)
{
    synchronize_rcu();
    lfpool_close_obj(p, rec->obj);
    lfpool_rec_release(p, rec);
}

/* Close available objects: every one in the set (`all`: shutdown, free,
 * eviction), or while the pool holds more than its max_size (a shrink,
 * control.c).  Each is claimed by CAS AVAIL -> DEAD, as a get would claim
 * it, so a record is closed by one thread only.  `evicted`: count them in
 * nevicted.  Returns how many were closed. */
size_t lfpool_close_some(struct lfpool *p, bool all, bool evicted)
{
    struct lfpool_rec *dead = NULL, *aside = NULL, *rec, *next;
    size_t n = 0, max = all ? 0 : lfpool_max_size(p);
    rcu_read_lock();
    while ((all || (max && (size_t)atomic_load(&p->nobjs) > max)) &&
           (rec = lfpool_avail_pop_any(p)) != NULL) {
        uint32_t s = rec_load(rec);
        if (rec_cas(rec, &s, REC_AVAIL, REC_DEAD)) {
            lfpool_meta_del(p, rec);
            lfpool_unreserve(p);
            lfpool_batch_push(&dead, rec);
            n++;
        } else if (rec_st(s) == REC_DEAD_SET) {
            lfpool_list_push(&p->zombies, rec);
        } else { /* BORROWED: the health check closes it (it sees shutdown) */
            lfpool_batch_push(&aside, rec);
        }
    }
    for (rec = aside; rec; rec = next) {
        next = lfpool_list_next(rec);
        lfpool_stack_push(&p->stack, rec);
    }
    rcu_read_unlock();
    if (evicted)
        lfpool_stat_add(&p->c.nevicted, n);
    if (!dead)
        return n;
    synchronize_rcu();
    for (rec = dead; rec; rec = next) {
        next = lfpool_list_next(rec);
        lfpool_close_obj(p, rec->obj);
        lfpool_rec_release(p, rec);
    }
    return n;
}

/* Close every object sitting in the available set (shutdown, free). */
void lfpool_close_available(struct lfpool *p)
{
    lfpool_close_some(p, true, false);
}
