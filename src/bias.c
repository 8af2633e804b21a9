/*
 * bias.c - the biased return: who may end a hand-out with a plain store.
 *
 * Owns: p->bias_mode, p->bias_seen, and the rule for every CAS on an OUT
 * record.  Invariant: a thread's biased commit of OUT -> CACHED (a plain
 * store in an rseq section, percpu.h) and another thread's CAS on the same
 * OUT word never overlap - one of them sees the other's result.
 *
 * Why: ret must arbitrate with everybody else who may move an OUT record
 * (a kill, a second return of the same object from another thread,
 * CONTRACT §3.1 and §3.4); a CAS does that, and on some hosts it costs as much as
 * the rest of a get/ret pair (PERFORMANCE, P1).  But nearly every return
 * is made by the thread that got the object, which is the one that holds
 * its return hint (handout.c), and the others are rare.  So the getter, the
 * "owner" of the hand-out (the thread whose hint holds the exact word
 * gen | OUT: one thread per hand-out), commits with a plain store, and
 * every other party pays for the arbitration: it fences first.
 *
 * The mode word: (epoch << 2) | state, state one of
 *   BIASED    owners commit with lfpool_pcpu_store_if (the section fails
 *             unless state == BIASED);
 *   SWITCHING a party is fencing; owners CAS;
 *   FENCED    every owner section that read BIASED is over; owners CAS;
 *   PENDING   the housekeeper is going back to BIASED; owners CAS.
 * Epochs count the entries into SWITCHING, so that a SWITCHING seen at
 * two moments with the same epoch means no BIASED in between (no ABA).
 *
 * A party that may CAS an OUT record it does not own calls
 * lfpool_bias_fence() inside an RCU read-side section and makes its CAS
 * before that section ends.  The fence returns at once on FENCED; on
 * SWITCHING it waits until the word is no longer that SWITCHING (the party
 * that entered it is fencing, and sets FENCED after); else it moves the
 * state to SWITCHING (a new epoch), issues
 * membarrier(PRIVATE_EXPEDITED_RSEQ), and sets FENCED if the word is still
 * that SWITCHING.  So one membarrier per epoch, however many parties meet
 * it (they used to fence each, a burst of system calls when several
 * threads returned others' objects at once), and epochs begin at most
 * once per housekeeping round (the restore below).  The housekeeper, when a whole round went by
 * without a fence (bias_seen), moves FENCED -> PENDING, waits for a grace
 * period, and moves PENDING -> BIASED if nobody moved it since.
 *
 * Why the CAS of a party C, after its fence, never overlaps an owner O's
 * commit: O's section read BIASED at some moment r and then the record's
 * word.  C, inside one read-side section, entered SWITCHING of epoch e
 * (and then fenced itself), or saw SWITCHING_e then a later word (only
 * FENCED_e follows SWITCHING_e, set by the party that entered it after
 * its membarrier), or saw FENCED of epoch e, set the same way.  Either way
 * a membarrier began after the word entered SWITCHING_e (at s) and ended
 * before C's CAS.
 * - r before s: O's section was in flight or over at s; the membarrier
 *   aborted it or waited for its commit, which C's CAS then sees.
 * - r after s: the word went back to BIASED after s, which only the
 *   housekeeper does, from PENDING_e (epoch e's order is SWITCHING,
 *   FENCED, PENDING: C's read came before PENDING_e) and after a grace
 *   period that began after PENDING_e, so after C's section began: C's
 *   CAS came before BIASED was stored, and O's section, which reads the
 *   record's word after the mode, sees it and does not commit.
 * A party that owns the hand-out needs no fence: no other thread's section
 * can hold its word.  Owners: the thread whose return hint holds the word
 * (lfpool_get), and the thread a handle names (lfpool_get_handle and
 * lfpool_get_bulk stamp the getting thread's owner tag in the handle:
 * handout.c, "owned handles"); a handle returned by another thread, or a
 * copy of it, is a party like any other and fences.  Hand-outs with no
 * owner - an event loop's handles, and those a thread got before it took
 * its tag (they say so: OWNER_NONE) - are committed by CAS alone: no
 * section can hold their word, and their returns never fence.
 *
 * Cost: an owner's return is one rseq section instead of a locked
 * instruction; a non-owner's return or a kill is a load of the mode word
 * while FENCED, one membarrier (a few microseconds) when it starts a
 * stretch.  A pool returned to from other threads all the time stays
 * FENCED (every round sees a fence) and costs what it cost before.
 *
 * Reclamation: nothing here frees.  The owner reads a record through its
 * hint, which may be stale; records are type-stable while the pool lives
 * (meta.c), and the word compare in the section refuses a stale one.
 *
 * Without rseq and the rseq membarrier (or under ThreadSanitizer, which
 * cannot see the commit store), p->bias is false and everybody CASes.
 */
#include "cache.h"

#include <sched.h>

enum { BIAS_BIASED = 0, BIAS_SWITCHING = 1, BIAS_FENCED = 2, BIAS_PENDING = 3 };

static inline uint32_t bias_state(uint32_t w) { return w & LFPOOL_BIAS_MASK; }

void lfpool_bias_fence(struct lfpool *p)
{
    if (!p->bias)
        return;
    if (!atomic_load_explicit(&p->bias_seen, memory_order_relaxed))
        atomic_store_explicit(&p->bias_seen, true, memory_order_relaxed);
    uint32_t w = atomic_load_explicit(&p->bias_mode, memory_order_acquire);
    for (;;) {
        if (bias_state(w) == BIAS_FENCED)
            return;
        if (bias_state(w) == BIAS_SWITCHING) {
            /* its party is fencing: wait for its FENCED (a few us) */
            uint32_t sw = w;
            while ((w = atomic_load_explicit(&p->bias_mode, memory_order_acquire)) == sw)
                sched_yield();
            return;
        }
        uint32_t sw = (((w >> 2) + 1) << 2) | BIAS_SWITCHING;
        if (atomic_compare_exchange_weak_explicit(&p->bias_mode, &w, sw, memory_order_seq_cst,
                                                  memory_order_acquire)) {
            w = sw;
            break;
        }
    }
    lfpool_avail_fence(p);
    lfpool_stat_inc(&p->c.nbias_fences);
    uint32_t f = (w & ~LFPOOL_BIAS_MASK) | BIAS_FENCED;
    atomic_compare_exchange_strong_explicit(&p->bias_mode, &w, f, memory_order_seq_cst,
                                            memory_order_relaxed);
}

void lfpool_bias_restore(struct lfpool *p)
{
    if (!p->bias)
        return;
    if (atomic_load_explicit(&p->bias_seen, memory_order_relaxed)) {
        atomic_store_explicit(&p->bias_seen, false, memory_order_relaxed);
        return; /* fenced during this round: returns from other threads go on */
    }
    uint32_t w = atomic_load_explicit(&p->bias_mode, memory_order_acquire);
    if (bias_state(w) != BIAS_FENCED)
        return;
    uint32_t pend = (w & ~LFPOOL_BIAS_MASK) | BIAS_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&p->bias_mode, &w, pend, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    synchronize_rcu(); /* every party that read FENCED has made its CAS */
    uint32_t b = (pend & ~LFPOOL_BIAS_MASK) | BIAS_BIASED;
    atomic_compare_exchange_strong_explicit(&p->bias_mode, &pend, b, memory_order_seq_cst,
                                            memory_order_relaxed);
}

bool lfpool_bias_active(struct lfpool *p)
{
    return p->bias && bias_state(atomic_load_explicit(&p->bias_mode, memory_order_acquire)) ==
                          BIAS_BIASED;
}

/* Biased returns need the rseq membarrier (the fence), which
 * ThreadSanitizer cannot follow; after the set's init (cache.c). */
void lfpool_bias_init(struct lfpool *p)
{
    p->bias = !LFPOOL_TSAN && lfpool_avail_fence_ready(p);
}

/* In a fork child (one thread): the parent's parties and owners are gone,
 * and the membarrier registration is the child's to make again. */
void lfpool_bias_fork_reset(struct lfpool *p)
{
    if (p->bias)
        p->bias = lfpool_avail_fence_ready(p);
    atomic_store_explicit(&p->bias_mode, BIAS_BIASED, memory_order_relaxed);
    atomic_store_explicit(&p->bias_seen, false, memory_order_relaxed);
}
