/*
 * control.c - changing a pool while it runs: lfpool_set_size, lfpool_pause,
 * lfpool_resume, lfpool_evict.
 *
 * Owns: the bounds in force (ctl.min_size, ctl.max_size; cfg keeps the
 * values given to lfpool_new), the control flags, the eviction epoch, and
 * the decision, for a record about to become available, whether it must be
 * closed instead (lfpool_ctl_put).  Invariants: the per-CPU caches are
 * CLOSED (cache.c) whenever a flag is set; no record of an older eviction
 * epoch enters the set after lfpool_evict(LFPOOL_EVICT_ALL) has returned;
 * nobjs exceeds max_size only while SURPLUS is set.
 *
 * Nothing here is on the hot path.  The get and ret fast paths work on this
 * CPU's cache only, so closing every cache (lock, membarrier: every rseq
 * section in flight has committed or aborted, every later one fails,
 * percpu.h) sends every get and ret to its slow path, where the flags are
 * read.  A flag in the life word or a second word read by the fast paths
 * would cost nothing either, but would be a check-then-act race: a get that
 * read READY before a pause could still pop an object after the pause
 * returned.  The cache lock is read inside the rseq section that pops.
 *
 * The slow paths' check-then-act: a get reads the flags and claims (or
 * hands out the object it created), a ret or a creator reads them and puts
 * a record into the set, each inside one RCU read-side section.  A control
 * call sets its flag, closes the caches, then waits for a grace period: a
 * section that read the old flags has ended by then (its claim or put is
 * done, and seen by what the call does next: an eviction's drain), and
 * every later section sees the flag (synchronize_rcu orders the flag's
 * store before the end of the grace period and the section's start after).
 *
 * The flags:
 *   PAUSED    gets hold (lfpool_ctl_hold): no claim, no creation; they wait
 *             on the gate as at max_size.  Resume wakes every parked get,
 *             in FIFO order (gate.c, wake-all unlinks from the head).
 *   SURPLUS   set by a shrink while nobjs > max_size.  A get sheds surplus
 *             available objects (lfpool_close_some) and holds while nobjs is
 *             still above the bound (only objects out remain: handing out
 *             none keeps "objects out <= max_size" for every get that
 *             starts after the shrink returned).  A record put back while
 *             nobjs > max_size is closed instead.  Cleared once nobjs is
 *             within the bound.
 *   EVICTING  LFPOOL_EVICT_ALL bumped the epoch; records carry the epoch of
 *             their publication (born), and one put back with an older
 *             epoch is closed instead (lfpool_ctl_put; also a record handed
 *             to a waiter, and one a health check returns).  Cleared when a
 *             walk of the table finds no older record out; stale_out counts
 *             down the records out at the eviction so that the walk runs
 *             when they should all be back (a hint: the walk decides).
 *
 * Records: a record the caller owns CACHED (a ret after its commit, a
 * creator, a waiter's gift) that must go is moved CACHED -> DEAD by a plain
 * store (its owner; nobody else touches a CACHED record outside a cache),
 * leaves the table, frees its slot, and is closed after a grace period (on
 * the housekeeper, or at once when the pool has none).  The 16-bit epoch
 * wraps after 65536 evictions: a record out across that many would pass as
 * new.
 */
#include "cache.h"

#include <errno.h>
#include <stdlib.h>

void lfpool_ctl_init(struct lfpool *p)
{
    pthread_mutex_init(&p->ctl.lock, NULL);
    atomic_init(&p->ctl.min_size, p->cfg.min_size);
    atomic_init(&p->ctl.max_size, p->cfg.max_size);
}

/* Close the caches while a flag is set, drop control's reason to close
 * them when none is (they open if the gets have no reason of their own,
 * cache.c).  Lock held. */
static void ctl_sync(struct lfpool *p)
{
    bool want = atomic_load(&p->ctl.flags) != 0;
    bool closed = lfpool_avail_closed_ctl(p);
    if (want && !closed)
        lfpool_avail_close_ctl(p); /* every cache CLOSED (cache.c) */
    else if (!want && closed)
        lfpool_avail_open_ctl(p);
}

/* In a fork child (one thread): the lock may be a parent thread's; the
 * bounds and a pause stay (the pool's settings), an eviction is over (the
 * child starts from no object). */
void lfpool_ctl_fork_reset(struct lfpool *p)
{
    pthread_mutex_init(&p->ctl.lock, NULL);
    atomic_store(&p->ctl.stale_out, 0);
    atomic_store(&p->ctl.flags, atomic_load(&p->ctl.flags) & LFPOOL_CTL_PAUSED);
    ctl_sync(p); /* the caches' reasons were reset (cache.c, before this) */
}

/* Records out (or on their way back) that were published before the
 * current epoch. */
static int64_t count_stale_out(struct lfpool *p)
{
    struct cds_lfht_iter iter;
    struct lfpool_rec *rec;
    int64_t n = 0;
    uint16_t epoch = lfpool_ctl_epoch(p);
    rcu_read_lock();
    LFPOOL_FOR_EACH_REC(p->ht, &iter, rec) {
        /* acquire: born was published by the state store that made it OUT.
         * CACHED counts too: every cache is closed and was drained, so an
         * old CACHED record is in the hands of a ret between its commit and
         * its put (or a waiter's gift), which must find the flag set. */
        uint32_t s = rec_st(rec_load(rec));
        if ((s == REC_OUT || s == REC_CACHED) && rec->born != epoch)
            n++;
    }
    rcu_read_unlock();
    return n;
}

/* Recompute SURPLUS and EVICTING, then the caches.  No lock held, no
 * read-side section. */
static void ctl_update(struct lfpool *p)
{
    pthread_mutex_lock(&p->ctl.lock);
    uint32_t f = atomic_load(&p->ctl.flags);
    size_t max = lfpool_max_size(p);
    if (max && (size_t)atomic_load(&p->nobjs) > max)
        f |= LFPOOL_CTL_SURPLUS;
    else
        f &= ~(uint32_t)LFPOOL_CTL_SURPLUS;
    if ((f & LFPOOL_CTL_EVICTING) && atomic_load(&p->ctl.stale_out) <= 0) {
        int64_t n = count_stale_out(p);
        atomic_store(&p->ctl.stale_out, n);
        if (n == 0)
            f &= ~(uint32_t)LFPOOL_CTL_EVICTING;
    }
    atomic_store(&p->ctl.flags, f);
    ctl_sync(p);
    pthread_mutex_unlock(&p->ctl.lock);
}

bool lfpool_ctl_hold(struct lfpool *p)
{
    uint32_t f = lfpool_ctl_flags(p);
    if (f & LFPOOL_CTL_PAUSED)
        return true;
    if (f & LFPOOL_CTL_SURPLUS) {
        size_t max = lfpool_max_size(p);
        return max && (size_t)atomic_load(&p->nobjs) > max;
    }
    return false;
}

void lfpool_ctl_shed(struct lfpool *p)
{
    if (!(lfpool_ctl_flags(p) & LFPOOL_CTL_SURPLUS))
        return;
    lfpool_close_some(p, false, false);
    size_t max = lfpool_max_size(p);
    if (!max || (size_t)atomic_load(&p->nobjs) <= max)
        ctl_update(p);
}

void lfpool_ctl_round(struct lfpool *p)
{
    if (!lfpool_ctl_flags(p))
        return;
    lfpool_ctl_shed(p);
    ctl_update(p);
}

/* A removed record (DEAD, out of the table, slot freed) is closed after a
 * grace period: by the housekeeper when the pool has one, else here. */
static void discard_close(struct lfpool *p, struct lfpool_rec *rec)
{
    if (lfpool_hk_active(p)) {
        lfpool_stat_inc(&p->c.todel);
        lfpool_list_push(&p->pending, rec);
        lfpool_hk_kick(p);
    } else {
        lfpool_close_removed(p, rec);
    }
}

void lfpool_ctl_put(struct lfpool *p, struct lfpool_rec *rec)
{
    rcu_read_lock();
    bool stale = lfpool_rec_stale(p, rec);
    size_t max = lfpool_max_size(p);
    bool surplus = max && (size_t)atomic_load(&p->nobjs) > max;
    if (!stale && !surplus) {
        lfpool_avail_put(p, rec);
        rcu_read_unlock();
        return;
    }
    LFPOOL_ASSERT(rec_st(rec_load(rec)) == REC_CACHED);
    rec_store(rec, REC_DEAD, memory_order_release); /* ours: CACHED -> DEAD */
    lfpool_meta_del(p, rec);
    rcu_read_unlock();
    lfpool_unreserve(p);
    bool update = false;
    if (stale) {
        lfpool_stat_inc(&p->c.nevicted);
        update = atomic_fetch_sub(&p->ctl.stale_out, 1) <= 1;
    }
    if (surplus && (size_t)atomic_load(&p->nobjs) <= max)
        update = true;
    discard_close(p, rec);
    if (update)
        ctl_update(p);
}

/* ---- the calls */

static int ctl_enter(struct lfpool *p, const char *what)
{
    if (!p) {
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "%s: NULL pool", what);
        return EINVAL;
    }
    lfpool_life_fork_check(p);
    if (atomic_load(&p->shutdown))
        return ESHUTDOWN;
    return 0;
}

int lfpool_set_size(lfpool *p, size_t min_size, size_t max_size)
{
    int r = ctl_enter(p, "lfpool_set_size");
    if (r)
        return r;
    if (max_size && min_size > max_size) {
        lfpool_log(p, LFPOOL_LOG_ERROR, "set_size: min_size %zu > max_size %zu", min_size, max_size);
        return EINVAL;
    }
    pthread_mutex_lock(&p->ctl.lock);
    size_t old = lfpool_max_size(p);
    atomic_store(&p->ctl.min_size, min_size);
    atomic_store(&p->ctl.max_size, max_size); /* then nobjs: see lfpool_reserve */
    bool surplus = max_size && (size_t)atomic_load(&p->nobjs) > max_size;
    if (surplus)
        atomic_fetch_or(&p->ctl.flags, LFPOOL_CTL_SURPLUS);
    ctl_sync(p);
    pthread_mutex_unlock(&p->ctl.lock);
    lfpool_log(p, LFPOOL_LOG_INFO, "size set to min %zu, max %zu", min_size, max_size);
    if (surplus) {
        synchronize_rcu(); /* gets that saw no flag have claimed (header) */
        lfpool_ctl_shed(p);
    }
    if (!max_size || (old && max_size > old)) {
        /* new room: wake that many parked gets (each grant passes the turn
         * on when it leaves, gate.c); all of them when unbounded now */
        if (!max_size) {
            lfpool_gate_wake(&p->gate, true);
        } else {
            int32_t parked = atomic_load(&p->gate.parked);
            size_t n = max_size - old;
            if (parked > 0 && (size_t)parked < n)
                n = (size_t)parked;
            for (size_t i = 0; i < n && atomic_load(&p->gate.parked) > 0; i++)
                lfpool_gate_wake(&p->gate, false);
        }
    }
    if (lfpool_life_started(p))
        lfpool_fill(p);
    return 0;
}

int lfpool_pause(lfpool *p)
{
    int r = ctl_enter(p, "lfpool_pause");
    if (r)
        return r;
    pthread_mutex_lock(&p->ctl.lock);
    bool was = atomic_fetch_or(&p->ctl.flags, LFPOOL_CTL_PAUSED) & LFPOOL_CTL_PAUSED;
    ctl_sync(p);
    pthread_mutex_unlock(&p->ctl.lock);
    if (!was) {
        synchronize_rcu(); /* gets that saw no flag have claimed (header) */
        lfpool_log(p, LFPOOL_LOG_INFO, "pool paused");
    }
    return 0;
}

int lfpool_resume(lfpool *p)
{
    int r = ctl_enter(p, "lfpool_resume");
    if (r)
        return r;
    pthread_mutex_lock(&p->ctl.lock);
    bool was = atomic_fetch_and(&p->ctl.flags, ~(uint32_t)LFPOOL_CTL_PAUSED) & LFPOOL_CTL_PAUSED;
    ctl_sync(p);
    pthread_mutex_unlock(&p->ctl.lock);
    if (was) {
        /* The flag is cleared before the gate lock is taken: a get that
         * parks after this wake-all looks again after parking and sees it
         * (get_slow parks, then reads the flags). */
        lfpool_gate_wake(&p->gate, true);
        lfpool_log(p, LFPOOL_LOG_INFO, "pool resumed");
    }
    return 0;
}

int lfpool_evict(lfpool *p, int how)
{
    int r = ctl_enter(p, "lfpool_evict");
    if (r)
        return r;
    if (how != LFPOOL_EVICT_IDLE && how != LFPOOL_EVICT_ALL) {
        lfpool_log(p, LFPOOL_LOG_ERROR, "evict: bad how %d", how);
        return EINVAL;
    }
    if (how == LFPOOL_EVICT_ALL) {
        pthread_mutex_lock(&p->ctl.lock);
        atomic_fetch_add(&p->ctl.epoch, 1);
        atomic_store(&p->ctl.stale_out, INT64_MAX); /* counted below */
        atomic_fetch_or(&p->ctl.flags, LFPOOL_CTL_EVICTING);
        ctl_sync(p);
        pthread_mutex_unlock(&p->ctl.lock);
        /* every put that read the old epoch (or no flag) has landed in the
         * set, where the drain below finds it; later ones see the epoch */
        synchronize_rcu();
    } else {
        lfpool_avail_flush(p); /* cached objects are available too */
    }
    size_t n = lfpool_close_some(p, true, true);
    if (how == LFPOOL_EVICT_ALL) {
        atomic_store(&p->ctl.stale_out, 0); /* the update walks the table */
        ctl_update(p);
    }
    lfpool_log(p, LFPOOL_LOG_INFO, "evicted %zu available objects%s", n,
               how == LFPOOL_EVICT_ALL ? ", and those out when returned" : "");
    if (lfpool_life_started(p))
        lfpool_fill(p);
    return 0;
}
