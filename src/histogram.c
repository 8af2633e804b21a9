/*
 * histogram.c - reading the observability counters (lfpool_histogram), the
 * life of the per-CPU hold copies, and naming a get's call site.
 *
 * Owns: allocation and release of struct lfpool_obs's per-CPU copies, the
 * summing reader (with the records' bucket 0 of the hold histogram, read
 * through meta.c's bracket of deletions).  Invariant: a reader only loads (relaxed): it never
 * writes a copy, so recording (histogram.h) needs no coordination with it;
 * total is the sum of the counts it read, so total == sum of count[] in
 * every snapshot even under load.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lfpool_obs_init(struct lfpool *p)
{
    struct lfpool_obs *o = &p->obs;
    if (!p->cfg.hold_histogram)
        return 0;
    o->nhold = p->ncaches;
    o->hold = aligned_alloc(sizeof *o->hold, (o->nhold + 1) * sizeof *o->hold);
    if (!o->hold)
        return ENOMEM;
    memset(o->hold, 0, (o->nhold + 1) * sizeof *o->hold);
    o->hold_pcpu = p->pcpu;
    return 0;
}

void lfpool_obs_fini(struct lfpool *p)
{
    free(p->obs.hold);
    p->obs.hold = NULL;
}

/* In a fork child: the parent's figures are not the child's pool's. */
void lfpool_obs_fork_reset(struct lfpool *p)
{
    struct lfpool_obs *o = &p->obs;
    memset(&o->wait, 0, sizeof o->wait);
    memset(&o->create, 0, sizeof o->create);
    o->ntimeouts = 0;
    if (o->hold)
        memset(o->hold, 0, (o->nhold + 1) * sizeof *o->hold);
    /* the child's table starts empty (meta.c): no record's bucket 0 */
    atomic_store_explicit(&o->hold_zero_gone, 0, memory_order_relaxed);
    atomic_store_explicit(&o->hold_zero_seen, 0, memory_order_relaxed);
    o->hold_pcpu = p->pcpu;
    atomic_store_explicit(&p->fast_ret, p->ret_mode, memory_order_relaxed);
    atomic_store_explicit(&p->warned_out, false, memory_order_relaxed);
}

static void add_cells(struct lfpool_histogram *out, uint64_t *sum_ns, const struct lfpool_hist_cells *c)
{
    for (unsigned i = 0; i < LFPOOL_HIST_BUCKETS; i++) {
        uint64_t n = __atomic_load_n(&c->count[i], __ATOMIC_RELAXED);
        out->count[i] += n;
        out->total += n;
    }
    *sum_ns += __atomic_load_n(&c->sum_ns, __ATOMIC_RELAXED);
}

/* rec left the table: a deleter owns it, its returners are done with it
 * (meta.c calls this between its bracket's steps) */
void lfpool_obs_gone(struct lfpool *p, struct lfpool_rec *rec)
{
    struct lfpool_obs *o = &p->obs;
    if (o->hold)
        lfpool_stat_add(&o->hold_zero_gone,
                        atomic_load_explicit(&rec->hold_zero[0], memory_order_relaxed));
}

/* Bucket 0 of the hold histogram kept in records (histogram.h): the
 * records in the table plus those gone, read as meta.c's readers read
 * (lfpool_meta_read_begin: never a record twice; exact unless a deletion
 * overlaps the read, which is retried a few times).  A read still
 * overlapped is a lower bound, and the figure returned is the largest any
 * reader has found (hold_zero_seen), so that it never goes down: every
 * value found was at most the truth, which only grows. */
static uint64_t hold_zero_sum(struct lfpool *p)
{
    struct lfpool_obs *o = &p->obs;
    uint64_t sum = 0;
    for (int tries = 0; tries < 16; tries++) {
        uint64_t mark;
        lfpool_meta_read_begin(p, &mark);
        sum = atomic_load_explicit(&o->hold_zero_gone, memory_order_relaxed);
        struct cds_lfht_iter iter;
        struct lfpool_rec *rec;
        rcu_read_lock();
        LFPOOL_FOR_EACH_REC(p->ht, &iter, rec)
            sum += atomic_load_explicit(&rec->hold_zero[0], memory_order_relaxed);
        rcu_read_unlock();
        if (lfpool_meta_read_end(p, mark))
            break;
        sched_yield();
    }
    uint64_t seen = atomic_load_explicit(&o->hold_zero_seen, memory_order_relaxed);
    while (sum > seen && !atomic_compare_exchange_weak_explicit(&o->hold_zero_seen, &seen, sum,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed))
        ;
    return sum > seen ? sum : seen;
}

void lfpool_obs_read(struct lfpool *p, int which, struct lfpool_histogram *out)
{
    struct lfpool_obs *o = &p->obs;
    uint64_t sum_ns = 0;
    memset(out, 0, sizeof *out);
    if (which == LFPOOL_HIST_WAIT) {
        add_cells(out, &sum_ns, &o->wait);
    } else if (which == LFPOOL_HIST_CREATE) {
        add_cells(out, &sum_ns, &o->create);
    } else if (o->hold) {
        for (unsigned i = 0; i <= o->nhold; i++)
            add_cells(out, &sum_ns, &o->hold[i].c);
        uint64_t zero = hold_zero_sum(p);
        out->count[0] += zero;
        out->total += zero;
    }
    out->sum = (double)sum_ns * 1e-9;
}

/* The housekeeper (rounds are serialised: the only writer of fast_ret
 * after lfpool_new) marks a warned hand-out.  Returns switch to the
 * observed path first: one that read RET_FAST before may end the hand-out
 * without the line (a window of a few instructions per warning). */
void lfpool_obs_warned(struct lfpool *p, struct lfpool_rec *rec, uint32_t word)
{
    if (!atomic_load_explicit(&p->warned_out, memory_order_relaxed)) {
        atomic_store_explicit(&p->warned_out, true, memory_order_seq_cst);
        if (atomic_load_explicit(&p->fast_ret, memory_order_relaxed) == RET_FAST)
            atomic_store_explicit(&p->fast_ret, RET_OBSERVED, memory_order_seq_cst);
        lfpool_life_fast_ret(p); /* and the admission word's ret bits */
    }
    atomic_store_explicit(&rec->warned, rec_warn_tag(word), memory_order_relaxed);
}

void lfpool_obs_unwarned(struct lfpool *p)
{
    if (atomic_load_explicit(&p->warned_out, memory_order_relaxed)) {
        atomic_store_explicit(&p->warned_out, false, memory_order_seq_cst);
        if (p->ret_mode == RET_FAST &&
            atomic_load_explicit(&p->fast_ret, memory_order_relaxed) == RET_OBSERVED)
            atomic_store_explicit(&p->fast_ret, RET_FAST, memory_order_seq_cst);
        lfpool_life_fast_ret(p);
    }
}

int lfpool_histogram(lfpool *p, int which, struct lfpool_histogram *out)
{
    if (!p || !out || which < 0 || which >= LFPOOL_HIST_KINDS) {
        lfpool_log_cfg(p ? &p->cfg : NULL, LFPOOL_LOG_ERROR, "lfpool_histogram: %s",
                       !p ? "NULL pool" : !out ? "NULL out" : "unknown histogram");
        return EINVAL;
    }
    lfpool_life_fork_check(p);
    lfpool_obs_read(p, which, out);
    return 0;
}

/* "symbol+0xoff" for a code address when dladdr knows a symbol (exported
 * ones: link executables with -rdynamic to name their own functions),
 * "file+0xoff" when it knows only the object, else the address; "-" for
 * NULL (a record created for a get records its caller too; a fill's has
 * none).  Like snprintf: returns the length it wanted. */
int lfpool_obs_caller(const void *addr, char *buf, size_t size)
{
    Dl_info info;
    if (!addr)
        return snprintf(buf, size, "-");
    if (dladdr(addr, &info) != 0) {
        if (info.dli_sname && info.dli_saddr)
            return snprintf(buf, size, "%s+0x%lx", info.dli_sname,
                            (unsigned long)((const char *)addr - (const char *)info.dli_saddr));
        if (info.dli_fname && info.dli_fbase) {
            const char *base = strrchr(info.dli_fname, '/');
            return snprintf(buf, size, "%s+0x%lx", base ? base + 1 : info.dli_fname,
                            (unsigned long)((const char *)addr - (const char *)info.dli_fbase));
        }
    }
    return snprintf(buf, size, "%p", addr);
}
