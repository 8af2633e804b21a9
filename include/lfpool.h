/*
 * lfpool.h - a thread-safe pool of objects created on demand, with a
 * lock-free hot path.  The one public header of liblfpool.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * RULES OF USE (read these once)
 *
 *  1. Every call is thread-safe unless said otherwise below: any thread may
 *     get, any thread may return (not only the one that got the object),
 *     stats may be read from anywhere.  lfpool_free() is the exception: no
 *     other call on the same pool may run during or after it.
 *  2. The pool owns nothing of an object but its bookkeeping.  The caller
 *     owns an object between a successful lfpool_get() and the matching
 *     lfpool_ret(); the pool owns it otherwise and ends its life with
 *     `closer`, exactly once per created object.
 *  3. Hooks (`fun`, opener, getter, retter, closer, health, stats, tracer,
 *     log, clock) run on the calling thread or on the pool's housekeeper
 *     thread.  No hook may call lfpool_free() on its own pool; hooks that
 *     run on the housekeeper (health, and closer, fun, opener there) must
 *     not call lfpool_housekeep() or lfpool_shutdown() on it; tracer and
 *     stats must not call into the pool at all (they run while stats walk
 *     the pool).  A hook's failure is logged and never propagates, except
 *     `fun`, whose errno a get reports.
 *  4. Closers never run inside an RCU read-side section of the library, nor
 *     with a lock of the pool held.  lfpool uses liburcu's urcu-bp flavour:
 *     your threads need no registration, but do not call lfpool from inside
 *     your own urcu-bp read-side section (several calls may wait for a grace
 *     period: a return after shutdown or of a killed object, housekeeping,
 *     shutdown, free).
 *  5. fork(): the child never hands out an object created by the parent.
 *     On its first use in the child the pool starts again from empty, with
 *     its own housekeeper; inherited objects are dropped without `closer`
 *     (they belong to the parent).  liburcu's fork rule (call
 *     urcu_bp_before_fork() and friends around fork()) is followed by the
 *     library itself: it registers them once with pthread_atfork().
 *  6. Return codes are 0 or a positive errno value; nothing aborts on bad
 *     input, and no bad input loses an object or a capacity slot.
 *
 * See docs/CONTRACT.md for the behaviour contract, docs/API.md for the
 * full reference and docs/DESIGN.md for the reasoning behind the lock-free
 * structures.
 */
#ifndef LFPOOL_H
#define LFPOOL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* the library is built with hidden visibility; everything here is exported */
#pragma GCC visibility push(default)

#define LFPOOL_VERSION_MAJOR 0
#define LFPOOL_VERSION_MINOR 1
#define LFPOOL_VERSION_PATCH 0

typedef struct lfpool lfpool;
struct lfpool_json;

/* ---------------------------------------------------------------- hooks */

/* Create an object.  `n` is the creation number: the number of objects this
 * pool created successfully before this call (0, 1, 2, ...; two concurrent
 * creations may see the same n).  Return NULL on failure, with errno set
 * (EIO is reported when errno is left 0).  Returning a pointer the pool
 * already holds is refused (EEXIST, the object is not closed). */
typedef void *(*lfpool_create_fn)(void *ctx, uint64_t n);
/* opener, getter, retter, closer: non-zero means failure (logged only). */
typedef int (*lfpool_hook_fn)(void *ctx, void *obj);
/* health: > 0 healthy, 0 unhealthy (object removed), < 0 check failed
 * (counted in hc_errors, object kept). */
typedef int (*lfpool_health_fn)(void *ctx, void *obj);
/* tracer: snprintf-like; writes text describing obj into buf (at most
 * size bytes, NUL included) and returns the length it wanted, < 0 on error.
 * Default: the object's address, "%p". */
typedef int (*lfpool_trace_fn)(void *ctx, void *obj, char *buf, size_t size);
/* stats: writes exactly one JSON value with the lfpool_json_* writer below;
 * non-zero return means failure and the value becomes null. */
typedef int (*lfpool_stats_fn)(void *ctx, void *obj, struct lfpool_json *out);
/* log: receives one line (no trailing newline).  Default: stderr. */
typedef void (*lfpool_log_fn)(void *log_ctx, int level, const char *msg);
/* clock: monotonic seconds.  Default: the library's coarse monotonic clock.
 * An injected clock is called on every get/ret (tests drive time with it
 * and lfpool_housekeep()); bounded waits always use CLOCK_MONOTONIC. */
typedef double (*lfpool_clock_fn)(void *clock_ctx);

/* ------------------------------------------------------------ constants */

#define LFPOOL_FOREVER (INFINITY) /* wait without limit */
#define LFPOOL_DEFAULT (-1.0)     /* lfpool_get(): use the configured timeout */

enum {
    LFPOOL_LOG_ERROR = 0,
    LFPOOL_LOG_WARNING = 1,
    LFPOOL_LOG_INFO = 2,
    LFPOOL_LOG_DEBUG = 3,
};

enum {
    /* a killed object's closer runs when its holder returns it; that
     * lfpool_ret() returns ESTALE (default) */
    LFPOOL_KILL_DEFER = 0,
    /* a killed object's closer runs at once on the housekeeper (after an
     * RCU grace period); the holder's later lfpool_ret() gives ENOENT */
    LFPOOL_KILL_CLOSE = 1,
};

enum {
    /* the pool's rounds run on a housekeeper thread of its own (default) */
    LFPOOL_HK_OWN = 0,
    /* the pool's rounds run on the process-wide housekeeper: at most two
     * threads serve every such pool, each at its own period */
    LFPOOL_HK_SHARED = 1,
};

enum {
    /* lfpool_evict(): close every available object now */
    LFPOOL_EVICT_IDLE = 1,
    /* and every object out when it is returned (its lfpool_ret gives 0) */
    LFPOOL_EVICT_ALL = 2,
};

/* --------------------------------------------------------- configuration */

typedef struct lfpool_config {
    lfpool_create_fn fun;       /* mandatory */
    void *ctx;                  /* passed to every hook */
    size_t max_size;            /* 0 = unbounded */
    size_t min_size;            /* default 1 */
    double timeout;             /* seconds a get may wait at max_size; default LFPOOL_FOREVER */
    uint64_t max_use;           /* 0 = unlimited */
    double max_avail_delay;     /* idle seconds before recycling, 0 = never */
    double max_using_delay;     /* warn threshold, 0 = the kill threshold */
    double max_using_delay_kill;/* kill threshold, 0 = never kill */
    double delay;               /* housekeeping period, 0 = computed as the seed does */
    unsigned health_freq;       /* health check every N rounds, default 1 */
    lfpool_hook_fn opener, getter, retter, closer;
    lfpool_health_fn health;
    lfpool_stats_fn stats;
    lfpool_trace_fn tracer;
    int log_level;              /* default LFPOOL_LOG_WARNING */
    lfpool_log_fn log;          /* default: one line on stderr */
    void *log_ctx;
    lfpool_clock_fn clock;      /* default: library coarse monotonic clock */
    void *clock_ctx;
    int kill_mode;              /* LFPOOL_KILL_DEFER (default) or LFPOOL_KILL_CLOSE */
    bool lazy_start;            /* no thread, no objects until the first get */
    /* connection pools (docs/OPERATIONS.md, section 11) */
    lfpool_health_fn validate;  /* validate on borrow: > 0 hand out, else destroy; NULL = off */
    double validate_idle;       /* validate objects available at least this long; default 0.5, 0 = every get */
    double max_lifetime;        /* seconds an object may live, 0 = forever (default) */
    double max_lifetime_jitter; /* each object's lifetime is max_lifetime - U(0, jitter); default 0 */
    unsigned max_creating;      /* `fun` calls running at once, 0 = unlimited (default) */
    double create_backoff;      /* seconds creation pauses after `fun` fails, 0 = off (default) */
    double create_backoff_max;  /* the doubling backoff's cap; default 30 */
    size_t max_waiters;         /* gets waiting at once, 0 = unlimited (default); beyond: EBUSY */
    /* record every return's hold time in LFPOOL_HIST_HOLD (default off: the
     * return's fast path then has no instruction for it; on, returns take
     * the fast path's steps out of line, with one per-CPU add for a hold
     * shorter than the clock's tick).  Also starts
     * the housekeeper, whose tick (at most 1 ms then) is the resolution of
     * the hold times: see lfpool_histogram() */
    bool hold_histogram;
    int housekeeper;            /* LFPOOL_HK_OWN (default): a thread of its own;
                                   LFPOOL_HK_SHARED: the process-wide housekeeper */
    /* flushes with a fence (a membarrier, which interrupts every CPU
     * running the process) that the gets may make per second while keeping
     * the per-CPU caches open; once spent, a get that must look into every
     * cache closes them instead (docs/DESIGN.md §4).  0 (the default,
     * LFPOOL_FENCES_DEFAULT) = close at once: the gets' flushes then fence
     * at most once per housekeeping period in any workload, and the pool
     * runs in "CAS mode" (one locked instruction a get and a ret) while
     * gets keep wanting every cache.  N > 0: an opt-in budget for open
     * caches, N fences a second, then the closing; LFPOOL_FENCES_BUDGET =
     * 65536 / CPUs, at least 1 (the default before the bound was) */
    size_t max_fences;
} lfpool_config;

/* cfg.max_fences: the default (set by lfpool_config_init, and what a
 * zeroed config says): no budget, the bound of one fence per period */
#define LFPOOL_FENCES_DEFAULT 0
/* cfg.max_fences: a budget resolved by lfpool_new to 65536 divided by the
 * number of CPUs (per-CPU caches), at least 1 */
#define LFPOOL_FENCES_BUDGET SIZE_MAX

/* Fill *cfg with the seed's defaults (everything 0/NULL except min_size 1,
 * timeout LFPOOL_FOREVER, health_freq 1, log_level LFPOOL_LOG_WARNING,
 * validate_idle 0.5 and create_backoff_max 30, which matter only once
 * validate or create_backoff is set; max_fences is LFPOOL_FENCES_DEFAULT,
 * 0). */
void lfpool_config_init(lfpool_config *cfg);

/* ------------------------------------------------------------- life cycle */

/* Create a pool from *cfg (copied; cfg may be freed afterwards).
 * Starts the housekeeper thread when a housekeeping delay applies (rounds)
 * or max_use is set (worn-out objects are closed there, after a grace
 * period), and creates min_size objects (creation failures are logged and
 * retried later), unless cfg->lazy_start: then both wait for the first get.
 * On x86-64 with glibc's rseq registration it also registers the process
 * for membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) (idempotent,
 * process-wide; the per-CPU caches need it, see lfpool_stats.cpu_cache).
 * Returns 0 and sets *pool, or:
 *   EINVAL  pool or cfg NULL, no fun, min_size > max_size on a bounded pool,
 *           a negative or NaN duration/timeout, health_freq 0, bad
 *           kill_mode or log_level (the reason is logged)
 *   ENOMEM  out of memory
 *   EAGAIN  the housekeeper thread could not be started */
int lfpool_new(lfpool **pool, const lfpool_config *cfg);

/* Get an object.  `timeout` is LFPOOL_DEFAULT (the pool's timeout), 0 (do
 * not wait), > 0 seconds, or LFPOOL_FOREVER; it only matters on a bounded
 * pool at max_size.  Hands out an available object, else creates one.
 * Returns 0 and sets *obj, or:
 *   EINVAL     pool or obj NULL, timeout NaN or negative (but DEFAULT)
 *   ESHUTDOWN  the pool is shut down (also wakes waiters)
 *   EAGAIN     timeout 0 and nothing available at max_size
 *   ETIMEDOUT  nothing became available within the timeout
 *   EEXIST     `fun` returned a pointer the pool already holds
 *   ENOMEM     no memory for the object's record
 *   EAGAIN     also: the first get of a lazy pool could not start its
 *              housekeeper thread
 *   EBUSY      the get would wait, and max_waiters gets already wait
 *   errno of the last failed `fun` while a creation backoff runs (the get
 *              would have created; an available object is still handed out)
 *   errno of `fun` (EIO if it set none) when creation failed
 * Waiting gets sleep in a FIFO; a running thread may still take a returned
 * object first, but a woken get that loses that race is handed the next.
 * Hot path (an object available): no lock, no system call, no allocation. */
int lfpool_get(lfpool *pool, void **obj, double timeout);

/* Return an object got from this pool.  Runs `retter`, then the object is
 * available again, or destroyed when worn out (max_use) or after shutdown.
 * Returns 0, or:
 *   EINVAL  pool or obj NULL
 *   ENOENT  obj is not out of this pool (never from it, already returned,
 *           or killed and closed); retter and tracer are not called, the
 *           address is logged
 *   ESTALE  obj was killed (LFPOOL_KILL_DEFER) while held; its closer ran
 *           in this call; the object is gone from the pool */
int lfpool_ret(lfpool *pool, void *obj);

/* End a hand-out and destroy the object: the caller found it broken (a
 * dead connection).  `retter` does not run; `closer` runs exactly once,
 * after an RCU grace period, on this thread or the housekeeper; the
 * capacity is free at once (a waiter is woken and may create) and min_size
 * is refilled.  Counted in nbroken.  Returns as lfpool_ret: 0, EINVAL,
 * ENOENT (not out of this pool), ESTALE (killed in DEFER mode while held:
 * closed in this call, counted as a kill, not in nbroken). */
int lfpool_ret_broken(lfpool *pool, void *obj);

/* ---------------------------------------------------------------- handles
 *
 * The same get and ret, with the object's record named by a handle instead
 * of found again by ret (through the getting thread's return hints, or the
 * table when another thread returns it or the thread holds many objects).
 * Rules of use:
 * - A handle comes from lfpool_get_handle on this pool and is used with
 *   this pool only, before lfpool_free; anything else in priv_* is
 *   undefined behaviour (a handle is not checked the way a pointer given to
 *   lfpool_ret is).  Apart from that, a stale handle is safe: a handle is a
 *   value, may be copied, and ends one hand-out, so a copy used again after
 *   its object was returned (and maybe handed out again) gives ENOENT and
 *   does not return another holder's object.  Hand-outs are told apart by
 *   a 28-bit generation per record: a copy kept across 2^28 further
 *   hand-outs of the same record may match one of them again.
 * - A retter hook runs before the hand-out is ended: two copies of one
 *   handle returned at the same time may both run it (one gets ENOENT),
 *   as two rets of one pointer may.
 * - Any thread may return a handle; lfpool_ret(pool, h.obj) works too.
 *   The handle names the thread that got it: that thread's return is the
 *   cheap one (no lookup, and no locked instruction while the pool is in
 *   biased mode); another thread's return, like a pointer returned by
 *   another thread, may cost one membarrier and turns biased returns off
 *   until a quiet housekeeping round (nbias_fences, ret_biased).
 * - Behaviour, hooks, statistics and return codes are those of lfpool_get
 *   and lfpool_ret, with `h` in place of `obj` (EINVAL: h or h->obj NULL). */
typedef struct lfpool_handle {
    void *obj;          /* the object */
    void *priv_rec;     /* private: the object's record */
    uint64_t priv_pool; /* private: the pool's id */
    uint32_t priv_word; /* private: the hand-out (generation) */
    uint32_t priv_owner; /* private: the thread that got it */
} lfpool_handle;

/* lfpool_get, filling *h (h->obj is the object). */
int lfpool_get_handle(lfpool *pool, lfpool_handle *h, double timeout);

/* lfpool_ret of h->obj, for the hand-out h names only. */
int lfpool_ret_handle(lfpool *pool, const lfpool_handle *h);

/* lfpool_ret_broken of h->obj, for the hand-out h names only. */
int lfpool_ret_broken_handle(lfpool *pool, const lfpool_handle *h);

/* ------------------------------------------------------------ event loops
 *
 * Gets that never block the calling thread, for event loops (epoll, poll,
 * io_uring): a get that finds nothing available becomes a ticket in the
 * same FIFO as the blocking gets; when an object is handed over to it, the
 * loop's file descriptor becomes readable and lfpool_loop_ready() gives
 * the handle.  One descriptor per loop, whatever the number of tickets.
 * Rules of use:
 * - A loop belongs to one thread at a time: lfpool_get_async,
 *   lfpool_loop_ready, lfpool_ticket_cancel and lfpool_loop_free on the
 *   same loop must not run concurrently (different loops of one pool may).
 *   lfpool_loop_fd may be read from anywhere.
 * - `fun` and `validate` never run on the loop's thread for a ticket: the
 *   pool's housekeeper thread (started by lfpool_loop_new if the pool has
 *   none) creates or validates the object and hands it over; max_creating
 *   and create_backoff apply as for blocking gets.  Only lfpool_loop_new itself
 *   may run `fun` (the min_size fill of a lazy pool it starts); the getter
 *   hook runs in lfpool_loop_ready (or lfpool_get_async), on the loop's
 *   thread.
 * - A ticket is valid from lfpool_get_async until its event is returned by
 *   lfpool_loop_ready, it is cancelled, or its loop is freed; using it
 *   after that is undefined.  Tickets have no deadline: the loop's timers
 *   own time, and cancel.
 * - Objects got through a loop are returned with lfpool_ret_handle (or
 *   lfpool_ret), from any thread.
 * - lfpool_free with loops alive shuts the pool down (every ticket
 *   completes with ESHUTDOWN) and leaves the release of its memory to the
 *   last lfpool_loop_free.  A fork child must not use a parent's loop.
 */
typedef struct lfpool_loop lfpool_loop;
typedef struct lfpool_ticket lfpool_ticket;

/* One completed ticket, as lfpool_loop_ready returns it. */
typedef struct lfpool_loop_event {
    lfpool_ticket *ticket; /* the ticket it completes (no longer valid: a name only) */
    void *udata;           /* as given to lfpool_get_async */
    int err;               /* 0: h holds the object; ESHUTDOWN; fun's errno (EIO
                              if none), ENOMEM, EEXIST: the creation failed */
    lfpool_handle h;       /* the object, when err is 0 */
} lfpool_loop_event;

/* Create a loop on pool: an eventfd (non-blocking, close-on-exec) and the
 * pool's housekeeper thread if it has none.  Starts a lazy pool.
 * Returns 0 and sets *loop, or:
 *   EINVAL     pool or loop NULL
 *   ESHUTDOWN  the pool is shut down
 *   ENOMEM     out of memory
 *   EAGAIN     the housekeeper thread could not be started
 *   EMFILE, ENFILE, ENODEV  eventfd(2)'s errors
 *   ENOTSUP    the pool runs on the shared housekeeper (LFPOOL_HK_SHARED) */
int lfpool_loop_new(lfpool *pool, lfpool_loop **loop);

/* The loop's file descriptor: readable (level) while completed tickets
 * wait for lfpool_loop_ready.  Poll it for reading (EPOLLIN); do not read
 * or close it.  -1 for a NULL loop. */
int lfpool_loop_fd(const lfpool_loop *loop);

/* Get without blocking.  An available object is taken at once: returns 0
 * with *h filled (the getter hook ran).  Otherwise the get joins the FIFO
 * of waiters as a ticket: returns EINPROGRESS with *ticket set; the
 * object (or an error) comes later through lfpool_loop_ready, in FIFO
 * order with every other waiter (blocking gets and other loops'
 * tickets); when the pool may create, the housekeeper runs `fun` for it.
 * An object whose validation on borrow is due is left to the
 * housekeeper, which validates it (`validate` never runs on the loop's
 * thread).  udata is given back with the ticket's event.  Also returns:
 *   EINVAL     loop, h or ticket NULL
 *   ESHUTDOWN  the pool is shut down
 *   EBUSY      max_waiters gets (blocking or tickets) already wait
 *   ENOMEM     no memory for the ticket */
int lfpool_get_async(lfpool_loop *loop, void *udata, lfpool_handle *h, lfpool_ticket **ticket);

/* Take up to n completed tickets' events into ev[0..*got-1], oldest
 * completion first; each ticket gives exactly one event, then is gone.
 * The descriptor stays readable while events remain (n was too small).
 * Returns 0 (also with *got 0: nothing completed), or EINVAL (loop or got
 * NULL, ev NULL with n > 0). */
int lfpool_loop_ready(lfpool_loop *loop, lfpool_loop_event *ev, size_t n, size_t *got);

/* Give a ticket up: it leaves the FIFO, or, if an object was already
 * handed over to it (its event not yet taken), that object goes to the
 * next waiter (or back to the pool) and the event is never reported.
 * Returns 0, or EINVAL (loop or ticket NULL, ticket already cancelled). */
int lfpool_ticket_cancel(lfpool_loop *loop, lfpool_ticket *ticket);

/* Cancel every ticket of the loop (objects handed over go to the next
 * waiters), close its descriptor and free it.  NULL is a no-op. */
void lfpool_loop_free(lfpool_loop *loop);
/* Bulk: n objects at once, all or none (like DPDK's rte_mempool_get_bulk).
 * lfpool_get_bulk fills hs[0, n) with n hand-outs, as n lfpool_get_handle
 * calls would, or takes none: objects it took while it could not get all n
 * are given back before it waits (not counted as uses, no getter or retter
 * hook), so it never holds objects while it waits.  It waits like a get
 * (timeout as for lfpool_get) until all n can be had at once.  Returns 0,
 * or those of lfpool_get, and:
 *   EINVAL  pool NULL, hs NULL with n > 0, a bad timeout, or n > the
 *           max_size in force on a bounded pool (it could not succeed)
 * n = 0 returns 0 (after the checks a get makes: ESHUTDOWN...).
 * lfpool_ret_bulk returns every handle of hs[0, n) as lfpool_ret_handle
 * would, also after one fails; it returns 0 or the first failure's code
 * (EINVAL: pool NULL, or hs NULL with n > 0). */
int lfpool_get_bulk(lfpool *pool, lfpool_handle *hs, size_t n, double timeout);
int lfpool_ret_bulk(lfpool *pool, const lfpool_handle *hs, size_t n);

/* Run one housekeeping round now, on the calling thread (rounds are
 * serialised with the housekeeper's).  Returns 0, EINVAL (NULL pool) or
 * ESHUTDOWN. */
int lfpool_housekeep(lfpool *pool);

/* Shut down: stop the housekeeper (waiting up to `delay` seconds for it),
 * refuse further gets (ESHUTDOWN), wake every waiter, close available
 * objects; objects still out are closed when they come back.  A second
 * call is harmless (0).  Returns 0 or EINVAL (NULL pool, NaN/negative
 * delay). */
int lfpool_shutdown(lfpool *pool, double delay);

/* Shut down if needed, wait for the housekeeper to finish, close every
 * object the pool still knows (objects still out are closed too, with a
 * warning: do not use them afterwards) and release all memory.  NULL is a
 * no-op.  No other call on this pool may run concurrently or later. */
void lfpool_free(lfpool *pool);

/* ------------------------------------------------------ runtime control */

/* Change the bounds now, from any thread.  Growing wakes waiters for the new
 * room; shrinking never takes an object from its holder: surplus available
 * objects are closed at once (and by later rounds), surplus returned ones on
 * return, and once the call has returned no get succeeds beyond the new
 * max_size.  max_size 0 is unbounded.  The pool is refilled to min_size.
 * Returns 0, EINVAL (NULL pool, min_size > max_size on a bounded pool) or
 * ESHUTDOWN. */
int lfpool_set_size(lfpool *pool, size_t min_size, size_t max_size);

/* Hold every get: while paused, gets wait (their timeout holds; timeout 0
 * gives EAGAIN) and no object is handed out, even an available one;
 * returns, rounds and stats go on.  lfpool_resume() wakes the waiters in
 * FIFO order; shutdown wakes them with ESHUTDOWN.  Both are idempotent.
 * Returns 0, EINVAL (NULL pool) or ESHUTDOWN. */
int lfpool_pause(lfpool *pool);
int lfpool_resume(lfpool *pool);

/* Evict objects: LFPOOL_EVICT_IDLE closes every available object now;
 * LFPOOL_EVICT_ALL also has every object out closed when it is returned
 * (lfpool_ret gives 0), so that no object created before the call is handed
 * out after it returns.  Refills to min_size; counted in nevicted.
 * Returns 0, EINVAL (NULL pool, bad `how`) or ESHUTDOWN. */
int lfpool_evict(lfpool *pool, int how);

/* A static description of an lfpool return code. */
const char *lfpool_strerror(int err);

/* ------------------------------------------------------------------ stats */

/* Every number of the JSON stats, same names and meanings (docs/CONTRACT.md
 * §3.6).  sem_value/sem_init are -1 on an unbounded pool; started and now
 * are wall-clock timestamps, seconds since the epoch (now even with an
 * injected clock); running, rel_hk_last and time_per_hk are on the pool's
 * clock; timeout is LFPOOL_FOREVER (JSON null) when unlimited. */
struct lfpool_stats {
    uint64_t id;
    double started;
    uint64_t min_size, max_size, max_use;
    double timeout, delay, max_avail_delay, max_using_delay_kill, max_using_delay_warn;
    uint64_t health_freq;
    double now;
    int64_t sem_value, sem_init;
    uint64_t navail, nusing, ntodel;
    double running, rel_hk_last, time_per_hk;
    bool shutdown;
    uint64_t nobjs, ncreated, ncreating, nuses, nkilled, nrecycled, nwornout;
    uint64_t nborrows, nreturns, ndestroys, nhealth, bad_health;
    uint64_t hk_rounds, hk_errors, hc_rounds, hc_errors;
    /* not in the seed: records each per-CPU cache holds (0: per-CPU caches
     * off - no rseq, or a bounded pool too small for them), and how many
     * times the caches were flushed to the shared stack (housekeeping
     * rounds, the closing of the caches by gets that wait or miss - at most
     * once per housekeeping period -, control calls; a flush makes a
     * membarrier system call unless every cache was closed: nfences) */
    uint64_t cpu_cache, nflushes;
    /* not in the seed: returns by the getting thread commit without a
     * locked instruction (true), or every return CASes (false: no rseq, or
     * returns from other threads or kills since the last quiet housekeeping
     * round); how many times a return from another thread or a kill ended
     * a biased stretch (one membarrier system call each) */
    bool ret_biased;
    uint64_t nbias_fences;
    /* not in the seed (connection pools): objects returned broken
     * (lfpool_ret_broken); validations on borrow that failed (validate gave
     * 0 or < 0) and, of those, that gave < 0; objects destroyed for passing
     * max_lifetime; `fun` calls that failed; creations refused at once
     * during a creation backoff */
    uint64_t nbroken, nvalidate_failed, nvalidate_errors, nexpired;
    uint64_t ncreate_failed, ncreate_skipped;
    /* not in the seed (observability): gets waiting now (a gauge); gets
     * that waited (registered as waiters at max_size, whatever the outcome);
     * of those, the ones that gave ETIMEDOUT; seconds they waited in total;
     * seconds spent in `fun` in total (every call, failed ones too) */
    uint64_t waiting, nwaits, ntimeouts;
    double wait_time, create_time;
    /* not in the seed: objects closed by lfpool_evict() (available ones at
     * the call, and with LFPOOL_EVICT_ALL those out at the call, on return) */
    uint64_t nevicted;
    /* not in the seed: every membarrier system call the pool made (each
     * interrupts every CPU running the process): the probe at creation (and
     * in a fork child), flushes that found a per-CPU cache open, the first
     * waiter's closing of the caches (at most one per housekeeping period,
     * docs/DESIGN.md §4), and the bias fences (nbias_fences) */
    uint64_t nfences;
    /* not in the seed: whether the gets have closed the per-CPU caches now
     * ("CAS mode": each CPU's threads still use their cache, with one
     * locked instruction a get and a ret, and no membarrier), and how many
     * times they closed them (each closing is one membarrier, at most one
     * per housekeeping period; docs/DESIGN.md §4) */
    bool cpu_closed;
    uint64_t ncloses;
};

/* Fill *out with every counter and setting; allocates nothing.
 * Returns 0 or EINVAL. */
int lfpool_stats(lfpool *pool, struct lfpool_stats *out);

/* The seed's stats() as JSON text (every key, plus per-object entries),
 * malloc'd, NUL-terminated, always valid JSON; the caller frees it.
 * NULL with errno set (EINVAL, ENOMEM) on failure. */
char *lfpool_stats_json(lfpool *pool);

/* ------------------------------------------------------------- histograms
 *
 * Fixed log2 buckets: count[i] counts values v (seconds) with
 * 2^(i-21) < v <= 2^(i-20) for i = 1 .. LFPOOL_HIST_BUCKETS - 2, count[0]
 * the values <= 2^-20 s (about 1 us, zero included), and the last bucket
 * those above 2^6 = 64 s.  LFPOOL_HIST_LE(i) is bucket i's upper bound
 * (INFINITY for the last).  total is the number of values recorded (the
 * sum of count[]); sum the sum of the values in seconds (kept in integer
 * nanoseconds).  Recording is exact: every operation is counted once. */
#define LFPOOL_HIST_BUCKETS 28
#define LFPOOL_HIST_LE(i) ((i) >= LFPOOL_HIST_BUCKETS - 1 ? INFINITY : ldexp(1.0, (int)(i) - 20))

enum {
    /* how long a get waited: only gets that waited (lfpool_stats.nwaits),
     * recorded when the wait ends (slow path; CLOCK_MONOTONIC, or the
     * injected clock) */
    LFPOOL_HIST_WAIT = 0,
    /* how long an object was held: get to ret, for every return that ends
     * a hand-out (0 or ESTALE), with cfg.hold_histogram only.  Taken from
     * the stamps the record already has: the pool's coarse clock (the
     * housekeeper's tick, at most 1 ms with hold_histogram) or the
     * injected clock; holds shorter than a tick may read 0 */
    LFPOOL_HIST_HOLD = 1,
    /* how long `fun` took, every call (slow path) */
    LFPOOL_HIST_CREATE = 2,
    LFPOOL_HIST_KINDS = 3
};

struct lfpool_histogram {
    uint64_t count[LFPOOL_HIST_BUCKETS];
    uint64_t total;
    double sum;
};

/* Fill *out with histogram `which` (LFPOOL_HIST_*), summed over the CPUs
 * it is kept on; allocates nothing.  Returns 0 or EINVAL. */
int lfpool_histogram(lfpool *pool, int which, struct lfpool_histogram *out);

/* ----------------------------------------------------- OpenMetrics export */

/* One OpenMetrics text exposition (also valid Prometheus text format) for
 * n pools, pool i labelled pool="names[i]" (escaped; NULL names: the pool
 * ids): every counter of lfpool_stats as lfpool_<name>_total, the gauges,
 * the settings as gauges, and the three histograms as lfpool_wait_seconds,
 * lfpool_hold_seconds and lfpool_create_seconds (cumulative _bucket{le},
 * _count, _sum), ending with "# EOF".  malloc'd, NUL-terminated; the
 * caller frees it.  NULL with errno set (EINVAL: pools NULL with n > 0 or a
 * NULL pool; ENOMEM) on failure. */
char *lfpool_stats_openmetrics(lfpool *const *pools, const char *const *names, size_t n);

/* ------------------------------------------------------ JSON value writer */

/* The writer given to the stats hook (and used by lfpool_stats_json).  It
 * keeps the output well-formed whatever the caller does: a misuse (a key
 * outside an object, a value where a key is expected, a second top-level
 * value) returns EINVAL and poisons the writer, and the hook's value then
 * becomes null; containers left open are closed.  Strings are escaped (and
 * invalid UTF-8 replaced by U+FFFD); non-finite numbers become null.
 * Each call returns 0, EINVAL or ENOMEM. */
int lfpool_json_begin_object(struct lfpool_json *j);
int lfpool_json_end_object(struct lfpool_json *j);
int lfpool_json_begin_array(struct lfpool_json *j);
int lfpool_json_end_array(struct lfpool_json *j);
int lfpool_json_key(struct lfpool_json *j, const char *key);
int lfpool_json_string(struct lfpool_json *j, const char *s);
int lfpool_json_string_len(struct lfpool_json *j, const char *s, size_t len);
int lfpool_json_integer(struct lfpool_json *j, int64_t v);
int lfpool_json_number(struct lfpool_json *j, double v);
int lfpool_json_bool(struct lfpool_json *j, bool v);
int lfpool_json_null(struct lfpool_json *j);

/* ------------------------------------------------------------ scoped use */

/* LFPOOL_WITH(pool, var, timeout) { ... }
 * Declares `void *var`, runs the block once when the get succeeds (not at
 * all when it fails) and returns the object when the block is left by any
 * path: falling off the end, break, continue, return, goto.
 * Needs GCC or Clang (__attribute__((cleanup))). */
struct lfpool__with {
    lfpool *w_pool;
    void *w_obj;
    int w_entered;
};
static inline void lfpool__with_release(struct lfpool__with *w)
{
    if (w->w_obj)
        (void)lfpool_ret(w->w_pool, w->w_obj);
}
#define LFPOOL__WITH_NAME(var) lfpool__with_##var
#define LFPOOL_WITH(pool, var, timeout)                                          \
    for (struct lfpool__with LFPOOL__WITH_NAME(var)                              \
             __attribute__((cleanup(lfpool__with_release))) = {(pool), NULL, 0}; \
         !LFPOOL__WITH_NAME(var).w_entered &&                                      \
         (LFPOOL__WITH_NAME(var).w_entered = 1,                                    \
          lfpool_get(LFPOOL__WITH_NAME(var).w_pool, &LFPOOL__WITH_NAME(var).w_obj,   \
                     (timeout)) == 0);)                                          \
        for (void *var = LFPOOL__WITH_NAME(var).w_obj; var != NULL; var = NULL)

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* LFPOOL_H */
