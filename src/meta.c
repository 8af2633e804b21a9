/*
 * meta.c - the meta table: one usage record per object.
 *
 * Owns: record allocation and the liburcu lock-free hash table (cds_lfht,
 * urcu-bp flavour) keyed by the object pointer.  A record is inserted once,
 * at creation (insertion is unique: a second object with the same address
 * is refused with EEXIST), and deleted once, by the thread that won the
 * state transition removing the object from the pool.  Invariant: but for
 * transitions in flight, the table holds the records neither DEAD nor
 * DEAD_SET; a fork child drops the inherited table whole and starts a fresh
 * one (lfpool_meta_fork_reset).
 *
 * Correctness: lookups, walks and deletions run inside urcu-bp read-side
 * critical sections (callers hold rcu_read_lock); cds_lfht gives lock-free
 * lookups concurrent with add/del and resizes.  A deleted node stays
 * readable until a grace period has passed; the pool releases a record for
 * reuse (its memory is type-stable, see lfpool_rec_alloc) only after
 * synchronize_rcu() (housekeeper, deferred-kill ret, shutdown), never
 * through liburcu's call_rcu thread.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

static unsigned long hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (unsigned long)x;
}

static int match_obj(struct cds_lfht_node *node, const void *key)
{
    const struct lfpool_rec *rec = caa_container_of(node, struct lfpool_rec, node);
    return rec->obj == key;
}

static unsigned long pow2_at_least(size_t n)
{
    unsigned long v = 64;
    while (v < n && v < (1UL << 30))
        v <<= 1;
    return v;
}

/* A new, empty table sized for what will exist soon: the min_size objects
 * the fill creates (at once, or at the first get of a lazy pool), at least
 * 64 buckets - never for max_size, which may be SIZE_MAX.  cds_lfht_new()
 * builds every bucket of init_size at once (time and memory O(init_size));
 * with max_nr_buckets 0 ("infinite") liburcu picks its order-based memory
 * backend, which allocates one bucket array per power of two as the table
 * grows into it and frees it on a shrink, so a table costs what its current
 * size costs, and cds_lfht_destroy() walks only that.
 *
 * No CDS_LFHT_AUTO_RESIZE: automatic resizes run on liburcu's workqueue
 * thread, which does not survive fork() and then hangs cds_lfht_destroy()
 * in the child.  The pool resizes the table itself, synchronously, outside
 * read-side sections: on creation when the load passes 2 per bucket, and on
 * housekeeping rounds when it falls under 1/8 (lfpool_meta_resize). */
static struct cds_lfht *new_table(struct lfpool *p)
{
    unsigned long init = pow2_at_least(p->cfg.min_size);
    struct cds_lfht *ht = cds_lfht_new(init, 64, 0, 0, NULL);
    if (ht)
        atomic_store(&p->ht_buckets, init);
    return ht;
}

int lfpool_meta_init(struct lfpool *p)
{
    p->ht = new_table(p);
    return p->ht ? 0 : ENOMEM;
}

/* Grow (or shrink) the table towards one bucket per object.  Not inside a
 * read-side section.  One resizer at a time; others skip. */
void lfpool_meta_resize(struct lfpool *p, bool may_shrink)
{
    int64_t n = atomic_load_explicit(&p->nobjs, memory_order_relaxed);
    unsigned long b = atomic_load_explicit(&p->ht_buckets, memory_order_relaxed);
    unsigned long want = pow2_at_least(n > 0 ? (size_t)n : 1);
    if (!((uint64_t)n > 2 * (uint64_t)b || (may_shrink && want * 8 <= b)))
        return;
    bool idle = false;
    if (!atomic_compare_exchange_strong(&p->ht_resizing, &idle, true))
        return;
    cds_lfht_resize(p->ht, want);
    atomic_store(&p->ht_buckets, want);
    atomic_store(&p->ht_resizing, false);
}

/* In a fork child, from fork_reset (life.c) once the set, the pending and
 * the zombie lists are emptied; no other thread of the child uses the pool
 * meanwhile (lfpool_life_fork_check).  Drop every record the inherited table holds
 * and start from a fresh, empty table.
 *
 * The inherited table is never touched again.  liburcu holds a table's
 * resize mutex across the grace periods of a resize (a shrink waits for
 * two per power of two it removes); a parent thread resizing at fork()
 * leaves that mutex locked in the child by a thread that does not exist
 * there, and cds_lfht_resize() on the table then blocks forever
 * (cds_lfht_destroy() would fail on it too).  So the records are found
 * without the table: every record is on all_recs, and those the table
 * holds are the ones not DEAD (DEAD: released to rec_free, released just
 * now from pending or zombies, or in transit in a parent thread - left
 * alone, lfpool_free frees them).  Besides the table's (NEW, AVAIL, OUT,
 * BORROWED, KILLED, CACHED) that also releases a DEAD_SET record a parent
 * thread had popped from the set and not yet pushed to zombies.  No grace
 * period is needed: nothing in the child can have read these records since
 * fork() (only this thread runs pool code, outside any read-side section).
 *
 * The inherited table is leaked in the child: its header and bucket
 * arrays, bounded by the parent's table size, once per fork per pool used
 * in the child (freeing it would mean calling into it).  lfpool_free then
 * destroys the fresh table only.  If the fresh table cannot be allocated,
 * the inherited one is emptied (cds_lfht_del and the walk take no lock)
 * and kept, with an ERROR: a later resize may then block as above. */
void lfpool_meta_fork_reset(struct lfpool *p)
{
    struct lfpool_rec *rec;
    atomic_store(&p->ht_resizing, false); /* a parent thread's, void here */
    /* a deletion a parent thread had begun is never done here */
    atomic_store(&p->c.dels_done, atomic_load(&p->c.dels_begun));
    struct cds_lfht *fresh = new_table(p);
    if (fresh) {
        p->ht = fresh;
    } else {
        struct cds_lfht_iter iter;
        lfpool_log(p, LFPOOL_LOG_ERROR, "fork child: no memory for a new meta table, "
                                        "keeping the inherited one");
        rcu_read_lock();
        LFPOOL_FOR_EACH_REC(p->ht, &iter, rec)
            (void)cds_lfht_del(p->ht, &rec->node);
        rcu_read_unlock();
    }
    for (rec = atomic_load_explicit(&p->all_recs, memory_order_relaxed); rec; rec = rec->all_next)
        if (rec_st(atomic_load_explicit(&rec->state, memory_order_relaxed)) != REC_DEAD)
            lfpool_rec_release(p, rec);
}

/* Remove every remaining node and destroy the table (no concurrent user). */
void lfpool_meta_fini(struct lfpool *p)
{
    if (!p->ht)
        return;
    struct cds_lfht_iter iter;
    struct lfpool_rec *rec;
    rcu_read_lock();
    LFPOOL_FOR_EACH_REC(p->ht, &iter, rec)
        (void)cds_lfht_del(p->ht, &rec->node);
    rcu_read_unlock();
    if (cds_lfht_destroy(p->ht, NULL) != 0)
        lfpool_log(p, LFPOOL_LOG_ERROR, "meta table destroy failed (leaked)");
    p->ht = NULL;
}

/* Records are type-stable: once allocated, a record's memory stays a
 * record until lfpool_free().  A released record (after the grace period
 * that follows its removal from the table) goes to the pool's free list and
 * is reused for a later object.  This is what lets the hot path read a
 * record it is not sure about (a Treiber-stack head, a per-thread hint)
 * without an RCU read-side section: the read may be stale, never freed. */
struct lfpool_rec *lfpool_rec_alloc(struct lfpool *p)
{
    struct lfpool_rec *rec = lfpool_stack_pop(&p->rec_free);
    if (rec) {
        /* a released record's hold_zero moved to hold_zero_gone when it
         * left the table (lfpool_obs_gone) */
        if (p->cfg.hold_histogram)
            atomic_store_explicit(&rec->hold_zero[0], 0, memory_order_relaxed);
    } else {
        /* with the hold histogram, one more word: rec->hold_zero[0] */
        rec = calloc(1, sizeof *rec + (p->cfg.hold_histogram ? sizeof rec->hold_zero[0] : 0));
        if (!rec)
            return NULL;
        /* push-only list (nothing is ever unlinked before lfpool_free): a
         * plain CAS push has no ABA; lfpool_free walks it with no other user */
        rec->all_next = atomic_load_explicit(&p->all_recs, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&p->all_recs, &rec->all_next, rec,
                                                      memory_order_release, memory_order_relaxed))
            ;
    }
    cds_lfht_node_init(&rec->node);
    return rec;
}

/* Caller: rec is out of the set, out of the table, and a grace period has
 * passed since it left the table (or it never entered it). */
void lfpool_rec_release(struct lfpool *p, struct lfpool_rec *rec)
{
    uint32_t w = atomic_load_explicit(&rec->state, memory_order_relaxed);
    atomic_store_explicit(&rec->state, ((rec_gen(w) + 1) << 4) | REC_DEAD, memory_order_release);
    __atomic_store_n(&rec->obj, NULL, __ATOMIC_RELAXED);
    lfpool_stack_push(&p->rec_free, rec);
}

/* lfpool_free(): give the memory of every record back, wherever it is -
 * released, or lost in transit in a thread that did not survive fork(). */
void lfpool_rec_free_all(struct lfpool *p)
{
    struct lfpool_rec *rec = atomic_load(&p->all_recs), *next;
    for (; rec; rec = next) {
        next = rec->all_next;
        free(rec);
    }
    atomic_store(&p->all_recs, NULL);
    ck_stack_init(&p->rec_free);
}

/* Insert rec (rec->obj set).  Caller holds rcu_read_lock. */
int lfpool_meta_insert(struct lfpool *p, struct lfpool_rec *rec)
{
    struct cds_lfht_node *got =
        cds_lfht_add_unique(p->ht, hash_ptr(rec->obj), match_obj, rec->obj, &rec->node);
    return got == &rec->node ? 0 : EEXIST;
}

/* Caller holds rcu_read_lock; the record stays readable until unlock. */
struct lfpool_rec *lfpool_meta_lookup(struct lfpool *p, const void *obj)
{
    struct cds_lfht_iter iter;
    cds_lfht_lookup(p->ht, hash_ptr(obj), match_obj, obj, &iter);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
    return node ? caa_container_of(node, struct lfpool_rec, node) : NULL;
}

/* Readers that sum a per-record figure and its total for records gone
 * (stats.c: uses and dead_uses; histogram.c: the hold histogram's bucket
 * 0) read that total, then walk the table.  A deletion removes the record
 * first, then adds its figure to the total, so such a read counts no
 * record twice, and misses one only when a deletion overlaps it: between
 * the total's read and the walk's visit, the record was removed and its
 * figure not yet added when the total was read.  Deletions are bracketed
 * by dels_begun / dels_done (seq_cst read-modify-writes, a sequence count
 * whose writers are the deletions, rare: kills, idle closes, control,
 * shutdown), and a reader checks that none was in flight when it began
 * (begun == done: every deletion done is complete in what it reads next)
 * and none began before it ended (dels_begun unchanged after its walk:
 * a deletion the walk observed had stepped dels_begun before its
 * cds_lfht_del).  The uses of a CLOSE kill join dead_uses only at its reap
 * (lfpool_meta_del_uncounted): a read between misses them. */
static void del_begin(struct lfpool *p)
{
    atomic_fetch_add_explicit(&p->c.dels_begun, 1, memory_order_seq_cst);
}
static void del_end(struct lfpool *p)
{
    atomic_fetch_add_explicit(&p->c.dels_done, 1, memory_order_seq_cst);
}

void lfpool_meta_read_begin(struct lfpool *p, uint64_t *mark)
{
    uint64_t done, begun;
    /* a deletion in flight is a few hundred instructions: wait for it (a
     * while) rather than read a sum that may miss its record */
    for (int spins = 0; spins < 4096; spins++) {
        done = atomic_load_explicit(&p->c.dels_done, memory_order_seq_cst);
        begun = atomic_load_explicit(&p->c.dels_begun, memory_order_seq_cst);
        if (begun == done)
            break;
        caa_cpu_relax();
    }
    *mark = begun == done ? begun : UINT64_MAX; /* UINT64_MAX: one in flight */
}

bool lfpool_meta_read_end(struct lfpool *p, uint64_t mark)
{
    atomic_thread_fence(memory_order_seq_cst); /* the walk's loads before the check */
    return mark != UINT64_MAX && atomic_load_explicit(&p->c.dels_begun, memory_order_seq_cst) == mark;
}

/* Delete rec from the table without counting its uses: for a kill in
 * CLOSE mode, whose holder's get may still be storing the use count; the
 * reaper adds it to dead_uses after the grace period that the guarded get
 * (handout.c) waits for.  Caller holds rcu_read_lock. */
bool lfpool_meta_del_uncounted(struct lfpool *p, struct lfpool_rec *rec)
{
    /* the caller made it REC_DEAD_UNCOUNTED: the reaper counts its uses
     * after the grace period (the holder may still count one until then) */
    del_begin(p);
    bool removed = cds_lfht_del(p->ht, &rec->node) == 0;
    if (removed)
        lfpool_obs_gone(p, rec);
    del_end(p);
    return removed;
}

/* Delete rec from the table; true for the one caller that removed it.
 * Its use count moves to dead_uses so that nuses stays exact.
 * Caller holds rcu_read_lock. */
bool lfpool_meta_del(struct lfpool *p, struct lfpool_rec *rec)
{
    del_begin(p);
    bool removed = cds_lfht_del(p->ht, &rec->node) == 0;
    if (removed) {
        lfpool_stat_add(&p->c.dead_uses, atomic_load_explicit(&rec->uses, memory_order_relaxed));
        lfpool_obs_gone(p, rec);
    }
    del_end(p);
    return removed;
}
