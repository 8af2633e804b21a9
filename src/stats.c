/*
 * stats.c - the seed's stats(): lfpool_stats() and lfpool_stats_json().
 *
 * Owns: the figures derived from the meta table (navail, nusing, nuses) and
 * their rendering.  The hot path keeps no counter: navail/nusing come from
 * record states, nuses from per-record use counts plus the uses of records
 * already removed (dead_uses), so statistics cost nothing when unused.
 * Invariant: reads only; the walk runs in one RCU read-side section, so a
 * record (and its object, whose closer waits for a grace period) stays
 * valid while the tracer or stats hook looks at it.  Figures are a
 * snapshot: exact when the pool is quiescent.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static bool is_using(uint32_t s)
{
    return s == REC_OUT || s == REC_BORROWED;
}

/* Everything but the per-object lists.  Caller holds rcu_read_lock. */
static void collect(struct lfpool *p, struct lfpool_stats *o, double now)
{
    memset(o, 0, sizeof *o);
    o->id = p->id;
    o->started = p->started_epoch;
    o->min_size = lfpool_min_size(p);
    o->max_size = lfpool_max_size(p);
    o->max_use = p->cfg.max_use;
    o->timeout = p->cfg.timeout;
    o->delay = p->delay;
    o->max_avail_delay = p->cfg.max_avail_delay;
    o->max_using_delay_kill = p->cfg.max_using_delay_kill;
    o->max_using_delay_warn = p->warn;
    o->health_freq = p->cfg.health_freq;
    o->now = lfpool_epoch_now(); /* the seed's now: a wall-clock timestamp */

    /* uses: the records' and dead_uses, as meta.c's readers read them (a
     * deletion overlapping the walk could make the sum miss a record and
     * nuses, a counter, go down): retried, no yield (we are in a read-side
     * section: a deleter that waits for a grace period cannot start another
     * deletion meanwhile) */
    uint64_t uses = 0;
    for (int tries = 0; tries < 256; tries++) {
        uint64_t mark;
        lfpool_meta_read_begin(p, &mark);
        uses = lfpool_stat_read(&p->c.dead_uses);
        o->navail = o->nusing = 0;
        struct cds_lfht_iter iter;
        struct lfpool_rec *rec;
        LFPOOL_FOR_EACH_REC(p->ht, &iter, rec) {
            uint32_t s = rec_st(atomic_load_explicit(&rec->state, memory_order_relaxed));
            uses += atomic_load_explicit(&rec->uses, memory_order_relaxed);
            if (s == REC_AVAIL || s == REC_CACHED)
                o->navail++;
            else if (is_using(s))
                o->nusing++;
        }
        if (lfpool_meta_read_end(p, mark))
            break;
    }
    uint64_t undone = lfpool_stat_read(&p->c.uses_undone);
    o->nuses = uses > undone ? uses - undone : 0;
    if (o->max_size) {
        o->sem_init = (int64_t)o->max_size;
        o->sem_value = (int64_t)o->max_size - (int64_t)o->nusing;
        if (o->sem_value < 0)
            o->sem_value = 0;
    } else {
        o->sem_init = o->sem_value = -1;
    }
    o->ntodel = lfpool_stat_read(&p->c.todel);
    o->running = p->cfg.clock ? now - p->started_mono : lfpool_mono_now() - p->started_mono;
    double hk_last = atomic_load_explicit(&p->hk_last, memory_order_relaxed);
    o->rel_hk_last = hk_last - now;
    uint64_t rounds = lfpool_stat_read(&p->c.hk_rounds);
    double hk_time = atomic_load_explicit(&p->hk_time, memory_order_relaxed);
    o->time_per_hk = hk_time / (double)(rounds ? rounds : 1);
    o->shutdown = atomic_load(&p->shutdown);
    int64_t nobjs = atomic_load_explicit(&p->nobjs, memory_order_relaxed);
    o->nobjs = nobjs > 0 ? (uint64_t)nobjs : 0;
    o->ncreated = lfpool_stat_read(&p->c.ncreated);
    o->ncreating = lfpool_stat_read(&p->c.ncreating);
    o->nkilled = lfpool_stat_read(&p->c.nkilled);
    o->nrecycled = lfpool_stat_read(&p->c.nrecycled);
    o->nwornout = lfpool_stat_read(&p->c.nwornout);
    o->nborrows = lfpool_stat_read(&p->c.nborrows);
    o->nreturns = lfpool_stat_read(&p->c.nreturns);
    o->ndestroys = lfpool_stat_read(&p->c.ndestroys);
    o->nhealth = lfpool_stat_read(&p->c.nhealth);
    o->bad_health = lfpool_stat_read(&p->c.bad_health);
    o->hk_rounds = rounds;
    o->hk_errors = lfpool_stat_read(&p->c.hk_errors);
    o->hc_rounds = lfpool_stat_read(&p->c.hc_rounds);
    o->hc_errors = lfpool_stat_read(&p->c.hc_errors);
    o->cpu_cache = p->pcpu ? p->cache_cap : 0;
    o->nflushes = lfpool_stat_read(&p->c.nflushes);
    o->ret_biased = lfpool_bias_active(p);
    o->nbias_fences = lfpool_stat_read(&p->c.nbias_fences);
    o->nbroken = lfpool_stat_read(&p->c.nbroken);
    o->nvalidate_failed = lfpool_stat_read(&p->c.nvalidate_failed);
    o->nvalidate_errors = lfpool_stat_read(&p->c.nvalidate_errors);
    o->nexpired = lfpool_stat_read(&p->c.nexpired);
    o->ncreate_failed = lfpool_stat_read(&p->c.ncreate_failed);
    o->ncreate_skipped = lfpool_stat_read(&p->c.ncreate_skipped);
    int32_t waiting = atomic_load_explicit(&p->gate.waiters, memory_order_relaxed);
    o->waiting = waiting > 0 ? (uint64_t)waiting : 0;
    struct lfpool_histogram h;
    lfpool_obs_read(p, LFPOOL_HIST_WAIT, &h);
    o->nwaits = h.total;
    o->wait_time = h.sum;
    o->ntimeouts = __atomic_load_n(&p->obs.ntimeouts, __ATOMIC_RELAXED);
    lfpool_obs_read(p, LFPOOL_HIST_CREATE, &h);
    o->create_time = h.sum;
    o->nevicted = lfpool_stat_read(&p->c.nevicted);
    o->nfences = lfpool_stat_read(&p->c.nfences);
    o->cpu_closed = atomic_load_explicit(&p->close.gets, memory_order_relaxed);
    o->ncloses = lfpool_stat_read(&p->c.ncloses);
}


int lfpool_stats(lfpool *p, struct lfpool_stats *out)
{
    if (!p || !out) {
        lfpool_log_cfg(p ? &p->cfg : NULL, LFPOOL_LOG_ERROR, "lfpool_stats: NULL %s", p ? "out" : "pool");
        return EINVAL;
    }
    lfpool_life_fork_check(p);
    double now = lfpool_now_fresh(p);
    rcu_read_lock();
    collect(p, out, now);
    rcu_read_unlock();
    return 0;
}

/* ---- JSON */

static void kv_num(struct lfpool_json *j, const char *k, double v)
{
    lfpool_json_key(j, k);
    lfpool_json_number(j, v);
}

static void kv_int(struct lfpool_json *j, const char *k, uint64_t v)
{
    lfpool_json_key(j, k);
    lfpool_json_integer(j, (int64_t)v);
}

static void iso_time(double epoch, char *buf, size_t size)
{
    struct timespec ts = {0, 0};
    lfpool_timespec_add(&ts, epoch); /* clamped: an injected clock may say anything */
    time_t sec = ts.tv_sec;
    long usec = ts.tv_nsec / 1000;
    struct tm tm;
    localtime_r(&sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ld", usec);
}

/* An entry of `avail` or `using` (`out`: one of using, which also names
 * the call site of its get; "-" for a health-check borrow). */
static void object_entry(struct lfpool *p, struct lfpool_json *j, struct lfpool_rec *rec, double now,
                         bool out)
{
    lfpool_json_begin_object(j);
    if (p->cfg.stats) {
        lfpool_json_key(j, "stats");
        lfpool_json_hook(j, p->cfg.stats, p->cfg.ctx, rec->obj);
    } else {
        char buf[512];
        int n = lfpool_trace(p, rec->obj, buf, sizeof buf);
        lfpool_json_key(j, "trace");
        lfpool_json_string_len(j, buf, (size_t)n);
    }
    kv_int(j, "uses", atomic_load_explicit(&rec->uses, memory_order_relaxed));
    kv_num(j, "last_get", atomic_load_explicit(&rec->last_get, memory_order_relaxed) - now);
    kv_num(j, "last_ret", atomic_load_explicit(&rec->last_ret, memory_order_relaxed) - now);
    if (out) {
        char site[256];
        bool borrowed = rec_st(atomic_load_explicit(&rec->state, memory_order_relaxed)) == REC_BORROWED;
        int n = lfpool_obs_caller(borrowed ? NULL : atomic_load_explicit(&rec->caller, memory_order_relaxed),
                                  site, sizeof site);
        lfpool_json_key(j, "caller");
        lfpool_json_string_len(j, site, n < 0 ? 0 : (size_t)n < sizeof site ? (size_t)n : sizeof site - 1);
    }
    lfpool_json_end_object(j);
}

static void object_list(struct lfpool *p, struct lfpool_json *j, const char *key, bool avail, double now)
{
    struct cds_lfht_iter iter;
    struct lfpool_rec *rec;
    lfpool_json_key(j, key);
    lfpool_json_begin_array(j);
    LFPOOL_FOR_EACH_REC(p->ht, &iter, rec) {
        uint32_t s = rec_st(atomic_load_explicit(&rec->state, memory_order_relaxed));
        if (avail ? s == REC_AVAIL || s == REC_CACHED : is_using(s))
            object_entry(p, j, rec, now, !avail);
    }
    lfpool_json_end_array(j);
}

char *lfpool_stats_json(lfpool *p)
{
    if (!p) {
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_stats_json: NULL pool");
        errno = EINVAL;
        return NULL;
    }
    lfpool_life_fork_check(p);
    struct lfpool_stats s;
    struct lfpool_json jw, *j = &jw;
    char iso[64];
    double now = lfpool_now_fresh(p);
    lfpool_json_init(j);
    rcu_read_lock();
    collect(p, &s, now);
    iso_time(s.started, iso, sizeof iso);

    lfpool_json_begin_object(j);
    kv_int(j, "id", s.id);
    lfpool_json_key(j, "started");
    lfpool_json_string(j, iso);
    kv_int(j, "min_size", s.min_size);
    kv_int(j, "max_size", s.max_size);
    kv_int(j, "max_use", s.max_use);
    lfpool_json_key(j, "timeout");
    if (isinf(s.timeout))
        lfpool_json_null(j);
    else
        lfpool_json_number(j, s.timeout);
    kv_num(j, "delay", s.delay);
    kv_num(j, "max_avail_delay", s.max_avail_delay);
    kv_num(j, "max_using_delay_kill", s.max_using_delay_kill);
    kv_num(j, "max_using_delay_warn", s.max_using_delay_warn);
    kv_int(j, "health_freq", s.health_freq);
    kv_num(j, "now", s.now);
    lfpool_json_key(j, "sem");
    if (s.sem_init >= 0) {
        lfpool_json_begin_object(j);
        kv_int(j, "value", (uint64_t)s.sem_value);
        kv_int(j, "init", (uint64_t)s.sem_init);
        lfpool_json_end_object(j);
    } else {
        lfpool_json_null(j);
    }
    kv_int(j, "navail", s.navail);
    kv_int(j, "nusing", s.nusing);
    kv_int(j, "ntodel", s.ntodel);
    kv_num(j, "running", s.running);
    kv_num(j, "rel_hk_last", s.rel_hk_last);
    kv_num(j, "time_per_hk", s.time_per_hk);
    lfpool_json_key(j, "shutdown");
    lfpool_json_bool(j, s.shutdown);
    object_list(p, j, "avail", true, now);
    object_list(p, j, "using", false, now);
    kv_int(j, "nobjs", s.nobjs);
    kv_int(j, "ncreated", s.ncreated);
    kv_int(j, "ncreating", s.ncreating);
    kv_int(j, "nuses", s.nuses);
    kv_int(j, "nkilled", s.nkilled);
    kv_int(j, "nrecycled", s.nrecycled);
    kv_int(j, "nwornout", s.nwornout);
    kv_int(j, "nborrows", s.nborrows);
    kv_int(j, "nreturns", s.nreturns);
    kv_int(j, "ndestroys", s.ndestroys);
    kv_int(j, "nhealth", s.nhealth);
    kv_int(j, "bad_health", s.bad_health);
    kv_int(j, "hk_rounds", s.hk_rounds);
    kv_int(j, "hk_errors", s.hk_errors);
    kv_int(j, "hc_rounds", s.hc_rounds);
    kv_int(j, "hc_errors", s.hc_errors);
    kv_int(j, "cpu_cache", s.cpu_cache);
    kv_int(j, "nflushes", s.nflushes);
    lfpool_json_key(j, "ret_biased");
    lfpool_json_bool(j, s.ret_biased);
    kv_int(j, "nbias_fences", s.nbias_fences);
    kv_int(j, "nbroken", s.nbroken);
    kv_int(j, "nvalidate_failed", s.nvalidate_failed);
    kv_int(j, "nvalidate_errors", s.nvalidate_errors);
    kv_int(j, "nexpired", s.nexpired);
    kv_int(j, "ncreate_failed", s.ncreate_failed);
    kv_int(j, "ncreate_skipped", s.ncreate_skipped);
    kv_int(j, "waiting", s.waiting);
    kv_int(j, "nwaits", s.nwaits);
    kv_int(j, "ntimeouts", s.ntimeouts);
    kv_num(j, "wait_time", s.wait_time);
    kv_num(j, "create_time", s.create_time);
    kv_int(j, "nevicted", s.nevicted);
    kv_int(j, "nfences", s.nfences);
    lfpool_json_key(j, "cpu_closed");
    lfpool_json_bool(j, s.cpu_closed);
    kv_int(j, "ncloses", s.ncloses);
    lfpool_json_end_object(j);
    rcu_read_unlock();

    if (j->nomem || j->depth != 0 || !j->buf) {
        lfpool_json_fini(j);
        errno = ENOMEM;
        return NULL;
    }
    return j->buf; /* ownership to the caller */
}
