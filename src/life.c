/*
 * life.c - the pool's life cycle.
 *
 * Owns: the configuration (defaults, validation, the derived delay and
 * fast-path flags), lfpool_new, the process-life word (lazy start on the
 * first get, CONTRACT §3.7; the reset of a fork child, which calls each
 * component's *_fork_reset in turn), lfpool_housekeep, shutdown
 * (CONTRACT §3.8), lfpool_free and lfpool_strerror.
 *
 * Invariant: the life word moves WIPED -> RESETTING -> LAZY -> STARTING ->
 * READY (STARTING -> LAZY when the start fails); only the thread that won
 * the CAS into RESETTING or STARTING does that work, and the get and ret
 * fast paths run only in READY.  Calls the components (objects.c, cache.c,
 * meta.c, gate.c, bias.c, housekeeper.c); none of them calls back here but
 * through lfpool_life_fork_check(), the entry check.
 */
#include "cache.h"

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
    cfg->validate_idle = 0.5;
    cfg->create_backoff_max = 30;
    cfg->max_fences = LFPOOL_FENCES_DEFAULT; /* 0: the bound (cache.c) */
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
    else if (cfg->housekeeper != LFPOOL_HK_OWN && cfg->housekeeper != LFPOOL_HK_SHARED)
        why = "housekeeper must be LFPOOL_HK_OWN or LFPOOL_HK_SHARED";
    else if (cfg->log_level < LFPOOL_LOG_ERROR || cfg->log_level > LFPOOL_LOG_DEBUG)
        why = "log_level must be LFPOOL_LOG_ERROR..LFPOOL_LOG_DEBUG";
    else if (bad_duration(cfg->validate_idle))
        why = "validate_idle must be finite and >= 0";
    else if (bad_duration(cfg->max_lifetime))
        why = "max_lifetime must be finite and >= 0";
    else if (bad_duration(cfg->max_lifetime_jitter))
        why = "max_lifetime_jitter must be finite and >= 0";
    else if (cfg->max_lifetime_jitter > cfg->max_lifetime)
        why = "max_lifetime_jitter must not exceed max_lifetime";
    else if (bad_duration(cfg->create_backoff))
        why = "create_backoff must be finite and >= 0";
    else if (bad_duration(cfg->create_backoff_max))
        why = "create_backoff_max must be finite and >= 0";
    else if (cfg->create_backoff_max < cfg->create_backoff)
        why = "create_backoff_max must be >= create_backoff";
    if (why) {
        lfpool_log_cfg(cfg, LFPOOL_LOG_ERROR, "invalid configuration: %s", why);
        return EINVAL;
    }
    return 0;
}

/* The seed's default delay: explicit, else half of the smaller non-zero of
 * max_avail_delay and the warn threshold, else 60 s with a health hook.
 * Not in the seed: max_lifetime counts as a third threshold, its shortest
 * lifetime (max_lifetime - jitter, or max_lifetime when that is 0), so
 * that rounds expire available objects. */
static double compute_delay(const lfpool_config *cfg, double warn)
{
    if (cfg->delay > 0)
        return cfg->delay;
    double life = cfg->max_lifetime - cfg->max_lifetime_jitter;
    if (life <= 0)
        life = cfg->max_lifetime;
    if (cfg->max_avail_delay > 0 || warn > 0 || life > 0) {
        double d = cfg->max_avail_delay;
        if (d == 0 || (warn > 0 && d > warn))
            d = warn;
        if (d == 0 || (life > 0 && d > life))
            d = life;
        return d / 2.0;
    }
    return cfg->health ? 60.0 : 0.0;
}


/* ---- life: lazy start and fork */

static void fork_reset(struct lfpool *p);

/* Make the pool usable in this process (reset after fork).  Every entry
 * point calls this but the get and ret fast paths, which check the life
 * word and leave anything but READY to their slow paths. */
int lfpool_life_fork_check(struct lfpool *p)
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

/* READY, then the fast paths' admission word (internal.h).  A shutdown
 * sets its flag, then clears the word; this stores the word, then reads
 * the flag (all seq_cst): one of the two sees the other, so the word is
 * never left set after a shutdown. */
static void life_ready(struct lfpool *p)
{
    atomic_store_explicit(&p->lp->life, LIFE_READY, memory_order_release);
    uint32_t f = (p->fast_get && p->pcpu ? LFPOOL_FAST_GET : 0) | LFPOOL_FAST_RET;
    atomic_store(&p->lp->fast, f);
    if (atomic_load(&p->shutdown))
        atomic_store(&p->lp->fast, 0);
    lfpool_life_fast_ret(p);
}

/* LFPOOL_FAST_RET_INLINE: ret's inline path (handout.c) applies while the
 * word has FAST_RET, fast_ret is RET_FAST and the pool's constant
 * conditions hold; LFPOOL_FAST_RET_OBSERVE the same with fast_ret
 * RET_OBSERVED (the inline steps and the recording), LFPOOL_FAST_RET_HOLD
 * in its place when that is for the hold histogram alone (no warned
 * hand-out out: warned_out, an input like fast_ret, whose writer, the
 * housekeeper, calls this after each change); none of the three while the
 * gate's head wants a record handed over (gift_wanted, an input too).
 * Every writer of an input calls this after its store (fast_ret:
 * histogram.c; warned_out: the housekeeper; gift_wanted: gate.c, under the
 * gate's lock, so concurrently with the others), and life_ready() after
 * its store of the word.  Each reads the inputs after its own store (all
 * seq_cst), a CAS changes the bits only, and after its CAS each reads the
 * inputs again and goes round while they ask for other bits: a writer
 * that read the inputs before another's store and made its CAS after that
 * one's (stale bits) sees that store on its second read, and corrects the
 * bits; so once every writer is done the bits are as the inputs say.
 * Shutdown's store of 0 (after its flag) is never undone, the bits being
 * set only beside FAST_RET. */
static uint32_t fast_ret_bits(struct lfpool *p)
{
    /* gift_wanted (gate.c): the inline paths' push does not read it
     * (cache.h), so none applies while the FIFO's head wants a record
     * handed over */
    bool inl = !p->wear && p->pcpu && p->bias && !atomic_load(&p->gate.gift_wanted);
    uint8_t mode = atomic_load(&p->fast_ret);
    bool hold_only = p->obs.hold != NULL && !atomic_load(&p->warned_out);
    return !inl ? 0
           : mode == RET_FAST     ? LFPOOL_FAST_RET_INLINE
           : mode == RET_OBSERVED ? (hold_only ? LFPOOL_FAST_RET_HOLD : LFPOOL_FAST_RET_OBSERVE)
                                  : 0;
}
void lfpool_life_fast_ret(struct lfpool *p)
{
    for (uint32_t want = fast_ret_bits(p);;) {
        uint32_t w = atomic_load(&p->lp->fast);
        for (;;) {
            uint32_t nw = (w & ~(LFPOOL_FAST_RET_INLINE | LFPOOL_FAST_RET_OBSERVE | LFPOOL_FAST_RET_HOLD)) |
                          (w & LFPOOL_FAST_RET ? want : 0);
            if (nw == w || atomic_compare_exchange_weak(&p->lp->fast, &w, nw))
                break;
        }
        uint32_t again = fast_ret_bits(p);
        if (again == want)
            return;
        want = again;
    }
}

static int start(struct lfpool *p)
{
    if (p->delay > 0 || p->cfg.max_use > 0 || p->cfg.hold_histogram) {
        int r = lfpool_hk_start(p);
        if (r)
            return r;
    }
    lfpool_fill(p);
    return 0;
}

/* The slow entry of get: reset after fork, lazy start (the first get
 * starts the housekeeper and fills).  0 once the pool is READY (or being
 * started by another thread), else why the start failed. */
int lfpool_life_make_ready(struct lfpool *p)
{
    for (;;) {
        lfpool_life_fork_check(p);
        uint32_t l = atomic_load_explicit(&p->lp->life, memory_order_acquire);
        if (l == LIFE_READY || l == LIFE_STARTING)
            return 0;
        if (l == LIFE_LAZY) {
            uint32_t w = LIFE_LAZY;
            if (atomic_compare_exchange_strong(&p->lp->life, &w, LIFE_STARTING)) {
                int r = start(p);
                if (r)
                    atomic_store_explicit(&p->lp->life, LIFE_LAZY, memory_order_release);
                else
                    life_ready(p);
                return r;
            }
        }
    }
}

/* In a fork child: drop every inherited record without closer (the
 * objects belong to the parent), start again from an empty pool.  Each
 * component resets its own state; the order matters: the gate first (the
 * set's reset and drain below signal it), then the housekeeper, the set
 * and the bias, then the records. */
static void fork_reset(struct lfpool *p)
{
    struct lfpool_rec *rec, *next;
    lfpool_gate_fork_reset(&p->gate);
    lfpool_hk_fork_reset(p);
    lfpool_loop_fork_reset(p);
    lfpool_avail_fork_reset(p);
    lfpool_bias_fork_reset(p);
    lfpool_create_fork_reset(p);
    lfpool_log_fork_reset(p);
    lfpool_obs_fork_reset(p);

    /* the set, the pending and zombie lists: records only, no closer */
    rcu_read_lock();
    while ((rec = lfpool_avail_pop_any(p)) != NULL)
        if (rec_st(rec_load(rec)) == REC_DEAD_SET)
            lfpool_list_push(&p->zombies, rec); /* not in the table */
    rcu_read_unlock();
    for (int l = 0; l < 2; l++)
        for (rec = lfpool_list_take_all(l ? &p->zombies : &p->pending); rec; rec = next) {
            next = lfpool_list_next(rec);
            lfpool_rec_release(p, rec);
        }
    lfpool_meta_fork_reset(p); /* and every record left in the table */
    memset(&p->c, 0, sizeof p->c);
    atomic_store(&p->nobjs, 0);
    lfpool_ctl_fork_reset(p);
    atomic_store(&p->hk_last, 0.0);
    atomic_store(&p->hk_time, 0.0);
    lfpool_now_fresh(p);
    lfpool_log(p, LFPOOL_LOG_INFO, "fork child: pool reset, inherited objects dropped");
}

/* ---- new */

/* The pool's mapping: a page whose last LFPOOL_LIFE_OFF bytes are the life
 * page (MADV_WIPEONFORK), then struct lfpool (page-aligned, as its
 * alignment asks). */
static size_t pool_map_size(size_t pg)
{
    return pg + ((sizeof(struct lfpool) + pg - 1) & ~(pg - 1));
}

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

    /* one mapping: the life page (wiped on fork), then the pool, so that
     * the admission word is at a constant offset from p (internal.h) */
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    void *base = mmap(NULL, pool_map_size(pg), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return ENOMEM;
    struct lfpool *p = (struct lfpool *)((char *)base + pg);
    memset(p, 0, sizeof *p);
    p->lp = (struct lfpool_life_page *)((char *)p - LFPOOL_LIFE_OFF);
    p->cfg = *cfg;
    p->id = atomic_fetch_add(&pool_ids, 1) + 1;
    p->owned_id = p->id | LFPOOL_HANDLE_OWNED;
    p->rseq_off = lfpool_pcpu_off(); /* the same in every thread and in a fork child */
    p->max_use = cfg->max_use ? cfg->max_use : UINT64_MAX;
    p->wear = cfg->max_use > 0 || cfg->max_lifetime > 0;
    p->warn = cfg->max_using_delay > 0 ? cfg->max_using_delay : cfg->max_using_delay_kill;
    p->guard_get = cfg->kill_mode == LFPOOL_KILL_CLOSE && cfg->max_using_delay_kill > 0;
    p->fast_get = !cfg->getter && !p->guard_get && !cfg->clock && !cfg->validate;
    /* returns observed (hold_histogram) take the out-of-line copy of the
     * fast path; the housekeeper switches RET_FAST to RET_OBSERVED while
     * objects it warned about are out */
    p->ret_mode = cfg->retter || cfg->clock ? RET_CAREFUL
                  : cfg->hold_histogram     ? RET_OBSERVED
                                            : RET_FAST;
    atomic_init(&p->fast_ret, p->ret_mode);
    p->delay = compute_delay(cfg, p->warn);
    if (cfg->max_using_delay_kill > 0 && p->warn > cfg->max_using_delay_kill)
        lfpool_log(p, LFPOOL_LOG_WARNING, "inconsistent max_using_delay_warn > max_using_delay_kill");
    p->started_epoch = lfpool_epoch_now();
    p->started_mono = cfg->clock ? cfg->clock(cfg->clock_ctx) : lfpool_mono_now();
    atomic_init(&p->coarse_now, lfpool_mono_now());
    ck_stack_init(&p->pending);
    ck_stack_init(&p->zombies);
    ck_stack_init(&p->rec_free);
    lfpool_ctl_init(p);

    if (madvise(base, pg, MADV_WIPEONFORK) != 0)
        lfpool_log(p, LFPOOL_LOG_WARNING, "MADV_WIPEONFORK unavailable: fork safety disabled");

    if ((r = lfpool_avail_init(p)) || (r = lfpool_meta_init(p)) || (r = lfpool_hk_init(p)) ||
        (r = lfpool_obs_init(p))) {
        lfpool_obs_fini(p);
        lfpool_hk_fini(p);
        lfpool_meta_fini(p);
        lfpool_avail_fini(p);
        munmap(base, pool_map_size(pg));
        return r;
    }
    lfpool_bias_init(p);
    lfpool_gate_init(&p->gate, p->ncaches);
    lfpool_loop_init(p);
    atomic_store(&p->lp->life, LIFE_LAZY);
    if (!cfg->lazy_start) {
        atomic_store(&p->lp->life, LIFE_STARTING);
        r = start(p);
        if (r) {
            atomic_store(&p->lp->life, LIFE_LAZY);
            lfpool_free(p);
            return r;
        }
        life_ready(p);
    }
    lfpool_log(p, LFPOOL_LOG_INFO, "pool created (min %zu, max %zu, delay %g)", cfg->min_size,
               cfg->max_size, p->delay);
    *pool = p;
    return 0;
}

/* ---- housekeep, shutdown, free */

int lfpool_housekeep(lfpool *p)
{
    if (!p) {
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_housekeep: NULL pool");
        return EINVAL;
    }
    lfpool_life_fork_check(p);
    if (atomic_load(&p->shutdown))
        return ESHUTDOWN;
    int r = lfpool_hk_round(p);
    lfpool_hk_wait_in_flight(p);
    return r;
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
    lfpool_life_fork_check(p);
    if (!atomic_exchange(&p->shutdown, true))
        lfpool_log(p, LFPOOL_LOG_INFO, "shutting down pool");
    /* the flag's copy beside the waiter count, which the ret fast paths
     * read after their push (internal.h, lfpool_gate_attention): stored
     * before the drain below (lfpool_close_available's flush) */
    atomic_store(&p->gate.shut, 1);
    atomic_store(&p->lp->fast, 0); /* after the flag: life_ready() */
    lfpool_gate_wake(&p->gate, true); /* and completes every ticket (loop.c) */
    bool stopped = lfpool_loop_hk_stop(p, delay);
    if (!stopped)
        lfpool_log(p, LFPOOL_LOG_WARNING, "shutting down pool with live housekeeper");
    lfpool_loop_serve(p); /* tickets the housekeeper was asked to look for */
    lfpool_close_available(p);
    lfpool_hk_reap(p, true);
    return 0;
}

void lfpool_free(lfpool *p)
{
    if (!p)
        return;
    lfpool_life_fork_check(p);
    if (!lfpool_loop_free_ok(p)) { /* loops alive: the last lfpool_loop_free frees */
        lfpool_shutdown(p, LFPOOL_FOREVER);
        return;
    }
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
            lfpool_batch_push(&left, rec);
            nout++;
        }
    }
    rcu_read_unlock();
    if (nout)
        lfpool_log(p, LFPOOL_LOG_WARNING, "freeing pool with %zu objects still out: closing them", nout);
    synchronize_rcu();
    for (rec = left; rec; rec = next) {
        next = lfpool_list_next(rec);
        lfpool_close_obj(p, rec->obj);
        lfpool_rec_release(p, rec);
    }
    /* DEAD_SET records still physically in the set were handed to zombies
     * by close_available; reap once more for them */
    for (rec = lfpool_list_take_all(&p->zombies); rec; rec = next) {
        next = lfpool_list_next(rec);
        lfpool_rec_release(p, rec);
    }
    lfpool_log_flush(p, true); /* the folded lines' last counts */
    lfpool_meta_fini(p);
    lfpool_rec_free_all(p);
    lfpool_hk_fini(p);
    lfpool_obs_fini(p);
    lfpool_avail_fini(p);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    munmap((char *)p - pg, pool_map_size(pg));
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
    case EINPROGRESS: return "no object available yet: the ticket completes through its loop";
    default: return strerror(err);
    }
}
