/*
 * cache.h - the available set's interface (cache.c), and its fast path,
 * inline in get and ret (handout.c) and in creation (objects.c).
 *
 * Owns: the inline half of the available set - pop from this CPU's cache
 * and claim (CACHED -> OUT), push onto it - and the prototypes of the out-
 * of-line half in cache.c (the shared stack, flush, fence, fork reset).
 * The argument for both is in cache.c and percpu.h.  Invariant: only the
 * thread that popped a record from a cache, or that owns it CACHED before
 * a push, touches its state here, with plain stores.
 */
#ifndef LFPOOL_CACHE_H
#define LFPOOL_CACHE_H

#include "internal.h"

/* ---- cache.c: the available set (per-CPU caches over the shared stack) */
LFPOOL_INTERNAL void lfpool_avail_fence(struct lfpool *p);
LFPOOL_INTERNAL bool lfpool_avail_fence_ready(struct lfpool *p);
LFPOOL_INTERNAL int lfpool_avail_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_avail_fini(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_avail_fork_reset(struct lfpool *p);
LFPOOL_INTERNAL size_t lfpool_avail_flush(struct lfpool *p);
/* closed caches (cache.c): control's reason, the gets' final look, the
 * rounds' decision to reopen */
LFPOOL_INTERNAL void lfpool_avail_close_ctl(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_avail_open_ctl(struct lfpool *p);
LFPOOL_INTERNAL bool lfpool_avail_closed_ctl(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_avail_final_look(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_avail_round(struct lfpool *p);
LFPOOL_INTERNAL struct lfpool_rec *lfpool_avail_get_slow(struct lfpool *p, double now, bool waiting);
LFPOOL_INTERNAL void lfpool_avail_put_stack(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL int lfpool_avail_put_closed(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL void lfpool_avail_close_tick(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_avail_bad_state(struct lfpool *p, struct lfpool_rec *rec, uint32_t w);
LFPOOL_INTERNAL struct lfpool_rec *lfpool_avail_pop_any(struct lfpool *p);
LFPOOL_INTERNAL uint32_t lfpool_avail_put_run(struct lfpool *p, struct lfpool_rec *const *run,
                                              uint32_t n, long off, bool *wake);

/* ---- cache.c fast paths, inline in get and ret (the argument is in
 * cache.c and percpu.h) */

/* Pop a record from this CPU's cache; NULL when it has none (or there are
 * no caches).  The record should be CACHED: see lfpool_avail_claim_cached. */
static inline __attribute__((always_inline)) struct lfpool_rec *
lfpool_avail_pop_local_pcpu(struct lfpool *p)
{
    for (;;) { /* p->pcpu: the caller knows (get's admission word) */
        /* no bound check: with p->pcpu there is a cache for every possible
         * CPU, and rseq's cpu id is one of them (cache.c) */
        uint32_t cpu = lfpool_pcpu_cpu_at(p->rseq_off);
        struct lfpool_rec *rec = NULL;
        int r = lfpool_pcpu_pop_at(p->rseq_off, &p->caches[cpu], cpu, &rec);
        if (lfpool_likely(r == LFPOOL_PCPU_OK))
            return rec;
        if (r == LFPOOL_PCPU_FAIL)
            return NULL;
    }
}
static inline __attribute__((always_inline)) struct lfpool_rec *lfpool_avail_pop_local(struct lfpool *p)
{
    return lfpool_likely(p->pcpu) ? lfpool_avail_pop_local_pcpu(p) : NULL;
}

/* Pop up to n (1 <= n <= LFPOOL_CACHE_BULK_SLOTS) records from this CPU's
 * cache into out[], in one rseq section (percpu.h); returns how many (0:
 * none).  Each should be CACHED, the caller's, as after
 * lfpool_avail_pop_local.  p->pcpu: the caller knows (get's admission
 * word, FAST_GET), and the section chooses the cache (no bound check, as
 * lfpool_avail_pop_local_pcpu).  `off`: p->rseq_off. */
static inline __attribute__((always_inline)) uint32_t
lfpool_avail_pop_run_pcpu(struct lfpool *p, struct lfpool_rec **out, uint32_t n, long off)
{
    for (;;) {
        uint32_t got;
        int r = lfpool_pcpu_pop_n_here_at(off, &p->caches, out, n, &got);
        if (lfpool_likely(r == LFPOOL_PCPU_OK))
            return got;
        if (r == LFPOOL_PCPU_FAIL)
            return 0;
    }
}

/* lfpool_avail_put_run (cache.c) where the caller knows p->pcpu (ret's
 * admission word, FAST_RET_INLINE: the bulk ret's inline path), 1 <= n <=
 * LFPOOL_CACHE_BULK_SLOTS: the same steps - gift_wanted read before each
 * attempt, one section (the cache chosen in it), *wake read after a push
 * that put records, with no fence (cache.c) - with no CPU chosen before
 * the section and no bound check (lfpool_avail_push_local_inline_at's). */
static inline __attribute__((always_inline)) uint32_t
lfpool_avail_put_run_pcpu(struct lfpool *p, struct lfpool_rec *const *run, uint32_t n, long off,
                          bool *wake)
{
    uint32_t put = 0;
    for (;;) {
        if (lfpool_unlikely(lfpool_gate_gift_wanted(&p->gate)))
            break;
        int r = lfpool_pcpu_push_n_here_at(off, &p->caches, p->bulk_cap, run, n, &put);
        if (lfpool_likely(r == LFPOOL_PCPU_OK))
            break;
        if (r == LFPOOL_PCPU_FAIL)
            break;
    }
    *wake = false;
    if (lfpool_likely(put != 0)) {
        atomic_signal_fence(memory_order_seq_cst);
        *wake = lfpool_gate_has_waiters(&p->gate);
    }
    return put;
}

/* Make a record popped from a cache, whose state word `w` says CACHED, OUT
 * with last_get = now; returns the new word.  The popper is its only owner:
 * plain stores, the state's bumping the generation. */
static inline __attribute__((always_inline)) uint32_t lfpool_avail_claim_cached(struct lfpool_rec *rec,
                                                                       uint32_t w, double now)
{
    /* ((gen + 1) << 4) | OUT, w's state being CACHED: one add */
    uint32_t out = w + (1u << 4) - REC_CACHED + REC_OUT;
    atomic_store_explicit(&rec->last_get, now, memory_order_relaxed);
    atomic_store_explicit(&rec->state, out, memory_order_release);
    return out;
}

/* Make a record popped from a cache (ours) OUT, with last_get = now; NULL
 * if it was not CACHED (reported). */
static inline __attribute__((always_inline)) struct lfpool_rec *
lfpool_avail_claim_popped(struct lfpool *p, struct lfpool_rec *rec, double now)
{
    uint32_t w = rec_load(rec); /* acquire: the pusher stored CACHED with release */
    if (lfpool_likely(rec_st(w) == REC_CACHED)) {
        lfpool_avail_claim_cached(rec, w, now);
        return rec;
    }
    lfpool_avail_bad_state(p, rec, w);
    return NULL;
}

/* Take a record from this CPU's cache and make it OUT, with last_get = now;
 * NULL when the cache has none. */
static inline __attribute__((always_inline)) struct lfpool_rec *
lfpool_avail_get_local(struct lfpool *p, double now)
{
    struct lfpool_rec *rec;
    while ((rec = lfpool_avail_pop_local(p)) != NULL)
        if ((rec = lfpool_avail_claim_popped(p, rec, now)) != NULL)
            return rec;
    return NULL;
}

/* Take an available record and make it OUT, with last_get = now; NULL when
 * none.  `waiting`: the caller is registered on the gate (it must flush). */
static inline __attribute__((always_inline)) struct lfpool_rec *
lfpool_avail_get(struct lfpool *p, double now, bool waiting)
{
    struct lfpool_rec *rec = lfpool_avail_get_local(p, now);
    return rec ? rec : lfpool_avail_get_slow(p, now, waiting);
}

/* Push a record that the caller owns in state CACHED onto this CPU's cache.
 * LFPOOL_PUT_DONE: pushed, nobody waits, shutdown had not begun (the read
 * after the push: lfpool_gate_attention); LFPOOL_PUT_WAKE: pushed, and a
 * waiter must be woken; LFPOOL_PUT_STACK: not pushed (no caches, cache full
 * or closed, or a waiter wants a record handed over), the caller still
 * owns it; LFPOOL_PUT_SHUT: pushed, nobody waits, but shutdown has begun (a
 * ret then closes what is available: ret_put_rest; other callers take it
 * as DONE). */
enum { LFPOOL_PUT_DONE, LFPOOL_PUT_WAKE, LFPOOL_PUT_STACK, LFPOOL_PUT_SHUT };
/* lfpool_avail_push_local_at without its read of gift_wanted: for ret's
 * inline paths, which run only while the admission word's inline bits are
 * set, and those are clear while gift_wanted is (life.c,
 * lfpool_life_fast_ret; gate.c stores the flag, then has the bits
 * recomputed).  Their read of the admission word at the ret's start is
 * this read, made earlier: a waiter that asks after it is granted as any
 * (below) */
static inline __attribute__((always_inline)) int lfpool_avail_push_local_inline_at(struct lfpool *p,
                                                                                 struct lfpool_rec *rec,
                                                                                 long off)
{
    for (;;) {
        /* this CPU's cache, chosen in the section (no bound check: a cache
         * per possible CPU) */
        int r = lfpool_pcpu_push_here_at(off, &p->caches, p->cache_cap, rec);
        if (lfpool_likely(r == LFPOOL_PCPU_OK)) {
            /* no fence: a waiter's flush fences for us (cache.c), and
             * shutdown's drain for its copy of the flag (handout.c,
             * ret_fast_commit): one read of both words, which are 0 but
             * for a waiter or shutdown; which of the two, read again (a
             * later read: a waiter seen gone left, and took no grant) */
            atomic_signal_fence(memory_order_seq_cst);
            if (lfpool_unlikely(lfpool_gate_attention(&p->gate)))
                return lfpool_gate_has_waiters(&p->gate) ? LFPOOL_PUT_WAKE : LFPOOL_PUT_SHUT;
            return LFPOOL_PUT_DONE;
        }
        if (r == LFPOOL_PCPU_FAIL)
            break;
    }
    return LFPOOL_PUT_STACK;
}
/* lfpool_avail_put_local_at where the caller knows p->pcpu */
static inline __attribute__((always_inline)) int lfpool_avail_push_local_at(struct lfpool *p,
                                                                          struct lfpool_rec *rec,
                                                                          long off)
{
    /* parked waiters are granted after the push (LFPOOL_PUT_WAKE), except
     * one that wants a record handed over: that takes the stack path.  Read
     * once, before the section: a push restarted after an abort does not
     * read it again, and the waiter that asked meanwhile is granted as any
     * (the waiter count is read after the push), its look flushing */
    if (lfpool_unlikely(lfpool_gate_gift_wanted(&p->gate)))
        return LFPOOL_PUT_STACK;
    return lfpool_avail_push_local_inline_at(p, rec, off);
}
/* `off`: lfpool_pcpu_off() (p->rseq_off) */
static inline __attribute__((always_inline)) int lfpool_avail_put_local_at(struct lfpool *p,
                                                                         struct lfpool_rec *rec,
                                                                         long off)
{
    return lfpool_likely(p->pcpu) ? lfpool_avail_push_local_at(p, rec, off) : LFPOOL_PUT_STACK;
}
static inline __attribute__((always_inline)) int lfpool_avail_put_local(struct lfpool *p,
                                                                      struct lfpool_rec *rec)
{
    return lfpool_avail_put_local_at(p, rec, p->rseq_off);
}

/* Put a record that the caller owns in state CACHED into the set, and wake
 * a waiter if any. */
static inline __attribute__((always_inline)) void lfpool_avail_put(struct lfpool *p, struct lfpool_rec *rec)
{
    int r = lfpool_avail_put_local(p, rec);
    if (lfpool_unlikely(r == LFPOOL_PUT_WAKE))
        lfpool_gate_wake(&p->gate, false);
    else if (r == LFPOOL_PUT_STACK)
        lfpool_avail_put_stack(p, rec);
}

#endif /* LFPOOL_CACHE_H */
