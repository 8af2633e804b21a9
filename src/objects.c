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
 * Invariants: nobjs never exceeds max_size (a slot is reserved by CAS
 * before `fun` runs and released on every failure path); every release of
 * a slot signals the gate; an object is closed only after its record left
 * the table and an RCU grace period passed (no reader still sees it).
 */
#include "cache.h"

#include <errno.h>
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

/* Create one object (a slot of nobjs is already reserved and is released
 * here on failure).  The record enters the table as NEW while `opener`
 * runs, then becomes OUT for the getter (for_get: one use) or AVAIL and
 * goes into the set (fill).
 * Returns 0 with *out, or the creator's errno / EIO / ENOMEM / EEXIST. */
int lfpool_create(struct lfpool *p, struct lfpool_rec **out, void **obj_out, uint32_t *word_out,
                  bool for_get)
{
    struct lfpool_rec *rec = lfpool_rec_alloc(p);
    if (!rec) {
        lfpool_unreserve(p);
        return ENOMEM;
    }
    lfpool_stat_inc(&p->c.ncreating);
    uint64_t n = lfpool_stat_read(&p->c.ncreated);
    errno = 0;
    void *obj = p->cfg.fun(p->cfg.ctx, n);
    if (!obj) {
        int e = errno ? errno : EIO;
        lfpool_log(p, LFPOOL_LOG_ERROR, "object creation failed: %s", strerror(e));
        lfpool_rec_release(p, rec);
        lfpool_unreserve(p);
        return e;
    }
    double now = lfpool_now_fresh(p);
    __atomic_store_n(&rec->obj, obj, __ATOMIC_RELAXED);
    rec_store(rec, REC_NEW, memory_order_release);
    atomic_store_explicit(&rec->uses, for_get ? 1 : 0, memory_order_relaxed);
    atomic_init(&rec->last_get, now);
    atomic_init(&rec->last_ret, now);
    rcu_read_lock();
    int r = lfpool_meta_insert(p, rec);
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
 * is retried on the next round: the pool stays usable meanwhile). */
void lfpool_fill(struct lfpool *p)
{
    size_t limit = lfpool_min_size(p), max = lfpool_max_size(p);
    if (max && max < limit)
        limit = max;
    /* relaxed: a hint; lfpool_reserve's CAS decides */
    while (!atomic_load(&p->shutdown) &&
           (size_t)atomic_load_explicit(&p->nobjs, memory_order_relaxed) < limit) {
        struct lfpool_rec *rec;
        if (!lfpool_reserve(p, limit))
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
