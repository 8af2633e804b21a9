/*
 * cache.c - the available set: per-CPU caches over the shared Treiber
 * stack, and the claim protocol.
 *
 * Owns: where available records sit.  Invariant: an available record is
 * physically in exactly one place - one per-CPU cache (state CACHED), the
 * shared stack (state AVAIL, or a tombstone BORROWED/DEAD_SET), or in the
 * hands of the one thread moving it between them; only that thread pushes
 * it.
 *
 * Per-CPU caches (percpu.h) hold CACHED records, which only the cache's
 * popper may take: no in-place claim, so get from a cache is an rseq pop
 * plus a plain store (CACHED -> OUT), and ret is its state commit
 * (OUT -> CACHED, arbitrating with kills: a CAS, or the getter's plain
 * store in an rseq section while the pool is biased, bias.c) plus an rseq
 * push.  No atomic read-modify-write on the cache itself.  The housekeeper, which claims
 * available records in place (health, recycling), sees only the shared
 * stack: every round starts with lfpool_avail_flush(), which moves every
 * cached record to the stack as AVAIL; records cached again during the
 * round are recently used and left for the next one.
 *
 * Shared stack claim: a popped record is usually AVAIL and the CAS
 * AVAIL -> OUT hands it to the getter.  It may instead be BORROWED by the
 * health check (set it aside and push it back after the scan: it must stay
 * in the set) or DEAD_SET (recycled/unhealthy while in the set: hand it to
 * the zombie list, the housekeeper frees it after a grace period).
 *
 * No lost wake-up with caches.  A bounded pool's ret that pushes into a
 * cache reads the gate's waiter count after the push with no fence between
 * (store then load: TSO may reorder them).  The other half is heavy: a
 * getter that registered as a waiter flushes, whose membarrier runs a full
 * barrier on every CPU running the process.  Either the returner's push
 * was visible before that barrier (the flush moves it to the stack and
 * the waiter finds it), or its later read of the waiter count sees the
 * registration and it signals the gate.  Waiters parked on the gate do
 * not make rets bypass the caches: every look of a waiter that finds
 * nothing else flushes, and the gate's reads in the ret's wake path are
 * plain loads covered by that flush (gate.c).  Only a waiter that asked
 * for a hand-over makes rets take the stack path, where
 * lfpool_avail_put_stack hands the record over (gate.c).
 *
 * Closed caches (control.c): while a pool is paused, over its max_size or
 * has evicted objects out, every cache is LFPOOL_PCPU_CLOSED: the flush
 * that closes them (locks, membarrier) ends every rseq section in flight,
 * and later ones fail, so that every get and ret takes its slow path,
 * where control decides; the fast paths are unchanged.
 *
 * Never stranded: a get that misses its cache and the stack flushes before
 * it creates (when another cache looks non-empty) or waits (always).
 */
#include "cache.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static int membarrier(int cmd, unsigned flags, int cpu)
{
    return (int)syscall(__NR_membarrier, cmd, flags, cpu);
}

/* Per-CPU caches need glibc's rseq registration, the expedited rseq
 * membarrier (Linux >= 5.10), and x86-64.  Registration is per process:
 * repeated for every pool (cheap) and after fork. */
static bool pcpu_available(unsigned ncaches)
{
    if (!LFPOOL_HAVE_PCPU || __rseq_size < 20)
        return false;
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0 ||
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0)
        return false;
    uint32_t cpu = lfpool_pcpu_cpu();
    return cpu < ncaches; /* a registered thread reads a real cpu id */
}

/* The highest CPU number the kernel may ever run a thread on (the last of
 * /sys/devices/system/cpu/possible, e.g. "0-63" or "0,2-5"), or -1 if it
 * cannot be read.  rseq's cpu id is always below it + 1 (nr_cpu_ids). */
static int possible_max(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
    if (!f)
        return -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int max = -1;
    for (char *s = buf; *s;) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s)
            break;
        if (v > max && v < 1 << 20)
            max = (int)v;
        s = end;
        while (*s == ',' || *s == '-')
            s++;
    }
    return max;
}

int lfpool_avail_init(struct lfpool *p)
{
    /* A cache for every CPU the kernel may run a thread on: the fast paths
     * index the caches by the rseq cpu id with no bound check (cache.h),
     * so without the possible mask there are no per-CPU caches. */
    int n = get_nprocs_conf();
    int maxid = possible_max();
    if (n < maxid + 1)
        n = maxid + 1;
    p->ncaches = (unsigned)(n > 0 ? n : 1);
    p->caches = aligned_alloc(sizeof(struct lfpool_cache), p->ncaches * sizeof *p->caches);
    if (!p->caches)
        return ENOMEM;
    memset(p->caches, 0, p->ncaches * sizeof *p->caches);
    /* A bounded pool keeps at most half its objects in caches (DPDK's
     * mempool has the same kind of rule): objects cached on one CPU are a
     * flush away from a get on another.  But one slot per CPU as soon as
     * there is an object per CPU: with waiters parked on the gate (gate.c),
     * a small exhausted pool gains most from them - each running thread
     * cycles its CPU's object without moving a cache line, and a granted
     * waiter flushes once on its look (DESIGN §4, PERFORMANCE P3). */
    size_t cap = LFPOOL_CACHE_SLOTS;
    if (p->cfg.max_size && p->cfg.max_size / (2 * p->ncaches) < cap)
        cap = p->cfg.max_size / (2 * p->ncaches);
    if (p->cfg.max_size && cap == 0 && p->cfg.max_size >= p->ncaches)
        cap = 1;
    p->cache_cap = (uint32_t)cap;
    /* Bulk returns (lfpool_avail_put_run) fill a cache beyond that, as
     * DPDK's mempool lets put_bulk fill its cache beyond its size: the run
     * a bulk ret leaves on its CPU is what the next bulk get there takes,
     * each way one rseq section.  At most half a bounded pool's objects
     * then sit in one CPU's cache (never stranded: a get that misses
     * flushes, as for any cached record), and single returns still stop
     * at cache_cap. */
    size_t bulk = LFPOOL_CACHE_BULK_SLOTS;
    if (p->cfg.max_size && p->cfg.max_size / 2 < bulk)
        bulk = p->cfg.max_size / 2;
    p->bulk_cap = (uint32_t)(bulk > cap ? bulk : cap);
    p->pcpu = cap > 0 && maxid >= 0 && pcpu_available(p->ncaches);
    ck_stack_init(&p->stack);
    return 0;
}

void lfpool_avail_fini(struct lfpool *p)
{
    free(p->caches);
    p->caches = NULL;
}

/* Move every record of cache c, which the caller owns (locked and fenced,
 * or the only thread), to the shared stack as AVAIL; returns how many. */
static uint32_t cache_empty(struct lfpool *p, struct lfpool_cache *c)
{
    /* count atomically: others_cached() peeks at it */
    uint32_t n = __atomic_load_n(&c->count, __ATOMIC_RELAXED);
    for (uint32_t s = 0; s < n; s++) {
        struct lfpool_rec *rec = c->slot[s];
        uint32_t w = rec_load(rec); /* acquire: after the pusher's CACHED store */
        LFPOOL_ASSERT(rec_st(w) == REC_CACHED);
        (void)w;
        rec_store(rec, REC_AVAIL, memory_order_release);
        lfpool_stack_push(&p->stack, rec);
    }
    __atomic_store_n(&c->count, 0, __ATOMIC_RELAXED);
    return n;
}

/* In a fork child (one thread): locks held by parent threads are void, and
 * the membarrier registration is the child's to make again. */
void lfpool_avail_fork_reset(struct lfpool *p)
{
    for (unsigned i = 0; i < p->ncaches; i++)
        __atomic_store_n(&p->caches[i].lock, 0, __ATOMIC_RELAXED);
    if (p->pcpu)
        p->pcpu = pcpu_available(p->ncaches);
    if (!p->pcpu) /* without the fence nobody may lock: empty them here */
        for (unsigned i = 0; i < p->ncaches; i++)
            cache_empty(p, &p->caches[i]);
}

/* The rseq membarrier is registered and works in this process (and this
 * is x86-64 with glibc's rseq): lfpool_avail_fence() may be used.  Also
 * for the biased return (bias.c). */
bool lfpool_avail_fence_ready(struct lfpool *p)
{
    return pcpu_available(p->ncaches);
}

/* Take a cache's lock from OPEN or BYPASS; returns the value it had, or
 * LFPOOL_PCPU_HELD if another remote thread holds it. */
static uint32_t cache_trylock(struct lfpool_cache *c)
{
    uint32_t v = __atomic_load_n(&c->lock, __ATOMIC_RELAXED);
    while (v != LFPOOL_PCPU_HELD)
        if (__atomic_compare_exchange_n(&c->lock, &v, LFPOOL_PCPU_HELD, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return v;
    return LFPOOL_PCPU_HELD;
}

/* membarrier(PRIVATE_EXPEDITED_RSEQ): every rseq section of the process
 * in flight on another CPU has committed or is aborted when it returns,
 * and every CPU running the process has executed a full barrier. */
void lfpool_avail_fence(struct lfpool *p)
{
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0) {
        /* registered in lfpool_avail_init: cannot fail short of a kernel bug,
         * and without it neither the caches nor biased returns are safe */
        lfpool_log(p, LFPOOL_LOG_ERROR, "membarrier(RSEQ) failed: %s", strerror(errno));
        abort();
    }
}

/* Move every cached record to the shared stack, as AVAIL.  Locks the
 * caches (all of them: wait, or those no other flusher holds), then one
 * membarrier makes them ours (percpu.h) and is the waiters' fence (above).
 * Returns the number of records moved; wakes a waiter if any.
 *
 * steal: a get flushes for want of records on its own CPU.  A cache of
 * another CPU it took records from is left in BYPASS: that CPU's returns
 * then go to the shared stack, where this consumer finds them without a
 * flush (a thread that gets on one CPU what threads return on another, the
 * producer/consumer pattern, would otherwise flush once per object).
 * lfpool_avail_put_stack() reopens it after LFPOOL_BYPASS_PUSHES pushes; a
 * housekeeping flush (steal false) reopens every cache. */
size_t lfpool_avail_flush(struct lfpool *p, bool wait, bool steal)
{
    if (!p->pcpu)
        return 0;
    unsigned char mine[p->ncaches];
    for (unsigned i = 0; i < p->ncaches; i++) {
        for (;;) {
            mine[i] = cache_trylock(&p->caches[i]) != LFPOOL_PCPU_HELD;
            if (mine[i] || !wait)
                break;
            sched_yield(); /* another flusher: it is brief */
        }
    }
    uint32_t me = steal ? lfpool_pcpu_cpu() : UINT32_MAX;
    lfpool_avail_fence(p);
    lfpool_stat_inc(&p->c.nflushes);
    size_t moved = 0;
    for (unsigned i = 0; i < p->ncaches; i++) {
        if (!mine[i])
            continue;
        struct lfpool_cache *c = &p->caches[i];
        uint32_t n = cache_empty(p, c);
        moved += n;
        __atomic_store_n(&c->bypassed, 0, __ATOMIC_RELAXED);
        uint32_t lock = steal && n && i != me ? LFPOOL_PCPU_BYPASS : LFPOOL_PCPU_OPEN;
        /* control.c: keep the fast paths out.  Read while the lock is
         * ours: lfpool_avail_reopen clears the flag, then waits for every
         * HELD cache before it reopens a CLOSED one. */
        if (atomic_load_explicit(&p->ctl.caches_closed, memory_order_seq_cst))
            lock = LFPOOL_PCPU_CLOSED;
        __atomic_store_n(&c->lock, lock, __ATOMIC_RELEASE);
    }
    if (moved) {
        atomic_thread_fence(memory_order_seq_cst);
        lfpool_gate_signal(&p->gate);
    }
    return moved;
}

/* Runtime control is over (control.c, under its lock; the caller cleared
 * caches_closed, seq_cst): CLOSED caches open again.  A cache a flusher
 * holds is waited for (flushes are brief): the flusher reads the flag
 * before it releases the lock, so it stores OPEN if it read the cleared
 * flag, and CLOSED only if it read it earlier, which this CAS then undoes.
 * A new control call cannot close them meanwhile: it needs the same lock. */
void lfpool_avail_reopen(struct lfpool *p)
{
    for (unsigned i = 0; i < p->ncaches; i++) {
        uint32_t v = __atomic_load_n(&p->caches[i].lock, __ATOMIC_SEQ_CST);
        while (v == LFPOOL_PCPU_HELD) {
            sched_yield();
            v = __atomic_load_n(&p->caches[i].lock, __ATOMIC_SEQ_CST);
        }
        if (v == LFPOOL_PCPU_CLOSED)
            __atomic_compare_exchange_n(&p->caches[i].lock, &v, LFPOOL_PCPU_OPEN, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
    }
}

/* Some other cache looks non-empty (a racy peek: a hint for the miss path
 * of gets that may create; waiters flush regardless). */
static bool others_cached(struct lfpool *p)
{
    for (unsigned i = 0; i < p->ncaches; i++)
        if (__atomic_load_n(&p->caches[i].count, __ATOMIC_RELAXED))
            return true;
    return false;
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
        /* unreachable by the state machine (only AVAIL, BORROWED and
         * DEAD_SET records are in the stack); in a release build, keep the
         * record out of harm */
        LFPOOL_ASSERT(s == REC_AVAIL || s == REC_BORROWED || s == REC_DEAD_SET);
        lfpool_log(p, LFPOOL_LOG_ERROR, "record %p in the stack with state %u", (void *)rec, s);
        return CLAIM_DROPPED;
    }
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
        struct lfpool_rec *next = lfpool_list_next(aside);
        lfpool_stack_push(&p->stack, aside);
        atomic_thread_fence(memory_order_seq_cst);
        wake = wake || rec_st(atomic_load_explicit(&aside->state, memory_order_seq_cst)) != REC_BORROWED;
        aside = next;
    }
    if (wake)
        lfpool_gate_signal(&p->gate);
}

static struct lfpool_rec *claim_from_stack(struct lfpool *p, double now)
{
    struct lfpool_rec *aside = NULL, *rec;
    while ((rec = lfpool_stack_pop(&p->stack)) != NULL) {
        enum claim c = claim(p, rec, now);
        if (c == CLAIM_TAKEN)
            break;
        if (c == CLAIM_ASIDE) {
            lfpool_batch_push(&aside, rec);
        }
    }
    if (lfpool_unlikely(aside != NULL))
        push_aside(p, aside);
    return rec;
}

/* The miss path of lfpool_avail_get: the shared stack, then a flush (if
 * `waiting`, or if another CPU's cache looks non-empty) and the stack
 * again. */
struct lfpool_rec *lfpool_avail_get_slow(struct lfpool *p, double now, bool waiting)
{
    struct lfpool_rec *rec = claim_from_stack(p, now);
    if (rec || !p->pcpu)
        return rec;
    /* A waiter looks again whenever it is woken, and a flusher that moved
     * records signals the gate: its flush may skip a cache another flusher
     * holds.  A get that would create instead (or give up, when it does not
     * wait) waits for such a cache: it must not miss what it moves. */
    if (waiting || others_cached(p)) {
        lfpool_avail_flush(p, !waiting, true);
        rec = claim_from_stack(p, now);
    }
    return rec;
}

/* A push that went to the stack because this CPU's cache is in BYPASS
 * counts; after LFPOOL_BYPASS_PUSHES of them the cache reopens (if the
 * consumer still lags behind on another CPU, its next flush closes it
 * again).  BYPASS -> OPEN needs no fence: the cache is empty and nobody
 * holds it; a racing remote locker's CAS from BYPASS fails and retries. */
#define LFPOOL_BYPASS_PUSHES 64
static void bypass_count(struct lfpool *p)
{
    uint32_t cpu = lfpool_pcpu_cpu();
    if (cpu >= p->ncaches)
        return;
    struct lfpool_cache *c = &p->caches[cpu];
    if (__atomic_load_n(&c->lock, __ATOMIC_RELAXED) != LFPOOL_PCPU_BYPASS)
        return;
    if (__atomic_add_fetch(&c->bypassed, 1, __ATOMIC_RELAXED) < LFPOOL_BYPASS_PUSHES)
        return;
    uint32_t v = LFPOOL_PCPU_BYPASS;
    if (__atomic_compare_exchange_n(&c->lock, &v, LFPOOL_PCPU_OPEN, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
        __atomic_store_n(&c->bypassed, 0, __ATOMIC_RELAXED);
}

/* The stack path of lfpool_avail_put: a record (CACHED, ours) that did not
 * go into a cache. */
void lfpool_avail_put_stack(struct lfpool *p, struct lfpool_rec *rec)
{
    if (lfpool_unlikely(lfpool_gate_gift(&p->gate, rec)))
        return; /* handed, CACHED, to a waiter that lost a race (gate.c) */
    rec_store(rec, REC_AVAIL, memory_order_release);
    lfpool_stack_push(&p->stack, rec);
    atomic_thread_fence(memory_order_seq_cst);
    lfpool_gate_signal(&p->gate);
    if (p->pcpu)
        bypass_count(p);
}

/* Put a run of records (CACHED, the caller's) into this CPU's cache, as
 * lfpool_avail_put_local does one: as many as fit below bulk_cap, in one
 * rseq section (percpu.h); returns how many went in, the first ones of
 * run[] (the caller still owns the rest: the stack path).  None while a
 * waiter wants a record handed over (that takes the stack path).  *wake:
 * records went in and a waiter must be woken - read after the push with
 * no fence, as for a single push (header: a waiter's flush fences). */
uint32_t lfpool_avail_put_run(struct lfpool *p, struct lfpool_rec *const *run, uint32_t n,
                              long off, bool *wake)
{
    uint32_t done = 0;
    *wake = false;
    while (done < n && p->pcpu && !lfpool_gate_gift_wanted(&p->gate)) {
        uint32_t cpu = lfpool_pcpu_cpu_at(off), put;
        if (cpu >= p->ncaches)
            break;
        int r = lfpool_pcpu_push_n_at(off, &p->caches[cpu], cpu, p->bulk_cap, run + done,
                                      n - done, &put);
        if (r == LFPOOL_PCPU_FAIL)
            break;
        if (r == LFPOOL_PCPU_OK) {
            done += put;
            if (done < n)
                break; /* full */
        }
    }
    if (done) {
        atomic_signal_fence(memory_order_seq_cst);
        *wake = lfpool_gate_has_waiters(&p->gate);
    }
    return done;
}

/* Pop any record physically in the set, whatever its state (shutdown,
 * fork reset, free). */
struct lfpool_rec *lfpool_avail_pop_any(struct lfpool *p)
{
    struct lfpool_rec *rec = lfpool_stack_pop(&p->stack);
    if (!rec && lfpool_avail_flush(p, true, false))
        rec = lfpool_stack_pop(&p->stack);
    return rec;
}

/* A popped cached record in another state: a bug of the state machine
 * (only CACHED records are in a cache).  A debug build stops here; a
 * release build logs it and leaves the record alone (never handed out). */
void lfpool_avail_bad_state(struct lfpool *p, struct lfpool_rec *rec, uint32_t w)
{
    LFPOOL_ASSERT(rec_st(w) == REC_CACHED);
    lfpool_log(p, LFPOOL_LOG_ERROR, "record %p in a cache with state %u", (void *)rec, rec_st(w));
}
