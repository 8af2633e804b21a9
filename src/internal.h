/*
 * internal.h - the pool's private structures, shared by the components.
 *
 * Owns: the layout of `struct lfpool` (hot fields first, each writer on its
 * own cache line), of the per-object record `struct lfpool_rec`, and the
 * record state machine below, which every component obeys; what is
 * truly shared: the record, its state word, the counters, and each
 * component's prototypes (the available set's, with its inline fast path,
 * are in cache.h beside cache.c).
 *
 * Record states and who may change them.  Transitions between threads are
 * CAS on rec->state (the winner owns the record for what follows); a few
 * are plain stores by the record's sole owner (NEW -> OUT|CACHED by its
 * creator, CACHED -> OUT|AVAIL by the cache's popper or flusher,
 * BORROWED -> AVAIL|DEAD_SET by the health checker, the release):
 *
 *   CACHED    available, owned by a per-CPU cache (or by the thread about
 *             to push it there): nobody claims it in place.  Set by ret's
 *             CAS OUT -> CACHED (which a kill's CAS loses to) and by a
 *             creator's store.  CACHED -> OUT by the thread that popped it
 *             from a cache (a plain store: it is the only owner);
 *             CACHED -> AVAIL by an owner that moves it to the shared stack
 *             (cache full or locked, flush).
 *   AVAIL     in the shared stack exactly once, free to take.
 *                                           AVAIL -> OUT        (a getter)
 *                                           AVAIL -> BORROWED   (health check)
 *                                           AVAIL -> DEAD_SET   (idle recycling)
 *   OUT       held by a user, not in the set.  OUT -> CACHED    (ret)
 *                                           OUT -> DEAD         (ret: worn out,
 *                                                                shutdown)
 *                                           OUT -> DEAD_UNCOUNTED (kill CLOSE: DEAD
 *                                                                whose uses the reaper
 *                                                                counts, after the
 *                                                                grace period)
 *                                           CACHED -> DEAD      (its owner, when
 *                                                                control closes it
 *                                                                instead: control.c)
 *                                           (and AVAIL -> DEAD: shutdown closing
 *                                            the set, lfpool_close_available)
 *                                           OUT -> KILLED       (kill DEFER)
 *   BORROWED  still physically in the set (a tombstone others step over),
 *             held by the health checker.   BORROWED -> AVAIL | DEAD_SET
 *   DEAD_SET  removed from the pool and from the table, still physically in
 *             the set; whoever pops it hands it to the zombie list.
 *   KILLED    killed while out (DEFER); still in the table so that the
 *             holder's ret finds it.         KILLED -> DEAD     (ret, free)
 *   DEAD      removed, not in the set; on its way to closer and release.
 *   NEW       just created, opener running: in the table (so a duplicate
 *             pointer is refused) but neither available, in use nor
 *             killable.              NEW -> OUT (get) | CACHED (fill), by the
 *                                    creating thread only
 *
 * Invariants: a record is physically in the set at most once (only the
 * thread that popped it, or that moved it into AVAIL, pushes it); a record
 * is in the hash table from creation until the transition that removes it
 * from the pool; it is released (to the pool's record free list, for reuse)
 * only after an RCU grace period that follows both its table removal and
 * its last pop from the set; record memory is type-stable and returns to
 * malloc only in lfpool_free() (meta.c).
 */
#ifndef LFPOOL_INTERNAL_H
#define LFPOOL_INTERNAL_H

#define _LGPL_SOURCE 1 /* inline urcu-bp read-side fast paths (LGPL lib) */

#include "lfpool.h"
#include "histogram.h"
#include "percpu.h"

#include <ck_stack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#define LFPOOL_CACHELINE 64
#define LFPOOL_ALIGNED __attribute__((aligned(LFPOOL_CACHELINE)))
#define lfpool_likely(x) __builtin_expect(!!(x), 1)
#define lfpool_unlikely(x) __builtin_expect(!!(x), 0)

#ifdef LFPOOL_BUILDING
#define LFPOOL_INTERNAL __attribute__((visibility("hidden")))
#else
#define LFPOOL_INTERNAL
#endif

/* LFPOOL_ASSERT(cond): a state-machine invariant.  With LFPOOL_DEBUG (the
 * debug, test and sanitizer builds, meson.build) a false `cond` prints
 * file:line and the expression, then aborts; otherwise it compiles to
 * nothing (`cond` is not evaluated).  Slow paths only: the fast paths must
 * compile the same in every build. */
#ifdef LFPOOL_DEBUG
LFPOOL_INTERNAL void lfpool_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn, cold));
#define LFPOOL_ASSERT(cond) \
    (__builtin_expect(!!(cond), 1) ? (void)0 : lfpool_assert_fail(#cond, __FILE__, __LINE__))
#else
#define LFPOOL_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

/* ThreadSanitizer cannot see stores made by inline assembly (the commit
 * of a biased return, the use count's add): under it every return CASes,
 * and the C11 forms are used. */
#if defined(__SANITIZE_THREAD__)
#define LFPOOL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LFPOOL_TSAN 1
#endif
#endif
#ifndef LFPOOL_TSAN
#define LFPOOL_TSAN 0
#endif

enum lfpool_rec_state {
    REC_AVAIL = 1,
    REC_OUT,
    REC_BORROWED,
    REC_DEAD_SET,
    REC_KILLED,
    REC_DEAD,
    REC_NEW,
    REC_CACHED,
    REC_DEAD_UNCOUNTED, /* DEAD by a CLOSE kill: its uses join dead_uses at reap */
};

/* One record per object; 88 bytes (a 96-byte malloc chunk, as 80 would be).  `entry` links the record into the
 * shared stack while it is in the set, and into the pending/zombie lists
 * after it left it (never both at once). */
struct lfpool_rec {
    struct cds_lfht_node node; /* meta table (key: obj) */
    ck_stack_entry_t entry;    /* shared stack / pending / zombie link */
    void *obj;
    _Atomic uint32_t state;
    uint16_t born;      /* eviction epoch at publication (control.c); owner-written */
    /* the hand-out the housekeeper warned about: rec_warn_tag() of its
     * word, 0 if none; the returner that finds its own tag here logs the
     * hold once (handout.c); the walk clears it on records not out */
    _Atomic uint16_t warned;
    _Atomic uint64_t uses;      /* written by the holder only */
    _Atomic double last_get;    /* written by the holder only */
    /* where the get of the current hand-out was called from (its return
     * address), stored by the getter; read by warn lines and the JSON.
     * Beside last_get: a bulk get stores both with one 16-byte store
     * (rec_stamp_get) */
    _Atomic(const void *) caller;
    _Atomic double last_ret;    /* written by the returner before AVAIL */
    _Atomic double expires;     /* end of its lifetime (max_lifetime), INFINITY
                                   without one; written by its creator while NEW */
    struct lfpool_rec *all_next; /* every record ever allocated (meta.c) */
    /* Only in the records of a pool with cfg.hold_histogram, which meta.c
     * allocates one word longer: its hand-outs' holds of 0 s ended on ret's
     * inline path, bucket 0 of the hold histogram (histogram.h); written by
     * the returner only, while the record is CACHED and not yet in the set */
    _Atomic uint64_t hold_zero[];
};
_Static_assert(sizeof(struct lfpool_rec) == 88, "records fit a 96-byte malloc chunk");
_Static_assert(offsetof(struct lfpool_rec, caller) == offsetof(struct lfpool_rec, last_get) + 8 &&
                   offsetof(struct lfpool_rec, last_get) % 16 == 0,
               "last_get and caller: one 16-byte-aligned pair (rec_stamp_get)");

/* last_get and the call site of a hand-out, as one 16-byte value, made once
 * for a run of hand-outs that share both (a bulk get's), then stored into
 * each record with one store (rec_stamp_get).  On x86-64 one 16-byte SSE
 * store (movups: records come from calloc, 16-byte aligned under glibc,
 * but nothing faults if one is not): each 8-byte half is written as an
 * aligned 8-byte access, which is all the readers (the housekeeper, the
 * JSON, warn lines: relaxed 8-byte loads of one field) need; both fields
 * are the holder's to write, and the store is ordered before the state
 * word's release store (an asm memory output; TSO) like the two stores it
 * replaces.  Under
 * ThreadSanitizer (which cannot see the store) and elsewhere, the two
 * relaxed stores. */
#if defined(__x86_64__) && !LFPOOL_TSAN
struct rec_get_stamp {
    __attribute__((vector_size(16))) long long v;
};
static inline struct rec_get_stamp rec_get_stamp_make(double now, const void *caller)
{
    uint64_t t;
    __builtin_memcpy(&t, &now, sizeof t);
    return (struct rec_get_stamp){.v = {(long long)t, (long long)(uintptr_t)caller}};
}
static inline __attribute__((always_inline)) void rec_stamp_get(struct lfpool_rec *r,
                                                                struct rec_get_stamp s)
{
    struct __attribute__((may_alias)) pair {
        char b[16];
    };
    __asm__("movups %[v], %[m]" : [m] "=m"(*(struct pair *)&r->last_get) : [v] "x"(s.v));
}
#else
struct rec_get_stamp {
    double now;
    const void *caller;
};
static inline struct rec_get_stamp rec_get_stamp_make(double now, const void *caller)
{
    return (struct rec_get_stamp){.now = now, .caller = caller};
}
static inline void rec_stamp_get(struct lfpool_rec *r, struct rec_get_stamp s)
{
    atomic_store_explicit(&r->last_get, s.now, memory_order_relaxed);
    atomic_store_explicit(&r->caller, s.caller, memory_order_relaxed);
}
#endif

static inline struct lfpool_rec *lfpool_rec_of(struct cds_lfht_node *n)
{
    return n ? caa_container_of(n, struct lfpool_rec, node) : NULL;
}
/* Walk every record of the table (caller holds rcu_read_lock).  Unlike
 * cds_lfht_for_each_entry() it never does container_of arithmetic on NULL. */
#define LFPOOL_FOR_EACH_REC(ht, iter, rec)                                      \
    for (cds_lfht_first((ht), (iter)), (rec) = lfpool_rec_of(cds_lfht_iter_get_node(iter)); \
         (rec) != NULL;                                                          \
         cds_lfht_next((ht), (iter)), (rec) = lfpool_rec_of(cds_lfht_iter_get_node(iter)))

/* The state word: the state in the low 4 bits, a generation above them,
 * bumped each time the record is handed out (AVAIL -> OUT) and each time it
 * is released for reuse.  Other transitions keep it, so a CAS that expects
 * (generation, state) fails on a record that was handed out again or reused
 * meanwhile: the per-thread return hints (handout.c) and the housekeeper's
 * kill and recycle decisions (made on values read before the CAS) rely on
 * this.  28 bits: a wrap needs 2^28 hand-outs inside one such window. */
#define REC_ST_MASK 0xfu
static inline uint32_t rec_st(uint32_t w) { return w & REC_ST_MASK; }
/* rec_st(w) == REC_CACHED, for the get fast path's check of a record popped
 * from a cache (one test): CACHED is the only state whose low three bits
 * are 0 (0 itself, a record never given a state, also passes: not one a
 * cache can hold but by a bug, as any other state but CACHED) */
_Static_assert(REC_AVAIL == 1 && REC_CACHED == 8 && REC_DEAD_UNCOUNTED == 9,
               "the states are 1..9 (a new one: check rec_st_cached_fast), CACHED the only "
               "multiple of 8");
static inline bool rec_st_cached_fast(uint32_t w) { return (w & 7) == 0; }
static inline uint32_t rec_gen(uint32_t w) { return w >> 4; }
static inline uint32_t rec_word(uint32_t w, uint32_t st) { return (w & ~REC_ST_MASK) | st; }
/* The 16-bit tag of a hand-out (word gen | OUT) in rec->warned: the low 15
 * bits of the generation, the top bit set (0 means none).  A tag left by a
 * returner that took the fast path just before the housekeeper switched
 * returns to the observed path could match again only 32768 hand-outs
 * later, and the next round clears it before (the record is not out). */
static inline uint16_t rec_warn_tag(uint32_t w) { return (uint16_t)(0x8000u | ((w >> 4) & 0x7fffu)); }
static inline uint32_t rec_load(struct lfpool_rec *r)
{
    return atomic_load_explicit(&r->state, memory_order_acquire);
}
/* CAS the state `from` -> `to` keeping the generation.  *w is the caller's
 * read of the word, and the CAS expects exactly that word: it fails (and
 * refreshes *w) if the record changed at all since, even back to the same
 * state with a new generation - the caller's decision was made on that read.
 * (A retrying loop here once let a kill prepared on one hand-out hit the
 * next one.) */
static inline bool rec_cas(struct lfpool_rec *r, uint32_t *w, uint32_t from, uint32_t to)
{
    return rec_st(*w) == from &&
           atomic_compare_exchange_strong_explicit(&r->state, w, rec_word(*w, to),
                                                   memory_order_acq_rel, memory_order_acquire);
}
/* The holder counts a use of the record it just got: it is the only writer
 * of `uses` (a load and a store, no read-modify-write); readers (ret's
 * max_use check, statistics) load it relaxed. */
static inline void rec_count_use(struct lfpool_rec *r)
{
#if defined(__x86_64__) && !LFPOOL_TSAN
    /* one unlocked `addq` to memory: a read and a write of the aligned word
     * by its only writer, as the load and store below are (other threads'
     * relaxed loads see the old or the new value, never a torn one); the
     * compiler does not fuse an atomic load and store into one instruction */
    __asm__("addq $1, %0" : "+m"(*(uint64_t *)&r->uses));
#else
    uint64_t u = atomic_load_explicit(&r->uses, memory_order_relaxed);
    atomic_store_explicit(&r->uses, u + 1, memory_order_relaxed);
#endif
}
/* The returner counts a hold of 0 s of the record it just made CACHED and
 * has not yet put in the set (its hold_zero word's only writer at that
 * time; histogram.h argues it), as the holder counts a use. */
static inline void rec_count_hold_zero(struct lfpool_rec *r)
{
#if defined(__x86_64__) && !LFPOOL_TSAN
    __asm__("addq $1, %0" : "+m"(*(uint64_t *)&r->hold_zero[0]));
#else
    uint64_t n = atomic_load_explicit(&r->hold_zero[0], memory_order_relaxed);
    atomic_store_explicit(&r->hold_zero[0], n + 1, memory_order_relaxed);
#endif
}
/* Owner-only state change (no other thread may move it meanwhile). */
static inline void rec_store(struct lfpool_rec *r, uint32_t st, memory_order mo)
{
    uint32_t w = atomic_load_explicit(&r->state, memory_order_relaxed);
    atomic_store_explicit(&r->state, rec_word(w, st), mo);
}


/* Capacity gate: waiter count and a FIFO of parked gets (gate.c). */
struct lfpool_gate_node {        /* on a parked get's stack, or in a ticket (loop.c) */
    _Atomic uint32_t granted;    /* futex word: 1 once a producer unlinked it */
    bool queued;                 /* in the FIFO (under the gate lock) */
    bool async;                  /* a ticket's node: nobody sleeps on it (loop.c) */
    bool wants_gift;             /* lost the race after a grant: hand it a record */
    bool may_gift;               /* its owner takes a record handed over unasked
                                    (a single get; not a bulk get): while tickets
                                    wait behind it, it is handed every return */
    struct lfpool_rec *gift;     /* a record handed over with the grant (CACHED) */
    struct lfpool_gate_node *prev, *next;
};
struct lfpool_gate {
    _Atomic int32_t waiters;  /* threads inside get's wait loop (never below 0) */
    /* shutdown has begun (p->shutdown's copy, set by lfpool_shutdown after
     * the flag and before its drain; a fork child keeps it): beside
     * `waiters`, so that a ret reads both after its push with one 8-byte
     * compare (lfpool_gate_attention) */
    _Atomic uint32_t shut;
    _Atomic int32_t parked;   /* of those waiters, the ones in the FIFO */
    _Atomic uint32_t woken;   /* grants in flight (gate.c) */
    uint32_t grants;          /* at most this many in flight */
    _Atomic uint32_t pending; /* a grant was asked for while the lock was held */
    _Atomic uint32_t lock;    /* the FIFO's futex mutex: 0, 1, 2 (gate.c) */
    _Atomic uint32_t gift_wanted; /* the FIFO's head wants a record handed over */
    int32_t tickets;              /* ticket nodes in the FIFO (under the lock, loop.c) */
    struct lfpool_gate_node *head, *tail;
};

/* Process-life word, in a MADV_WIPEONFORK page: a fork child reads 0. */
enum lfpool_life {
    LIFE_WIPED = 0,  /* fork child: must reset before use */
    LIFE_RESETTING,  /* a thread of the child is resetting */
    LIFE_LAZY,       /* not started (lazy_start, or a fresh child) */
    LIFE_STARTING,   /* first get is starting housekeeper and fill */
    LIFE_READY,
};
struct lfpool_life_page {
    _Atomic uint32_t life;
    /* The fast paths' admission word (life.c): LFPOOL_FAST_GET and
     * LFPOOL_FAST_RET while life is READY and the pool is not shut down,
     * so that get checks one word instead of the life word, the shutdown
     * flag and its fast-path flags (ret: the life word; its mode byte
     * fast_ret stays, observability switches it at run time).  0 in a fork child
     * (wiped with the page): the slow paths reset the pool first. */
    _Atomic uint32_t fast;
};
#define LFPOOL_FAST_GET 1u /* fast_get and per-CPU caches: get may pop its CPU's cache */
#define LFPOOL_FAST_RET 2u /* READY, not shut down: ret may use its hint (or handle)
                              and commit, if its mode byte (fast_ret) says RET_FAST */
#define LFPOOL_FAST_RET_INLINE 4u /* FAST_RET, fast_ret RET_FAST, per-CPU caches, biased
                                     returns possible (p->bias), no wear (max_use,
                                     max_lifetime): ret's inline path applies (handout.c);
                                     kept by lfpool_life_fast_ret() */
#define LFPOOL_FAST_RET_OBSERVE 8u /* as FAST_RET_INLINE, but fast_ret RET_OBSERVED (hold
                                      histogram, or warned objects out): the inline path's
                                      steps with the recording (handout.c ret_not_inline);
                                      never set beside FAST_RET_INLINE or FAST_RET_HOLD */
#define LFPOOL_FAST_RET_HOLD 16u /* as FAST_RET_OBSERVE when the hold histogram is on and no
                                    warned hand-out is out (p->warned_out): the inline steps
                                    with the hold's recording only, no warned-tag test */

/* The life page is the last LFPOOL_LIFE_OFF bytes of the wiped page that
 * precedes struct lfpool in one mapping (life.c): the fast paths find the
 * admission word at a constant offset from the pool pointer, one
 * instruction, no load of p->lp. */
#define LFPOOL_LIFE_OFF 64
_Static_assert(sizeof(struct lfpool_life_page) <= LFPOOL_LIFE_OFF, "the life page fits");
#define LFPOOL_FAST_WORD(p) \
    ((const uint32_t *)((const char *)(p) - LFPOOL_LIFE_OFF + offsetof(struct lfpool_life_page, fast)))

/* Growable array of pointers, housekeeper-private (housekeeper.c). */
struct lfpool_ptrvec {
    void **v;
    size_t n, cap;
};

struct lfpool_hk {
    pthread_t thread;
    bool has_thread;
    bool shared;             /* LFPOOL_HK_SHARED: served by the process-wide threads */
    /* shared mode, under the registry lock (housekeeper.c) */
    bool registered;         /* in the registry's heap or running */
    bool running;            /* a shared thread runs this pool's work */
    bool unregister;         /* leave the registry when the running work ends */
    size_t heap_idx;
    double due, next_round;  /* next work (round or tick), next round */
    uint32_t seen_kick;
    pthread_t runner;        /* the shared thread running it (when running) */
    _Atomic bool shared_on;  /* registered with the shared housekeeper, not stopped */
    _Atomic uint32_t kick;   /* futex word: pending work or stop */
    _Atomic bool stop;
    pthread_mutex_t round_lock; /* serialises rounds (never taken by get/ret) */
    _Atomic int in_flight;   /* housekeeping work under way that lfpool_housekeep()
                                waits for: batches collected whose closers have not
                                all run, and the thread's own round or refill */
    double tick;             /* seconds between coarse-clock refreshes */
    struct lfpool_ptrvec close_only; /* objs whose record stays in the set */
    struct lfpool_ptrvec scratch;
};

/* Event loops (loop.c): the tickets the housekeeper must look for, the
 * count of live loops, the on-demand housekeeper. */
struct lfpool_ticket;
struct lfpool_async {
    pthread_mutex_t lock;   /* loop_new/loop_free against shutdown/free */
    size_t nloops;          /* live loops (under lock) */
    bool free_pending;      /* lfpool_free was called with live loops */
    /* tickets to serve on the housekeeper, FIFO (under the gate lock) */
    struct lfpool_ticket *serve_head, *serve_tail;
};

struct lfpool_counters {
    _Atomic uint64_t ncreated, ncreating, nkilled, nrecycled, nwornout;
    _Atomic uint64_t nborrows, nreturns, ndestroys, nhealth, bad_health;
    _Atomic uint64_t hk_rounds, hk_errors, hc_rounds, hc_errors;
    _Atomic uint64_t dead_uses; /* uses of records no longer in the table */
    _Atomic uint64_t uses_undone; /* claims that were not uses (validation failed, a
                                     bulk get's give-back of a CLOSE-killed take) */
    _Atomic uint64_t todel;     /* removed, closer not yet run */
    _Atomic uint64_t nflushes;  /* per-CPU cache flushes (cache.c) */
    _Atomic uint64_t nbias_fences; /* membarriers that ended a biased stretch (bias.c) */
    _Atomic uint64_t nfences;   /* every membarrier the pool made (cache.c) */
    _Atomic uint64_t nevicted;  /* objects closed by lfpool_evict (control.c) */
    _Atomic uint64_t ncloses;   /* the gets' closings of the caches (cache.c) */
    /* connection pools: ret_broken, validate on borrow, max_lifetime,
     * creation failures and the backoff's refusals */
    _Atomic uint64_t nbroken, nvalidate_failed, nvalidate_errors, nexpired;
    _Atomic uint64_t ncreate_failed, ncreate_skipped;
    /* deletions from the meta table begun and done (meta.c): a reader that
     * sums a per-record figure and its total for records gone (uses and
     * dead_uses, the hold histogram's bucket 0) sees one overlap its walk
     * and retries (lfpool_meta_read_begin) */
    _Atomic uint64_t dels_begun, dels_done;
};

/* Creation control (objects.c): the `fun` calls running (counted only with
 * max_creating) and the backoff after a failure (only with create_backoff).
 * Read by creation only, never by the get/ret fast paths. */
struct lfpool_create_ctl {
    _Atomic uint32_t running; /* fun calls in progress */
    _Atomic bool probing;     /* a probe of the backoff is running */
    _Atomic int err;          /* errno of the failure that started the backoff; 0 = none */
    _Atomic double until;     /* creations refused before this (pool clock) */
    _Atomic double length;    /* the current backoff, doubled by each failed probe */
};

/* Folding of repeated log lines (log.c). */
#define LFPOOL_LOG_LINE 1024 /* a line, NUL included */
#define LFPOOL_LOG_SLOTS 4   /* distinct lines remembered */
#define LFPOOL_LOG_KEEP 256  /* bytes of a line kept for its summary */
struct lfpool_logdup_slot {
    uint64_t hash;     /* of level and text; 0: empty */
    uint64_t folded;   /* times it came since it was last written */
    uint64_t used;     /* recency, for the choice of a slot to reuse */
    double written;    /* when it was last written (pool clock) */
    int level;
    char text[LFPOOL_LOG_KEEP];
};
struct lfpool_logdup {
    _Atomic uint32_t lock; /* spin lock: compare and copy only */
    uint64_t uses;
    struct lfpool_logdup_slot slot[LFPOOL_LOG_SLOTS];
};

/* The statistics counters above: relaxed, they order nothing and nothing
 * is decided on them (decisions load their word with an explicit order). */
static inline void lfpool_stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline void lfpool_stat_inc(_Atomic uint64_t *c)
{
    lfpool_stat_add(c, 1);
}
static inline void lfpool_stat_dec(_Atomic uint64_t *c)
{
    atomic_fetch_sub_explicit(c, 1, memory_order_relaxed);
}
static inline uint64_t lfpool_stat_read(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

struct lfpool {
    /* read-mostly, every field the fast paths read but the three below, in
     * the first cache line */
    struct lfpool_cache *caches;
    unsigned ncaches;
    bool pcpu;             /* per-CPU caches in use (rseq + membarrier, cache.c) */
    uint32_t cache_cap;    /* records per CPU cache (cache.c) */
    bool fast_get;         /* get's fast path applies: no getter, no CLOSE-kill guard,
                              no injected clock (handout.c) */
    _Atomic uint8_t fast_ret; /* RET_FAST: ret's fast path applies (no retter, no injected
                                 clock, nothing observed); RET_OBSERVED: the same steps out
                                 of line, recording (hold_histogram, warned objects out) */
    bool bias;             /* owners may end a hand-out with a plain store (bias.c) */
    bool wear;             /* a return may end the object: max_use or max_lifetime set */
    struct lfpool_life_page *lp;
    uint64_t id;
    uint64_t max_use;      /* cfg.max_use, UINT64_MAX when unlimited */
    uint64_t owned_id;     /* id | LFPOOL_HANDLE_OWNED: the priv_pool of a handle that
                              names its owner (handout.c, "owned handles") */
    long rseq_off;         /* lfpool_pcpu_off(), read once (percpu.h): the fast paths'
                              sections address the thread's rseq area by it */
    /* read-mostly */
    struct cds_lfht *ht;
    _Atomic unsigned long ht_buckets;
    _Atomic bool ht_resizing;
    lfpool_config cfg;
    double warn;           /* effective warn threshold */
    bool guard_get;        /* kill CLOSE on: get's claim runs in a read-side section */
    bool fence_ok;         /* the rseq membarrier works in this process (cache.c) */
    double delay;          /* effective housekeeping period */
    uint32_t bulk_cap;     /* records per CPU cache after a bulk return (cache.c) */
    double started_epoch, started_mono;

    /* the shared Treiber stack (stack.c), on its own lines */
    ck_stack_t stack __attribute__((aligned(2 * LFPOOL_CACHELINE)));
    char pad0[2 * LFPOOL_CACHELINE - sizeof(ck_stack_t)];

    struct lfpool_gate gate LFPOOL_ALIGNED;
    /* written once, and once per housekeeper tick; read by the fast paths */
    _Atomic bool shutdown LFPOOL_ALIGNED;
    _Atomic double coarse_now;
    _Atomic uint32_t bias_mode; /* bias.c: (epoch << 2) | state, BIASED = 0 */
    _Atomic bool bias_seen;     /* bias.c: a fence since the last round */
    _Atomic bool warned_out;    /* histogram.c: hand-outs the housekeeper warned about
                                   may be out (their returns log a line) */
    _Atomic int64_t nobjs LFPOOL_ALIGNED; /* AVAIL+OUT+BORROWED (+reserved) */
    ck_stack_t pending LFPOOL_ALIGNED;    /* DEAD recs awaiting closer+free */
    ck_stack_t zombies LFPOOL_ALIGNED;    /* popped DEAD_SET recs: free only */
    ck_stack_t rec_free LFPOOL_ALIGNED;   /* released records, type-stable */
    _Atomic(struct lfpool_rec *) all_recs; /* push-only list of every record */
    struct lfpool_counters c LFPOOL_ALIGNED;
    struct lfpool_obs obs LFPOOL_ALIGNED; /* histograms (histogram.h) */
    uint8_t ret_mode;      /* what fast_ret is when no warned object is out */
    _Atomic double hk_last, hk_time;
    struct lfpool_create_ctl create LFPOOL_ALIGNED;
    struct lfpool_logdup logdup LFPOOL_ALIGNED;

    struct lfpool_hk hk;
    struct lfpool_async async;

    /* runtime control (control.c): the bounds in force, pause, eviction */
    struct lfpool_ctl {
        pthread_mutex_t lock;      /* serialises control calls and flag changes */
        _Atomic uint32_t flags;    /* LFPOOL_CTL_*: non-zero closes the per-CPU caches */
        _Atomic size_t min_size, max_size; /* in force (max 0: unbounded) */
        _Atomic uint32_t epoch;    /* eviction epoch; records keep its low 16 bits */
        _Atomic int64_t stale_out; /* LFPOOL_EVICT_ALL: old objects still out (a hint) */
    } ctl LFPOOL_ALIGNED;

    /* closed per-CPU caches (cache.c): why, and the gets' closing, which a
     * round (or the clock, without rounds) ends */
    struct lfpool_close {
        pthread_mutex_t lock;  /* a closing or reopening at a time (after ctl.lock) */
        _Atomic uint32_t why;  /* LFPOOL_CLOSE_*: non-zero, flushes leave caches CLOSED */
        _Atomic bool gets;     /* the gets' closing is complete: every cache CLOSED, empty */
        _Atomic bool want;     /* a get wanted every cache since the last decision */
        _Atomic double mark;   /* the last decision, on the pool's clock (cache.c) */
        _Atomic double win;    /* the fence budget's window start, on the pool's clock */
        _Atomic size_t spent;  /* open flushes with a fence by gets in that window */
    } close LFPOOL_ALIGNED;
};

_Static_assert(offsetof(struct lfpool, rseq_off) + sizeof(long) <= LFPOOL_CACHELINE,
               "the fast paths' read-mostly fields share the first line");

/* fast_ret: the ret fast path tests RET_FAST only (one compare, as when it
 * was a bool); anything else is the out-of-line ret (handout.c) */
enum { RET_FAST = 0, RET_CAREFUL = 1, RET_OBSERVED = 2 };

/* ---- histogram.c: observability (histogram.h has the recording) */
LFPOOL_INTERNAL int lfpool_obs_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_obs_fini(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_obs_fork_reset(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_obs_read(struct lfpool *p, int which, struct lfpool_histogram *out);
/* rec left the table (meta.c, inside its deletion's bracket): its bucket 0
 * of the hold histogram moves to hold_zero_gone.  Nothing unless
 * cfg.hold_histogram. */
LFPOOL_INTERNAL void lfpool_obs_gone(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL int lfpool_obs_caller(const void *addr, char *buf, size_t size);
/* the housekeeper warned about hand-out `word` of rec: rets must look */
LFPOOL_INTERNAL void lfpool_obs_warned(struct lfpool *p, struct lfpool_rec *rec, uint32_t word);
/* a round saw no warned hand-out still out: rets may skip the look */
LFPOOL_INTERNAL void lfpool_obs_unwarned(struct lfpool *p);

/* ---- clock.c */
LFPOOL_INTERNAL double lfpool_mono_now(void);
LFPOOL_INTERNAL double lfpool_epoch_now(void);
LFPOOL_INTERNAL double lfpool_now_fresh(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_timespec_add(struct timespec *ts, double secs);
LFPOOL_INTERNAL void lfpool_deadline_in(clockid_t clock, double timeout, struct timespec *ts);
LFPOOL_INTERNAL void lfpool_abs_deadline(double timeout, struct timespec *ts);
LFPOOL_INTERNAL bool lfpool_deadline_passed(const struct timespec *ts);
/* hot path: the injected clock, or the pool's coarse time */
static inline double lfpool_now(struct lfpool *p)
{
    if (p->cfg.clock)
        return p->cfg.clock(p->cfg.clock_ctx);
    return atomic_load_explicit(&p->coarse_now, memory_order_relaxed);
}

/* ---- log.c */
LFPOOL_INTERNAL void lfpool_log(const struct lfpool *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
LFPOOL_INTERNAL void lfpool_log_cfg(const lfpool_config *cfg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
LFPOOL_INTERNAL int lfpool_trace(const struct lfpool *p, void *obj, char *buf, size_t size);
/* write the folded lines' summaries that are due (all: every pending one) */
LFPOOL_INTERNAL void lfpool_log_flush(struct lfpool *p, bool all);
LFPOOL_INTERNAL void lfpool_log_fork_reset(struct lfpool *p);

/* ---- stack.c: records on ck_stack lists, all linked the same way
 * (entry.next names the next record's entry) */
CK_STACK_CONTAINER(struct lfpool_rec, entry, lfpool_rec_of_entry_nonnull)
/* The record of a list entry; NULL for NULL. */
static inline struct lfpool_rec *lfpool_rec_of_entry(ck_stack_entry_t *e)
{
    return e ? lfpool_rec_of_entry_nonnull(e) : NULL;
}
LFPOOL_INTERNAL void lfpool_stack_push(ck_stack_t *s, struct lfpool_rec *rec);
LFPOOL_INTERNAL struct lfpool_rec *lfpool_stack_pop(ck_stack_t *s);
LFPOOL_INTERNAL void lfpool_list_push(ck_stack_t *s, struct lfpool_rec *rec);
LFPOOL_INTERNAL struct lfpool_rec *lfpool_list_take_all(ck_stack_t *s);
/* Next record of a list taken with lfpool_list_take_all, or of a batch
 * (owned by the caller either way). */
static inline struct lfpool_rec *lfpool_list_next(struct lfpool_rec *rec)
{
    return lfpool_rec_of_entry(rec->entry.next);
}
/* Push rec onto *batch, a list private to the calling thread (it owns the
 * records), linked like the CK lists; walk it with lfpool_list_next. */
static inline void lfpool_batch_push(struct lfpool_rec **batch, struct lfpool_rec *rec)
{
    rec->entry.next = *batch ? &(*batch)->entry : NULL;
    *batch = rec;
}

/* closed caches' reasons (cache.c, struct lfpool_close) */
enum { LFPOOL_CLOSE_CTL = 1, LFPOOL_CLOSE_GETS = 2 };

/* A handle's priv_pool with this bit set names its owner in priv_owner
 * (handout.c, "owned handles"); pool ids count from 1 and never reach it. */
#define LFPOOL_HANDLE_OWNED (UINT64_C(1) << 63)

/* ---- bias.c: the biased return (plain-store commit by the getter) */
#define LFPOOL_BIAS_MASK 3u /* bias_mode's state bits: 0 is BIASED */
LFPOOL_INTERNAL void lfpool_bias_fence(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_bias_restore(struct lfpool *p);
LFPOOL_INTERNAL bool lfpool_bias_active(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_bias_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_bias_fork_reset(struct lfpool *p);

/* Does the ret fast path apply (fast_ret == RET_FAST)?  One compare of the
 * byte in memory (`cmpb $0`), as when the flag was a bool written once by
 * lfpool_new: the compiler does not fold an atomic load into a compare (a
 * load and a test, one instruction more), so on x86-64 the compare is
 * written out, its flag the result.  The housekeeper now also writes the
 * byte (lfpool_obs_warned, an atomic store); a byte access is single-copy
 * atomic, and nothing is ordered by it: the returner only picks a path. */
static inline bool lfpool_ret_fast_mode(struct lfpool *p)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool zero;
    __asm__("cmpb $0, %[m]" : "=@ccz"(zero) : [m] "m"(*(const uint8_t *)&p->fast_ret));
    return zero;
#else
    return atomic_load_explicit(&p->fast_ret, memory_order_relaxed) == RET_FAST;
#endif
}

/* Is `bit` (LFPOOL_FAST_*) set in the pool's admission word?  One test of
 * the word in memory on x86-64 (the compiler does not fold an atomic load
 * into a test: a load and a test otherwise).  Volatile, with a memory
 * clobber: no load of the fast path is moved before it (the hardware keeps
 * loads in order: an acquire, as the C11 load it replaces). */
static inline __attribute__((always_inline)) bool lfpool_fast_has(const struct lfpool *p,
                                                                  uint32_t bit)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool nz;
    __asm__ __volatile__("testb %[b], %[m]"
                         : "=@ccnz"(nz)
                         : [m] "m"(*(const uint8_t *)LFPOOL_FAST_WORD(p)), [b] "i"(bit)
                         : "memory");
    return nz;
#else
    return atomic_load_explicit((const _Atomic uint32_t *)LFPOOL_FAST_WORD(p),
                                memory_order_acquire) & bit;
#endif
}

/* The bits of a double, for a store by inline assembly. */
static inline uint64_t lfpool_dbits(double d)
{
    uint64_t u;
    __builtin_memcpy(&u, &d, sizeof u);
    return u;
}

/* ---- meta.c: the RCU hash table of records */
LFPOOL_INTERNAL int lfpool_meta_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_meta_fini(struct lfpool *p);
LFPOOL_INTERNAL struct lfpool_rec *lfpool_rec_alloc(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_rec_release(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL void lfpool_rec_free_all(struct lfpool *p);
LFPOOL_INTERNAL int lfpool_meta_insert(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL struct lfpool_rec *lfpool_meta_lookup(struct lfpool *p, const void *obj);
LFPOOL_INTERNAL bool lfpool_meta_del(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL bool lfpool_meta_del_uncounted(struct lfpool *p, struct lfpool_rec *rec);
/* A reader's walk of the table that sums a per-record figure with its
 * total for records gone: begin before reading that total, end after the
 * walk; false from end: a deletion overlapped, the sum may miss a record
 * (read again).  `*mark` carries the state between the two. */
LFPOOL_INTERNAL void lfpool_meta_read_begin(struct lfpool *p, uint64_t *mark);
LFPOOL_INTERNAL bool lfpool_meta_read_end(struct lfpool *p, uint64_t mark);
LFPOOL_INTERNAL void lfpool_meta_resize(struct lfpool *p, bool may_shrink);
/* fork child (one thread): release every record of the inherited table,
 * then a fresh table (the inherited one may be locked by a parent thread) */
LFPOOL_INTERNAL void lfpool_meta_fork_reset(struct lfpool *p);

/* ---- gate.c */
LFPOOL_INTERNAL void lfpool_gate_init(struct lfpool_gate *g, unsigned ncpus);
LFPOOL_INTERNAL void lfpool_gate_fork_reset(struct lfpool_gate *g);
/* a get enters / leaves its wait loop (`slept`: pass the turn on) */
LFPOOL_INTERNAL void lfpool_gate_wait_begin(struct lfpool_gate *g);
LFPOOL_INTERNAL bool lfpool_gate_wait_begin_bounded(struct lfpool_gate *g, size_t limit);
LFPOOL_INTERNAL void lfpool_gate_wait_end(struct lfpool_gate *g, bool slept);
LFPOOL_INTERNAL void lfpool_gate_wake(struct lfpool_gate *g, bool all);
/* park: join the FIFO, then look once more before sleeping; unpark: leave
 * it (true: a grant was ours, the caller must look or pass it on); sleep:
 * until granted or `deadline` (absolute CLOCK_MONOTONIC; signals do not
 * end it), then unpark; 0 (granted: park at the front next) or ETIMEDOUT */
/* hand `rec` (CACHED, the caller's) to a parked get that lost a race
 * after its grant; false: nobody wants it, publish it as usual */
LFPOOL_INTERNAL bool lfpool_gate_gift(struct lfpool_gate *g, struct lfpool_rec *rec);
LFPOOL_INTERNAL void lfpool_gate_park(struct lfpool_gate *g, struct lfpool_gate_node *n, bool front,
                                      bool may_gift);
LFPOOL_INTERNAL void lfpool_gate_park_locked(struct lfpool_gate *g, struct lfpool_gate_node *n,
                                             bool front);
LFPOOL_INTERNAL bool lfpool_gate_unpark(struct lfpool_gate *g, struct lfpool_gate_node *n);
LFPOOL_INTERNAL int lfpool_gate_sleep(struct lfpool_gate *g, struct lfpool_gate_node *n,
                                      const struct timespec *deadline);
/* The reads of the ret fast paths (cache.h): plain (relaxed) loads with
 * no fence, covered by the waiter's flush (cache.c, gate.c).  gift_wanted:
 * the head asked for a hand-over, or tickets wait behind a head that takes
 * one (gate.c: FIFO order with tickets); the inline rets do not read it,
 * the admission word's inline bits are clear while it is set (life.c). */
static inline __attribute__((always_inline)) bool lfpool_gate_gift_wanted(struct lfpool_gate *g)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool nz; /* one compare with memory, as lfpool_ret_fast_mode (below) */
    __asm__("cmpl $0, %[m]" : "=@ccnz"(nz) : [m] "m"(*(const uint32_t *)&g->gift_wanted));
    return nz;
#else
    return atomic_load_explicit(&g->gift_wanted, memory_order_relaxed);
#endif
}
/* The ret fast path's one read after its push (cache.h): a waiter to wake
 * or shutdown begun - `waiters` (never below 0) and `shut`, adjacent, as
 * one 8-byte word that is non-zero iff either is.  A plain (relaxed) load
 * with no fence, covered for `waiters` by the waiter's flush (cache.c,
 * gate.c) and for `shut` by shutdown's drain (its flush comes after the
 * store: handout.c, ret_fast_commit).  On the 8-byte compare each half is
 * read as the 4-byte loads it replaces would be (x86-64: an aligned 8-byte
 * load is single-copy atomic). */
_Static_assert(offsetof(struct lfpool_gate, shut) == offsetof(struct lfpool_gate, waiters) + 4 &&
                   offsetof(struct lfpool_gate, waiters) % 8 == 0,
               "waiters and shut: one aligned 8-byte word");
static inline __attribute__((always_inline)) bool lfpool_gate_attention(struct lfpool_gate *g)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    struct __attribute__((may_alias)) word {
        uint64_t v;
    };
    bool nz;
    __asm__("cmpq $0, %[m]" : "=@ccnz"(nz) : [m] "m"(*(const struct word *)&g->waiters));
    return nz;
#else
    return atomic_load_explicit(&g->waiters, memory_order_relaxed) > 0 ||
           atomic_load_explicit(&g->shut, memory_order_relaxed);
#endif
}
static inline __attribute__((always_inline)) bool lfpool_gate_has_waiters(struct lfpool_gate *g)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool gt;
    __asm__("cmpl $0, %[m]" : "=@ccg"(gt) : [m] "m"(*(const int32_t *)&g->waiters));
    return gt;
#else
    return atomic_load_explicit(&g->waiters, memory_order_relaxed) > 0;
#endif
}
/* after making an object or capacity available: wake one waiter if any.
 * The caller's publishing store must be seq_cst (or followed by a fence). */
static inline void lfpool_gate_signal(struct lfpool_gate *g)
{
    if (lfpool_unlikely(atomic_load_explicit(&g->waiters, memory_order_seq_cst) > 0))
        lfpool_gate_wake(g, false);
}

/* The FIFO's lock (loop.c changes tickets under it), and a node's unlink
 * (lock held).  lfpool_gate_unlock also makes the grants asked for while
 * it was held. */
LFPOOL_INTERNAL void lfpool_gate_lock(struct lfpool_gate *g);
LFPOOL_INTERNAL void lfpool_gate_unlock(struct lfpool_gate *g);
LFPOOL_INTERNAL void lfpool_gate_unlink(struct lfpool_gate *g, struct lfpool_gate_node *n);

/* ---- handout.c: validation on borrow of a record just claimed (the
 * hand-out `word` of rec, obj, not yet seen by anybody): true, hand it
 * out; false, it was destroyed (counted, logged).  Runs the hook: never
 * with a lock held, never on an event loop's thread (loop.c). */
LFPOOL_INTERNAL bool lfpool_handout_validate(struct lfpool *p, struct lfpool_rec *rec, void *obj,
                                             uint32_t word);
/* End the hand-out of a claim nobody saw (an event loop's ticket that
 * nobody took) that the caller's CAS could not end (killed, worn out,
 * shutdown): as a ret, without the retter and without a hold. */
LFPOOL_INTERNAL void lfpool_handout_give_back(struct lfpool *p, const lfpool_handle *h);

/* ---- loop.c: event loops (tickets in the gate's FIFO); called by the
 * gate with its lock held: a grant reached a ticket at the head (schedule a
 * look on the housekeeper), a record is handed over to one (complete it),
 * shutdown (complete it with ESHUTDOWN).  Each unlinks when it completes. */
LFPOOL_INTERNAL void lfpool_loop_on_grant(struct lfpool_gate *g, struct lfpool_gate_node *n);
LFPOOL_INTERNAL bool lfpool_loop_on_gift(struct lfpool_gate *g, struct lfpool_gate_node *n,
                                         struct lfpool_rec *rec);
LFPOOL_INTERNAL void lfpool_loop_on_wake_all(struct lfpool_gate *g, struct lfpool_gate_node *n);
/* the housekeeper (or shutdown): serve the scheduled tickets; whether any wait */
LFPOOL_INTERNAL void lfpool_loop_serve(struct lfpool *p);
LFPOOL_INTERNAL bool lfpool_loop_has_work(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_loop_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_loop_fork_reset(struct lfpool *p);
/* lfpool_free: false when loops are alive (the free is deferred to the
 * last lfpool_loop_free) */
LFPOOL_INTERNAL bool lfpool_loop_free_ok(struct lfpool *p);
/* shutdown: stop the housekeeper under the loops' lock */
LFPOOL_INTERNAL bool lfpool_loop_hk_stop(struct lfpool *p, double wait);

/* ---- housekeeper.c */
LFPOOL_INTERNAL int lfpool_hk_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_hk_fini(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_hk_fork_reset(struct lfpool *p);
LFPOOL_INTERNAL int lfpool_hk_start(struct lfpool *p);
LFPOOL_INTERNAL bool lfpool_hk_stop(struct lfpool *p, double wait);
LFPOOL_INTERNAL void lfpool_hk_kick(struct lfpool *p);
LFPOOL_INTERNAL bool lfpool_hk_active(struct lfpool *p);
LFPOOL_INTERNAL int lfpool_hk_round(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_hk_reap(struct lfpool *p, bool try_lock);
LFPOOL_INTERNAL void lfpool_hk_wait_in_flight(struct lfpool *p);

/* ---- control.c: set_size, pause/resume, evict */
enum {
    LFPOOL_CTL_PAUSED = 1,   /* gets wait */
    LFPOOL_CTL_SURPLUS = 2,  /* nobjs may exceed max_size: returns and gets shed */
    LFPOOL_CTL_EVICTING = 4, /* objects of an older epoch may be out */
};
LFPOOL_INTERNAL void lfpool_ctl_init(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_ctl_fork_reset(struct lfpool *p);
/* a record the caller owns in state CACHED goes back to the set, unless
 * control says it must go (surplus, evicted): then it is closed */
LFPOOL_INTERNAL void lfpool_ctl_put(struct lfpool *p, struct lfpool_rec *rec);
/* caller in a read-side section: no hand-out may happen now (paused, or
 * at a max_size below the objects that exist) */
LFPOOL_INTERNAL bool lfpool_ctl_hold(struct lfpool *p);
/* a get finds the pool over max_size: close surplus available objects */
LFPOOL_INTERNAL void lfpool_ctl_shed(struct lfpool *p);
/* end of a round: shed surplus, end an eviction whose old objects are back */
LFPOOL_INTERNAL void lfpool_ctl_round(struct lfpool *p);
static inline uint32_t lfpool_ctl_flags(struct lfpool *p)
{
    return atomic_load_explicit(&p->ctl.flags, memory_order_seq_cst);
}
static inline size_t lfpool_max_size(struct lfpool *p)
{
    return atomic_load_explicit(&p->ctl.max_size, memory_order_seq_cst);
}
static inline size_t lfpool_min_size(struct lfpool *p)
{
    return atomic_load_explicit(&p->ctl.min_size, memory_order_relaxed);
}
static inline uint16_t lfpool_ctl_epoch(struct lfpool *p)
{
    return (uint16_t)atomic_load_explicit(&p->ctl.epoch, memory_order_seq_cst);
}
/* rec was published before the current eviction epoch */
static inline bool lfpool_rec_stale(struct lfpool *p, struct lfpool_rec *rec)
{
    return rec->born != lfpool_ctl_epoch(p);
}

/* ---- life.c */
/* Make the pool usable in this process: reset it if this is a fork child
 * (each component's *_fork_reset).  Every entry point but the get and ret
 * fast paths calls it; those check the life word. */
LFPOOL_INTERNAL int lfpool_life_fork_check(struct lfpool *p);
/* get's slow entry: the fork check, then the lazy start (CONTRACT §3.7) */
LFPOOL_INTERNAL int lfpool_life_make_ready(struct lfpool *p);
/* fast_ret changed (or may have): set LFPOOL_FAST_RET_INLINE in the
 * admission word as it now applies (never while FAST_RET is clear) */
LFPOOL_INTERNAL void lfpool_life_fast_ret(struct lfpool *p);
/* the pool is started (READY or STARTING): the housekeeper may fill */
static inline bool lfpool_life_started(struct lfpool *p)
{
    uint32_t life = atomic_load(&p->lp->life);
    return life == LIFE_READY || life == LIFE_STARTING;
}

/* ---- objects.c: slots, creation, hooks, closing (no calls back into
 * handout.c, life.c or housekeeper.c) */
LFPOOL_INTERNAL bool lfpool_reserve(struct lfpool *p, size_t limit);
LFPOOL_INTERNAL void lfpool_unreserve(struct lfpool *p);
/* for_get: the record ends OUT (uses 1), else CACHED and in the set;
 * *word_out (if not NULL): its state word then */
LFPOOL_INTERNAL int lfpool_create(struct lfpool *p, struct lfpool_rec **out, void **obj_out,
                                  uint32_t *word_out, bool for_get);
/* lfpool_create's answer when max_creating calls of `fun` already run (the
 * slot it reserved is released): wait, as at max_size */
#define LFPOOL_CREATE_BUSY (-1)
/* Before reserving a slot for a creation: 0 go ahead, LFPOOL_CREATE_BUSY
 * (max_creating calls of `fun` run), or the errno of the last failure while
 * a creation backoff runs (counted in ncreate_skipped) */
LFPOOL_INTERNAL int lfpool_create_check(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_create_fork_reset(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_fill(struct lfpool *p);
LFPOOL_INTERNAL void lfpool_call_hook(struct lfpool *p, lfpool_hook_fn fn, void *obj, const char *what);
LFPOOL_INTERNAL void lfpool_close_obj(struct lfpool *p, void *obj);
LFPOOL_INTERNAL void lfpool_close_removed(struct lfpool *p, struct lfpool_rec *rec);
LFPOOL_INTERNAL void lfpool_close_available(struct lfpool *p);
LFPOOL_INTERNAL size_t lfpool_close_some(struct lfpool *p, bool all, bool evicted);

/* ---- json.c (internal helpers for hook isolation) */
struct lfpool_json {
    char *buf;
    size_t len, cap;
    int depth;
    int base;              /* hook isolation: depth the hook started at */
    int base_values;       /* values written at `base` */
    bool in_hook;
    bool failed;           /* misuse inside a hook */
    bool nomem;
    bool key_pending[64];
    bool need_comma[64];
    uint8_t kind[64];      /* 1 = object, 2 = array */
};
LFPOOL_INTERNAL void lfpool_json_init(struct lfpool_json *j);
LFPOOL_INTERNAL void lfpool_json_fini(struct lfpool_json *j);
LFPOOL_INTERNAL int lfpool_json_hook(struct lfpool_json *j, lfpool_stats_fn fn, void *ctx, void *obj);

#endif /* LFPOOL_INTERNAL_H */
