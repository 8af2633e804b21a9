/*
 * pool.c - the pool glue: configuration, life cycle, get and ret.
 *
 * Owns: lfpool_new/get/ret/shutdown/free, object creation (§3.1), the
 * get/ret protocol of §3.2 and §3.4 (ret side), lazy start and fork reset
 * (§3.7), shutdown (§3.8).  Invariants: nobjs never exceeds max_size (it is
 * reserved by CAS before `fun` runs and released on every failure path);
 * every removal from the pool wakes a waiter; a record is released for
 * reuse only after an RCU grace period that follows its removal from the
 * table.
 *
 * The hot path, get with an object available:
 *   life word check -> shutdown check -> per-CPU slot exchange ->
 *   CAS AVAIL->OUT -> uses/last_get stores -> per-thread hint store.
 * and ret: per-thread hint probe (validated: record still OUT for obj) ->
 *   CAS OUT->AVAIL -> slot CAS -> waiter check; on a hint miss, the same
 *   under rcu_read_lock after a hash lookup.
 * No lock, no system call, no allocation, no clock_gettime.  Neither needs
 * an RCU read-side section: records are type-stable (meta.c).
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


/* Process-wide state, kept to what liburcu requires plus the seed's pool
 * numbering: liburcu-bp's fork rule (urcu_bp_before_fork & co around
 * fork(), registered once with pthread_atfork) and the pool id counter. */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t pool_ids;

static void register_atfork(void)
{
    pthread_atfork(urcu_bp_before_fork, urcu_bp_after_fork_parent, urcu_bp_after_fork_child);
}

void lfpool_config_init(lfpool_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->min_size = 1;
    cfg->timeout = LFPOOL_FOREVER;
    cfg->health_freq = 1;
    cfg->log_level = LFPOOL_LOG_WARNING;
    cfg->kill_mode = LFPOOL_KILL_DEFER;
}

static bool bad_duration(double d)
{
    return isnan(d) || d < 0 || isinf(d);
}

static int validate(const lfpool_config *cfg)
{
    const char *why = NULL;
    if (!cfg->fun)
        why = "fun is mandatory";
    else if (cfg->max_size && cfg->min_size > cfg->max_size)
        why = "min_size > max_size";
    else if (isnan(cfg->timeout) || cfg->timeout < 0)
        why = "timeout must be >= 0 or LFPOOL_FOREVER";
    else if (bad_duration(cfg->max_avail_delay))
        why = "max_avail_delay must be finite and >= 0";
    else if (bad_duration(cfg->max_using_delay))
        why = "max_using_delay must be finite and >= 0";
    else if (bad_duration(cfg->max_using_delay_kill))
        why = "max_using_delay_kill must be finite and >= 0";
    else if (bad_duration(cfg->delay))
        why = "delay must be finite and >= 0";
    else if (cfg->health_freq == 0)
        why = "health_freq must be >= 1";
    else if (cfg->kill_mode != LFPOOL_KILL_DEFER && cfg->kill_mode != LFPOOL_KILL_CLOSE)
        why = "kill_mode must be LFPOOL_KILL_DEFER or LFPOOL_KILL_CLOSE";
    else if (cfg->log_level < LFPOOL_LOG_ERROR || cfg->log_level > LFPOOL_LOG_DEBUG)
        why = "log_level must be LFPOOL_LOG_ERROR..LFPOOL_LOG_DEBUG";
    if (why) {
        lfpool_log_cfg(cfg, LFPOOL_LOG_ERROR, "invalid configuration: %s", why);
        return EINVAL;
    }
    return 0;
}

/* The seed's default delay: explicit, else half of the smaller non-zero of
 * max_avail_delay and the warn threshold, else 60 s with a health hook. */
static double compute_delay(const lfpool_config *cfg, double warn)
{
    if (cfg->delay > 0)
        return cfg->delay;
    if (cfg->max_avail_delay > 0 || warn > 0) {
        double d = cfg->max_avail_delay;
        if (d == 0 || (warn > 0 && d > warn))
            d = warn;
        return d / 2.0;
    }
    return cfg->health ? 60.0 : 0.0;
}

/* ---- objects */

bool lfpool_reserve(struct lfpool *p, size_t limit)
{
    int64_t n = LD(p->nobjs);
    do {
        if ((uint64_t)n >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->nobjs, &n, n + 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
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
    INC(p->c.ndestroys);
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
    INC(p->c.ncreating);
    uint64_t n = LD(p->c.ncreated);
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
    INC(p->c.ncreated);
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
    atomic_store_explicit(&rec->state, w, memory_order_release);
    if (!for_get)
        lfpool_set_put(p, rec);
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
    size_t limit = p->cfg.min_size;
    if (p->cfg.max_size && p->cfg.max_size < limit)
        limit = p->cfg.max_size;
    while (!atomic_load(&p->shutdown) && (size_t)LD(p->nobjs) < limit) {
        struct lfpool_rec *rec;
        if (!lfpool_reserve(p, limit))
            break;
        if (lfpool_create(p, &rec, NULL, NULL, false) != 0)
            break;
    }
}

/* ---- life: lazy start and fork */

static void fork_reset(struct lfpool *p);

/* Make the pool usable in this process (reset after fork).  Every entry
 * point but the get fast path calls this; get checks the life word. */
int lfpool_enter(struct lfpool *p)
{
    for (;;) {
        uint32_t l = atomic_load_explicit(&p->lp->life, memory_order_acquire);
        if (l >= LIFE_LAZY)
            return 0;
        if (l == LIFE_WIPED) {
            uint32_t w = LIFE_WIPED;
            if (atomic_compare_exchange_strong(&p->lp->life, &w, LIFE_RESETTING)) {
                fork_reset(p);
                atomic_store_explicit(&p->lp->life, LIFE_LAZY, memory_order_release);
                return 0;
            }
            continue;
        }
        sched_yield();
    }
}

static int start(struct lfpool *p)
{
    if (p->delay > 0 || p->cfg.max_use > 0) {
        int r = lfpool_hk_start(p);
        if (r)
            return r;
    }
    lfpool_fill(p);
    return 0;
}

/* Slow entry of get: fork reset, lazy start. */
static int get_prepare(struct lfpool *p)
{
    for (;;) {
        lfpool_enter(p);
        uint32_t l = atomic_load_explicit(&p->lp->life, memory_order_acquire);
        if (l == LIFE_READY || l == LIFE_STARTING)
            return 0;
        if (l == LIFE_LAZY) {
            uint32_t w = LIFE_LAZY;
            if (atomic_compare_exchange_strong(&p->lp->life, &w, LIFE_STARTING)) {
                int r = start(p);
                atomic_store_explicit(&p->lp->life, r ? LIFE_LAZY : LIFE_READY,
                                      memory_order_release);
                return r;
            }
        }
    }
}

/* In a fork child: drop every inherited record without closer (the
 * objects belong to the parent), start again from an empty pool. */
static void fork_reset(struct lfpool *p)
{
    struct lfpool_rec *rec, *next;
    p->hk.has_thread = false;
    pthread_mutex_init(&p->hk.round_lock, NULL);
    atomic_store(&p->hk.kick, 0);
    atomic_store(&p->hk.stop, false);
    atomic_store(&p->ht_resizing, false); /* a parent thread may have been resizing */
    /* a parent round may have been mid-way: its lists name parent objects */
    p->hk.close_only.n = 0;
    p->hk.scratch.n = 0;
    /* the gate first: the set's reset and drain below signal it, and its
     * FIFO names nodes on the stacks of parent threads */
    atomic_store(&p->gate.waiters, 0);
    atomic_store(&p->gate.parked, 0);
    atomic_store(&p->gate.woken, 0);
    atomic_store(&p->gate.pending, 0);
    atomic_store(&p->gate.lock, 0);
    atomic_store(&p->gate.gift_wanted, 0);
    p->gate.head = p->gate.tail = NULL;
    lfpool_set_fork_reset(p);

    rcu_read_lock();
    while ((rec = lfpool_set_pop_any(p)) != NULL)
        if (rec_st(rec_load(rec)) == REC_DEAD_SET)
            lfpool_list_push(&p->zombies, rec); /* not in the table */
    rcu_read_unlock();
    for (int l = 0; l < 2; l++)
        for (rec = lfpool_list_take_all(l ? &p->zombies : &p->pending); rec; rec = next) {
            next = lfpool_list_next(rec);
            lfpool_rec_release(p, rec);
        }
    /* the table's records, and a fresh table: never the inherited one,
     * whose resize mutex a parent thread may have held (meta.c) */
    lfpool_meta_fork_reset(p);
    memset(&p->c, 0, sizeof p->c);
    atomic_store(&p->nobjs, 0);
    atomic_store(&p->hk_last, 0.0);
    atomic_store(&p->hk_time, 0.0);
    lfpool_now_fresh(p);
    lfpool_log(p, LFPOOL_LOG_INFO, "fork child: pool reset, inherited objects dropped");
}

/* ---- new */

int lfpool_new(lfpool **pool, const lfpool_config *cfg)
{
    if (!pool || !cfg) {
        lfpool_log_cfg(cfg, LFPOOL_LOG_ERROR, "invalid arguments: NULL %s", pool ? "cfg" : "pool");
        return EINVAL;
    }
    *pool = NULL;
    int r = validate(cfg);
    if (r)
        return r;
    pthread_once(&atfork_once, register_atfork);

    struct lfpool *p = aligned_alloc(2 * LFPOOL_CACHELINE,
                                     (sizeof *p + 2 * LFPOOL_CACHELINE - 1) & ~(size_t)(2 * LFPOOL_CACHELINE - 1));
    if (!p)
        return ENOMEM;
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    p->id = atomic_fetch_add(&pool_ids, 1) + 1;
    p->max_use = cfg->max_use;
    p->warn = cfg->max_using_delay > 0 ? cfg->max_using_delay : cfg->max_using_delay_kill;
    p->guard_get = cfg->kill_mode == LFPOOL_KILL_CLOSE && cfg->max_using_delay_kill > 0;
    p->fast_get = !cfg->getter && !p->guard_get && !cfg->clock;
    p->fast_ret = !cfg->retter && !cfg->clock;
    p->delay = compute_delay(cfg, p->warn);
    if (cfg->max_using_delay_kill > 0 && p->warn > cfg->max_using_delay_kill)
        lfpool_log(p, LFPOOL_LOG_WARNING, "inconsistent max_using_delay_warn > max_using_delay_kill");
    p->started_epoch = lfpool_epoch_now();
    p->started_mono = cfg->clock ? cfg->clock(cfg->clock_ctx) : lfpool_mono_now();
    atomic_init(&p->coarse_now, lfpool_mono_now());
    ck_stack_init(&p->pending);
    ck_stack_init(&p->zombies);
    ck_stack_init(&p->rec_free);

    p->lp = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->lp == MAP_FAILED) {
        free(p);
        return ENOMEM;
    }
    if (madvise(p->lp, (size_t)sysconf(_SC_PAGESIZE), MADV_WIPEONFORK) != 0)
        lfpool_log(p, LFPOOL_LOG_WARNING, "MADV_WIPEONFORK unavailable: fork safety disabled");

    if ((r = lfpool_set_init(p)) || (r = lfpool_meta_init(p)) || (r = lfpool_hk_init(p))) {
        lfpool_hk_fini(p);
        lfpool_meta_fini(p);
        lfpool_set_fini(p);
        munmap(p->lp, (size_t)sysconf(_SC_PAGESIZE));
        free(p);
        return r;
    }
    lfpool_gate_init(&p->gate, p->ncaches);
    atomic_store(&p->lp->life, LIFE_LAZY);
    if (!cfg->lazy_start) {
        atomic_store(&p->lp->life, LIFE_STARTING);
        r = start(p);
        if (r) {
            atomic_store(&p->lp->life, LIFE_LAZY);
            lfpool_free(p);
            return r;
        }
        atomic_store(&p->lp->life, LIFE_READY);
    }
    lfpool_log(p, LFPOOL_LOG_INFO, "pool created (min %zu, max %zu, delay %g)", cfg->min_size,
               cfg->max_size, p->delay);
    *pool = p;
    return 0;
}

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

/* `word`: the record's state word as this thread handed it out (gen | OUT) */
static inline void hint_set(struct lfpool *p, void *obj, struct lfpool_rec *rec, uint32_t word)
{
    struct hint *h = hint_slot(obj);
    h->pool_id = p->id;
    h->obj = obj;
    h->rec = rec;
    h->word = word;
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
    uint32_t w;
    return hint_get(p, obj, &w) == rec && w == word;
}

/* ---- get */

/* Take an available record, count the use.  Once a record is OUT only its
 * holder can end that, except a kill: in KILL_CLOSE mode the record may be
 * closed and reused while this thread is still between the claim and its
 * last touch of the record, so that stretch runs in a read-side section the
 * reaper's grace period waits for (guard_get).  Without CLOSE kills the
 * hot path needs none. */
static inline __attribute__((always_inline)) struct lfpool_rec *take(struct lfpool *p, bool waiting)
{
    if (lfpool_unlikely(p->guard_get))
        rcu_read_lock();
    struct lfpool_rec *rec = lfpool_set_take(p, lfpool_now(p), waiting);
    if (lfpool_likely(rec != NULL))
        atomic_store_explicit(&rec->uses, LD(rec->uses) + 1, memory_order_relaxed);
    return rec;
}

static inline void take_done(struct lfpool *p)
{
    if (lfpool_unlikely(p->guard_get))
        rcu_read_unlock();
}

/* Finish a get: the object, a return hint (*word: the hand-out it names);
 * then leave the guard. */
static inline void *took(struct lfpool *p, struct lfpool_rec *rec, uint32_t *word)
{
    void *o = rec->obj;
    *word = hint_put(p, o, rec);
    take_done(p);
    return o;
}

static inline void handle_set(struct lfpool *p, lfpool_handle *h, void *obj,
                              struct lfpool_rec *rec, uint32_t word)
{
    h->obj = obj;
    h->priv_rec = rec;
    h->priv_pool = p->id;
    h->priv_word = word;
}

/* Slow paths are kept out of line (noinline, cold) so that the fast paths
 * of get and ret stay small: no spills, few saved registers. */
#define LFPOOL_SLOW __attribute__((noinline, cold))

static int ret_put_rest(struct lfpool *p, struct lfpool_rec *rec, int r);

/* take() for a record handed over by the gate (CACHED, ours): 0, or
 * ESHUTDOWN as a look would give, the record put back */
static int take_gift(struct lfpool *p, struct lfpool_rec *rec, void **obj,
                     struct lfpool_rec **recp, uint32_t *word)
{
    if (atomic_load(&p->shutdown)) {
        ret_put_rest(p, rec, LFPOOL_PUT_STACK);
        return ESHUTDOWN;
    }
    if (lfpool_unlikely(p->guard_get))
        rcu_read_lock();
    lfpool_set_claim(rec, rec_load(rec), lfpool_now(p));
    atomic_store_explicit(&rec->uses, LD(rec->uses) + 1, memory_order_relaxed);
    *obj = took(p, rec, word);
    *recp = rec;
    return 0;
}

static LFPOOL_SLOW int get_slow(struct lfpool *p, double timeout, void **obj,
                                struct lfpool_rec **recp, uint32_t *word)
{
    struct timespec deadline;
    const struct timespec *dl = NULL;
    bool waiting = false, slept = false, timed_out = false, parked = false;
    bool front = false;
    struct lfpool_gate_node node;
    int r;
    size_t limit = p->cfg.max_size ? p->cfg.max_size : SIZE_MAX;

    for (;;) {
        if (waiting && !timed_out) { /* park, then look (gate.c) */
            lfpool_gate_park(&p->gate, &node, front);
            parked = true;
        }
        if (atomic_load(&p->shutdown)) { /* waiters woken by shutdown leave empty-handed */
            r = ESHUTDOWN;
            break;
        }
        /* every look of a registered waiter that finds nothing else
         * flushes: the heavy side of the fence that lets a ret push into
         * a cache and read the gate with no fence of its own (cache.c) */
        struct lfpool_rec *rec = take(p, waiting);
        if (rec) {
            *obj = took(p, rec, word);
            *recp = rec;
            r = 0;
            break;
        }
        take_done(p);
        if (lfpool_reserve(p, limit)) {
            /* leave the FIFO before `fun` runs: a grant or a hand-over must
             * not wait on user code (which may even get from this pool) */
            if (parked) {
                parked = false;
                if (lfpool_gate_unpark(&p->gate, &node)) {
                    slept = true; /* the turn is ours to pass on */
                    if (node.gift) { /* a record came with it: take that */
                        lfpool_unreserve(p);
                        r = take_gift(p, node.gift, obj, recp, word);
                        node.gift = NULL;
                        break;
                    }
                }
            }
            r = lfpool_create(p, &rec, obj, word, true);
            if (r == 0) { /* a stale hint (CLOSE kill after a stall) is harmless */
                hint_set(p, *obj, rec, *word);
                *recp = rec;
            }
            break;
        }
        if (atomic_load(&p->shutdown)) {
            r = ESHUTDOWN;
            break;
        }
        if (timeout == 0) {
            r = EAGAIN;
            break;
        }
        if (timed_out) {
            r = ETIMEDOUT;
            break;
        }
        if (!waiting) {
            atomic_fetch_add_explicit(&p->gate.waiters, 1, memory_order_seq_cst);
            atomic_thread_fence(memory_order_seq_cst);
            waiting = true;
            if (!isinf(timeout)) {
                lfpool_abs_deadline(timeout, &deadline);
                dl = &deadline;
            }
            continue; /* re-check after registering */
        }
        slept = true;
        parked = false; /* lfpool_gate_sleep unparks */
        int sr = lfpool_gate_sleep(&p->gate, &node, dl);
        front = sr == 0;
        if (node.gift) { /* handed over with the grant: ours, CACHED */
            r = take_gift(p, node.gift, obj, recp, word);
            node.gift = NULL;
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
    if (waiting)
        atomic_fetch_sub_explicit(&p->gate.waiters, 1, memory_order_seq_cst);
    /* pass the turn on: producers made no grant while ours was in flight,
     * and what they pushed into a cache may not have been visible to our
     * look; the next waiter's look flushes (cache.c) */
    if (slept && atomic_load_explicit(&p->gate.parked, memory_order_seq_cst) > 0)
        lfpool_gate_signal(&p->gate);
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

/* Everything the fast path of lfpool_get (with h: lfpool_get_handle, which
 * fills *h instead of *obj) leaves: bad arguments, start, reset, shutdown,
 * hooks, an injected clock, the CLOSE-kill guard, an empty local cache (the
 * shared stack, other CPUs' caches), creation, the wait. */
static LFPOOL_SLOW int get_rest(lfpool *p, void **obj, lfpool_handle *h, double timeout)
{
    void *o;
    struct lfpool_rec *rec;
    uint32_t word;
    if (!p || !(obj || h) || isnan(timeout) || (timeout < 0 && timeout != LFPOOL_DEFAULT))
        return get_invalid(p, !(obj || h), timeout);
    if (atomic_load_explicit(&p->lp->life, memory_order_acquire) != LIFE_READY) {
        int r = get_prepare(p);
        if (r)
            return r;
    }
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed))
        return ESHUTDOWN;
    rec = take(p, false);
    if (rec) {
        o = took(p, rec, &word);
    } else {
        take_done(p);
        int r = get_slow(p, timeout == LFPOOL_DEFAULT ? p->cfg.timeout : timeout, &o, &rec, &word);
        if (r)
            return r;
    }
    if (p->cfg.getter)
        lfpool_call_hook(p, p->cfg.getter, o, "getter");
    if (h) {
        hint_drop(p, o); /* a handle's hand-out has no owner (bias.c) */
        handle_set(p, h, o, rec, word);
    } else {
        *obj = o;
    }
    return 0;
}

/* A record in a cache that was not CACHED (cache.c deals with it); then
 * the rest of the get (of lfpool_get_handle when h is not NULL). */
static LFPOOL_SLOW int get_bad(lfpool *p, void **obj, lfpool_handle *h, double timeout,
                               struct lfpool_rec *rec, uint32_t w)
{
    lfpool_set_bad(p, rec, w);
    return get_rest(p, obj, h, timeout);
}

/* The fast path applies: a pool in its steady state (no getter hook, no
 * CLOSE-kill guard, no injected clock) and a valid timeout. */
static inline __attribute__((always_inline)) bool get_fast_ok(struct lfpool *p, double timeout)
{
    return (timeout >= 0 || timeout == LFPOOL_DEFAULT) && p->fast_get &&
           atomic_load_explicit(&p->lp->life, memory_order_acquire) == LIFE_READY &&
           !atomic_load_explicit(&p->shutdown, memory_order_relaxed);
}

/* Claim a record popped from this CPU's cache, whose word `w` says CACHED,
 * and count the use; returns its word as handed out (gen | OUT). */
static inline __attribute__((always_inline)) uint32_t get_fast_claim(struct lfpool *p,
                                                                     struct lfpool_rec *rec,
                                                                     uint32_t w)
{
    w = lfpool_set_claim(rec, w, atomic_load_explicit(&p->coarse_now, memory_order_relaxed));
    atomic_store_explicit(&rec->uses, LD(rec->uses) + 1, memory_order_relaxed);
    return w;
}

/* The fast path of lfpool_get (obj) and lfpool_get_handle (h): get_fast_ok
 * and a record in this CPU's cache; the hand-out goes to the return hint
 * and *obj, or to *h.  Everything else is a tail call to get_rest, so both
 * stay leaves with no saved registers.  Each caller passes one of obj and h
 * as a constant NULL, which the inlining folds away. */
static inline __attribute__((always_inline)) int get_fast(lfpool *p, void **obj, lfpool_handle *h,
                                                          double timeout)
{
    if (lfpool_likely(p && (obj || h) && get_fast_ok(p, timeout))) {
        struct lfpool_rec *rec = lfpool_set_pop_local(p);
        if (lfpool_likely(rec != NULL)) {
            uint32_t w = rec_load(rec); /* acquire: the pusher stored CACHED with release */
            if (lfpool_unlikely(rec_st(w) != REC_CACHED))
                return get_bad(p, obj, h, timeout, rec, w);
            w = get_fast_claim(p, rec, w);
            void *o = rec->obj;
            if (h) {
                handle_set(p, h, o, rec, w);
            } else {
                hint_set(p, o, rec, w);
                *obj = o;
            }
            return 0;
        }
    }
    return get_rest(p, obj, h, timeout);
}

int lfpool_get(lfpool *p, void **obj, double timeout)
{
    return get_fast(p, obj, NULL, timeout);
}

/* ---- handles: get and ret without the return hint or the table lookup */

int lfpool_get_handle(lfpool *p, lfpool_handle *h, double timeout)
{
    return get_fast(p, NULL, h, timeout);
}

/* ---- ret */

/* Close an object after its record left the table (not on the hot path):
 * wait for readers that might still see it, then closer and free. */
static void close_now(struct lfpool *p, struct lfpool_rec *rec)
{
    synchronize_rcu();
    lfpool_close_obj(p, rec->obj);
    lfpool_rec_release(p, rec);
}

static int ret_not_out(struct lfpool *p, struct lfpool_rec *rec, void *obj, uint32_t s,
                       bool retter_done)
{
    if (rec_st(s) == REC_KILLED) {
        uint32_t k = s;
        if (rec_cas(rec, &k, REC_KILLED, REC_DEAD) && lfpool_meta_del(p, rec)) {
            rcu_read_unlock();
            if (!retter_done)
                lfpool_call_hook(p, p->cfg.retter, obj, "retter");
            lfpool_log(p, LFPOOL_LOG_WARNING, "killed object %p returned: closing it", obj);
            close_now(p, rec);
            DEC(p->c.todel);
            return ESTALE;
        }
    }
    rcu_read_unlock();
    lfpool_log(p, LFPOOL_LOG_WARNING, "unexpected object returned: %p", obj);
    return ENOENT;
}

/* The rest of a fast ret whose record (CACHED, ours) did not simply land in
 * this CPU's cache: `r` says why (lfpool_set_put_local).  Also the check
 * for a ret that raced with shutdown's drain: it closes what it put back. */
static LFPOOL_SLOW int ret_put_rest(struct lfpool *p, struct lfpool_rec *rec, int r)
{
    if (r == LFPOOL_PUT_WAKE)
        lfpool_gate_wake(&p->gate, false);
    else if (r == LFPOOL_PUT_STACK)
        lfpool_set_put_stack(p, rec);
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed))
        lfpool_close_available(p);
    return 0;
}

static LFPOOL_SLOW int ret_careful(lfpool *p, void *obj, const lfpool_handle *h);

/* ret's fast path applies to the pool: no retter, no injected clock. */
static inline __attribute__((always_inline)) bool ret_fast_ok(struct lfpool *p)
{
    return p->fast_ret && atomic_load_explicit(&p->lp->life, memory_order_acquire) == LIFE_READY;
}

/* End the hand-out `word` (gen | OUT) of a record of this pool: not worn
 * out, no shutdown, and still OUT in that hand-out (the CAS, which a kill
 * or another ret of the same hand-out would have won).  `owner`: the
 * caller is the thread that got this hand-out (its hint holds `word`),
 * which may commit with a plain store while the pool is BIASED (bias.c;
 * everybody else fences before touching an OUT record).  False: the
 * careful path decides. */
static inline __attribute__((always_inline)) bool ret_fast_claim(struct lfpool *p,
                                                                 struct lfpool_rec *rec,
                                                                 uint32_t word, double now,
                                                                 bool owner)
{
    if (rec_load(rec) != word || (p->max_use && LD(rec->uses) >= p->max_use) ||
        atomic_load_explicit(&p->shutdown, memory_order_relaxed))
        return false;
    /* last_ret before the commit (it publishes it); a stale store here on a
     * record that is OUT for another holder is overwritten by its ret */
    atomic_store_explicit(&rec->last_ret, now, memory_order_relaxed);
    uint32_t cached = rec_word(word, REC_CACHED);
    if (owner && lfpool_likely(p->bias) &&
        lfpool_pcpu_store_if((const uint32_t *)&p->bias_mode, LFPOOL_BIAS_MASK,
                             (uint32_t *)&rec->state, word, cached) == LFPOOL_PCPU_OK)
        return true;
    /* not BIASED, or the section was aborted: the CAS decides */
    return atomic_compare_exchange_strong_explicit(&rec->state, &word, cached,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* Put a record that ret_fast_claim made CACHED (ours) into this CPU's
 * cache; anything else is a tail call. */
static inline __attribute__((always_inline)) int ret_fast_put(struct lfpool *p,
                                                              struct lfpool_rec *rec)
{
    int r = lfpool_set_put_local(p, rec);
    if (lfpool_likely(r == LFPOOL_PUT_DONE) &&
        !atomic_load_explicit(&p->shutdown, memory_order_relaxed))
        return 0;
    return ret_put_rest(p, rec, r);
}

/* The fast path: ret_fast_ok, a return hint this thread took at get whose
 * record is still OUT in that hand-out (ret_fast_claim), and room in this
 * CPU's cache.  Everything else is a tail call, so this stays a leaf with
 * no saved registers. */
int lfpool_ret(lfpool *p, void *obj)
{
    uint32_t word = 0;
    struct lfpool_rec *rec;
    if (lfpool_likely(p && obj && ret_fast_ok(p)) &&
        lfpool_likely((rec = hint_get(p, obj, &word)) != NULL) &&
        ret_fast_claim(p, rec, word, atomic_load_explicit(&p->coarse_now, memory_order_relaxed),
                       true))
        return ret_fast_put(p, rec);
    /* not OUT any more (killed, returned twice...), no hint...: careful */
    return ret_careful(p, obj, NULL);
}

/* The handle names the record and the hand-out: no hint, no lookup, from
 * any thread.  A handle of this pool (its id) points at one of its
 * records, type-stable while the pool lives, so reading it is safe even
 * when the handle is stale; the word then differs and the careful path
 * refuses it. */
int lfpool_ret_handle(lfpool *p, const lfpool_handle *h)
{
    if (lfpool_likely(p && h && h->obj && h->priv_pool == p->id && h->priv_rec != NULL &&
                      ret_fast_ok(p)) &&
        ret_fast_claim(p, h->priv_rec, h->priv_word,
                       atomic_load_explicit(&p->coarse_now, memory_order_relaxed), false))
        return ret_fast_put(p, h->priv_rec);
    if (p && !h) {
        lfpool_log(p, LFPOOL_LOG_ERROR, "ret_handle: NULL handle");
        return EINVAL;
    }
    return ret_careful(p, h ? h->obj : NULL, h);
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

static LFPOOL_SLOW int ret_careful(lfpool *p, void *obj, const lfpool_handle *h)
{
    struct lfpool_rec *rec;
    if (!p || !obj) {
        if (p)
            lfpool_log(p, LFPOOL_LOG_ERROR, "ret: NULL object");
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_ret: NULL pool");
        return EINVAL;
    }
    if (atomic_load_explicit(&p->lp->life, memory_order_acquire) <= LIFE_RESETTING)
        lfpool_enter(p);
    /* With an injected clock (tests) the fast path's steps, the time from
     * the clock: the hint or handle, the CAS, this CPU's cache. */
    if (p->cfg.clock && !p->cfg.retter &&
        atomic_load_explicit(&p->lp->life, memory_order_acquire) == LIFE_READY) {
        uint32_t word = h ? h->priv_word : 0;
        rec = h ? (h->priv_pool == p->id ? h->priv_rec : NULL) : hint_get(p, obj, &word);
        if (rec && ret_fast_claim(p, rec, word, lfpool_now(p), h == NULL))
            return ret_fast_put(p, rec);
    }
    rcu_read_lock();
    rec = lfpool_meta_lookup(p, obj);
    uint32_t s = rec ? rec_load(rec) : 0;
    if (lfpool_unlikely(handle_mismatch(h, rec, s)))
        s = 0; /* not this hand-out: as if not out */
    if (lfpool_unlikely(rec_st(s) != REC_OUT))
        return ret_not_out(p, rec, obj, s, false);
    if (p->cfg.retter) {
        /* user code runs outside our read-side section; look again after */
        rcu_read_unlock();
        lfpool_call_hook(p, p->cfg.retter, obj, "retter");
        rcu_read_lock();
        rec = lfpool_meta_lookup(p, obj);
        s = rec ? rec_load(rec) : 0;
        if (handle_mismatch(h, rec, s))
            s = 0;
        if (rec_st(s) != REC_OUT)
            return ret_not_out(p, rec, obj, s, true);
    }

    /* The CASes below may race with the getter's biased commit (bias.c),
     * unless this thread is that getter or the hand-out has none (a
     * handle's); the fence and the CAS share this read-side section. */
    if (!h && !hint_owns(p, obj, rec, s))
        lfpool_bias_fence(p);
    if (lfpool_unlikely(atomic_load_explicit(&p->shutdown, memory_order_relaxed) ||
                        (p->cfg.max_use && LD(rec->uses) >= p->cfg.max_use))) {
        if (!rec_cas(rec, &s, REC_OUT, REC_DEAD))
            return ret_not_out(p, rec, obj, s, true);
        lfpool_meta_del(p, rec);
        rcu_read_unlock();
        lfpool_unreserve(p);
        if (atomic_load(&p->shutdown)) {
            lfpool_log(p, LFPOOL_LOG_INFO, "object %p returned after shutdown: closing it", obj);
            close_now(p, rec);
        } else {
            INC(p->c.nwornout);
            INC(p->c.todel);
            lfpool_list_push(&p->pending, rec);
            lfpool_hk_kick(p);
        }
        return 0;
    }

    atomic_store_explicit(&rec->last_ret, lfpool_now(p), memory_order_relaxed);
    if (lfpool_unlikely(!rec_cas(rec, &s, REC_OUT, REC_CACHED)))
        return ret_not_out(p, rec, obj, s, true);
    lfpool_set_put(p, rec);
    rcu_read_unlock();
    if (lfpool_unlikely(atomic_load_explicit(&p->shutdown, memory_order_relaxed)))
        lfpool_close_available(p); /* raced with shutdown's drain */
    return 0;
}

/* ---- housekeep, shutdown, free */

int lfpool_housekeep(lfpool *p)
{
    if (!p) {
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_housekeep: NULL pool");
        return EINVAL;
    }
    lfpool_enter(p);
    if (atomic_load(&p->shutdown))
        return ESHUTDOWN;
    int r = lfpool_hk_round(p);
    lfpool_hk_wait_reaps(p);
    return r;
}

/* Close every object sitting in the available set (shutdown, free). */
void lfpool_close_available(struct lfpool *p)
{
    struct lfpool_rec *dead = NULL, *aside = NULL, *rec, *next;
    rcu_read_lock();
    while ((rec = lfpool_set_pop_any(p)) != NULL) {
        uint32_t s = rec_load(rec);
        if (rec_cas(rec, &s, REC_AVAIL, REC_DEAD)) {
            lfpool_meta_del(p, rec);
            lfpool_unreserve(p);
            rec->entry.next = (ck_stack_entry_t *)dead;
            dead = rec;
        } else if (rec_st(s) == REC_DEAD_SET) {
            lfpool_list_push(&p->zombies, rec);
        } else { /* BORROWED: the health check closes it (it sees shutdown) */
            rec->entry.next = (ck_stack_entry_t *)aside;
            aside = rec;
        }
    }
    for (rec = aside; rec; rec = next) {
        next = (struct lfpool_rec *)rec->entry.next;
        lfpool_stack_push(&p->stack, rec);
    }
    rcu_read_unlock();
    if (!dead)
        return;
    synchronize_rcu();
    for (rec = dead; rec; rec = next) {
        next = (struct lfpool_rec *)rec->entry.next;
        lfpool_close_obj(p, rec->obj);
        lfpool_rec_release(p, rec);
    }
}

int lfpool_shutdown(lfpool *p, double delay)
{
    if (!p || isnan(delay) || delay < 0) {
        if (p)
            lfpool_log(p, LFPOOL_LOG_ERROR, "shutdown: invalid delay %g", delay);
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_shutdown: NULL pool");
        return EINVAL;
    }
    lfpool_enter(p);
    if (!atomic_exchange(&p->shutdown, true))
        lfpool_log(p, LFPOOL_LOG_INFO, "shutting down pool");
    lfpool_gate_wake(&p->gate, true);
    if (!lfpool_hk_stop(p, delay))
        lfpool_log(p, LFPOOL_LOG_WARNING, "shutting down pool with live housekeeper");
    lfpool_close_available(p);
    lfpool_hk_reap(p, true);
    return 0;
}

void lfpool_free(lfpool *p)
{
    if (!p)
        return;
    lfpool_enter(p);
    lfpool_shutdown(p, LFPOOL_FOREVER); /* waits for the housekeeper */
    lfpool_close_available(p);
    lfpool_hk_reap(p, false);

    /* whatever is left in the table is out (or killed and never returned) */
    struct lfpool_rec *left = NULL, *rec, *next;
    struct cds_lfht_iter iter;
    size_t nout = 0;
    rcu_read_lock();
    LFPOOL_FOR_EACH_REC(p->ht, &iter, rec) {
        if (lfpool_meta_del(p, rec)) {
            rec->entry.next = (ck_stack_entry_t *)left;
            left = rec;
            nout++;
        }
    }
    rcu_read_unlock();
    if (nout)
        lfpool_log(p, LFPOOL_LOG_WARNING, "freeing pool with %zu objects still out: closing them", nout);
    synchronize_rcu();
    for (rec = left; rec; rec = next) {
        next = (struct lfpool_rec *)rec->entry.next;
        lfpool_close_obj(p, rec->obj);
        lfpool_rec_release(p, rec);
    }
    /* DEAD_SET records still physically in the set were handed to zombies
     * by close_available; reap once more for them */
    for (rec = lfpool_list_take_all(&p->zombies); rec; rec = next) {
        next = lfpool_list_next(rec);
        lfpool_rec_release(p, rec);
    }
    lfpool_meta_fini(p);
    lfpool_rec_free_all(p);
    lfpool_hk_fini(p);
    lfpool_set_fini(p);
    munmap(p->lp, (size_t)sysconf(_SC_PAGESIZE));
    free(p);
}

const char *lfpool_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case EINVAL: return "invalid argument or configuration";
    case ENOMEM: return "out of memory";
    case EAGAIN: return "no object available and told not to wait";
    case ETIMEDOUT: return "no object became available within the timeout";
    case ESHUTDOWN: return "pool is shut down";
    case ENOENT: return "object is not out of this pool";
    case ESTALE: return "object was killed while held; it has been closed";
    case EEXIST: return "creator returned an object the pool already holds";
    case EIO: return "object creation failed";
    default: return strerror(err);
    }
}
