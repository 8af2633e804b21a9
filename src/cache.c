/*
 * cache.c - the available set: per-CPU caches over the shared Treiber
 * stack, their closing and reopening (bounded fences), and the claim
 * protocol.
 *
 * Owns: where available records sit, and whether the caches are open
 * (struct lfpool_close, with the gets' fence budget; nfences).  Invariants: an available record is
 * physically in exactly one place - one per-CPU cache (state CACHED), the
 * shared stack (state AVAIL, or a tombstone BORROWED/DEAD_SET), or in the
 * hands of the one thread moving it between them; only that thread pushes
 * it.  From the end of a reason's closing flush (under close.lock) until
 * the last reason is cleared, every cache is SHUT (control's reason set)
 * or CLOSED (only the gets'), or HELD by a flusher or sweeper that
 * releases it so; a SHUT cache is empty, a CLOSED one changes only by
 * CAS-mode sections of its CPU (a locked commit) and by holders of its
 * lock, which only take records out.
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
 * registered waiter that finds nothing flushes the caches, leaving them
 * open while the fence budget lasts, else closing them (below, "closing
 * and reopening"); the flush's membarrier runs a full barrier on every
 * CPU running the process.  Either the returner's push was visible before
 * that barrier (the flush moves it to the stack and the waiter finds it),
 * or its later read of the waiter count sees the registration and it
 * signals the gate; once closed, rets take the stack path, fenced.  The
 * gate's reads in the ret's wake path are plain loads covered the same
 * way (gate.c).  A waiter that asked for a hand-over makes rets take the
 * stack path too, where lfpool_avail_put_stack hands the record over.
 *
 * Closed caches: while runtime control needs it (control.c: paused, over
 * max_size, evicted objects out) every cache is LFPOOL_PCPU_SHUT: the
 * flush that closes them (locks, membarrier) ends every rseq section in
 * flight, and later ones fail, so that every get and ret takes its slow
 * path; the fast paths are unchanged.  While only the gets need every
 * cache seen (below), every cache is LFPOOL_PCPU_CLOSED: the fast paths'
 * sections fail the same way, and "CAS mode" (below) takes their place.
 *
 * Never stranded: a get that misses its cache and the stack looks at every
 * cache (an open flush, or closing them, or they are closed and empty)
 * before it creates (when another cache looks non-empty), waits, or gives
 * EAGAIN.  At most one membarrier per housekeeping period for it by
 * default (plus cfg.max_fences a second with a budget): "closing and
 * reopening".
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
 * repeated for every pool (cheap) and after fork; the probe's fence is
 * counted in nfences like every other. */
static bool pcpu_available(struct lfpool *p)
{
    if (!LFPOOL_HAVE_PCPU || __rseq_size < 20)
        return false;
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0)
        return false;
    lfpool_stat_inc(&p->c.nfences);
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0)
        return false;
    uint32_t cpu = lfpool_pcpu_cpu();
    return cpu < p->ncaches; /* a registered thread reads a real cpu id */
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

/* The fence budget LFPOOL_FENCES_BUDGET (cfg.max_fences, opt-in; the
 * default until the closed mode got cheap): CPU interruptions a second,
 * divided by the number of CPUs that each membarrier interrupts.  65536:
 * on 2 CPUs, 32768 fences a second, above what P3 makes open (about 5,000
 * a second; at 1024 / CPUs it closed every window and ran at 57-76 ns a
 * pair instead of 17-24, PERFORMANCE); on 64 CPUs, 1024. */
#define LFPOOL_FENCE_INTERRUPTS 65536

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
    /* the gets' fence budget per second (lfpool.h), opt-in: a bound on how
     * often a second the gets' flushes interrupt every CPU */
    if (p->cfg.max_fences == LFPOOL_FENCES_BUDGET)
        p->cfg.max_fences = LFPOOL_FENCE_INTERRUPTS / p->ncaches > 0 ? LFPOOL_FENCE_INTERRUPTS / p->ncaches : 1;
    p->fence_ok = pcpu_available(p);
    p->pcpu = cap > 0 && maxid >= 0 && p->fence_ok;
    ck_stack_init(&p->stack);
    pthread_mutex_init(&p->close.lock, NULL);
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
 * the membarrier registration is the child's to make again.  The caches
 * start open, no reason to close them (control closes them again in its
 * own reset, after this one, if the pool is paused). */
void lfpool_avail_fork_reset(struct lfpool *p)
{
    pthread_mutex_init(&p->close.lock, NULL);
    atomic_store(&p->close.why, 0);
    atomic_store(&p->close.gets, false);
    atomic_store(&p->close.want, false);
    atomic_store(&p->close.mark, 0.0);
    atomic_store(&p->close.win, 0.0);
    atomic_store(&p->close.spent, 0);
    /* The child drops every inherited record (life.c: the stack is
     * drained, the table releases every record in it, cached ones too), so
     * the caches are simply forgotten, not emptied onto the stack: a flush
     * that was in flight in the parent at fork left its cache half moved
     * (the first records AVAIL and on the stack, the rest CACHED), and
     * moving that cache again would push records twice. */
    for (unsigned i = 0; i < p->ncaches; i++) {
        __atomic_store_n(&p->caches[i].count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&p->caches[i].lock, 0, __ATOMIC_RELAXED);
    }
    if (p->fence_ok)
        p->fence_ok = pcpu_available(p);
    p->pcpu = p->pcpu && p->fence_ok;
}

/* The rseq membarrier is registered and works in this process (and this
 * is x86-64 with glibc's rseq): lfpool_avail_fence() may be used.  Also
 * for the biased return (bias.c).  Probed once by lfpool_avail_init and
 * again in a fork child by lfpool_avail_fork_reset, both before bias.c
 * asks. */
bool lfpool_avail_fence_ready(struct lfpool *p)
{
    return p->fence_ok;
}

/* Take a cache's lock from OPEN or CLOSED; returns the value it had, or
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
    lfpool_stat_inc(&p->c.nfences);
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0) {
        /* registered in lfpool_avail_init: cannot fail short of a kernel bug,
         * and without it neither the caches nor biased returns are safe */
        lfpool_log(p, LFPOOL_LOG_ERROR, "membarrier(RSEQ) failed: %s", strerror(errno));
        abort();
    }
}

/* Move every cached record to the shared stack, as AVAIL.  Locks every
 * cache (waiting for another flusher's: it is brief), then one membarrier
 * makes them ours (percpu.h) - unless every cache was CLOSED when locked:
 * a cache becomes CLOSED only when its locker releases it after its own
 * membarrier and emptied it, and no section can commit on it since (they
 * fail on a non-zero lock), so there is nothing in flight to wait for and
 * nothing in it.  Releases each cache CLOSED while a reason to close is
 * in force (why, read while every lock is ours: a reopening clears its
 * reason, then waits for every HELD cache before it opens a CLOSED one),
 * else OPEN.  Returns the number of records moved, and in *fenced whether
 * it made the membarrier; wakes a waiter if any. */
static size_t flush(struct lfpool *p, bool *fenced)
{
    bool fence = false;
    for (unsigned i = 0; i < p->ncaches; i++) {
        uint32_t was;
        while ((was = cache_trylock(&p->caches[i])) == LFPOOL_PCPU_HELD)
            sched_yield(); /* another flusher: it is brief */
        fence = fence || was == LFPOOL_PCPU_OPEN;
    }
    if (fence)
        lfpool_avail_fence(p);
    *fenced = fence;
    lfpool_stat_inc(&p->c.nflushes);
    uint32_t why = atomic_load_explicit(&p->close.why, memory_order_seq_cst);
    uint32_t lock = why & LFPOOL_CLOSE_CTL ? LFPOOL_PCPU_SHUT
                    : why                  ? LFPOOL_PCPU_CLOSED
                                           : LFPOOL_PCPU_OPEN;
    size_t moved = 0;
    for (unsigned i = 0; i < p->ncaches; i++) {
        struct lfpool_cache *c = &p->caches[i];
        moved += cache_empty(p, c);
        __atomic_store_n(&c->lock, lock, __ATOMIC_RELEASE);
    }
    if (moved) {
        atomic_thread_fence(memory_order_seq_cst);
        lfpool_gate_signal(&p->gate);
    }
    return moved;
}

size_t lfpool_avail_flush(struct lfpool *p)
{
    bool fenced;
    return p->pcpu ? flush(p, &fenced) : 0;
}

/* Every reason to close is gone (close.lock held, why cleared, seq_cst):
 * SHUT and CLOSED caches open again, without a fence - a SHUT cache is
 * empty, a CLOSED one holds CACHED records as an open one does, a CAS-mode
 * section in flight on it fails its commit (the lock changed) and a
 * section that reads OPEN afterwards is an ordinary one.  A cache a
 * flusher holds is waited for (flushes are brief): the flusher reads `why`
 * while it holds the lock, so it stores OPEN if it read the cleared word,
 * and SHUT or CLOSED only if it read it earlier, which this CAS then
 * undoes.  No closing can start meanwhile: it needs close.lock.  The same
 * with from_closed false, to CLOSED: control's reason is gone and the
 * gets' is left (SHUT -> CLOSED: CAS mode again). */
static void relock_caches(struct lfpool *p, bool from_closed, uint32_t to)
{
    for (unsigned i = 0; i < p->ncaches; i++) {
        uint32_t v = __atomic_load_n(&p->caches[i].lock, __ATOMIC_SEQ_CST);
        while (v == LFPOOL_PCPU_HELD) {
            sched_yield();
            v = __atomic_load_n(&p->caches[i].lock, __ATOMIC_SEQ_CST);
        }
        if (v == LFPOOL_PCPU_SHUT || (from_closed && v == LFPOOL_PCPU_CLOSED))
            __atomic_compare_exchange_n(&p->caches[i].lock, &v, to, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED);
    }
}
static void reopen_caches(struct lfpool *p)
{
    relock_caches(p, true, LFPOOL_PCPU_OPEN);
}

/* ---- closing and reopening (DESIGN §4, "Bounded fences")
 *
 * Two reasons close the caches, bits of close.why: runtime control
 * (control.c, while a flag is set) and the gets (below).  Each reason is
 * set and cleared under close.lock, so that a closing and a reopening
 * never interleave; the caches open only when no reason is left.
 *
 * The gets' reason.  A get that must see every available record - a
 * registered waiter whose look finds nothing, a get with timeout 0 before
 * EAGAIN, a get that would create while another CPU's cache holds records
 * - closes the caches (by default, max_fences 0), or, with an opt-in
 * budget, first flushes every cache with a membarrier while the caches
 * stay open (an "open flush", below): cfg.max_fences such flushes per
 * window of LFPOOL_CLOSE_PERIOD on the pool's clock (close.win,
 * close.spent).  Under saturation the open flushes were about one system
 * call per get with no bound; a budget (LFPOOL_FENCES_BUDGET: 65536 / CPUs
 * a second, lfpool.h) bounds how often they interrupt every CPU running
 * the process, and keeps the caches open for a small exhausted pool whose
 * objects cycle through them (DESIGN §4: P3 at 20 ns a pair open, 130-155
 * ns closed on 2 CPUs before CAS mode; about one locked instruction a get
 * and a ret more since).  Once the window's budget is spent (at once with
 * the default), such a get closes the caches instead: one
 * flush that leaves them CLOSED (one membarrier), then close.gets.  While
 * close.gets is set, every cache is CLOSED (SHUT if control closed them
 * too) and the pool runs in CAS mode (below): gets and rets use their
 * CPU's cache with a locked commit, and such a get looks at its CPU's
 * cache, the shared stack and every closed cache under its lock - no
 * flush, no fence - and notes that it wanted to (close.want).
 *
 * Reopening.  A housekeeping round (lfpool_avail_round, also from
 * lfpool_housekeep) reopens when no get wanted every cache since the
 * previous round (the closing counts as wanting: the caches stay closed at
 * least one period), without a fence.  A pool without rounds (delay 0)
 * makes the same decision on its gets' slow path once LFPOOL_CLOSE_PERIOD
 * has passed on its clock since the last decision (close_tick).  So the
 * gets' closing fences at most once per housekeeping period, whatever the
 * workload: after a reopening, only the next closing fences.  A pool where
 * gets keep waiting stays closed - the "CAS mode" of a pool whose objects
 * keep moving between threads.  With a budget (max_fences > 0), a
 * decision also reopens once the window of the budget that ran out has
 * passed, wanted or not: a pool whose gets keep looking then spends its
 * next window's budget open, closes again, and so on - open for as long
 * as max_fences flushes last each window.  So the gets' flushes fence at
 * most max_fences times per window while open, plus their closings (one
 * per window without rounds; with rounds, at most one per housekeeping
 * period, each after a reopening).
 *
 * The budget's counters: the window starts again (close.win = now,
 * close.spent = 0) under close.lock, by the first open flush that finds
 * the window passed; close.spent counts the open flushes that fenced
 * (atomically; they run under close.lock too, so the check and the count
 * never race with a reset).  A flush that finds every cache CLOSED (by
 * control) makes no fence and spends nothing.
 *
 * No lost wake-up with an open flush (the argument the gets relied on
 * before the closing existed).  A waiter registers on the gate, then (it
 * read close.gets clear) takes close.lock and flushes: the flush's
 * membarrier runs a full barrier on every CPU running the process, after
 * the registration, and the waiter looks at the stack after it.  A ret
 * that pushes into an open cache, then reads the waiter count (store then
 * load, no fence): if its push is before the barrier on its CPU, the flush
 * moves the record to the stack, and the waiter's look finds it; if not,
 * its read of the count comes after the barrier and sees the
 * registration, and it signals the gate.  A ret whose push fails (the
 * cache HELD by the flusher, or CLOSED) takes the stack path, fenced.  If
 * the open flush finds close.gets set under close.lock (a closing
 * completed since the get's read), it flushes nothing and the closed
 * state's argument below applies: the closing's store of close.gets came
 * before the lock the get now holds.
 *
 * No lost wake-up, no stranded record.  A get reads close.gets before it
 * looks at the stack.
 *  - It reads it set, stored after the closing flush: every record cached
 *    before that flush's membarrier was moved to the stack before (and is
 *    seen by the look); a ret whose push came later failed on CLOSED and
 *    pushed in CAS mode, whose locked commit then reading the waiter count
 *    pairs with the waiter's registration and fence then sweeping (below),
 *    or went to the stack path, whose CAS and fence then reading the
 *    waiter count pair with the same (store buffering: one of them sees
 *    the other).
 *  - A reopening may follow that read, and a ret may then push into an
 *    open cache and read the waiter count with no fence.  The reopening
 *    clears close.gets (seq_cst) before its CAS that opens the cache; the
 *    ret's section read that lock value, then the ret reads the waiter
 *    count: two loads in program order, which x86-64 (TSO, the only
 *    architecture with per-CPU caches) does not reorder.  The waiter's
 *    registration was globally visible before its read of close.gets,
 *    which came before the clearing store; the clearing store before the
 *    locked CAS; the CAS before the ret's read of the lock.  So the ret's
 *    read of the count sees the registration and wakes the gate (the
 *    waiter is parked before it looks, gate.c).  A waiter woken so looks
 *    again, finds close.gets clear and closes the caches: the one fence of
 *    the new period.
 *  - It reads it clear: it closes (or a concurrent closing completes, on
 *    close.lock) and looks again after the flush, as a waiter's flush did.
 * A get with timeout 0 keeps its guarantee (API.md): a record returned
 * before the call is in the stack, or in a cache that was open when the
 * get read close.gets clear - then its own closing flush moves it - or
 * moved by the closing whose close.gets it read. */
#define LFPOOL_CLOSE_PERIOD 1.0 /* seconds: a pool without rounds decides this often */

/* The pool's clock for the decisions: the injected one (tests), else the
 * coarse monotonic clock (a vDSO read of the tick, no system call). */
static double close_clock(struct lfpool *p)
{
    if (p->cfg.clock)
        return p->cfg.clock(p->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A get wanted every cache: the caches stay closed at the next decision.
 * A load first: under saturation the flag is set already, and stays
 * shared in every CPU's cache. */
static void close_want(struct lfpool *p)
{
    if (!atomic_load_explicit(&p->close.want, memory_order_relaxed))
        atomic_store_explicit(&p->close.want, true, memory_order_relaxed);
}

/* The decision (close.lock held): reopen what the gets closed unless a get
 * wanted every cache since the last decision - or, with a fence budget,
 * once the budget's window has passed: the new window's open flushes are
 * the gets' again (at most max_fences, then one closing). */
static void close_decide(struct lfpool *p, double now)
{
    atomic_store_explicit(&p->close.mark, now, memory_order_relaxed);
    bool wanted = atomic_exchange_explicit(&p->close.want, false, memory_order_relaxed);
    if (!atomic_load_explicit(&p->close.gets, memory_order_relaxed))
        return;
    if (wanted && !(p->cfg.max_fences > 0 &&
                    now - atomic_load_explicit(&p->close.win, memory_order_relaxed) >=
                        LFPOOL_CLOSE_PERIOD))
        return;
    /* cleared before any cache opens: the waiters' argument above */
    atomic_store_explicit(&p->close.gets, false, memory_order_seq_cst);
    uint32_t left = atomic_fetch_and_explicit(&p->close.why, ~(uint32_t)LFPOOL_CLOSE_GETS,
                                              memory_order_seq_cst) &
                    ~(uint32_t)LFPOOL_CLOSE_GETS;
    if (!left)
        reopen_caches(p);
}

/* A housekeeping round (after its flush): decide. */
void lfpool_avail_round(struct lfpool *p)
{
    if (!p->pcpu)
        return;
    double now = close_clock(p);
    pthread_mutex_lock(&p->close.lock);
    close_decide(p, now);
    pthread_mutex_unlock(&p->close.lock);
}

/* A pool without rounds decides on its gets' slow path, while closed, once
 * a period has passed on its clock.  Nobody waits for the lock: a get that
 * finds it taken leaves the decision to whoever holds it or comes next. */
static void close_tick(struct lfpool *p)
{
    if (p->delay > 0)
        return; /* rounds decide */
    double now = close_clock(p);
    if (now - atomic_load_explicit(&p->close.mark, memory_order_relaxed) < LFPOOL_CLOSE_PERIOD)
        return;
    if (pthread_mutex_trylock(&p->close.lock) != 0)
        return;
    if (now - atomic_load_explicit(&p->close.mark, memory_order_relaxed) >= LFPOOL_CLOSE_PERIOD)
        close_decide(p, now);
    pthread_mutex_unlock(&p->close.lock);
}

/* A get must see every available record: close the caches for the gets
 * (one flush, the period's fence) unless they are closed already. */
static void close_for_gets(struct lfpool *p)
{
    close_want(p);
    if (atomic_load_explicit(&p->close.gets, memory_order_seq_cst))
        return;
    pthread_mutex_lock(&p->close.lock);
    if (!atomic_load_explicit(&p->close.gets, memory_order_relaxed)) {
        atomic_fetch_or_explicit(&p->close.why, LFPOOL_CLOSE_GETS, memory_order_seq_cst);
        lfpool_avail_flush(p); /* leaves every cache CLOSED, moved records in the stack */
        lfpool_stat_inc(&p->c.ncloses);
        atomic_store_explicit(&p->close.mark, close_clock(p), memory_order_relaxed);
        atomic_store_explicit(&p->close.gets, true, memory_order_seq_cst);
    }
    pthread_mutex_unlock(&p->close.lock);
}

/* An open flush, if the window's budget allows (close.lock held): the
 * caches stay OPEN (CLOSED if control closed them), the flush fences as
 * the gets' flushes did before the closing existed (the no-lost-wake-up
 * argument above).  False if the budget is spent, or the gets closed the
 * caches meanwhile: the caller closes (or notes its want) instead. */
static bool open_flush(struct lfpool *p)
{
    if (atomic_load_explicit(&p->close.gets, memory_order_seq_cst))
        return false;
    double now = close_clock(p);
    if (now - atomic_load_explicit(&p->close.win, memory_order_relaxed) >= LFPOOL_CLOSE_PERIOD) {
        atomic_store_explicit(&p->close.win, now, memory_order_relaxed);
        atomic_store_explicit(&p->close.spent, 0, memory_order_relaxed);
    }
    if (atomic_load_explicit(&p->close.spent, memory_order_relaxed) >= p->cfg.max_fences)
        return false;
    bool fenced;
    flush(p, &fenced);
    if (fenced)
        atomic_fetch_add_explicit(&p->close.spent, 1, memory_order_relaxed);
    return true;
}

/* A get must see every available record: an open flush while the budget
 * lasts, else close the caches for the gets. */
static void look_all(struct lfpool *p)
{
    if (p->cfg.max_fences > 0) {
        pthread_mutex_lock(&p->close.lock);
        bool done = open_flush(p);
        pthread_mutex_unlock(&p->close.lock);
        if (done)
            return;
    }
    close_for_gets(p);
}

/* Runtime control's reason (control.c, under its lock): close every cache
 * (one flush; no fence if they are closed already), or drop the reason
 * and reopen if none is left. */
void lfpool_avail_close_ctl(struct lfpool *p)
{
    pthread_mutex_lock(&p->close.lock);
    atomic_fetch_or_explicit(&p->close.why, LFPOOL_CLOSE_CTL, memory_order_seq_cst);
    lfpool_avail_flush(p);
    pthread_mutex_unlock(&p->close.lock);
}

void lfpool_avail_open_ctl(struct lfpool *p)
{
    pthread_mutex_lock(&p->close.lock);
    uint32_t left = atomic_fetch_and_explicit(&p->close.why, ~(uint32_t)LFPOOL_CLOSE_CTL,
                                              memory_order_seq_cst) &
                    ~(uint32_t)LFPOOL_CLOSE_CTL;
    if (!left && p->pcpu)
        reopen_caches(p);
    else if (left && p->pcpu)
        relock_caches(p, false, LFPOOL_PCPU_CLOSED); /* the gets' CAS mode */
    pthread_mutex_unlock(&p->close.lock);
}

bool lfpool_avail_closed_ctl(struct lfpool *p)
{
    return atomic_load_explicit(&p->close.why, memory_order_seq_cst) & LFPOOL_CLOSE_CTL;
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

/* ---- CAS mode: the caches closed for the gets (lock CLOSED) stay in use
 *
 * Closed, every get and ret would take the shared stack: a pop, a claim
 * CAS, a push and a full fence on lines that every CPU writes, 57-132 ns a
 * pair on 2 CPUs under contention (P3).  Instead a closed cache is still
 * used by its CPU's threads, with sections whose commit is a locked
 * CMPXCHG of {count, lock} (percpu.h), so that a remote thread may take
 * the cache with a CAS of its lock, CLOSED -> HELD, and no membarrier.
 * A get whose fast path's pop failed pops from its CPU's closed cache
 * (handout.c, get_miss; the slow path's closed_pop); a ret whose push
 * failed on the closed lock pushes there (handout.c, ret_put_miss; the
 * stack path's lfpool_avail_put_closed).  What a get that must see every record does
 * instead of the flush: closed_sweep, every cache under its lock.
 *
 * No lost wake-up: the ret's locked commit, then its read of the waiter
 * count; the waiter's registration (seq_cst, then a fence, gate.c), then
 * its sweep's reads of each count.  Store buffering with a full barrier on
 * both sides: either the sweep sees the push, or the ret sees the
 * registration and wakes the gate.  The sweep waits for a cache another
 * holder has (flushers and sweepers: brief), so that it reads a count no
 * holder is changing; it skips an OPEN cache (a reopening came after the
 * get read close.gets: the argument of "closing and reopening" above) and
 * a SHUT one (control flushed it, and nothing is pushed into it).  A get
 * with timeout 0 sees every record returned before it was called: the
 * ret's locked commit completed before, and the sweep reads the counts
 * after (the timeout-0 guarantee, API.md).
 *
 * Records pushed into a closed cache are CACHED records in a cache, as in
 * an open one: every flush (rounds, control, shutdown) moves them with
 * the others, and runtime control's closing leaves the caches SHUT, where
 * no section commits (percpu.h), before its grace period: a push that
 * committed before that flush's lock is in the stack the flush fills, one
 * after it failed and took the stack path, reading the flags. */

/* Take a record from this CPU's closed cache; NULL when none (or it is
 * not CLOSED). */
static struct lfpool_rec *closed_pop(struct lfpool *p, double now)
{
    if (!p->pcpu)
        return NULL;
    long off = p->rseq_off;
    for (;;) {
        uint32_t cpu = lfpool_pcpu_cpu_at(off);
        struct lfpool_rec *rec = NULL;
        int r = lfpool_pcpu_pop_closed_at(off, &p->caches[cpu], cpu, &rec);
        if (r == LFPOOL_PCPU_FAIL)
            return NULL;
        if (r == LFPOOL_PCPU_OK && (rec = lfpool_avail_claim_popped(p, rec, now)) != NULL)
            return rec;
    }
}

/* The get's CAS mode (handout.c, get_miss) pops from its CPU's closed
 * cache itself, right after its fast path's pop failed; every 64th record
 * a thread takes so also makes the decision of a pool without rounds here
 * (close_tick: a clock read once a period has passed), which the gets'
 * slow path makes too. */
void lfpool_avail_close_tick(struct lfpool *p)
{
    close_tick(p);
}

/* Take a record from any closed cache, each under its lock; NULL when
 * every one was empty (or not CLOSED). */
static struct lfpool_rec *closed_sweep(struct lfpool *p, double now)
{
    for (unsigned i = 0; i < p->ncaches; i++) {
        struct lfpool_cache *c = &p->caches[i];
        while (__atomic_load_n(&c->count, __ATOMIC_SEQ_CST) != 0) {
            uint32_t v = LFPOOL_PCPU_CLOSED;
            if (!__atomic_compare_exchange_n(&c->lock, &v, LFPOOL_PCPU_HELD, false, __ATOMIC_ACQUIRE,
                                             __ATOMIC_RELAXED)) {
                if (v != LFPOOL_PCPU_HELD)
                    break; /* OPEN or SHUT: above */
                sched_yield(); /* another holder: it is brief */
                continue;
            }
            uint32_t n = __atomic_load_n(&c->count, __ATOMIC_RELAXED);
            struct lfpool_rec *rec = NULL;
            if (n) {
                rec = c->slot[n - 1];
                __atomic_store_n(&c->count, n - 1, __ATOMIC_RELAXED);
            }
            __atomic_store_n(&c->lock, LFPOOL_PCPU_CLOSED, __ATOMIC_RELEASE);
            if (rec && (rec = lfpool_avail_claim_popped(p, rec, now)) != NULL)
                return rec;
        }
    }
    return NULL;
}

/* A record (CACHED, ours) whose push failed: into this CPU's closed cache
 * if the gets closed them (CAS mode, above) and no waiter wants a record
 * handed over.  LFPOOL_PUT_DONE, LFPOOL_PUT_WAKE (pushed, a waiter must be
 * woken: the locked commit came before this read), or LFPOOL_PUT_STACK:
 * not pushed, the caller still owns it. */
int lfpool_avail_put_closed(struct lfpool *p, struct lfpool_rec *rec)
{
    if (!p->pcpu || lfpool_gate_gift_wanted(&p->gate))
        return LFPOOL_PUT_STACK;
    long off = p->rseq_off;
    for (;;) {
        uint32_t cpu = lfpool_pcpu_cpu_at(off);
        int r = lfpool_pcpu_push_closed_at(off, &p->caches[cpu], cpu, p->cache_cap, rec);
        if (r == LFPOOL_PCPU_OK)
            return atomic_load_explicit(&p->gate.waiters, memory_order_seq_cst) > 0
                       ? LFPOOL_PUT_WAKE
                       : LFPOOL_PUT_DONE;
        if (r == LFPOOL_PCPU_FAIL)
            return LFPOOL_PUT_STACK;
    }
}

/* The miss path of lfpool_avail_get: the shared stack; then, if `waiting`
 * or if another CPU's cache looks non-empty, an open flush within the
 * budget, else the caches are closed for the gets (one flush, unless
 * closed already: then they are empty), and the stack looked at again.  close.gets is read before the first look (the
 * argument above). */
struct lfpool_rec *lfpool_avail_get_slow(struct lfpool *p, double now, bool waiting)
{
    if (!p->pcpu)
        return claim_from_stack(p, now);
    bool closed = atomic_load_explicit(&p->close.gets, memory_order_seq_cst);
    struct lfpool_rec *rec;
    if (closed) {
        close_tick(p);
        if ((rec = closed_pop(p, now)) != NULL)
            return rec;
    }
    rec = claim_from_stack(p, now);
    if (rec)
        return rec;
    if (closed) { /* CAS mode: every cache under its lock, no fence */
        if (waiting)
            close_want(p);
        return waiting || others_cached(p) ? closed_sweep(p, now) : NULL;
    }
    if (waiting || others_cached(p)) {
        look_all(p);
        rec = claim_from_stack(p, now);
    }
    return rec;
}

/* A get with timeout 0 is about to give EAGAIN (handout.c): it must not
 * miss a record cached anywhere.  An open flush within the budget, else
 * close the caches for the gets (a fence at most once per period), after
 * which the caller looks again. */
void lfpool_avail_final_look(struct lfpool *p)
{
    if (p->pcpu)
        look_all(p);
}

/* The stack path of lfpool_avail_put: a record (CACHED, ours) that did not
 * go into a cache. */
void lfpool_avail_put_stack(struct lfpool *p, struct lfpool_rec *rec)
{
    if (lfpool_unlikely(lfpool_gate_gift(&p->gate, rec)))
        return; /* handed, CACHED, to a waiter that lost a race (gate.c) */
    int r = lfpool_avail_put_closed(p, rec);
    if (r != LFPOOL_PUT_STACK) {
        if (r == LFPOOL_PUT_WAKE)
            lfpool_gate_wake(&p->gate, false);
        return;
    }
    rec_store(rec, REC_AVAIL, memory_order_release);
    lfpool_stack_push(&p->stack, rec);
    atomic_thread_fence(memory_order_seq_cst);
    lfpool_gate_signal(&p->gate);
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
    if (!rec && lfpool_avail_flush(p))
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
