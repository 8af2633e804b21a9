/*
 * cache.c - the available set: per-CPU caches (magazines) over the shared
 * Treiber stack.
 *
 * Owns: where available records sit, and the claim protocol that turns a
 * popped record into a held one.  Invariant: a record is physically in the
 * set (one slot or the stack) at most once; only the thread that popped it
 * or moved it into AVAIL may push it.
 *
 * Per-CPU caches: one cache line of LFPOOL_CACHE_SLOTS atomic pointers per
 * possible CPU, indexed by the rseq cpu id that glibc keeps in the thread's
 * rseq area (__rseq_offset), or sched_getcpu() where rseq is not
 * registered.  A thread may be migrated or preempted at any point, so the
 * slots are touched only with single-word atomics:
 * - take: atomic exchange of a non-empty slot with NULL (acquire).  Whoever
 *   gets the non-NULL value owns the record; there is no ABA because the
 *   slot holds a plain pointer and no decision is made on a stale read.
 * - put: CAS NULL -> rec (seq_cst: it also orders the store before the
 *   gate's waiter check, see gate.c).
 * - reclamation: a slot never dereferences another thread's record; a
 *   record taken from a slot is owned, and record memory is type-stable.
 *
 * Claim: a popped record is usually AVAIL and the CAS AVAIL -> OUT hands it
 * to the getter.  It may instead be BORROWED by the health check (set it
 * aside and push it back after the scan: it must stay in the set) or
 * DEAD_SET (recycled/unhealthy while in the set: hand it to the zombie list,
 * the housekeeper frees it after a grace period).
 *
 * Never stranded: a get that misses its own cache and the shared stack
 * scans every other CPU's cache before it creates or waits; the
 * housekeeper moves caches that stayed unchanged for a whole round to the
 * shared stack.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/sysinfo.h>

static inline unsigned cpu_id(void)
{
#if defined(__x86_64__)
    if (lfpool_likely(__rseq_size > 0)) {
        char *tp;
        __asm__("mov %%fs:0, %0" : "=r"(tp));
        int32_t c = ((volatile struct rseq *)(tp + __rseq_offset))->cpu_id;
        if (lfpool_likely(c >= 0))
            return (unsigned)c;
    }
#elif defined(__aarch64__)
    if (lfpool_likely(__rseq_size > 0)) {
        char *tp = __builtin_thread_pointer();
        int32_t c = ((volatile struct rseq *)(tp + __rseq_offset))->cpu_id;
        if (lfpool_likely(c >= 0))
            return (unsigned)c;
    }
#endif
    int c = sched_getcpu();
    return c < 0 ? 0 : (unsigned)c;
}

int lfpool_set_init(struct lfpool *p)
{
    int n = get_nprocs_conf();
    /* a power of two: the cpu id is reduced with a mask, not a division */
    p->ncaches = 1;
    while (p->ncaches < (unsigned)(n > 0 ? n : 1))
        p->ncaches <<= 1;
    p->caches = aligned_alloc(LFPOOL_CACHELINE, p->ncaches * sizeof *p->caches);
    if (!p->caches)
        return ENOMEM;
    for (unsigned i = 0; i < p->ncaches; i++)
        for (unsigned s = 0; s < LFPOOL_CACHE_SLOTS; s++)
            atomic_init(&p->caches[i].slot[s], NULL);
    ck_stack_init(&p->stack);
    return 0;
}

void lfpool_set_fini(struct lfpool *p)
{
    free(p->caches);
    p->caches = NULL;
}

enum claim { CLAIM_TAKEN, CLAIM_ASIDE, CLAIM_DROPPED };

static enum claim claim(struct lfpool *p, struct lfpool_rec *rec, double now)
{
    uint32_t w = rec_load(rec);
    for (;;) {
        uint32_t s = rec_st(w);
        if (s == REC_AVAIL) {
            /* last_get first: once OUT, a kill judges the record by it.
             * Harmless if the CAS fails: only OUT records' last_get is read */
            atomic_store_explicit(&rec->last_get, now, memory_order_relaxed);
            /* a claim also bumps the generation, so that a housekeeper CAS
             * prepared on an earlier hand-out of this record fails */
            if (atomic_compare_exchange_weak_explicit(&rec->state, &w,
                                                      ((rec_gen(w) + 1) << 4) | REC_OUT,
                                                      memory_order_acq_rel, memory_order_acquire))
                return CLAIM_TAKEN;
            continue;
        }
        if (s == REC_BORROWED)
            return CLAIM_ASIDE;
        if (s == REC_DEAD_SET) {
            lfpool_list_push(&p->zombies, rec);
            return CLAIM_DROPPED;
        }
        /* unreachable by the state machine; keep the record out of harm */
        lfpool_log(p, LFPOOL_LOG_ERROR, "record %p in the set with state %u", (void *)rec, s);
        return CLAIM_DROPPED;
    }
}

static struct lfpool_rec *take_from_cache(struct lfpool *p, struct lfpool_cache *c,
                                          struct lfpool_rec **aside, double now)
{
    for (unsigned i = 0; i < LFPOOL_CACHE_SLOTS; i++) {
        if (!atomic_load_explicit(&c->slot[i], memory_order_relaxed))
            continue;
        struct lfpool_rec *rec = atomic_exchange_explicit(&c->slot[i], NULL, memory_order_acquire);
        if (!rec)
            continue;
        switch (claim(p, rec, now)) {
        case CLAIM_TAKEN:
            return rec;
        case CLAIM_ASIDE:
            rec->entry.next = (ck_stack_entry_t *)*aside;
            *aside = rec;
            break;
        case CLAIM_DROPPED:
            break;
        }
    }
    return NULL;
}

/* Put back records stepped over because the health check holds them.  No
 * wake-up for those (waking waiters for an object they cannot take made
 * them spin): only for one whose check ended while it was set aside, as the
 * checker's own wake-up may have found it missing.  Push, fence, then read
 * the state: either we see AVAIL and wake, or the checker's AVAIL store
 * comes later and its wake-up finds the record in the set. */
static void push_aside(struct lfpool *p, struct lfpool_rec *aside)
{
    bool wake = false;
    while (aside) {
        struct lfpool_rec *next = (struct lfpool_rec *)aside->entry.next;
        lfpool_stack_push(&p->stack, aside);
        atomic_thread_fence(memory_order_seq_cst);
        wake = wake || rec_st(atomic_load_explicit(&aside->state, memory_order_seq_cst)) != REC_BORROWED;
        aside = next;
    }
    if (wake)
        lfpool_gate_signal(&p->gate);
}

/* Take an available record and make it OUT, with last_get = now.  NULL
 * when none.  No read-side section needed: records are type-stable. */
struct lfpool_rec *lfpool_set_take(struct lfpool *p, double now)
{
    struct lfpool_rec *aside = NULL, *rec;
    unsigned me = cpu_id() & (p->ncaches - 1);

    rec = take_from_cache(p, &p->caches[me], &aside, now);
    if (lfpool_likely(rec != NULL))
        goto out;
    while ((rec = lfpool_stack_pop(&p->stack)) != NULL) {
        enum claim c = claim(p, rec, now);
        if (c == CLAIM_TAKEN)
            goto out;
        if (c == CLAIM_ASIDE) {
            rec->entry.next = (ck_stack_entry_t *)aside;
            aside = rec;
        }
    }
    for (unsigned i = 1; i < p->ncaches; i++) {
        rec = take_from_cache(p, &p->caches[(me + i) & (p->ncaches - 1)], &aside, now);
        if (rec)
            goto out;
    }
out:
    if (lfpool_unlikely(aside != NULL))
        push_aside(p, aside);
    return rec;
}

/* Put a record (already AVAIL, not in the set) into the set and wake a
 * waiter if any. */
void lfpool_set_put(struct lfpool *p, struct lfpool_rec *rec)
{
    struct lfpool_cache *c = &p->caches[cpu_id() & (p->ncaches - 1)];
    for (unsigned i = 0; i < LFPOOL_CACHE_SLOTS; i++) {
        struct lfpool_rec *expect = NULL;
        if (atomic_load_explicit(&c->slot[i], memory_order_relaxed) == NULL &&
            atomic_compare_exchange_strong_explicit(&c->slot[i], &expect, rec,
                                                    memory_order_seq_cst, memory_order_relaxed)) {
            lfpool_gate_signal(&p->gate);
            return;
        }
    }
    lfpool_stack_push(&p->stack, rec);
    atomic_thread_fence(memory_order_seq_cst);
    lfpool_gate_signal(&p->gate);
}

/* Pop any record physically in the set, whatever its state (shutdown,
 * fork reset, free). */
struct lfpool_rec *lfpool_set_pop_any(struct lfpool *p)
{
    for (unsigned i = 0; i < p->ncaches; i++)
        for (unsigned s = 0; s < LFPOOL_CACHE_SLOTS; s++) {
            struct lfpool_rec *rec = atomic_exchange_explicit(&p->caches[i].slot[s], NULL,
                                                              memory_order_acquire);
            if (rec)
                return rec;
        }
    return lfpool_stack_pop(&p->stack);
}

/* Housekeeper: move caches whose slots did not change since the previous
 * round to the shared stack, so that idle CPUs do not hold objects away
 * from the LIFO order recycling relies on.  snap: ncaches*SLOTS pointers. */
void lfpool_set_drain_idle(struct lfpool *p, struct lfpool_rec **snap)
{
    for (unsigned i = 0; i < p->ncaches; i++) {
        struct lfpool_cache *c = &p->caches[i];
        struct lfpool_rec **prev = snap + (size_t)i * LFPOOL_CACHE_SLOTS;
        bool same = true, empty = true;
        for (unsigned s = 0; s < LFPOOL_CACHE_SLOTS; s++) {
            struct lfpool_rec *cur = atomic_load_explicit(&c->slot[s], memory_order_relaxed);
            same = same && cur == prev[s];
            empty = empty && cur == NULL;
            prev[s] = cur;
        }
        if (!same || empty)
            continue;
        rcu_read_lock();
        for (unsigned s = 0; s < LFPOOL_CACHE_SLOTS; s++) {
            struct lfpool_rec *rec = atomic_exchange_explicit(&c->slot[s], NULL, memory_order_acquire);
            if (rec)
                lfpool_stack_push(&p->stack, rec);
            prev[s] = NULL;
        }
        rcu_read_unlock();
        atomic_thread_fence(memory_order_seq_cst);
        lfpool_gate_signal(&p->gate);
    }
}
