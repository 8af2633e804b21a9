/*
 * handout.c - the hand-out: get and ret.
 *
 * Owns: lfpool_get, lfpool_ret, lfpool_get_handle, lfpool_ret_handle,
 * lfpool_get_bulk, lfpool_ret_bulk -
 * their fast paths, their slow paths, the per-thread return hints and the
 * wait at max_size (the protocol of CONTRACT §3.2, and the ret side of
 * CONTRACT §3.4).  Invariants: a hand-out is ended once (the commit of OUT ->
 * CACHED, or the CAS that a kill or a second ret loses, decides who); a
 * record is handed out only from CACHED (popped from a cache, its only
 * owner) or AVAIL (claimed by CAS in the shared stack), cache.c.
 *
 * The hot path, get with an object in this CPU's cache:
 *   the admission word's FAST_GET bit (life.c, at a constant offset from
 *   the pool) -> rseq pop from this CPU's cache -> state check (CACHED) ->
 *   plain stores of last_get and the state (CACHED -> OUT, a new
 *   generation) and uses -> return hint store.
 * and ret: the admission word's FAST_RET_INLINE bit (no wear, nothing
 *   observed, per-CPU caches, biased returns possible) -> return hint
 *   probe -> commit of the hand-out (OUT -> CACHED, with last_ret: the
 *   getter's plain stores in an rseq section while the pool is biased,
 *   bias.c, else a CAS) -> rseq push onto this CPU's cache -> waiter check
 *   -> shutdown check.  lfpool_ret_handle is the same with the handle in
 *   place of the hint, for the thread the handle names (its owner: "owned
 *   handles"); another thread's return fences, then CASes (ret_foreign).
 *   A pool the bit does not cover
 *   takes the same steps out of line (ret_other, ret_handle_other, with the
 *   wear test); anything else (no hint: a hash lookup under rcu_read_lock;
 *   a full cache; hooks; an injected clock) is a tail call to a slow path.
 * No lock, no system call, no allocation, no clock_gettime.  Neither needs
 * an RCU read-side section: records are type-stable (meta.c).
 */
#include "cache.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- per-thread hints: recently handed-out records
 *
 * A small direct-mapped cache per thread, {pool id, object, record}, filled
 * by get and probed by ret to skip the hash lookup.  A hint may be stale in
 * every way (object returned by another thread, killed, record reused for
 * another object, pool freed); it is trusted only after re-reading the
 * record: same object and state OUT, for a pool whose id matches (ids are
 * never reused, so a freed pool's hints never match a live pool).  Reading
 * a stale record is safe because record memory is type-stable while its
 * pool lives.  Thread-local and initial-exec: no lock, no __tls_get_addr. */
#define HINTS 8
struct hint {
    uint64_t pool_id;
    void *obj;
    struct lfpool_rec *rec;
    uint32_t word; /* the record's state word when handed out: gen | OUT */
};
static __thread struct hint hints[HINTS] __attribute__((tls_model("initial-exec")));

static inline struct hint *hint_slot(const void *obj)
{
    /* multiplicative hash: aligned objects (64, 4096...) still spread */
    return &hints[((uint64_t)(uintptr_t)obj * 0x9e3779b97f4a7c15ULL) >> 61];
}

/* One field of a hint or a handle, stored on its own.  A relaxed atomic
 * store is a plain mov on x86-64, but the compiler may not merge it with
 * its neighbour: SLP vectorisation otherwise packs obj and rec into one
 * 16-byte vector store (punpcklqdq + movups) that ret reads back as two
 * 8-byte loads, a store-forwarding penalty on some hosts and more
 * instructions everywhere (docs/PERFORMANCE.md, P7).  No semantic change:
 * the fields are read by this thread (hints) or the caller (handles). */
#define FIELD_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

/* `word`: the record's state word as this thread handed it out (gen | OUT) */
static inline void hint_set(struct lfpool *p, void *obj, struct lfpool_rec *rec, uint32_t word)
{
    struct hint *h = hint_slot(obj);
    FIELD_SET(h->pool_id, p->id);
    FIELD_SET(h->obj, obj);
    FIELD_SET(h->rec, rec);
    FIELD_SET(h->word, word);
}

/* The hint for a record this thread just got; returns the word it saved. */
static inline uint32_t hint_put(struct lfpool *p, void *obj, struct lfpool_rec *rec)
{
    uint32_t word = rec_word(atomic_load_explicit(&rec->state, memory_order_relaxed), REC_OUT);
    hint_set(p, obj, rec, word);
    return word;
}

/* The hinted record and the exact state word (generation and OUT) it must
 * still have; the caller's CAS on that word is the validation: a record
 * released and reused since has another generation, one returned since is
 * not OUT. */
static inline struct lfpool_rec *hint_get(struct lfpool *p, void *obj, uint32_t *word)
{
    struct hint *h = hint_slot(obj);
    if (h->obj != obj || h->pool_id != p->id)
        return NULL;
    *word = h->word;
    return h->rec;
}

/* hint_get for a non-NULL obj, as a test: a hint whose obj matches one
 * was set whole by hint_set (only hint_drop changes obj, to NULL), so its
 * record is not NULL and is not tested again. */
static inline __attribute__((always_inline)) bool hint_find(struct lfpool *p, void *obj,
                                                            struct lfpool_rec **rec,
                                                            uint32_t *word)
{
    struct hint *h = hint_slot(obj);
    if (h->obj != obj || h->pool_id != p->id)
        return false;
    *word = h->word;
    *rec = h->rec;
    return true;
}

/* Forget the hint for obj, if this thread has one. */
static inline void hint_drop(struct lfpool *p, void *obj)
{
    struct hint *h = hint_slot(obj);
    if (h->obj == obj && h->pool_id == p->id)
        h->obj = NULL;
}

/* This thread got the hand-out `word` of `rec` (obj): its hint holds that
 * exact word, which no other thread's hint can (one getter per
 * generation). */
static inline bool hint_owns(struct lfpool *p, void *obj, struct lfpool_rec *rec, uint32_t word)
{
    uint32_t w = 0;
    return hint_get(p, obj, &w) == rec && w == word;
}

/* ---- get */

/* Claim an available record for this get and count the use; the caller
 * then ends the guard below, with get_finish() (a record) or
 * get_guard_leave() (none).  Once a record is OUT only its
 * holder can end that, except a kill: in KILL_CLOSE mode the record may be
 * closed and reused while this thread is still between the claim and its
 * last touch of the record, so that stretch runs in a read-side section the
 * reaper's grace period waits for (guard_get).  Without CLOSE kills the
 * hot path needs none. */
static inline __attribute__((always_inline)) struct lfpool_rec *get_claim(struct lfpool *p,
                                                                          bool waiting)
{
    if (lfpool_unlikely(p->guard_get))
        rcu_read_lock();
    struct lfpool_rec *rec = lfpool_avail_get(p, lfpool_now(p), waiting);
    if (lfpool_likely(rec != NULL))
        rec_count_use(rec);
    return rec;
}

static inline void get_guard_leave(struct lfpool *p)
{
    if (lfpool_unlikely(p->guard_get))
        rcu_read_unlock();
}

/* Finish a get: the call site, the object, a return hint (*word: the
 * hand-out it names); then leave the guard. */
static inline void *get_finish(struct lfpool *p, struct lfpool_rec *rec, uint32_t *word,
                               const void *caller)
{
    void *o = rec->obj;
    atomic_store_explicit(&rec->caller, caller, memory_order_relaxed);
    *word = hint_put(p, o, rec);
    get_guard_leave(p);
    return o;
}

/* ---- owned handles: who may end a handle's hand-out with a plain store
 *
 * A handle names the thread that got it, its owner: priv_pool is the
 * pool's id with LFPOOL_HANDLE_OWNED set (p->owned_id), and priv_owner that
 * thread's owner tag.  The owner's return may end the hand-out with the
 * biased commit (bias.c), as the return of a hint's owner does; any other
 * party must fence before its CAS on the hand-out.  One owner per
 * hand-out: a tag names one thread (until 2^32 - 2 threads took tags: a
 * handle kept that long, and then returned by the thread with its tag
 * while the owner returns a copy of it, is the one overlap left, as for
 * the generation's wrap).
 *
 * Tags.  Each thread has two TLS words: owner_tag, the tag its returns
 * compare a handle's priv_owner with (0 until it takes one), and
 * owner_stamp, what its gets write into priv_owner (OWNER_NONE until
 * then).  A thread takes a tag - both words set to the next value of a
 * process-wide counter, never 0 nor OWNER_NONE - on the paths out of line
 * (get_rest, ret_handle_other, a bulk get), so that the get's fast path is
 * one TLS load and one store, with no test: a thread that never took one
 * stamps OWNER_NONE, which no thread's owner_tag equals, and a priv_owner
 * of OWNER_NONE means "no owner" (nobody commits with a plain store: every
 * return CASes, none fences).  Its first return of a handle (out of line:
 * the stamp is not its tag) takes its tag, and its later gets stamp it.
 *
 * Who gets which handle:
 * - lfpool_get_handle (fast path: owner_stamp; slow path: the tag, taken
 *   there) and lfpool_get_bulk (the tag): owned by the getting thread.
 * - an event loop's handle (loop.c, priv_pool the bare id): no owner.  Its
 *   hand-out is claimed by the loop's thread or by the housekeeper for a
 *   ticket, and ends on whatever thread the program returns it from (the
 *   API's rule for loops); an owner named at delivery would be right only
 *   when the loop's thread returns it, and every other return would fence
 *   and put the pool's owners in CAS mode for a round.  Its returns CAS,
 *   as every return did before biased commits; loop.c's give_back CASes a
 *   hand-out nobody has seen, with no fence.
 * - a copy of any handle keeps its owner: a copy returned by another
 *   thread fences (handle_foreign), a copy returned by the owner is its
 *   return (the word decides which of two copies wins, as always).
 * A fork child keeps the forking thread's TLS words, and the counter goes
 * on from the parent's value: tags stay unique in the child (the parent's
 * other threads are gone; their handles are foreign there and fence).
 * lfpool_ret(pool, h.obj) has no hint for a handle's hand-out: it fences
 * (ret_careful), whichever thread calls it. */
#define HANDLE_OWNED LFPOOL_HANDLE_OWNED
#define OWNER_NONE UINT32_MAX
_Static_assert(sizeof(lfpool_handle) == 32, "priv_owner fills what was padding");
static __thread uint32_t owner_tag __attribute__((tls_model("initial-exec")));
static __thread uint32_t owner_stamp __attribute__((tls_model("initial-exec"))) = OWNER_NONE;
static _Atomic uint32_t owner_tags;

/* This thread's owner tag, taken at its first call here (never 0 nor
 * OWNER_NONE); its gets stamp it from then on. */
static uint32_t owner_tag_get(void)
{
    uint32_t t = owner_tag;
    if (lfpool_unlikely(t == 0)) {
        do
            t = atomic_fetch_add_explicit(&owner_tags, 1, memory_order_relaxed) + 1;
        while (t == 0 || t == OWNER_NONE);
        owner_tag = t;
        owner_stamp = t;
    }
    return t;
}

/* h is a handle of this pool (owned or not): its record may be read. */
static inline bool handle_of(struct lfpool *p, const lfpool_handle *h)
{
    return (h->priv_pool & ~HANDLE_OWNED) == p->id;
}

/* h's hand-out is owned by this thread (OWNER_NONE equals no tag). */
static inline bool handle_mine(const lfpool_handle *h)
{
    return (h->priv_pool & HANDLE_OWNED) && h->priv_owner == owner_tag;
}

/* h's hand-out has an owner other than this thread, whose biased commit
 * may race with our CAS: fence first (bias.c). */
static inline bool handle_foreign(const lfpool_handle *h)
{
    return (h->priv_pool & HANDLE_OWNED) && h->priv_owner != owner_tag &&
           h->priv_owner != OWNER_NONE;
}

/* An owned handle (`pool`: the pool's owned_id, `tag`: the owner's). */
static inline void handle_set_owned(lfpool_handle *h, void *obj, struct lfpool_rec *rec,
                                    uint32_t word, uint64_t pool, uint32_t tag)
{
    FIELD_SET(h->obj, obj);
    FIELD_SET(h->priv_rec, (void *)rec);
    FIELD_SET(h->priv_pool, pool);
    FIELD_SET(h->priv_word, word);
    FIELD_SET(h->priv_owner, tag);
}

/* The handle of lfpool_get_handle's fast path: owned by this thread, or by
 * nobody while it has no tag (owner_stamp, no test). */
static inline __attribute__((always_inline)) void handle_set(struct lfpool *p, lfpool_handle *h,
                                                             void *obj, struct lfpool_rec *rec,
                                                             uint32_t word)
{
    handle_set_owned(h, obj, rec, word, p->owned_id, owner_stamp);
}

/* priv_word and priv_owner of an owned handle, `wo` = owner << 32 | word:
 * one 8-byte store of the two adjacent 32-bit fields (little-endian: the
 * word in the low half, at the lower address) instead of two (the bulk
 * get's loop, bulk_take_cached).  A byte copy, not an access through a
 * uint64_t lvalue: the fields keep their types for every reader. */
_Static_assert(offsetof(lfpool_handle, priv_owner) ==
                   offsetof(lfpool_handle, priv_word) + sizeof(uint32_t),
               "priv_word and priv_owner are adjacent");
static inline void handle_set_word_owner(lfpool_handle *h, uint64_t wo)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy((char *)h + offsetof(lfpool_handle, priv_word), &wo, sizeof wo);
#else
    FIELD_SET(h->priv_word, (uint32_t)wo);
    FIELD_SET(h->priv_owner, (uint32_t)(wo >> 32));
#endif
}

/* Unroll the next loop by two (the bulk loops: their own compare and
 * branch halved).  GCC only: clang cannot unroll a loop around an asm goto
 * (the ret's commit section) and warns, an error under -Werror. */
#if defined(__GNUC__) && !defined(__clang__)
#define LFPOOL_UNROLL2 _Pragma("GCC unroll 2")
#else
#define LFPOOL_UNROLL2
#endif

/* Slow paths are kept out of line (noinline, cold) so that the fast paths
 * of get and ret stay small: no spills, few saved registers. */
#define LFPOOL_SLOW __attribute__((noinline, cold))

static int ret_put_rest(struct lfpool *p, struct lfpool_rec *rec, int r);

/* get_claim() and get_finish() for a record handed over by the gate
 * (CACHED, ours): 0, or ESHUTDOWN as a look would give, the record put back */
#define GET_AGAIN (-1) /* get_from_gift: control holds gets, the record went back */
static int get_from_gift(struct lfpool *p, struct lfpool_rec *rec, void **obj,
                         struct lfpool_rec **recp, uint32_t *word, const void *caller)
{
    if (atomic_load(&p->shutdown)) {
        ret_put_rest(p, rec, LFPOOL_PUT_STACK);
        return ESHUTDOWN;
    }
    /* control (control.c): the check and the hand-out in one read-side
     * section; a record of an older eviction epoch is closed, one that may
     * not go out now goes back to the set */
    rcu_read_lock();
    if (lfpool_unlikely(lfpool_ctl_flags(p) || lfpool_rec_stale(p, rec)) &&
        (lfpool_ctl_hold(p) || lfpool_rec_stale(p, rec))) {
        rcu_read_unlock();
        lfpool_ctl_put(p, rec);
        return GET_AGAIN;
    }
    if (lfpool_unlikely(p->guard_get))
        rcu_read_lock();
    uint32_t w = rec_load(rec);
    LFPOOL_ASSERT(rec_st(w) == REC_CACHED); /* handed over CACHED (gate.c) */
    lfpool_avail_claim_cached(rec, w, lfpool_now(p));
    rec_count_use(rec);
    *obj = get_finish(p, rec, word, caller);
    *recp = rec;
    rcu_read_unlock();
    return 0;
}

/* A record this get created (OUT, its hand-out `word`) may not go out now
 * (control.c: paused, over max_size, or created before an eviction): true
 * if it was given back (to the set, or closed), and the get goes on.  The
 * check and the hand-out share a read-side section, as for a claim. */
static bool get_created_back(struct lfpool *p, struct lfpool_rec *rec, uint32_t word)
{
    rcu_read_lock();
    if (lfpool_likely(!lfpool_ctl_flags(p) && !lfpool_rec_stale(p, rec))) {
        rcu_read_unlock();
        return false;
    }
    size_t max = lfpool_max_size(p);
    bool back = lfpool_ctl_hold(p) || lfpool_rec_stale(p, rec) ||
                (max && (size_t)atomic_load(&p->nobjs) > max);
    /* fresh, never seen by a user: only a kill could move it (an injected
     * clock jumping past the kill threshold); then it goes out and its
     * holder's ret closes it */
    if (back && !rec_cas(rec, &word, REC_OUT, REC_CACHED))
        back = false;
    if (back) /* the creation counted this get's use: it did not happen */
        atomic_store_explicit(&rec->uses, 0, memory_order_relaxed);
    rcu_read_unlock();
    if (back)
        lfpool_ctl_put(p, rec);
    return back;
}

/* A get that registered as a waiter leaves: count the wait (nwaits,
 * wait_time, LFPOOL_HIST_WAIT; ntimeouts), whatever its outcome. */
static void get_wait_done(struct lfpool *p, double since, int r)
{
    lfpool_hist_add_shared(&p->obs.wait, lfpool_now_fresh(p) - since);
    if (r == ETIMEDOUT)
        __atomic_fetch_add(&p->obs.ntimeouts, 1, __ATOMIC_RELAXED);
}

/* The wait and the creation.  *fresh: the object was created for this get
 * (never available: validation on borrow skips it). */
static LFPOOL_SLOW int get_slow(struct lfpool *p, double timeout, void **obj,
                                struct lfpool_rec **recp, uint32_t *word, bool *fresh,
                                const void *caller)
{
    double wait_since = 0;
    struct timespec deadline;
    const struct timespec *dl = NULL;
    bool waiting = false, slept = false, timed_out = false, parked = false;
    bool front = false, final_look = false;
    struct lfpool_gate_node node = {.async = false};
    int r;

    for (;;) {
        if (waiting && !timed_out) { /* park, then look (gate.c) */
            lfpool_gate_park(&p->gate, &node, front, true);
            parked = true;
        }
        if (atomic_load(&p->shutdown)) { /* waiters woken by shutdown leave empty-handed */
            r = ESHUTDOWN;
            break;
        }
        /* runtime control (control.c): shed surplus objects first; then
         * the flags' read and the claim share a read-side section, which a
         * pause or a shrink waits for */
        if (lfpool_unlikely(lfpool_ctl_flags(p)))
            lfpool_ctl_shed(p);
        rcu_read_lock();
        bool hold = lfpool_unlikely(lfpool_ctl_flags(p)) && lfpool_ctl_hold(p);
        /* every look of a registered waiter that finds nothing else
         * flushes: the heavy side of the fence that lets a ret push into
         * a cache and read the gate with no fence of its own (cache.c) */
        struct lfpool_rec *rec = hold ? NULL : get_claim(p, waiting);
        if (rec) {
            *obj = get_finish(p, rec, word, caller);
            rcu_read_unlock();
            *recp = rec;
            r = 0;
            break;
        }
        if (!hold)
            get_guard_leave(p);
        rcu_read_unlock();
        /* a creation backoff refuses at once; max_creating calls of `fun`
         * running make the get wait as at max_size (objects.c) */
        int cr = hold ? -1 : lfpool_create_check(p);
        if (lfpool_unlikely(cr > 0)) {
            r = cr;
            break;
        }
        size_t max = lfpool_max_size(p);
        if (cr == 0 && lfpool_reserve(p, max ? max : SIZE_MAX)) {
            /* leave the FIFO before `fun` runs: a grant or a hand-over must
             * not wait on user code (which may even get from this pool) */
            if (parked) {
                parked = false;
                if (lfpool_gate_unpark(&p->gate, &node)) {
                    slept = true; /* the turn is ours to pass on */
                    if (node.gift) { /* a record came with it: take that */
                        lfpool_unreserve(p);
                        r = get_from_gift(p, node.gift, obj, recp, word, caller);
                        node.gift = NULL;
                        if (r == GET_AGAIN)
                            continue;
                        break;
                    }
                }
            }
            r = lfpool_create(p, &rec, obj, word, true);
            if (r == LFPOOL_CREATE_BUSY)
                continue; /* lost the creation slot to another get: wait */
            if (r == 0 && lfpool_unlikely(get_created_back(p, rec, *word)))
                continue; /* control holds gets: wait (or EAGAIN) */
            if (r == 0) { /* a stale hint (CLOSE kill after a stall) is harmless */
                /* (not killed yet: it is younger than any threshold) */
                atomic_store_explicit(&rec->caller, caller, memory_order_relaxed);
                hint_set(p, *obj, rec, *word);
                *recp = rec;
                *fresh = true;
            }
            break;
        }
        if (atomic_load(&p->shutdown)) {
            r = ESHUTDOWN;
            break;
        }
        if (timeout == 0) {
            /* Before "nothing available": one more look once the caches
             * are closed for the gets (cache.c: one flush per period,
             * whose membarrier also brings in a push still in another
             * CPU's store buffer).  A get that does not wait then misses
             * no object that was available when it was called (API.md). */
            if (!final_look && p->pcpu && !hold) {
                final_look = true;
                lfpool_avail_final_look(p);
                continue;
            }
            r = EAGAIN;
            break;
        }
        if (timed_out) {
            r = ETIMEDOUT;
            break;
        }
        if (!waiting) {
            if (p->cfg.max_waiters) {
                if (!lfpool_gate_wait_begin_bounded(&p->gate, p->cfg.max_waiters)) {
                    r = EBUSY; /* fail fast: enough gets wait already */
                    break;
                }
            } else {
                lfpool_gate_wait_begin(&p->gate);
            }
            waiting = true;
            wait_since = lfpool_now_fresh(p);
            if (!isinf(timeout)) {
                lfpool_abs_deadline(timeout, &deadline);
                dl = &deadline;
            }
            continue; /* re-check after registering */
        }
        slept = true;
        parked = false; /* lfpool_gate_sleep unparks */
        int sr = lfpool_gate_sleep(&p->gate, &node, dl);
        /* a granted waiter keeps its turn at the front, wanting a record
         * handed over; not while paused (two such waiters would hand a
         * record to each other and back) */
        front = sr == 0 && !(lfpool_ctl_flags(p) & LFPOOL_CTL_PAUSED);
        if (node.gift) { /* handed over with the grant: ours, CACHED */
            r = get_from_gift(p, node.gift, obj, recp, word, caller);
            node.gift = NULL;
            if (r != GET_AGAIN)
                break;
        }
        if (sr == ETIMEDOUT || (dl && lfpool_deadline_passed(dl)))
            timed_out = true; /* one last look, then give up */
    }
    if (parked && lfpool_gate_unpark(&p->gate, &node)) {
        slept = true; /* granted while looking: the turn is ours to pass on */
        if (node.gift) /* and a record came with it: publish it */
            ret_put_rest(p, node.gift, LFPOOL_PUT_STACK);
    }
    if (waiting) {
        lfpool_gate_wait_end(&p->gate, slept);
        get_wait_done(p, wait_since, r);
    }
    return r;
}

static LFPOOL_SLOW int get_invalid(lfpool *p, bool null_out, double timeout)
{
    if (!p)
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_get: NULL pool");
    else if (null_out)
        lfpool_log(p, LFPOOL_LOG_ERROR, "get: NULL obj or handle");
    else
        lfpool_log(p, LFPOOL_LOG_ERROR, "get: invalid timeout %g", timeout);
    return EINVAL;
}

static int ret_destroy(struct lfpool *p, struct lfpool_rec *rec, void *obj, uint32_t s,
                       _Atomic uint64_t *counter, const char *why, bool refill);

/* Validation on borrow of the hand-out `word` of rec (obj), just got by
 * this thread and not yet given to the caller: true, hand it out.  Runs
 * the hook with no read-side section and no lock held (get_finish left
 * the CLOSE-kill guard: in that mode a kill may close the object under
 * the hook, as under any holder).  A failure destroys the object as
 * lfpool_ret_broken does; no fence is needed, this thread is the only one
 * that may end the hand-out (the caller has not seen it). */
static bool get_validate(struct lfpool *p, struct lfpool_rec *rec, void *obj, uint32_t word)
{
    /* last_ret: relaxed, stored before the release that made it available */
    double ret_t = atomic_load_explicit(&rec->last_ret, memory_order_relaxed);
    if (lfpool_now(p) - ret_t < p->cfg.validate_idle)
        return true;
    int v = p->cfg.validate(p->cfg.ctx, obj);
    if (v > 0)
        return true;
    lfpool_stat_inc(&p->c.nvalidate_failed);
    if (v < 0)
        lfpool_stat_inc(&p->c.nvalidate_errors);
    char buf[256];
    lfpool_trace(p, obj, buf, sizeof buf);
    lfpool_log(p, LFPOOL_LOG_ERROR, "validation failed (%d): %s", v, buf);
    /* not a use: nuses counts objects handed out.  Counted apart
     * (uses_undone), not by taking one off rec->uses: a CLOSE kill may have
     * removed the record already, and its reaper may have moved rec->uses
     * into dead_uses once this get's guard was left */
    lfpool_stat_inc(&p->c.uses_undone);
    rcu_read_lock();
    /* a DEFER kill meanwhile: KILLED, closed here (ret_not_out); a CLOSE
     * kill: closed by the housekeeper; either way not handed out */
    ret_destroy(p, rec, obj, word, NULL, NULL, false);
    return false;
}

/* For the housekeeper's looks on behalf of event loops' tickets (loop.c). */
bool lfpool_handout_validate(struct lfpool *p, struct lfpool_rec *rec, void *obj, uint32_t word)
{
    return get_validate(p, rec, obj, word);
}

/* Everything the fast path of lfpool_get (with h: lfpool_get_handle, which
 * fills *h instead of *obj) leaves: bad arguments, start, reset, shutdown,
 * hooks, an injected clock, the CLOSE-kill guard, an empty local cache (the
 * shared stack, other CPUs' caches), creation, the wait. */
static LFPOOL_SLOW int get_rest(lfpool *p, void **obj, lfpool_handle *h, double timeout,
                                const void *caller)
{
    void *o;
    struct lfpool_rec *rec;
    uint32_t word;
    if (!p || !(obj || h) || isnan(timeout) || (timeout < 0 && timeout != LFPOOL_DEFAULT))
        return get_invalid(p, !(obj || h), timeout);
    if (atomic_load_explicit(&p->lp->life, memory_order_acquire) != LIFE_READY) {
        int r = lfpool_life_make_ready(p);
        if (r)
            return r;
    }
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed))
        return ESHUTDOWN;
    if (timeout == LFPOOL_DEFAULT)
        timeout = p->cfg.timeout;
    /* validation on borrow: a failed object is destroyed and the get goes
     * on within its first deadline (t0 + timeout) */
    double t0 = p->cfg.validate && timeout > 0 && !isinf(timeout) ? lfpool_mono_now() : 0;
    for (double left = timeout;;) {
        bool fresh = false;
        /* runtime control in force (control.c): get_slow decides.  The
         * flags' read and the claim share a read-side section (control.c). */
        rcu_read_lock();
        bool ctl = lfpool_unlikely(lfpool_ctl_flags(p) != 0);
        rec = ctl ? NULL : get_claim(p, false);
        if (rec) {
            o = get_finish(p, rec, &word, caller);
            rcu_read_unlock();
        } else {
            if (!ctl)
                get_guard_leave(p);
            rcu_read_unlock();
            int r = get_slow(p, left, &o, &rec, &word, &fresh, caller);
            if (r)
                return r;
        }
        if (lfpool_likely(!p->cfg.validate) || fresh || get_validate(p, rec, o, word))
            break;
        if (t0 > 0) /* a passed deadline still gets one last look */
            left = fmax(t0 + timeout - lfpool_mono_now(), 1e-9);
    }
    if (p->cfg.getter)
        lfpool_call_hook(p, p->cfg.getter, o, "getter");
    if (h) {
        /* the handle names the owner, this thread (its tag taken here, off
         * the fast path, if it has none yet), not a hint */
        hint_drop(p, o);
        handle_set_owned(h, o, rec, word, p->owned_id, owner_tag_get());
    } else {
        *obj = o;
    }
    return 0;
}

/* A record in a cache that was not CACHED (cache.c deals with it); then
 * the rest of the get (of lfpool_get_handle when h is not NULL). */
static LFPOOL_SLOW int get_bad(lfpool *p, void **obj, lfpool_handle *h, double timeout,
                               struct lfpool_rec *rec, uint32_t w, const void *caller)
{
    lfpool_avail_bad_state(p, rec, w);
    return get_rest(p, obj, h, timeout, caller);
}

/* get_rest and get_bad for lfpool_get_handle, with the handle where it
 * arrives (the second argument's register): the fast path's tail calls
 * then move no argument, and lfpool_get_handle copies no register on its
 * way in for them. */
static LFPOOL_SLOW int get_rest_handle(lfpool *p, lfpool_handle *h, double timeout,
                                       const void *caller)
{
    return get_rest(p, NULL, h, timeout, caller);
}
static LFPOOL_SLOW int get_bad_handle(lfpool *p, lfpool_handle *h, double timeout,
                                      struct lfpool_rec *rec, uint32_t w, const void *caller)
{
    return get_bad(p, NULL, h, timeout, rec, w, caller);
}

/* timeout >= 0 (not NaN) or LFPOOL_DEFAULT.  On x86-64 the compare with 0
 * reads the constant from memory (the compiler makes a zero register first:
 * one instruction more); `jb` is taken below 0 or unordered (NaN). */
static inline __attribute__((always_inline)) bool get_timeout_ok(double timeout)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    static const double zero = 0.0;
    __asm__ goto("comisd %[z], %[t]\n\t"
                 "jb %l[below]" /* below 0, or NaN */
                 : : [z] "m"(zero), [t] "x"(timeout) : "cc" : below);
    return true;
below:
    return timeout == LFPOOL_DEFAULT;
#else
    return timeout >= 0 || timeout == LFPOOL_DEFAULT;
#endif
}

/* The fast path applies: a pool in its steady state (no getter hook, no
 * CLOSE-kill guard, no injected clock) and a valid timeout. */
static inline __attribute__((always_inline)) bool get_fast_ok(struct lfpool *p, double timeout)
{
    /* one word: READY, not shut down, fast_get, per-CPU caches (life.c) */
    return get_timeout_ok(timeout) && lfpool_fast_has(p, LFPOOL_FAST_GET);
}

/* Claim a record popped from this CPU's cache, whose word `w` says CACHED,
 * count the use and note the call site (one store: the record's line is
 * being written anyway); returns its word as handed out (gen | OUT). */
static inline __attribute__((always_inline)) uint32_t get_fast_claim(struct lfpool *p,
                                                                     struct lfpool_rec *rec,
                                                                     uint32_t w, const void *caller)
{
    w = lfpool_avail_claim_cached(rec, w, atomic_load_explicit(&p->coarse_now, memory_order_relaxed));
    rec_count_use(rec);
    atomic_store_explicit(&rec->caller, caller, memory_order_relaxed);
    return w;
}

/* The get's CAS mode (cache.c): the fast path applied (get_fast_ok, so
 * p->pcpu) but this CPU's cache failed its plain-store pop - empty, or
 * not OPEN.  Try it again with the CAS-mode pop (percpu.h: a locked
 * commit, on a CLOSED cache only) right here, with the fast path's steps
 * after it; anything else (an empty or OPEN cache, SHUT, HELD, a record
 * not CACHED) is a tail call to the rest.  A leaf of its own (one per
 * API, obj or h a constant NULL), so that the closed pair pays no
 * prologue, and get_fast's miss is the same tail call as before.
 *
 * Why no read-side section and no control flags, where get_rest takes
 * both around its claim: they are for runtime control (control.c), which
 * must know that no get hands out a record it did not check against the
 * flags once its grace period ends.  Control's closing makes every cache
 * SHUT with a flush (locks, then a membarrier unless every cache was
 * SHUT or CLOSED already, in which case no plain-store section can be in
 * flight and a CAS-mode one fails its commit once the lock says HELD),
 * and a CAS-mode pop commits only on a cache whose word still says
 * CLOSED: a pop that committed before that flush took its cache's lock is
 * a hand-out that happened before control's change, exactly as a fast
 * path pop that committed before the flush's fence, and one after it
 * fails and takes get_rest, which reads the flags in a read-side section.
 * The CLOSE-kill guard (guard_get) and an injected clock clear FAST_GET,
 * so get_fast_ok already sent those pools to get_rest.  No close.gets
 * read either: the section's commit checks the lock, and a pop from a
 * cache the gets are closing or reopening (its lock CLOSED while
 * close.gets says otherwise) takes a CACHED record from a cache, which is
 * always allowed.  Every 64th record a thread takes here also makes the
 * decision of a pool without rounds (lfpool_avail_close_tick: the pool
 * must reopen even if no get ever takes the slow path again). */
static __thread uint8_t closed_ticks __attribute__((tls_model("initial-exec")));
/* The last steps of get_fast and get_miss: claim the popped record (word
 * w, CACHED) and hand it out */
static inline __attribute__((always_inline)) int get_hand_out(lfpool *p, void **obj,
                                                              lfpool_handle *h,
                                                              struct lfpool_rec *rec, uint32_t w,
                                                              const void *caller)
{
    w = get_fast_claim(p, rec, w, caller);
    void *o = rec->obj;
    if (h) {
        handle_set(p, h, o, rec, w);
    } else {
        hint_set(p, o, rec, w);
        *obj = o;
    }
    return 0;
}
/* get_miss's 64th record: the decision, then the hand-out (a tail call
 * from get_miss, which then needs no stack frame for the call) */
static LFPOOL_SLOW int get_miss_tick(lfpool *p, void **obj, lfpool_handle *h,
                                     struct lfpool_rec *rec, uint32_t w, const void *caller)
{
    lfpool_avail_close_tick(p);
    return get_hand_out(p, obj, h, rec, w, caller);
}
static inline __attribute__((always_inline)) int get_miss(lfpool *p, void **obj, lfpool_handle *h,
                                                          double timeout, const void *caller)
{
    struct lfpool_rec *rec;
    for (;;) {
        uint32_t cpu = lfpool_pcpu_cpu_at(p->rseq_off); /* no bound check: cache.c */
        int r = lfpool_pcpu_pop_closed_at(p->rseq_off, &p->caches[cpu], cpu, &rec);
        if (lfpool_likely(r == LFPOOL_PCPU_OK))
            break;
        if (r == LFPOOL_PCPU_FAIL)
            return get_rest(p, obj, h, timeout, caller);
    }
    uint32_t w = rec_load(rec); /* acquire: the pusher stored CACHED with release */
    if (lfpool_unlikely(!rec_st_cached_fast(w)))
        return get_bad(p, obj, h, timeout, rec, w, caller);
    if (lfpool_unlikely((++closed_ticks & 63) == 0))
        return get_miss_tick(p, obj, h, rec, w, caller);
    return get_hand_out(p, obj, h, rec, w, caller);
}
/* get_rest's arguments in get_rest's registers: get_fast's tail call to
 * either is the same instructions */
static __attribute__((noinline)) int get_miss_ptr(lfpool *p, void **obj, lfpool_handle *h,
                                                  double timeout, const void *caller)
{
    (void)h; /* NULL */
    return get_miss(p, obj, NULL, timeout, caller);
}
/* the handle where lfpool_get_handle has it (its second argument), as
 * get_rest_handle: no register copy on entry for either tail call */
static __attribute__((noinline)) int get_miss_handle(lfpool *p, lfpool_handle *h, double timeout,
                                                     const void *caller)
{
    return get_miss(p, NULL, h, timeout, caller);
}

/* The fast path of lfpool_get (obj) and lfpool_get_handle (h): get_fast_ok
 * and a record in this CPU's cache; the hand-out goes to the return hint
 * and *obj, or to *h.  Everything else is a tail call to get_rest, so both
 * stay leaves with no saved registers.  Each caller passes one of obj and h
 * as a constant NULL, which the inlining folds away. */
static inline __attribute__((always_inline)) int get_fast(lfpool *p, void **obj, lfpool_handle *h,
                                                          double timeout, const void *caller)
{
    if (lfpool_likely(p && (obj || h) && get_fast_ok(p, timeout))) {
        /* lfpool_avail_pop_local_pcpu (FAST_GET: pcpu), written out so that
         * a popped record is not tested against NULL (a slot holds one).
         * No retry loop here: a failed pop (empty, not OPEN) and an aborted
         * one (preempted, migrated, signalled) both go to get_miss, whose
         * CAS-mode pop fails on an OPEN cache and sends the get to
         * get_rest, whose claim pops again.  A loop here made GCC align its
         * head, one nop more on every get. */
        struct lfpool_rec *rec;
        /* this CPU's cache, chosen in the section (no bound check: cache.c) */
        if (lfpool_unlikely(lfpool_pcpu_pop_here_at(p->rseq_off, &p->caches, &rec) !=
                            LFPOOL_PCPU_OK))
            goto miss; /* CAS mode? */
        uint32_t w = rec_load(rec); /* acquire: the pusher stored CACHED with release */
        if (lfpool_unlikely(!rec_st_cached_fast(w)))
            return h ? get_bad_handle(p, h, timeout, rec, w, caller)
                     : get_bad(p, obj, NULL, timeout, rec, w, caller);
        return get_hand_out(p, obj, h, rec, w, caller);
    }
    return h ? get_rest_handle(p, h, timeout, caller) : get_rest(p, obj, NULL, timeout, caller);
miss:
    return h ? get_miss_handle(p, h, timeout, caller) : get_miss_ptr(p, obj, NULL, timeout, caller);
}

/* The call site is taken here, in the exported functions (the fast path is
 * inlined into them): in a leaf, one load from the stack top. */
int lfpool_get(lfpool *p, void **obj, double timeout)
{
    return get_fast(p, obj, NULL, timeout, __builtin_return_address(0));
}

/* ---- handles: get and ret without the return hint or the table lookup */

int lfpool_get_handle(lfpool *p, lfpool_handle *h, double timeout)
{
    return get_fast(p, NULL, h, timeout, __builtin_return_address(0));
}

/* ---- ret */

/* A return ended hand-out `word` (gen | OUT) of rec after `held` seconds;
 * the record is still the caller's (CACHED not yet in the set, or DEAD not
 * yet released).  Record the hold (hold_histogram), and if the housekeeper
 * warned about this hand-out, say once how long it was held. */
static LFPOOL_SLOW void ret_warned_line(struct lfpool *p, struct lfpool_rec *rec, uint16_t tag,
                                        double held)
{
    if (!atomic_compare_exchange_strong_explicit(&rec->warned, &tag, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    char trace[256], site[256];
    lfpool_trace(p, rec->obj, trace, sizeof trace);
    lfpool_obs_caller(atomic_load_explicit(&rec->caller, memory_order_relaxed), site, sizeof site);
    lfpool_log(p, LFPOOL_LOG_WARNING, "object %s returned after a warning: held for %g s (got at %s)",
               trace, held, site);
}

static inline __attribute__((always_inline)) void ret_observe(struct lfpool *p, struct lfpool_rec *rec,
                                                              uint32_t word, double held)
{
    if (p->obs.hold)
        lfpool_obs_hold(&p->obs, held);
    uint16_t tag = rec_warn_tag(word);
    if (lfpool_unlikely(atomic_load_explicit(&rec->warned, memory_order_relaxed) == tag))
        ret_warned_line(p, rec, tag, held);
}

/* ret_observe on the inline path (ret_inline_observed), when it is quick: the hand-out was not
 * warned about and the hold, if recorded, is 0 s (rec_count_hold_zero).
 * False, nothing done: ret_observed_rest records (a call that is not a
 * tail call would make the inline path save registers). */
static inline __attribute__((always_inline)) bool ret_observe_quick(struct lfpool *p,
                                                                    struct lfpool_rec *rec,
                                                                    uint32_t word, double now,
                                                                    double got, bool hold_only)
{
    /* hold_only (FAST_RET_HOLD): the hold histogram is on and no warned
     * hand-out is out, so neither is tested (a ret that read the bit just
     * before a warning may end that hand-out without its line: the window
     * lfpool_obs_warned describes) */
    if (!hold_only && lfpool_unlikely(atomic_load_explicit(&rec->warned, memory_order_relaxed) ==
                                      rec_warn_tag(word)))
        return false;
    if (hold_only || p->obs.hold) {
        /* a hold of 0 s: the same stamp (compared as bits, in a general
         * register; stamps are positive, so equal bits is equal values) */
        if (lfpool_unlikely(lfpool_dbits(now) != lfpool_dbits(got)))
            return false;
        rec_count_hold_zero(rec);
    }
    return true;
}

/* `use`: the hand-out ending is a user's (a ret), whose hold is observed;
 * false for one the user never saw (a failed validation, a bulk get's or a
 * ticket's claim given back). */
static int ret_not_out(struct lfpool *p, struct lfpool_rec *rec, void *obj, uint32_t s,
                       bool retter_done, bool use)
{
    if (rec_st(s) == REC_KILLED) {
        uint32_t k = s;
        if (rec_cas(rec, &k, REC_KILLED, REC_DEAD) && lfpool_meta_del(p, rec)) {
            /* the hand-out ends here: DEAD and out of the table, ours */
            if (use)
                ret_observe(p, rec, rec_word(s, REC_OUT),
                            lfpool_now(p) -
                                atomic_load_explicit(&rec->last_get, memory_order_relaxed));
            rcu_read_unlock();
            if (!retter_done)
                lfpool_call_hook(p, p->cfg.retter, obj, "retter");
            char buf[256]; /* the object is the pool's until its closer: traceable */
            lfpool_trace(p, obj, buf, sizeof buf);
            lfpool_log(p, LFPOOL_LOG_WARNING, "killed object %s returned: closing it", buf);
            lfpool_close_removed(p, rec);
            lfpool_stat_dec(&p->c.todel);
            return ESTALE;
        }
    }
    rcu_read_unlock();
    lfpool_log(p, LFPOOL_LOG_WARNING, "unexpected object returned: %p", obj);
    return ENOENT;
}

/* The rest of a fast ret whose record (CACHED, ours) did not simply land in
 * this CPU's cache: `r` says why (lfpool_avail_put_local).  Also the check
 * for a ret that raced with shutdown's drain: it closes what it put back. */
static LFPOOL_SLOW int ret_put_after(struct lfpool *p, struct lfpool_rec *rec, int r);
static LFPOOL_SLOW int ret_put_rest(struct lfpool *p, struct lfpool_rec *rec, int r)
{
    /* the caches closed for the gets: this CPU's, in CAS mode (cache.c);
     * no read-side section, as for the fast path's push: control's closing
     * makes the caches SHUT, on which that push fails */
    if (r == LFPOOL_PUT_STACK)
        r = lfpool_avail_put_closed(p, rec);
    return ret_put_after(p, rec, r);
}

/* ret_put_rest once this CPU's closed cache was tried: LFPOOL_PUT_STACK
 * goes to the stack (or to control), LFPOOL_PUT_WAKE wakes the gate; then
 * the shutdown check. */
static LFPOOL_SLOW int ret_put_after(struct lfpool *p, struct lfpool_rec *rec, int r)
{
    if (r == LFPOOL_PUT_WAKE) {
        lfpool_gate_wake(&p->gate, false);
    } else if (r == LFPOOL_PUT_STACK) {
        /* runtime control (control.c): the flags' read (and the record's
         * epoch) and the put in one read-side section */
        rcu_read_lock();
        if (lfpool_unlikely(lfpool_ctl_flags(p) || lfpool_rec_stale(p, rec))) {
            rcu_read_unlock();
            lfpool_ctl_put(p, rec);
        } else {
            lfpool_avail_put_stack(p, rec);
            rcu_read_unlock();
        }
    }
    /* the flag's copy that the push's read saw (LFPOOL_PUT_SHUT: read
     * again, coherence gives it); stored after the flag, before the drain */
    if (atomic_load_explicit(&p->gate.shut, memory_order_relaxed))
        lfpool_close_available(p);
    return 0;
}

static LFPOOL_SLOW int ret_careful(lfpool *p, void *obj, const lfpool_handle *h);

/* ret's fast path applies to the pool: no retter, no injected clock,
 * nothing to observe (RET_OBSERVED takes ret_careful's copy of it). */
static inline __attribute__((always_inline)) bool ret_fast_ok(struct lfpool *p)
{
    /* the mode byte (observability may switch it at run time), then one
     * word: READY and not shut down (life.c); shutdown is read again at
     * the commit and after the push */
    return lfpool_ret_fast_mode(p) && lfpool_fast_has(p, LFPOOL_FAST_RET);
}

/* ret's inline path applies: one bit of the admission word for what
 * ret_fast_ok says and the pool's constants (per-CPU caches, biased
 * returns possible, no wear), life.c.  Without it, ret_other. */
static inline __attribute__((always_inline)) bool ret_inline_ok(struct lfpool *p)
{
    return lfpool_fast_has(p, LFPOOL_FAST_RET_INLINE);
}

/* The object must end at this return: used max_use times, or past its
 * lifetime at `now` (only when p->wear: either is set). */
static inline __attribute__((always_inline)) bool ret_worn(struct lfpool *p,
                                                           struct lfpool_rec *rec, double now)
{
    /* relaxed: uses has one writer, the holder; expires was written by
     * the creator before the record was first published; a stale record
     * (another hand-out) fails the word compare or the CAS anyway */
    return atomic_load_explicit(&rec->uses, memory_order_relaxed) >= p->max_use ||
           now >= atomic_load_explicit(&rec->expires, memory_order_relaxed);
}

/* End the hand-out `word` (gen | OUT) of a record of this pool: not worn
 * out or expired (one flag, `wear`, when neither is configured), no
 * shutdown, and still OUT in that hand-out (the CAS, which a kill
 * or another ret of the same hand-out would have won).  `owner`: the
 * caller is the thread that got this hand-out (its hint holds `word`, or
 * its handle names it: "owned handles"), which may commit with a plain
 * store while the pool is BIASED (bias.c; everybody else fences before
 * touching an OUT record).  `inl` (the inline paths of lfpool_ret and
 * lfpool_ret_handle) is for owners only.  False: the careful path
 * decides. */
static inline __attribute__((always_inline)) bool ret_fast_commit(struct lfpool *p,
                                                                 struct lfpool_rec *rec,
                                                                 uint32_t word, double now,
                                                                 bool owner, long off, bool inl)
{
    /* word is a hand-out's, gen | OUT (hint_set, handle_set): its CACHED
     * word is one add away */
    uint32_t cached = word + REC_CACHED - REC_OUT;
    if (inl) {
        /* The inline path (ret_inline_ok): no wear, biased returns
         * possible, and shutdown not read before the commit: a ret that
         * passed the admission word before shutdown cleared it (after its
         * flag) commits and pushes, then reads the flag's copy beside the
         * waiter count after the push (gate.shut, in the push's one read:
         * lfpool_gate_attention, LFPOOL_PUT_SHUT) and closes what is
         * available (ret_put_rest), as a ret that raced with the drain
         * always did; shutdown stores the copy before its drain, whose
         * flush (a membarrier) either sees that push or precedes that
         * read, which then sees the copy (the argument of cache.c). */
        (void)owner; /* true: the inline paths are the owners' */
        /* the biased commit checks the mode and the word itself, and
         * stores last_ret only when both passed (never on a record this
         * hand-out no longer holds) */
        if (lfpool_likely(lfpool_pcpu_store2_if_at(off, (const uint32_t *)&p->bias_mode,
                                                   LFPOOL_BIAS_MASK, (uint32_t *)&rec->state,
                                                   word, cached, (uint64_t *)&rec->last_ret,
                                                   lfpool_dbits(now)) == LFPOOL_PCPU_OK))
            return true;
        /* not BIASED, not this hand-out, or aborted: the CAS decides */
        if (rec_load(rec) != word)
            return false;
        atomic_store_explicit(&rec->last_ret, now, memory_order_relaxed);
        return atomic_compare_exchange_strong_explicit(&rec->state, &word, cached,
                                                       memory_order_acq_rel,
                                                       memory_order_acquire);
    }
    /* uses: relaxed, the holder (this hand-out's) is its only writer; the
     * wear test is one flag when neither max_use nor max_lifetime is set */
    if (rec_load(rec) != word || (p->wear && ret_worn(p, rec, now)) ||
        atomic_load_explicit(&p->shutdown, memory_order_relaxed))
        return false;
    /* last_ret before the commit (it publishes it); a stale store here on a
     * record that is OUT for another holder is overwritten by its ret */
    atomic_store_explicit(&rec->last_ret, now, memory_order_relaxed);
    if (owner && lfpool_likely(p->bias) &&
        lfpool_pcpu_store_if_at(off, (const uint32_t *)&p->bias_mode, LFPOOL_BIAS_MASK,
                                (uint32_t *)&rec->state, word, cached) == LFPOOL_PCPU_OK)
        return true;
    /* not BIASED, or the section was aborted: the CAS decides */
    return atomic_compare_exchange_strong_explicit(&rec->state, &word, cached,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* Put a record that ret_fast_commit made CACHED (ours) into this CPU's
 * cache; anything else is a tail call. */
static inline __attribute__((always_inline)) int ret_fast_put(struct lfpool *p,
                                                              struct lfpool_rec *rec, long off)
{
    int r = lfpool_avail_put_local_at(p, rec, off);
    if (lfpool_likely(r == LFPOOL_PUT_DONE)) /* DONE: shutdown not begun */
        return 0;
    return ret_put_rest(p, rec, r);
}
/* The ret's CAS mode (cache.c): on the inline path (p->pcpu known), the
 * plain-store push into this CPU's cache failed - full, not OPEN, or a
 * waiter wants a record handed over.  Try the CAS-mode push (percpu.h: a
 * locked commit, on a CLOSED cache only) right here; anything else is
 * ret_put_after's.  A leaf with tail calls, so that the closed pair pays
 * no prologue.  No read-side section and no control flags, as for the
 * inline push (and get_miss): control's closing leaves the caches SHUT,
 * on which this commit fails, and a push that committed before its flush
 * locked the cache is moved to the stack by that flush.  The locked
 * commit is a full barrier before the read of the waiter count (the
 * store-buffering pair with a waiter's registration and sweep, cache.c);
 * shutdown is read after the push, as on the inline path. */
static LFPOOL_SLOW int ret_put_miss(struct lfpool *p, struct lfpool_rec *rec, int r)
{
    /* ret_put_rest's arguments: the inline path's tail call to either is
     * the same instructions */
    if (r != LFPOOL_PUT_STACK) /* pushed: a waiter to wake, or shutdown (WAKE, SHUT) */
        return ret_put_rest(p, rec, r);
    long off = p->rseq_off;
    if (lfpool_unlikely(lfpool_gate_gift_wanted(&p->gate)))
        return ret_put_after(p, rec, LFPOOL_PUT_STACK);
    for (;;) {
        uint32_t cpu = lfpool_pcpu_cpu_at(off); /* no bound check: a cache per possible CPU */
        r = lfpool_pcpu_push_closed_at(off, &p->caches[cpu], cpu, p->cache_cap, rec);
        if (lfpool_likely(r == LFPOOL_PCPU_OK))
            break;
        if (r == LFPOOL_PCPU_FAIL)
            return ret_put_after(p, rec, LFPOOL_PUT_STACK);
    }
    if (lfpool_unlikely(atomic_load_explicit(&p->gate.waiters, memory_order_seq_cst) > 0))
        return ret_put_after(p, rec, LFPOOL_PUT_WAKE);
    /* shutdown's flag copy beside the waiter count (gate.shut: stored
     * before shutdown's drain), as the inline path reads it after its push */
    if (lfpool_unlikely(atomic_load_explicit(&p->gate.shut, memory_order_relaxed)))
        return ret_put_after(p, rec, LFPOOL_PUT_DONE);
    return 0;
}

/* ret_fast_put on the inline paths (p->pcpu known; gift_wanted clear when
 * the admission word was read: its inline bits, lfpool_life_fast_ret).
 * Only the paths those bits admit call it (lfpool_ret, lfpool_ret_handle,
 * their observed copies and their out-of-line CAS). */
static inline __attribute__((always_inline)) int ret_inline_put(struct lfpool *p,
                                                                struct lfpool_rec *rec, long off)
{
    int r = lfpool_avail_push_local_inline_at(p, rec, off);
    if (lfpool_likely(r == LFPOOL_PUT_DONE)) /* DONE: shutdown not begun */
        return 0;
    return ret_put_miss(p, rec, r);
}

/* The inline paths' biased commit alone (ret_fast_commit's first step,
 * with `inl`): true, the hand-out `word` of rec ended (CACHED, ours);
 * false, not BIASED, not this hand-out, or aborted: ret_inline_cas
 * decides, out of line.  lfpool_ret and lfpool_ret_handle use this pair
 * instead of ret_fast_commit so that the CAS's operands (the state's
 * address, last_ret's value as a double) are not set up before the section
 * on every return (PERFORMANCE, fourth session of 2026-12-05). */
static inline __attribute__((always_inline)) bool ret_biased_commit(struct lfpool *p,
                                                                   struct lfpool_rec *rec,
                                                                   uint32_t word, double now,
                                                                   long off)
{
    return lfpool_likely(lfpool_pcpu_store2_if_at(off, (const uint32_t *)&p->bias_mode,
                                                  LFPOOL_BIAS_MASK, (uint32_t *)&rec->state, word,
                                                  word + REC_CACHED - REC_OUT,
                                                  (uint64_t *)&rec->last_ret,
                                                  lfpool_dbits(now)) == LFPOOL_PCPU_OK);
}
/* The rest of ret_fast_commit's inline step after a failed biased commit
 * (the CAS decides, after a read of the word), then the put; or the
 * careful path (obj, h: the caller's).  A function of its own, a tail
 * call of the inline paths. */
static __attribute__((noinline)) int ret_inline_cas(lfpool *p, struct lfpool_rec *rec,
                                                    uint32_t word, double now, long off, void *obj,
                                                    const lfpool_handle *h)
{
    if (rec_load(rec) == word) {
        atomic_store_explicit(&rec->last_ret, now, memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&rec->state, &word,
                                                    word + REC_CACHED - REC_OUT,
                                                    memory_order_acq_rel, memory_order_acquire))
            return ret_inline_put(p, rec, off);
    }
    return ret_careful(p, obj, h);
}

/* ret's inline path with the recording applies: the admission word's
 * FAST_RET_OBSERVE bit, FAST_RET_INLINE's conditions with returns observed
 * (life.c).  ret_other and ret_handle_other test it first. */
static inline __attribute__((always_inline)) bool ret_inline_observed_ok(struct lfpool *p)
{
    return lfpool_fast_has(p, LFPOOL_FAST_RET_OBSERVE);
}

/* Returns are observed (fast_ret RET_OBSERVED: cfg.hold_histogram, or
 * objects the housekeeper warned about are out; never with a retter or an
 * injected clock, which make the mode RET_CAREFUL) and the pool is READY. */
static inline __attribute__((always_inline)) bool ret_observed_ok(struct lfpool *p)
{
    return atomic_load_explicit(&p->fast_ret, memory_order_relaxed) == RET_OBSERVED &&
           lfpool_fast_has(p, LFPOOL_FAST_RET);
}

/* The fast path's steps for an observed return of hand-out `word` of rec
 * at time `now` (ret_other's: the coarse clock; ret_careful's: the pool's
 * clock, injected or not): the commit, the observation while the record is
 * still ours (CACHED, not in the set), the put.  last_get is read before
 * the commit: the getter wrote it before its hand-out's word, which the
 * commit finds unchanged.  False: nothing done, the careful path decides. */
static inline __attribute__((always_inline)) bool ret_observed(struct lfpool *p, struct lfpool_rec *rec,
                                                               uint32_t word, bool owner, double now)
{
    double got = atomic_load_explicit(&rec->last_get, memory_order_relaxed);
    if (!ret_fast_commit(p, rec, word, now, owner, p->rseq_off, false))
        return false;
    ret_observe(p, rec, word, now - got);
    (void)ret_fast_put(p, rec, p->rseq_off);
    return true;
}

/* The fast path out of line, for a pool where the inline path does not
 * apply (ret_inline_ok: wear, no per-CPU caches or biased returns, returns
 * observed, not READY...): ret_fast_ok, a return hint this thread took at
 * get whose record is still OUT in that hand-out (ret_fast_commit), and
 * room in this CPU's cache; else careful. */
/* The rest of an observed return whose observation was not quick
 * (ret_observe_quick): record it and put the record (CACHED, ours). */
static __attribute__((noinline)) int ret_observed_rest(struct lfpool *p, struct lfpool_rec *rec,
                                                       uint32_t word, double held)
{
    ret_observe(p, rec, word, held);
    return ret_inline_put(p, rec, p->rseq_off);
}

/* The get stamp of the hand-out a commit just ended: read after it, the
 * record being the committer's (CACHED, not in the set: no getter writes
 * it until the push), which leaves the commit's registers free - read
 * before, its value lived across the section and the CAS fallback saved
 * a register (2 instructions a return). */
static inline __attribute__((always_inline)) double ret_got(struct lfpool_rec *rec)
{
    return atomic_load_explicit(&rec->last_get, memory_order_relaxed);
}

/* The inline path's steps with the recording between commit and push
 * (ret_observed's order, with what the observe bit says known), for a pool
 * with the admission word's FAST_RET_OBSERVE bit: a function of its own,
 * a leaf whose other exits are tail calls, so that it saves no registers
 * (in ret_other, whose other paths need them, a return paid 14 instructions
 * of prologue and epilogue). */
static inline __attribute__((always_inline)) int ret_inline_observed_as(lfpool *p, void *obj,
                                                                       bool hold_only)
{
    uint32_t word = 0;
    struct lfpool_rec *rec;
    long off = p->rseq_off;
    if (lfpool_likely(hint_find(p, obj, &rec, &word))) {
        double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
        if (ret_fast_commit(p, rec, word, now, true, off, true)) {
            double got = ret_got(rec);
            if (lfpool_unlikely(!ret_observe_quick(p, rec, word, now, got, hold_only)))
                return ret_observed_rest(p, rec, word, now - got);
            return ret_inline_put(p, rec, off);
        }
    }
    return ret_careful(p, obj, NULL);
}
static __attribute__((noinline)) int ret_inline_observed(lfpool *p, void *obj)
{
    return ret_inline_observed_as(p, obj, false);
}
/* FAST_RET_HOLD: the hold's recording only */
static __attribute__((noinline)) int ret_inline_hold(lfpool *p, void *obj)
{
    return ret_inline_observed_as(p, obj, true);
}

static __attribute__((noinline)) int ret_other(lfpool *p, void *obj)
{
    uint32_t word = 0;
    struct lfpool_rec *rec;
    if (lfpool_likely(p && obj && ret_fast_ok(p)) && lfpool_likely(hint_find(p, obj, &rec, &word)) &&
        ret_fast_commit(p, rec, word, atomic_load_explicit(&p->coarse_now, memory_order_relaxed),
                       true, p->rseq_off, false))
        return ret_fast_put(p, rec, p->rseq_off);
    /* returns observed: the same steps and the observation, here rather
     * than in ret_careful, whose cold copy of them cost as much as the
     * whole fast path (PERFORMANCE, hold histogram) */
    if (p && obj && ret_observed_ok(p) && hint_find(p, obj, &rec, &word))
        return ret_observed(p, rec, word, true,
                            atomic_load_explicit(&p->coarse_now, memory_order_relaxed))
                   ? 0
                   : ret_careful(p, obj, NULL);
    /* not OUT any more (killed, returned twice...), no hint...: careful */
    return ret_careful(p, obj, NULL);
}

/* lfpool_ret where the inline bit is clear: returns observed on the inline
 * path's terms, or ret_other.  A function of its own (two tail calls): in
 * lfpool_ret, the compiler computed the admission word's address before the
 * inline bit's test, for this one's, an instruction more on the inline path. */
static __attribute__((noinline)) int ret_not_inline(lfpool *p, void *obj)
{
    /* p and obj: not NULL (lfpool_ret) */
    if (lfpool_fast_has(p, LFPOOL_FAST_RET_HOLD))
        return ret_inline_hold(p, obj);
    if (ret_inline_observed_ok(p))
        return ret_inline_observed(p, obj);
    return ret_other(p, obj);
}

/* The inline path: the admission word's inline bit, then as ret_other
 * with what that bit says (no wear, biased returns possible) known.
 * Everything else is a tail call, so this stays a leaf with no saved
 * registers. */
int lfpool_ret(lfpool *p, void *obj)
{
    uint32_t word = 0;
    struct lfpool_rec *rec;
    if (lfpool_unlikely(!p || !obj))
        return ret_other(p, obj); /* EINVAL, careful */
    if (lfpool_unlikely(!ret_inline_ok(p)))
        return ret_not_inline(p, obj);
    long off = p->rseq_off;
    if (lfpool_unlikely(!hint_find(p, obj, &rec, &word)))
        return ret_careful(p, obj, NULL); /* no hint */
    /* ret_fast_commit's inline step, its CAS out of line */
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    if (ret_biased_commit(p, rec, word, now, off))
        return ret_inline_put(p, rec, off);
    /* not BIASED, aborted, or not OUT any more (killed, returned
     * twice...): the CAS decides, else careful */
    return ret_inline_cas(p, rec, word, now, off, obj, NULL);
}

/* ret_inline_observed for a handle of this pool that this thread owns
 * (ret_handle_not_inline checked p, h, h->obj, its pool and its owner):
 * the owner's commit, as lfpool_ret_handle's. */
static inline __attribute__((always_inline)) int ret_handle_inline_observed_as(lfpool *p,
                                                                              const lfpool_handle *h,
                                                                              bool hold_only)
{
    struct lfpool_rec *rec = h->priv_rec;
    long off = p->rseq_off;
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    uint32_t word = h->priv_word;
    if (ret_fast_commit(p, rec, word, now, true, off, true)) {
        double got = ret_got(rec);
        if (lfpool_unlikely(!ret_observe_quick(p, rec, word, now, got, hold_only)))
            return ret_observed_rest(p, rec, word, now - got);
        return ret_inline_put(p, rec, off);
    }
    return ret_careful(p, h->obj, h);
}
static __attribute__((noinline)) int ret_handle_inline_observed(lfpool *p, const lfpool_handle *h)
{
    return ret_handle_inline_observed_as(p, h, false);
}
static __attribute__((noinline)) int ret_handle_inline_hold(lfpool *p, const lfpool_handle *h)
{
    return ret_handle_inline_observed_as(p, h, true);
}

/* End the hand-out of h, a handle another thread owns (handle_foreign),
 * with the fast path's steps: the fence and the commit - a CAS, never the
 * biased store, which is the owner's - in one read-side section (bias.c:
 * the fence is a load of the mode while the pool is FENCED, one
 * membarrier when it starts a stretch), then the observation when returns
 * are observed, then the put, after the section (a put that raced with
 * shutdown closes what is available, which waits for grace periods).
 * last_get is read before the commit, as ret_observed reads it.  A
 * handle whose hand-out has ended already (a stale copy, a second return)
 * costs no fence: the careful path refuses it.  False: nothing done, the
 * careful path decides. */
static bool ret_foreign(struct lfpool *p, const lfpool_handle *h, bool observed)
{
    struct lfpool_rec *rec = h->priv_rec;
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    double got = atomic_load_explicit(&rec->last_get, memory_order_relaxed);
    if (rec_load(rec) != h->priv_word)
        return false; /* stale, or returned twice: refused with no fence */
    rcu_read_lock();
    lfpool_bias_fence(p);
    bool ok = ret_fast_commit(p, rec, h->priv_word, now, false, p->rseq_off, false);
    rcu_read_unlock();
    if (!ok)
        return false;
    if (observed)
        ret_observe(p, rec, h->priv_word, now - got);
    (void)ret_fast_put(p, rec, p->rseq_off);
    return true;
}

/* lfpool_ret_handle where its inline path does not apply: a handle this
 * thread does not own - another thread's (fenced: ret_foreign), or one
 * with no owner (an event loop's, or stamped before its getter took its
 * tag: a CAS, no fence) - or a pool the inline bit does not cover (as
 * ret_other: the owner's commit is biased where it may be).  This thread
 * takes its owner tag here if it has none, so that its next gets stamp it
 * ("owned handles").  Anything else: careful. */
static __attribute__((noinline)) int ret_handle_other(lfpool *p, const lfpool_handle *h)
{
    if (lfpool_unlikely(!p || !h || !h->obj || h->priv_rec == NULL || !handle_of(p, h))) {
        if (p && !h) {
            lfpool_log(p, LFPOOL_LOG_ERROR, "ret_handle: NULL handle");
            return EINVAL;
        }
        return ret_careful(p, h ? h->obj : NULL, h);
    }
    (void)owner_tag_get();
    bool fast = ret_fast_ok(p);
    if (lfpool_unlikely(!fast && !ret_observed_ok(p)))
        return ret_careful(p, h->obj, h);
    if (handle_foreign(h))
        return ret_foreign(p, h, !fast) ? 0 : ret_careful(p, h->obj, h);
    bool mine = handle_mine(h);
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    if (fast) {
        if (ret_fast_commit(p, h->priv_rec, h->priv_word, now, mine, p->rseq_off, false))
            return ret_fast_put(p, h->priv_rec, p->rseq_off);
    } else if (ret_observed(p, h->priv_rec, h->priv_word, mine, now)) {
        return 0;
    }
    return ret_careful(p, h->obj, h);
}

/* lfpool_ret_handle of this thread's own handle (lfpool_ret_handle
 * checked p, h, h->obj, its pool and its owner) where the inline bit is
 * clear: returns observed on the inline path's terms, or ret_handle_other
 * (as ret_not_inline). */
static __attribute__((noinline)) int ret_handle_not_inline(lfpool *p, const lfpool_handle *h)
{
    if (lfpool_fast_has(p, LFPOOL_FAST_RET_HOLD))
        return ret_handle_inline_hold(p, h);
    if (ret_inline_observed_ok(p))
        return ret_handle_inline_observed(p, h);
    return ret_handle_other(p, h);
}

/* The handle names the record and the hand-out: no hint, no lookup, from
 * any thread.  The inline path is the owner's (priv_pool the pool's
 * owned_id, priv_owner this thread's tag), as lfpool_ret's is the hint's
 * owner's: the biased commit while the pool is BIASED (bias.c), else a
 * CAS.  A handle of this pool (its id) points at one of its records,
 * type-stable while the pool lives, so reading it is safe even when the
 * handle is stale; the word then differs and the careful path refuses
 * it.  (Its record is not tested against NULL here: a handle with this
 * pool's id was filled whole by a get, handle_set; ret_handle_other still
 * tests it.) */
int lfpool_ret_handle(lfpool *p, const lfpool_handle *h)
{
    if (lfpool_unlikely(!p || !h || !h->obj || h->priv_pool != p->owned_id ||
                        h->priv_owner != owner_tag))
        return ret_handle_other(p, h); /* not ours (or bad arguments) */
    if (lfpool_unlikely(!ret_inline_ok(p)))
        return ret_handle_not_inline(p, h);
    struct lfpool_rec *rec = h->priv_rec;
    long off = p->rseq_off;
    /* ret_fast_commit's inline step, its CAS out of line */
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    if (ret_biased_commit(p, rec, h->priv_word, now, off))
        return ret_inline_put(p, rec, off);
    return ret_inline_cas(p, rec, h->priv_word, now, off, h->obj, h);
}

/* ret with bad arguments, in a fork child or a pool not started, without a
 * usable hint, with a retter or an injected clock, of a worn-out object,
 * after shutdown, or whose fast CAS failed.  With a handle `h` (not NULL),
 * only h's hand-out of obj may end. */
/* A ret through handle h must end h's hand-out and no other: the object may
 * have been returned with a copy of the handle and handed out again.  The
 * generation is kept by every transition of one hand-out (kills too). */
static bool handle_mismatch(const lfpool_handle *h, struct lfpool_rec *rec, uint32_t s)
{
    return h && (rec != h->priv_rec || h->priv_pool == 0 || rec_gen(s) != rec_gen(h->priv_word));
}

/* The checks every careful return starts with: EINVAL for a NULL pool or
 * object (logged as `what`), then the fork check. */
static int ret_enter(lfpool *p, void *obj, const char *what, const char *null_obj)
{
    if (!p || !obj) {
        if (p)
            lfpool_log(p, LFPOOL_LOG_ERROR, "%s: %s", what, null_obj);
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_%s: NULL pool", what);
        return EINVAL;
    }
    if (atomic_load_explicit(&p->lp->life, memory_order_acquire) <= LIFE_RESETTING)
        lfpool_life_fork_check(p);
    return 0;
}

static int ret_end(lfpool *p, void *obj, const lfpool_handle *h, bool use);

static LFPOOL_SLOW int ret_careful(lfpool *p, void *obj, const lfpool_handle *h)
{
    return ret_end(p, obj, h, true);
}

/* A claim the user never saw (an event loop's ticket that nobody took,
 * loop.c), which the fast CAS could not end: ended as a ret would, without
 * the retter, and with no hold observed (it was no use). */
void lfpool_handout_give_back(struct lfpool *p, const lfpool_handle *h)
{
    (void)ret_end(p, h->obj, h, false);
}

/* The careful path; `use`: a user's return (ret_not_out). */
static int ret_end(lfpool *p, void *obj, const lfpool_handle *h, bool use)
{
    struct lfpool_rec *rec;
    if (ret_enter(p, obj, "ret", "NULL object"))
        return EINVAL;
    /* With an injected clock (tests), or returns observed (hold_histogram,
     * warned objects out), the fast path's steps, the time from the pool's
     * clock: the hint or handle, the CAS, the observation while the record
     * is still ours (CACHED, not in the set), this CPU's cache.  last_get
     * is read before the commit: the getter wrote it before its hand-out's
     * word, which the commit finds unchanged. */
    /* The same for an owned handle's return by its owner when its commit
     * on the fast path failed (not this hand-out any more: refused below),
     * or with the clock or observation. */
    bool mine = h && handle_mine(h);
    if (use &&
        (p->cfg.clock || atomic_load_explicit(&p->fast_ret, memory_order_relaxed) == RET_OBSERVED ||
         mine) &&
        !p->cfg.retter && atomic_load_explicit(&p->lp->life, memory_order_acquire) == LIFE_READY) {
        uint32_t word = h ? h->priv_word : 0;
        /* (another thread's owned handle: the general path, which fences) */
        rec = h ? (handle_of(p, h) && !handle_foreign(h) ? h->priv_rec : NULL)
                : hint_get(p, obj, &word);
        if (rec && ret_observed(p, rec, word, h == NULL || mine, lfpool_now(p)))
            return 0;
    }
    rcu_read_lock();
    rec = lfpool_meta_lookup(p, obj);
    uint32_t s = rec ? rec_load(rec) : 0;
    if (lfpool_unlikely(handle_mismatch(h, rec, s)))
        s = 0; /* not this hand-out: as if not out */
    if (lfpool_unlikely(rec_st(s) != REC_OUT))
        return ret_not_out(p, rec, obj, s, !use, use);
    if (use && p->cfg.retter) {
        /* user code runs outside our read-side section; look again after */
        rcu_read_unlock();
        lfpool_call_hook(p, p->cfg.retter, obj, "retter");
        rcu_read_lock();
        rec = lfpool_meta_lookup(p, obj);
        s = rec ? rec_load(rec) : 0;
        if (handle_mismatch(h, rec, s))
            s = 0;
        if (rec_st(s) != REC_OUT)
            return ret_not_out(p, rec, obj, s, true, use);
    }

    /* The CASes below may race with the getter's biased commit (bias.c),
     * unless this thread is that getter (its hint holds the word, or the
     * handle names it) or the hand-out has none (an event loop's handle,
     * or one stamped OWNER_NONE); the fence and the CAS share this
     * read-side section. */
    if (h ? handle_foreign(h) : !hint_owns(p, obj, rec, s))
        lfpool_bias_fence(p);
    double now = lfpool_now(p);
    if (lfpool_unlikely(atomic_load_explicit(&p->shutdown, memory_order_relaxed) ||
                        (p->wear && ret_worn(p, rec, now)))) {
        if (!rec_cas(rec, &s, REC_OUT, REC_DEAD))
            return ret_not_out(p, rec, obj, s, true, use);
        if (use)
            if (use)
        ret_observe(p, rec, s, now - atomic_load_explicit(&rec->last_get, memory_order_relaxed));
        lfpool_meta_del(p, rec);
        rcu_read_unlock();
        lfpool_unreserve(p);
        if (atomic_load(&p->shutdown)) {
            lfpool_log(p, LFPOOL_LOG_INFO, "object %p returned after shutdown: closing it", obj);
            lfpool_close_removed(p, rec);
        } else {
            if (now >= atomic_load_explicit(&rec->expires, memory_order_relaxed)) {
                lfpool_stat_inc(&p->c.nexpired);
                if (p->cfg.log_level >= LFPOOL_LOG_INFO) {
                    char buf[256];
                    lfpool_trace(p, obj, buf, sizeof buf);
                    lfpool_log(p, LFPOOL_LOG_INFO, "expired: %s", buf);
                }
            } else {
                lfpool_stat_inc(&p->c.nwornout);
            }
            lfpool_stat_inc(&p->c.todel);
            lfpool_list_push(&p->pending, rec);
            lfpool_hk_kick(p);
        }
        return 0;
    }

    atomic_store_explicit(&rec->last_ret, now, memory_order_relaxed);
    if (lfpool_unlikely(!rec_cas(rec, &s, REC_OUT, REC_CACHED)))
        return ret_not_out(p, rec, obj, s, true, use);
    if (use)
        ret_observe(p, rec, s, now - atomic_load_explicit(&rec->last_get, memory_order_relaxed));
    if (lfpool_unlikely(lfpool_ctl_flags(p) || lfpool_rec_stale(p, rec))) {
        rcu_read_unlock();
        lfpool_ctl_put(p, rec); /* control.c: back to the set, or closed */
        return 0;
    }
    lfpool_avail_put(p, rec);
    rcu_read_unlock();
    if (lfpool_unlikely(atomic_load_explicit(&p->shutdown, memory_order_relaxed)))
        lfpool_close_available(p); /* raced with shutdown's drain */
    return 0;
}


/* ---- ret_broken: end a hand-out by destroying the object */

/* A housekeeper thread runs (it was started for rounds, max_use or the
 * hold histogram's tick: the same test as the start's, on configuration
 * that never changes). */
static bool has_housekeeper(struct lfpool *p)
{
    return p->delay > 0 || p->cfg.max_use > 0 || p->cfg.hold_histogram;
}

/* End the hand-out `s` (gen | OUT) of rec (obj) by destroying the object.
 * The caller holds rcu_read_lock (released here) and has fenced when the
 * owner's biased commit could race (bias.c).  The CAS OUT -> DEAD decides
 * against a kill or another ret of the same hand-out, as ret's does: the
 * loser's state goes to ret_not_out (KILLED: closed here, ESTALE; else
 * ENOENT).  Then as a worn-out return: out of the table, the capacity
 * released with the gate signalled, the closer after a grace period - on
 * the housekeeper (pending list and a kick; it refills too) or, without
 * one, on this thread (synchronize_rcu, never inside a read-side section
 * or with a lock held), followed by the refill when `refill`.  After
 * shutdown, closed here.  `refill` also says the caller is a user's return
 * (lfpool_ret_broken, not a failed validation): its hold is observed. */
static int ret_destroy(struct lfpool *p, struct lfpool_rec *rec, void *obj, uint32_t s,
                       _Atomic uint64_t *counter, const char *why, bool refill)
{
    double now = refill ? lfpool_now(p) : 0;
    if (!rec_cas(rec, &s, REC_OUT, REC_DEAD))
        return ret_not_out(p, rec, obj, s, true, refill);
    if (refill) /* a user's return (not a failed validation): a hold ends */
        ret_observe(p, rec, s, now - atomic_load_explicit(&rec->last_get, memory_order_relaxed));
    lfpool_meta_del(p, rec);
    rcu_read_unlock();
    hint_drop(p, obj);
    if (counter)
        lfpool_stat_inc(counter);
    if (why && p->cfg.log_level >= LFPOOL_LOG_INFO) {
        char buf[256];
        lfpool_trace(p, obj, buf, sizeof buf);
        lfpool_log(p, LFPOOL_LOG_INFO, "object %s %s: closing it", buf, why);
    }
    lfpool_unreserve(p); /* a waiter may create now */
    if (atomic_load(&p->shutdown) || !has_housekeeper(p)) {
        lfpool_close_removed(p, rec);
        if (refill && !atomic_load(&p->shutdown))
            lfpool_fill(p);
    } else {
        lfpool_stat_inc(&p->c.todel);
        lfpool_list_push(&p->pending, rec);
        lfpool_hk_kick(p); /* reaps, then refills to min_size */
    }
    return 0;
}

static LFPOOL_SLOW int ret_broken(lfpool *p, void *obj, const lfpool_handle *h)
{
    struct lfpool_rec *rec;
    if (ret_enter(p, obj, "ret_broken", "NULL object or handle"))
        return EINVAL;
    rcu_read_lock();
    rec = lfpool_meta_lookup(p, obj);
    uint32_t s = rec ? rec_load(rec) : 0;
    if (handle_mismatch(h, rec, s))
        s = 0; /* not this hand-out: as if not out */
    if (rec_st(s) != REC_OUT)
        return ret_not_out(p, rec, obj, s, true, true); /* retter never runs here */
    /* as ret_careful: the getter's biased commit may race with our CAS
     * unless this thread is that getter (its hint, or the handle names
     * it), or the hand-out has no owner */
    if (h ? handle_foreign(h) : !hint_owns(p, obj, rec, s))
        lfpool_bias_fence(p);
    return ret_destroy(p, rec, obj, s, &p->c.nbroken, "returned broken", true);
}

int lfpool_ret_broken(lfpool *p, void *obj)
{
    return ret_broken(p, obj, NULL);
}

int lfpool_ret_broken_handle(lfpool *p, const lfpool_handle *h)
{
    if (p && !h) {
        lfpool_log(p, LFPOOL_LOG_ERROR, "ret_broken_handle: NULL handle");
        return EINVAL;
    }
    return ret_broken(p, h ? h->obj : NULL, h);
}


/* ---- bulk: lfpool_get_bulk (all n or none), lfpool_ret_bulk
 *
 * A bulk get takes its n objects one by one, as gets with timeout 0 would
 * (the CPU's cache, the shared stack, creation), into handles: a try.  A
 * try that misses one gives back every object it took (no use counted, no
 * retter, no getter: the caller never saw them), so a bulk get never holds
 * objects while it waits, and others' gets are never held up by it.  Then
 * it waits as a get does at max_size - registered on the gate, parked in
 * its FIFO, woken by a grant - and tries again.
 *
 * The wait differs from a single get's in one point: a try that failed has
 * given objects back, and those returns grant the head of the FIFO.  Were
 * the bulk get parked during its try, that could be itself (a busy loop
 * with a flush each turn while fewer than n objects are available).  So it
 * parks after the try and its give-back, and the look a parked get makes
 * after parking (gate.c: no lost wake-up) is replaced by a bounded sleep:
 * a return between the try and the park that did not see it parked is
 * found by the next try at most BULK_POLL_MAX seconds later (the poll
 * starts at BULK_POLL_MIN and doubles while nothing happens).  Grants end
 * the sleep at once, as for any parked get.  A bulk get is not served
 * ahead of single gets: with singles always taking what comes back, it
 * may wait its whole timeout (API.md). */
#define BULK_POLL_MIN 0.0005
#define BULK_POLL_MAX 0.016

/* The bulk fast paths' loops, four objects a step, written out: STEP(i)
 * for the objects at a[i] and b[i] (a record pointer and a handle), the
 * two pointers stepped together; an odd first one alone, then a pair if
 * n & 2, then fours while `more` - so that the loop needs no set-up for a
 * remainder, and its compare, branch and pointer steps are made once per
 * four.  STEP leaves by a goto with a and b at the object it did not end. */
#define BULK_FOUR_A_STEP(n, a, b, more, STEP) \
    if ((n) & 1) {                            \
        STEP(0)                               \
        a += 1, b += 1;                       \
    }                                         \
    if ((n) & 2) {                            \
        STEP(0)                               \
        STEP(1)                               \
        a += 2, b += 2;                       \
    }                                         \
    for (; more; a += 4, b += 4) {            \
        STEP(0)                               \
        STEP(1)                               \
        STEP(2)                               \
        STEP(3)                               \
    }

/* One object for a try, without waiting, into *h: as lfpool_get_handle
 * with timeout 0 - the fast path's pop from this CPU's cache, else the
 * slow path (the shared stack, creation, and before "nothing" a flush of
 * every cache, which is also the look of a registered waiter).  0; EAGAIN:
 * nothing available and no room to create; else get's error. */
static int bulk_take_one(struct lfpool *p, lfpool_handle *h, const void *caller, uint32_t tag)
{
    uint64_t pool = p->id | HANDLE_OWNED;
    if (lfpool_likely(get_fast_ok(p, 0))) {
        struct lfpool_rec *rec = lfpool_avail_pop_local_pcpu(p); /* FAST_GET: pcpu */
        if (lfpool_likely(rec != NULL)) {
            uint32_t w = rec_load(rec); /* acquire: the pusher stored CACHED with release */
            if (lfpool_likely(rec_st(w) == REC_CACHED)) {
                w = get_fast_claim(p, rec, w, caller);
                handle_set_owned(h, rec->obj, rec, w, pool, tag);
                return 0;
            }
            lfpool_avail_bad_state(p, rec, w);
        }
    }
    for (;;) {
        struct lfpool_rec *rec;
        void *o;
        uint32_t word;
        bool fresh = false;
        /* as get_rest: a claim (the shared stack; a flush first when
         * another CPU's cache looks non-empty), unless runtime control is
         * in force (the flags' read and the claim in one read-side
         * section, control.c), then the slow path */
        rcu_read_lock();
        bool ctl = lfpool_unlikely(lfpool_ctl_flags(p) != 0);
        if (!ctl && (rec = get_claim(p, false)) != NULL) {
            o = rec->obj;
            atomic_store_explicit(&rec->caller, caller, memory_order_relaxed);
            /* no return hint: the handle names the owner */
            word = rec_word(atomic_load_explicit(&rec->state, memory_order_relaxed), REC_OUT);
            get_guard_leave(p);
            rcu_read_unlock();
        } else {
            if (!ctl)
                get_guard_leave(p);
            rcu_read_unlock();
            int r = get_slow(p, 0, &o, &rec, &word, &fresh, caller);
            if (r)
                return r;
            hint_drop(p, o); /* the handle names the owner */
        }
        if (lfpool_likely(!p->cfg.validate) || fresh || get_validate(p, rec, o, word)) {
            handle_set_owned(h, o, rec, word, pool, tag);
            return 0;
        }
        /* failed validation: destroyed; look again */
    }
}

/* Up to n hand-outs from this CPU's cache in one rseq section (the run a
 * bulk ret left there, percpu.h), claimed as get's fast path claims one
 * (CACHED -> OUT, a new generation, last_get, a use, the call site) into
 * owned handles; returns how many (1 <= n <= LFPOOL_CACHE_BULK_SLOTS).
 * FAST_GET (get_fast_ok): per-CPU caches, no hook, no CLOSE-kill guard,
 * no injected clock, no validation; the pop's section chooses this CPU's
 * cache itself (lfpool_avail_pop_run_pcpu).
 *
 * Per record the loop is the bookkeeping and nothing else: everything
 * that is the same for the whole run - the clock read, the call site, the
 * pool id | HANDLE_OWNED, the owner tag (already shifted into the upper
 * half of priv_word|priv_owner) - is read or made before it, and the only
 * branch is the state check (rec_st_cached_fast: one test, as get's fast
 * path; a record in another state is a bug, left alone).  Stores: the
 * record's last_get and call site (one 16-byte store where the layout
 * allows it, rec_stamp_get), its state (release: the hand-out, a new
 * generation), its use count (one add), and the handle's four words (the
 * adjacent priv_word and priv_owner in one 8-byte store,
 * handle_set_word_owner).  No record field or handle word is read back by
 * this thread before the caller's return, so none of these wider stores
 * meets a narrower load (the store-forwarding stall of issue 19 was a
 * vector store of two hint fields that ret reads back at once). */
/* bulk_take_cached_at's claim of one popped record into h: true; false, the
 * record is not CACHED (its word in *bad; nothing done: the caller leaves
 * it alone) */
static inline __attribute__((always_inline)) bool bulk_claim_one(struct lfpool_rec *rec,
                                                                 lfpool_handle *h,
                                                                 struct rec_get_stamp stamp,
                                                                 uint64_t pool, uint64_t owner,
                                                                 uint32_t *bad)
{
    uint32_t w = rec_load(rec); /* acquire: the pusher stored CACHED with release */
    if (lfpool_unlikely(!rec_st_cached_fast(w))) {
        *bad = w;
        return false;
    }
    /* lfpool_avail_claim_cached: the next generation, OUT (CACHED in the
     * state bits: one add); last_get (and the call site) before the state,
     * which publishes them */
    uint32_t out = w + ((1u << 4) + REC_OUT - REC_CACHED);
    rec_stamp_get(rec, stamp);
    atomic_store_explicit(&rec->state, out, memory_order_release);
    rec_count_use(rec);
    FIELD_SET(h->obj, rec->obj);
    FIELD_SET(h->priv_rec, (void *)rec);
    FIELD_SET(h->priv_pool, pool);
    handle_set_word_owner(h, owner | out);
    return true;
}

/* The rest of a run from *r, a record whose word `w` is not CACHED (a bug
 * of the state machine, cache.h: reported and left alone, as get leaves
 * it): the records of (r, end) claimed into the handles from h on, each
 * one not CACHED reported and skipped.  Returns the handle after the last
 * one filled. */
static LFPOOL_SLOW lfpool_handle *bulk_claim_rest(struct lfpool *p, struct lfpool_rec **r,
                                                  uint32_t w, struct lfpool_rec **end,
                                                  lfpool_handle *h, struct rec_get_stamp stamp,
                                                  uint64_t pool, uint64_t owner)
{
    lfpool_avail_bad_state(p, *r, w);
    while (++r < end) {
        if (bulk_claim_one(*r, h, stamp, pool, owner, &w))
            h++;
        else
            lfpool_avail_bad_state(p, *r, w);
    }
    return h;
}

static inline __attribute__((always_inline)) size_t bulk_take_cached_at(struct lfpool *p,
                                                                        lfpool_handle *hs,
                                                                        uint32_t n,
                                                                        const void *caller,
                                                                        uint32_t tag)
{
    struct lfpool_rec *run[LFPOOL_CACHE_BULK_SLOTS];
    uint32_t k = lfpool_avail_pop_run_pcpu(p, run, n, p->rseq_off);
    uint64_t pool = p->owned_id;
    uint64_t owner = (uint64_t)tag << 32;
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    struct rec_get_stamp stamp = rec_get_stamp_make(now, caller);
    lfpool_handle *h = hs;
    struct lfpool_rec **r = run, **end = run + k;
    uint32_t bad;
    /* four a step (BULK_FOUR_A_STEP); a record not CACHED ends the loop
     * (at r[i], h + i), the rest of the run is bulk_claim_rest's */
#define BULK_CLAIM(i)                                                                  \
    if (lfpool_unlikely(!bulk_claim_one(r[i], h + (i), stamp, pool, owner, &bad))) { \
        r += (i), h += (i);                                                            \
        goto rest;                                                                     \
    }
    BULK_FOUR_A_STEP(k, r, h, r < end, BULK_CLAIM)
#undef BULK_CLAIM
    return (size_t)(h - hs);
rest:
    return (size_t)(bulk_claim_rest(p, r, bad, end, h, stamp, pool, owner) - hs);
}
/* bulk_take_cached_at for a try (bulk_try): its own copy, out of line */
static __attribute__((noinline)) size_t bulk_take_cached(struct lfpool *p, lfpool_handle *hs,
                                                         size_t n, const void *caller, uint32_t tag)
{
    return bulk_take_cached_at(p, hs,
                               n < LFPOOL_CACHE_BULK_SLOTS ? (uint32_t)n : LFPOOL_CACHE_BULK_SLOTS,
                               caller, tag);
}

/* Give back one hand-out a try took: not a use, no retter, no observation.
 * The record is touched only while the hand-out is still ours: the CAS of
 * its word OUT -> CACHED (this thread owns the hand-out: no biased commit
 * of another thread can race with it, bias.c) makes it ours alone, and only then is the
 * use taken back, before the record goes to the set as a ret's would
 * (ret_fast_put: this CPU's cache, else the stack and the gate, and the
 * shutdown check).  Killed meanwhile: DEFER leaves it KILLED, the holder's
 * to end (the use taken back, then closed as a ret would, ret_not_out);
 * CLOSE has closed it and may have reused the record, which is then not
 * touched: the take is counted in uses_undone instead. */
static void bulk_undo_one(struct lfpool *p, const lfpool_handle *h)
{
    struct lfpool_rec *rec = h->priv_rec;
    uint32_t w = h->priv_word;
    rcu_read_lock(); /* ret_not_out's lookup and close run in it */
    if (rec_cas(rec, &w, REC_OUT, REC_CACHED)) {
        uint64_t u = atomic_load_explicit(&rec->uses, memory_order_relaxed);
        atomic_store_explicit(&rec->uses, u - 1, memory_order_relaxed);
        rcu_read_unlock();
        (void)ret_fast_put(p, rec, p->rseq_off);
        return;
    }
    if (rec_st(w) == REC_KILLED && rec_gen(w) == rec_gen(h->priv_word)) {
        uint64_t u = atomic_load_explicit(&rec->uses, memory_order_relaxed);
        atomic_store_explicit(&rec->uses, u - 1, memory_order_relaxed);
        (void)ret_not_out(p, rec, h->obj, w, true, false); /* closes it; unlocks */
        return;
    }
    /* CLOSE-killed: the record is not ours any more (its reaper moves its
     * uses to dead_uses, and it may serve another object): the take is
     * taken back from nuses apart, as a failed validation's is */
    rcu_read_unlock();
    lfpool_stat_inc(&p->c.uses_undone);
}

static void bulk_undo(struct lfpool *p, const lfpool_handle *hs, size_t k)
{
    for (size_t i = 0; i < k; i++)
        bulk_undo_one(p, &hs[i]);
}

/* One try: all n into hs, or none (what it took given back).  0, EAGAIN, or
 * a creation error.  `i`: hs[0, i) are already this try's (lfpool_get_bulk's
 * fast path popped them), `popped`: that pop was made (even if it found
 * nothing), so the try does not pop again. */
static int bulk_try(struct lfpool *p, lfpool_handle *hs, size_t n, const void *caller, size_t i,
                    bool popped)
{
    uint32_t tag = owner_tag_get();
    if (!popped && lfpool_likely(get_fast_ok(p, 0)))
        i = bulk_take_cached(p, hs, n, caller, tag);
    for (; i < n; i++) {
        int r = bulk_take_one(p, &hs[i], caller, tag);
        if (lfpool_unlikely(r != 0)) {
            bulk_undo(p, hs, i);
            return r;
        }
    }
    return 0;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The wait of a bulk get whose first try failed (header above). */
static int bulk_wait(struct lfpool *p, lfpool_handle *hs, size_t n, double timeout,
                     const void *caller)
{
    if (p->cfg.max_waiters) {
        if (!lfpool_gate_wait_begin_bounded(&p->gate, p->cfg.max_waiters))
            return EBUSY;
    } else {
        lfpool_gate_wait_begin(&p->gate);
    }
    double wait_since = lfpool_now_fresh(p); /* counted as a get's wait (obs) */
    struct timespec deadline, wake;
    bool bounded = !isinf(timeout), slept = false, last = false;
    if (bounded)
        lfpool_abs_deadline(timeout, &deadline);
    double poll = BULK_POLL_MIN;
    struct lfpool_gate_node node = {.async = false}; /* a sleeper, not a ticket */
    int r;
    for (;;) {
        if (atomic_load(&p->shutdown)) {
            r = ESHUTDOWN;
            break;
        }
        r = bulk_try(p, hs, n, caller, 0, false); /* a miss flushes: the look of a waiter */
        if (r != EAGAIN || last)
            break;
        lfpool_abs_deadline(poll, &wake);
        if (bounded && !ts_before(&wake, &deadline)) {
            wake = deadline;
            last = true; /* one more try after this sleep, then ETIMEDOUT */
        }
        /* never asks for a hand-over, nor is handed one unasked */
        lfpool_gate_park(&p->gate, &node, false, false);
        slept = true;
        if (lfpool_gate_sleep(&p->gate, &node, &wake) == 0) {
            poll = BULK_POLL_MIN; /* granted: something came back */
            last = last && lfpool_deadline_passed(&deadline);
        } else if (poll < BULK_POLL_MAX) {
            poll *= 2;
        }
    }
    if (r == EAGAIN)
        r = ETIMEDOUT;
    lfpool_gate_wait_end(&p->gate, slept);
    get_wait_done(p, wait_since, r);
    return r;
}

/* lfpool_get_bulk's refusals, out of line: logged, EINVAL */
static LFPOOL_SLOW int get_bulk_invalid(lfpool *p, const lfpool_handle *hs, size_t n,
                                        double timeout)
{
    if (!p)
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_get_bulk: NULL pool");
    else if (!hs && n)
        lfpool_log(p, LFPOOL_LOG_ERROR, "get_bulk: NULL handles");
    else
        lfpool_log(p, LFPOOL_LOG_ERROR, "get_bulk: invalid timeout %g", timeout);
    return EINVAL;
}
static LFPOOL_SLOW int get_bulk_too_many(lfpool *p, size_t n, size_t limit)
{
    lfpool_log(p, LFPOOL_LOG_ERROR, "get_bulk: %zu objects from a pool of at most %zu", n, limit);
    return EINVAL;
}

/* lfpool_get_bulk after its checks, unless its fast path took all n: the
 * try (from hs[k] on: the fast path popped hs[0, k); `popped`, it made
 * that pop), the wait, the getter hook. */
static __attribute__((noinline)) int bulk_get_rest(lfpool *p, lfpool_handle *hs, size_t n,
                                                   double timeout, const void *caller, size_t k,
                                                   bool popped)
{
    if (n == 0)
        return 0;
    if (timeout == LFPOOL_DEFAULT)
        timeout = p->cfg.timeout;
    int r = bulk_try(p, hs, n, caller, k, popped);
    if (r == EAGAIN && timeout > 0)
        r = bulk_wait(p, hs, n, timeout, caller);
    if (r)
        return r;
    if (p->cfg.getter)
        for (size_t i = 0; i < n; i++)
            lfpool_call_hook(p, p->cfg.getter, hs[i].obj, "getter");
    return 0;
}

/* The checks in their order - arguments, the size in force, the life
 * word, shutdown - then the fast path: a run of n <= LFPOOL_CACHE_BULK_SLOTS
 * from this CPU's cache (bulk_take_cached_at) when the admission word says
 * FAST_GET (then no getter hook: fast_get) and this thread has its owner
 * tag; all n there is the whole call.  Anything else (a run short of n, a
 * larger n, no tag yet, no fast path, n == 0) is bulk_get_rest's, out of
 * line, with what the run took. */
int lfpool_get_bulk(lfpool *p, lfpool_handle *hs, size_t n, double timeout)
{
    /* timeout >= 0 (not NaN) or LFPOOL_DEFAULT */
    if (lfpool_unlikely(!p || (!hs && n) || !get_timeout_ok(timeout)))
        return get_bulk_invalid(p, hs, n, timeout);
    size_t max = lfpool_max_size(p); /* in force now (lfpool_set_size) */
    size_t limit = max ? max : SIZE_MAX;
    if (lfpool_unlikely(n > limit)) /* could not be satisfied at this size: refused at once */
        return get_bulk_too_many(p, n, limit);
    if (lfpool_unlikely(atomic_load_explicit(&p->lp->life, memory_order_acquire) != LIFE_READY)) {
        int r = lfpool_life_make_ready(p);
        if (r)
            return r;
    }
    if (lfpool_unlikely(atomic_load_explicit(&p->shutdown, memory_order_relaxed)))
        return ESHUTDOWN;
    const void *caller = __builtin_return_address(0); /* the call site (obs) */
    uint32_t tag = owner_tag; /* 0: none yet, bulk_try takes it */
    if (lfpool_likely(n - 1 < LFPOOL_CACHE_BULK_SLOTS && tag != 0) &&
        lfpool_likely(lfpool_fast_has(p, LFPOOL_FAST_GET))) {
        size_t k = bulk_take_cached_at(p, hs, (uint32_t)n, caller, tag);
        if (lfpool_likely(k == n))
            return 0;
        return bulk_get_rest(p, hs, n, timeout, caller, k, true);
    }
    return bulk_get_rest(p, hs, n, timeout, caller, 0, false);
}

/* Put a run of records that ret_fast_commit made CACHED (ours) into the
 * set: this CPU's cache, as many as fit (lfpool_avail_put_run, one rseq
 * section), then a waiter woken per record if any wait; the rest as a
 * single return's that misses its cache (ret_put_rest: the stack, runtime
 * control, the gate, the shutdown check).  ret_bulk_put_after: what
 * follows the push (`put` of the m went in; `wake`, a waiter was seen
 * after it). */
static void ret_bulk_put_after(struct lfpool *p, struct lfpool_rec **run, uint32_t m,
                               uint32_t put, bool wake)
{
    for (uint32_t j = 0; lfpool_unlikely(wake) && j < put; j++)
        lfpool_gate_wake(&p->gate, false); /* returns at once when nobody is parked */
    for (uint32_t j = put; j < m; j++)
        ret_put_rest(p, run[j], LFPOOL_PUT_STACK);
    if (put == m && lfpool_unlikely(atomic_load_explicit(&p->shutdown, memory_order_relaxed)))
        lfpool_close_available(p); /* raced with shutdown's drain */
}
static void ret_bulk_put(struct lfpool *p, struct lfpool_rec **run, uint32_t m, long off)
{
    bool wake;
    uint32_t put = lfpool_avail_put_run(p, run, m, off, &wake);
    ret_bulk_put_after(p, run, m, put, wake);
}
/* ret_bulk_put on the bulk ret's inline path (p->pcpu known, 1 <= m <=
 * LFPOOL_CACHE_BULK_SLOTS): the same steps, the push's section choosing
 * its cache (lfpool_avail_put_run_pcpu); the common end - all m in, no
 * waiter, no shutdown (read after the push, as ret_bulk_put_after reads
 * it) - inline, the rest ret_bulk_put_after's (which reads shutdown
 * again: a later read). */
static inline __attribute__((always_inline)) void ret_bulk_put_inline(struct lfpool *p,
                                                                      struct lfpool_rec **run,
                                                                      uint32_t m, long off)
{
    bool wake;
    uint32_t put = lfpool_avail_put_run_pcpu(p, run, m, off, &wake);
    if (lfpool_likely(put == m && !wake) &&
        lfpool_likely(!atomic_load_explicit(&p->shutdown, memory_order_relaxed)))
        return;
    ret_bulk_put_after(p, run, m, put, wake);
}

/* lfpool_ret_bulk when ret's fast path applies (ret_fast_ok): each hand-out
 * is ended as lfpool_ret_handle's fast path ends one (ret_fast_commit:
 * the word, wear, shutdown, last_ret, the commit), and the records go to
 * this CPU's cache in runs (ret_bulk_put).  The hand-outs this thread owns
 * (its bulk get's handles) end with the biased commit (bias.c), last_ret
 * stored in its section; shutdown and the mode are looked at once for the
 * run (the section reads the mode again, and a shutdown after the look is
 * seen after the push, as by a single ret).  A handle the fast
 * commit refuses (another thread's, stale, killed, worn out...) goes to
 * lfpool_ret_handle after the run before it is put away.  Returns the
 * first error. */
/* One handle of ret_bulk_fast that its quick path did not end: the fast
 * commit of lfpool_ret_handle (this thread's own hand-out too, by the
 * biased commit or a CAS), the record added to the run; else the run so
 * far is put away and lfpool_ret_handle decides.  Returns the run's new
 * length. */
static LFPOOL_SLOW uint32_t ret_bulk_other(struct lfpool *p, const lfpool_handle *h,
                                           struct lfpool_rec **run, uint32_t m, long off,
                                           double now, int *first)
{
    struct lfpool_rec *rec = h->priv_rec;
    bool owner = h->priv_pool == (p->id | HANDLE_OWNED) && h->priv_owner == owner_tag;
    if (h->obj && rec && (owner || h->priv_pool == p->id) &&
        ret_fast_commit(p, rec, h->priv_word, now, owner, off, false)) {
        run[m++] = rec;
        return m;
    }
    if (m)
        ret_bulk_put(p, run, m, off);
    int r = lfpool_ret_handle(p, h);
    if (r != 0 && *first == 0)
        *first = r;
    return 0;
}

/* One handle of the quick loops (ret_bulk_quick, ret_bulk_inline): ours
 * (this pool's id | HANDLE_OWNED, our tag: a bulk get's handle, priv_rec
 * set), not worn out (only checked with `wear`, p->wear, a constant in
 * each caller's copy), and ended by the biased commit (one section: the
 * mode BIASED, the record's word still this hand-out's, last_ret, the
 * commit of CACHED - REC_OUT -> REC_CACHED in the state bits, the
 * generation kept: one add, as ret_fast_commit, a hand-out's word being
 * gen | OUT); then its record goes to *r.  False: not ended (nothing
 * stored), for the caller's rest. */
static inline __attribute__((always_inline)) bool
ret_bulk_commit_owned(struct lfpool *p, const lfpool_handle *h, struct lfpool_rec **r,
                      uint64_t mine, uint32_t tag, const uint32_t *mode, long off, double now,
                      uint64_t stamp, bool wear)
{
    struct lfpool_rec *rec = h->priv_rec;
    uint32_t word = h->priv_word;
    if (lfpool_likely(h->priv_pool == mine && h->priv_owner == tag && h->obj != NULL) &&
        lfpool_likely(!wear || !ret_worn(p, rec, now)) &&
        lfpool_likely(lfpool_pcpu_store2_if_at(off, mode, LFPOOL_BIAS_MASK, (uint32_t *)&rec->state,
                                               word, word + (REC_CACHED - REC_OUT),
                                               (uint64_t *)&rec->last_ret, stamp) ==
                      LFPOOL_PCPU_OK)) {
        *r = rec;
        return true;
    }
    return false;
}

/* The quick loop of ret_bulk_fast over handles [h, stop): the owner's
 * biased commit of each of its own hand-outs, the record appended to
 * run[m...] (m: the run's length so far); anything else goes to
 * ret_bulk_other.  Returns the run's length.  `wear` is p->wear, a
 * constant in each of the two copies the caller makes: the commit's
 * section is an asm with a memory clobber, after which the compiler would
 * load p->wear again for every handle.
 *
 * Per handle: the quick checks (this pool's id | HANDLE_OWNED, our owner
 * tag, an object: a handle of our bulk get, its record set), then one
 * rseq section (lfpool_pcpu_store2_if_at: the mode BIASED, the record's
 * word still this hand-out's, last_ret, the commit of CACHED) and the
 * record's pointer in the run.  Each commit stays its own section: one
 * section committing several records could not tell, after an abort,
 * which of them it had already made CACHED from a double return's
 * CACHED word of the same generation (DESIGN §4.2). */
static inline __attribute__((always_inline)) uint32_t
ret_bulk_quick(struct lfpool *p, const lfpool_handle *h, const lfpool_handle *stop,
               struct lfpool_rec **run, uint32_t m, long off, double now, uint32_t tag, bool wear,
               int *first)
{
    const uint32_t *mode = (const uint32_t *)&p->bias_mode;
    uint64_t mine = p->owned_id;
    uint64_t stamp = lfpool_dbits(now);
    struct lfpool_rec **r = run + m;
    LFPOOL_UNROLL2
    for (; h < stop; h++) {
        if (ret_bulk_commit_owned(p, h, r, mine, tag, mode, off, now, stamp, wear))
            r++;
        else
            r = run + ret_bulk_other(p, h, run, (uint32_t)(r - run), off, now, first);
    }
    return (uint32_t)(r - run);
}

static int ret_bulk_fast(struct lfpool *p, const lfpool_handle *hs, size_t n)
{
    struct lfpool_rec *run[LFPOOL_CACHE_BULK_SLOTS];
    int first = 0;
    long off = lfpool_pcpu_off();
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    uint32_t tag = owner_tag; /* 0 (none yet) matches no handle */
    bool quick = p->bias &&
                 (atomic_load_explicit(&p->bias_mode, memory_order_relaxed) & LFPOOL_BIAS_MASK) == 0 &&
                 !atomic_load_explicit(&p->shutdown, memory_order_relaxed);
    bool wear = p->wear;
    for (const lfpool_handle *h = hs, *end = hs + n; h < end;) {
        const lfpool_handle *stop = end - h > LFPOOL_CACHE_BULK_SLOTS ? h + LFPOOL_CACHE_BULK_SLOTS : end;
        uint32_t m = 0;
        if (lfpool_likely(quick && !wear)) {
            m = ret_bulk_quick(p, h, stop, run, 0, off, now, tag, false, &first);
        } else if (quick) {
            m = ret_bulk_quick(p, h, stop, run, 0, off, now, tag, true, &first);
        } else {
            for (const lfpool_handle *g = h; g < stop; g++)
                m = ret_bulk_other(p, g, run, m, off, now, &first);
        }
        h = stop;
        if (m)
            ret_bulk_put(p, run, m, off);
    }
    return first;
}

/* ret_bulk_inline's handles from h on, h the first its quick loop did not
 * end (run[0, m) are the ones before it, CACHED): as ret_bulk_fast goes on
 * from there (quick, no wear) - ret_bulk_other for h, the quick loop for
 * the rest - then the put.  Returns the first error. */
static __attribute__((noinline)) int ret_bulk_inline_rest(struct lfpool *p, const lfpool_handle *h,
                                                          const lfpool_handle *end,
                                                          struct lfpool_rec **run, uint32_t m,
                                                          long off, double now, uint32_t tag)
{
    int first = 0;
    m = ret_bulk_other(p, h, run, m, off, now, &first);
    m = ret_bulk_quick(p, h + 1, end, run, m, off, now, tag, false, &first);
    if (m)
        ret_bulk_put(p, run, m, off);
    return first;
}

/* lfpool_ret_bulk of 1 <= n <= LFPOOL_CACHE_BULK_SLOTS handles when the
 * admission word says FAST_RET_INLINE (ret_fast_ok's conditions, per-CPU
 * caches, p->bias, no wear): ret_bulk_fast's steps for one run, straight
 * line.  The pool's mode and shutdown are read once, as there (not BIASED,
 * or shut down: ret_bulk_fast, which reads them again); then the quick
 * loop (ret_bulk_quick's checks and biased commit, one section per
 * handle) until a handle it does not end, from which ret_bulk_inline_rest
 * goes on out of line; then the put. */
static inline __attribute__((always_inline)) int ret_bulk_inline(struct lfpool *p,
                                                                 const lfpool_handle *hs,
                                                                 uint32_t n)
{
    struct lfpool_rec *run[LFPOOL_CACHE_BULK_SLOTS];
    const uint32_t *mode = (const uint32_t *)&p->bias_mode;
    if (lfpool_unlikely((atomic_load_explicit(&p->bias_mode, memory_order_relaxed) &
                         LFPOOL_BIAS_MASK) != 0 ||
                        atomic_load_explicit(&p->shutdown, memory_order_relaxed)))
        return ret_bulk_fast(p, hs, n);
    long off = p->rseq_off;
    double now = atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
    uint32_t tag = owner_tag; /* 0 (none yet) matches no handle */
    uint64_t mine = p->owned_id;
    uint64_t stamp = lfpool_dbits(now);
    struct lfpool_rec **r = run;
    const lfpool_handle *h = hs, *end = hs + n;
    /* four a step (BULK_FOUR_A_STEP); a handle not ended leaves the loop
     * with h and r at it (h + i), the rest is ret_bulk_inline_rest's */
#define RET_BULK_COMMIT(i)                                                                 \
    if (lfpool_unlikely(                                                                   \
            !ret_bulk_commit_owned(p, h + (i), r + (i), mine, tag, mode, off, now, stamp, false))) { \
        h += (i), r += (i);                                                                \
        goto rest;                                                                         \
    }
    BULK_FOUR_A_STEP(n, r, h, h < end, RET_BULK_COMMIT)
#undef RET_BULK_COMMIT
    ret_bulk_put_inline(p, run, n, off);
    return 0;
rest:
    return ret_bulk_inline_rest(p, h, end, run, (uint32_t)(r - run), off, now, tag);
}

/* lfpool_ret_bulk without its inline path: ret_bulk_fast when ret's fast
 * path applies, else each handle as lfpool_ret_handle. */
static __attribute__((noinline)) int ret_bulk_not_inline(lfpool *p, const lfpool_handle *hs,
                                                         size_t n)
{
    if (lfpool_likely(ret_fast_ok(p)))
        return ret_bulk_fast(p, hs, n);
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int r = lfpool_ret_handle(p, &hs[i]);
        if (lfpool_unlikely(r != 0) && first == 0)
            first = r;
    }
    return first;
}

static LFPOOL_SLOW int ret_bulk_invalid(lfpool *p)
{
    if (!p)
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_ret_bulk: NULL pool");
    else
        lfpool_log(p, LFPOOL_LOG_ERROR, "ret_bulk: NULL handles");
    return EINVAL;
}

int lfpool_ret_bulk(lfpool *p, const lfpool_handle *hs, size_t n)
{
    if (lfpool_unlikely(!p || (!hs && n)))
        return ret_bulk_invalid(p);
    if (lfpool_likely(n - 1 < LFPOOL_CACHE_BULK_SLOTS) && lfpool_likely(ret_inline_ok(p)))
        return ret_bulk_inline(p, hs, (uint32_t)n);
    return ret_bulk_not_inline(p, hs, n);
}
