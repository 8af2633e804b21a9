/*
 * gate.c - the capacity gate: how a get waits at max_size.
 *
 * Owns: the waiter count, the FIFO of parked gets, the grants in flight
 * and the records handed over with a grant.  The seed's semaphore becomes:
 * the atomic object count `nobjs` (never above max_size; reserved by CAS
 * before `fun` runs), the available set, and this gate, on which a get
 * sleeps when the pool is at max_size and the set is empty.  Every event
 * that could let a waiter proceed (an object pushed into the set, an object
 * removed so one may be created, shutdown) calls lfpool_gate_signal() or
 * lfpool_gate_wake().  Invariant: a node is in the FIFO iff `queued`, and
 * `parked` counts them; `woken` counts the grants not yet taken back by
 * their waiter and never exceeds `grants` (except by wake-all).
 *
 * Parking.  Each sleeping get owns a node on its stack whose `granted`
 * word is its own futex.  It appends the node to the FIFO (under the gate
 * lock), looks at the set once more, and sleeps with FUTEX_WAIT_BITSET
 * (absolute CLOCK_MONOTONIC deadline) while `granted` is 0.  A producer
 * grants the head: unlinks it, stores granted = 1 (both under the lock),
 * and FUTEX_WAKEs that word.  Returns that do not concern a sleeper change
 * no futex word, so a get on its way to sleep is not turned back by them,
 * and FUTEX_WAKE is called only for a waiter that was in the FIFO.  The
 * single-word gate this replaced bumped one futex word on every ret and
 * woke on every ret that saw a sleeper count; with 32 threads on 2 cores
 * nearly all of those calls found nobody (docs/PERFORMANCE.md, P3).
 *
 * Grants in flight: at most `grants` (8, or 4 per CPU beyond 2 CPUs)
 * waiters have been granted and not yet run.  A producer grants only
 * below that bound; a granted waiter gives its grant back (`woken` - 1)
 * when it runs, then looks.  One grant at a time (the previous gate's
 * rule) starved waiters deep in the FIFO: a woken thread waits for a core
 * for about a millisecond here, so the FIFO advanced a few times per second;
 * an unbounded number made every ret wake somebody.  A granted waiter that
 * leaves passes the turn on (grants the next parked waiter, if any), so a
 * burst of returns reaches every sleeper.
 *
 * Hand-over.  A granted waiter usually finds the object taken again by a
 * thread that was running (barging keeps the cores busy).  It then parks at
 * the head with `wants_gift`; the next ret that would push a record to the
 * shared stack (lfpool_avail_put_stack) gives it that record instead (still
 * CACHED, so the housekeeper leaves it alone) with the grant.  So a waiter
 * loses the race at most once per wait.  A waiter that times out, or finds
 * an object itself, with a record in its hands publishes it again; after
 * shutdown a handed record is put back, never handed out.
 *
 * No lost wake-up.  All the words below are accessed seq_cst; each case is
 * a store-buffering pair (each side writes its word, then reads the
 * other's), where at least one side sees the other's write.
 *  - A producer publishes, then reads `parked`; a waiter increments
 *    `parked`, then looks.  Producer sees 0 => the waiter sees the object.
 *  - A producer publishes, then reads `woken` at the bound; each granted
 *    waiter gives its grant back, then looks.  So the first of them to give
 *    back after the producer's read sees the object.
 *  - A producer publishes, sets `pending`, then tries the lock; whoever
 *    holds it releases it, then reads `pending` and grants itself (drain).
 *    Producer fails the trylock => the holder sees pending.
 * A granted waiter always looks again (or passes the turn on), so a grant
 * is not wasted on a waiter that leaves without looking.
 *  - A ret that pushed into a per-CPU cache reads the gate with plain loads
 *    and no fence (cache.c): its push may still sit in its store buffer.
 *    The heavy side is the waiter's: a look that finds nothing else
 *    closes the caches if they are open (a flush whose membarrier is a
 *    full barrier on every CPU running the process, after which the push
 *    is visible), or finds them closed, when later pushes fail and take
 *    the fenced stack path (cache.c argues the reopening); and a granted
 *    waiter that leaves with an object passes the turn on.  So the grants
 *    chain on until a look with the caches closed found nothing: the
 *    record was taken.
 *
 * Nodes live on the waiters' stacks: a node is in the FIFO only while its
 * owner is between lfpool_gate_park and its unpark, and the owner unlinks it
 * (under the lock) unless a producer did.  A granter stores `granted` and
 * makes its FUTEX_WAKE while holding the lock, and an owner takes the lock
 * in unpark before it leaves, so no FUTEX_WAKE ever names a dead node
 * (valgrind checks the address of every futex call).
 *
 * Tickets (loop.c).  An event loop's pending get is a node of the same
 * FIFO (`async`), owned by a ticket on the heap, on which nobody sleeps.
 * The gate treats it as a waiter that always wants a hand-over: while a
 * ticket is at the head, rets take the stack path and lfpool_gate_gift
 * hands it the record (lfpool_loop_on_gift completes it, unlinked, with no
 * grant slot: nobody has to run).  A grant that reaches a ticket at the
 * head (a producer other than a ret: a flush, a freed slot, a health
 * check; or a gift's trylock that failed) leaves it in the FIFO and asks
 * the housekeeper to look for it (lfpool_loop_on_grant: once until that
 * look starts); grants behind it wait, as they would behind a sleeper.
 * Wake-all completes tickets with ESHUTDOWN at shutdown, and schedules a
 * look for each (leaving them queued) when a pause ends.
 *
 * FIFO order with tickets.  While tickets are queued (`tickets`, under the
 * lock), a single get's sleeper at the head is handed every return too,
 * with its grant, though it did not ask (`may_gift`; a bulk get's node
 * takes no hand-over).  Otherwise a sleeper parked for the first time
 * heads the FIFO with tickets behind it, a ret pushes into its CPU's cache
 * and grants the sleeper, and until the sleeper runs (about a millisecond
 * on a loaded host) the object is free for any running get: a get_async
 * took it at once, or the returning thread's next get took it back, ahead
 * of the sleeper and of every ticket.  So while tickets wait no return
 * makes an object available for barging (but for a gift's failed trylock:
 * the record is then published and the grant goes to the head), and a
 * thread that returns and gets again queues behind them.  Without tickets
 * the sleepers' path is what it was: `may_gift` only counts with tickets
 * queued.
 *
 * The lock is a three-state futex mutex (Drepper, "Futexes are tricky",
 * mutex 2).  Returns only try it (a ret never waits for it, CONTRACT §4's hot
 * path); parking and unparking waiters and shutdown take it.  It is held
 * for a few stores, and by a granter for its FUTEX_WAKE.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t val3)
{
    return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, val3);
}

/* ---- the FIFO lock: 0 free, 1 held, 2 held with sleepers */
static bool gate_trylock(struct lfpool_gate *g)
{
    uint32_t z = 0;
    return atomic_compare_exchange_strong_explicit(&g->lock, &z, 1, memory_order_seq_cst,
                                                   memory_order_seq_cst);
}

void lfpool_gate_lock(struct lfpool_gate *g)
{
    uint32_t c = 0;
    if (atomic_compare_exchange_strong_explicit(&g->lock, &c, 1, memory_order_seq_cst,
                                                memory_order_seq_cst))
        return;
    if (c != 2)
        c = atomic_exchange_explicit(&g->lock, 2, memory_order_seq_cst);
    while (c != 0) {
        futex(&g->lock, FUTEX_WAIT_PRIVATE, 2, NULL, 0);
        c = atomic_exchange_explicit(&g->lock, 2, memory_order_seq_cst);
    }
}

static void gate_release(struct lfpool_gate *g)
{
    if (atomic_exchange_explicit(&g->lock, 0, memory_order_seq_cst) == 2)
        futex(&g->lock, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
}

static void gate_drain(struct lfpool_gate *g);

/* Release, then make any grant a producer left for the holder (header). */
void lfpool_gate_unlock(struct lfpool_gate *g)
{
    gate_release(g);
    if (atomic_load_explicit(&g->pending, memory_order_seq_cst))
        gate_drain(g);
}

/* Does the head take a record handed over by a ret (lock held)?  It asked
 * for one (a granted waiter that lost its race, a ticket), or it is a
 * single get with tickets queued behind it (header: FIFO order). */
static bool head_takes_gift(const struct lfpool_gate *g)
{
    const struct lfpool_gate_node *n = g->head;
    return n && (n->wants_gift || (n->may_gift && g->tickets > 0));
}

/* gift_wanted is also an input of the admission word's inline ret bits
 * (life.c, lfpool_life_fast_ret): while it is set, rets leave the inline
 * path, whose push does not read it, for the paths whose push does
 * (cache.h).  So each change stores it (seq_cst), then has the bits
 * recomputed, as every writer of those inputs does.  The gate is the
 * pool's (the only gates there are). */
static void gift_wanted_update(struct lfpool_gate *g)
{
    uint32_t v = head_takes_gift(g);
    if (atomic_load_explicit(&g->gift_wanted, memory_order_relaxed) == v)
        return;
    atomic_store_explicit(&g->gift_wanted, v, memory_order_seq_cst);
    lfpool_life_fast_ret((struct lfpool *)((char *)g - offsetof(struct lfpool, gate)));
}

void lfpool_gate_unlink(struct lfpool_gate *g, struct lfpool_gate_node *n)
{
    LFPOOL_ASSERT(n->queued);
    if (n->prev)
        n->prev->next = n->next;
    else
        g->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        g->tail = n->prev;
    n->queued = false;
    if (n->async)
        g->tickets--;
    int32_t was = atomic_fetch_sub_explicit(&g->parked, 1, memory_order_seq_cst);
    LFPOOL_ASSERT(was > 0 && g->tickets >= 0);
    (void)was;
    gift_wanted_update(g);
}

/* Reserve one of the grants in flight; lock held (so only granted waiters,
 * which only decrement, race with us). */
static bool grant_slot(struct lfpool_gate *g)
{
    if (atomic_load_explicit(&g->woken, memory_order_seq_cst) >= g->grants)
        return false;
    atomic_fetch_add_explicit(&g->woken, 1, memory_order_seq_cst);
    return true;
}

/* Grant the head of the FIFO if a grant may go out; lock held.  A ticket
 * at the head takes no grant slot: the housekeeper looks for it (loop.c),
 * and NULL is returned (nobody to wake). */
static struct lfpool_gate_node *grant_one(struct lfpool_gate *g)
{
    if (lfpool_unlikely(g->head && g->head->async)) {
        lfpool_loop_on_grant(g, g->head);
        return NULL;
    }
    if (!g->head || !grant_slot(g))
        return NULL;
    struct lfpool_gate_node *n = g->head;
    lfpool_gate_unlink(g, n);
    atomic_store_explicit(&n->granted, 1, memory_order_seq_cst);
    return n;
}

static void gate_drain(struct lfpool_gate *g)
{
    while (atomic_load_explicit(&g->pending, memory_order_seq_cst) && gate_trylock(g)) {
        atomic_store_explicit(&g->pending, 0, memory_order_seq_cst);
        struct lfpool_gate_node *n = grant_one(g);
        if (n) /* under the lock: its owner takes it before leaving */
            futex(&n->granted, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
        gate_release(g); /* the loop reads pending again after it */
    }
}

void lfpool_gate_init(struct lfpool_gate *g, unsigned ncpus)
{
    g->grants = ncpus > 2 ? 4 * ncpus : 8;
}

void lfpool_gate_wake(struct lfpool_gate *g, bool all)
{
    if (all) {
        struct lfpool_gate_node *n, *next;
        lfpool_gate_lock(g);
        for (n = g->head; n != NULL; n = next) {
            next = n->next;
            if (n->async) { /* shutdown: completed (ESHUTDOWN), unlinked;
                             * resume: a look by the housekeeper, queued */
                lfpool_loop_on_wake_all(g, n);
                continue;
            }
            lfpool_gate_unlink(g, n);
            atomic_fetch_add_explicit(&g->woken, 1, memory_order_seq_cst); /* its unpark takes it back */
            atomic_store_explicit(&n->granted, 1, memory_order_seq_cst);
            futex(&n->granted, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
        }
        lfpool_gate_unlock(g);
        return;
    }
    if (atomic_load_explicit(&g->parked, memory_order_seq_cst) <= 0 ||
        atomic_load_explicit(&g->woken, memory_order_seq_cst) >= g->grants)
        return;
    atomic_store_explicit(&g->pending, 1, memory_order_seq_cst);
    gate_drain(g);
}

bool lfpool_gate_gift(struct lfpool_gate *g, struct lfpool_rec *rec)
{
    if (!atomic_load_explicit(&g->gift_wanted, memory_order_relaxed) || !gate_trylock(g))
        return false;
    struct lfpool_gate_node *n = g->head;
    if (n && n->async) { /* a ticket: completed with rec, unlinked; or
                            * (validation due) left to the housekeeper */
        bool taken = lfpool_loop_on_gift(g, n, rec);
        lfpool_gate_unlock(g);
        return taken;
    }
    bool ok = head_takes_gift(g) && grant_slot(g);
    if (ok) {
        lfpool_gate_unlink(g, n);
        n->gift = rec;
        atomic_store_explicit(&n->granted, 1, memory_order_seq_cst);
        futex(&n->granted, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
    }
    lfpool_gate_unlock(g);
    return ok;
}

void lfpool_gate_park(struct lfpool_gate *g, struct lfpool_gate_node *n, bool front, bool may_gift)
{
    n->async = false; /* a sleeper's node (on its stack, maybe uninitialised);
                       * tickets park with lfpool_gate_park_locked (loop.c) */
    n->may_gift = may_gift;
    lfpool_gate_lock(g);
    lfpool_gate_park_locked(g, n, front);
    lfpool_gate_unlock(g);
    atomic_thread_fence(memory_order_seq_cst); /* parked, then the caller looks */
}

/* lfpool_gate_park with the lock held (a ticket parked again, loop.c); the
 * caller fences before it looks. */
void lfpool_gate_park_locked(struct lfpool_gate *g, struct lfpool_gate_node *n, bool front)
{
    atomic_store_explicit(&n->granted, 0, memory_order_relaxed);
    if (front) { /* a granted waiter that lost the race keeps its turn */
        n->prev = NULL;
        n->next = g->head;
        if (g->head)
            g->head->prev = n;
        else
            g->tail = n;
        g->head = n;
    } else {
        n->next = NULL;
        n->prev = g->tail;
        if (g->tail)
            g->tail->next = n;
        else
            g->head = n;
        g->tail = n;
    }
    n->queued = true;
    n->wants_gift = front || n->async; /* a ticket always takes a hand-over */
    n->gift = NULL;
    if (n->async)
        g->tickets++;
    atomic_fetch_add_explicit(&g->parked, 1, memory_order_seq_cst);
    gift_wanted_update(g);
}

/* The granted waiter runs: the next grant may go out. */
static void granted_runs(struct lfpool_gate *g)
{
    atomic_fetch_sub_explicit(&g->woken, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst); /* woken cleared, then the caller looks */
}

bool lfpool_gate_unpark(struct lfpool_gate *g, struct lfpool_gate_node *n)
{
    /* always under the lock: a granter wakes our word before it unlocks,
     * so once we have had the lock nobody touches the node again */
    lfpool_gate_lock(g);
    bool granted = !n->queued;
    if (!granted)
        lfpool_gate_unlink(g, n);
    lfpool_gate_unlock(g);
    if (granted)
        granted_runs(g);
    return granted;
}

int lfpool_gate_sleep(struct lfpool_gate *g, struct lfpool_gate_node *n, const struct timespec *deadline)
{
    int r = 0; /* 0 means granted */
    while (!atomic_load_explicit(&n->granted, memory_order_seq_cst)) {
        long s = futex(&n->granted, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, deadline,
                       FUTEX_BITSET_MATCH_ANY);
        if (s != 0 && errno == ETIMEDOUT) {
            r = ETIMEDOUT;
            break;
        }
        /* EINTR: wait on, still in the FIFO and in our place (the deadline
         * is absolute; shutdown grants everybody) */
    }
    if (lfpool_gate_unpark(g, n))
        r = 0; /* granted as the deadline passed: the grant is ours */
    return r;
}

/* A get enters its wait loop: registered before it looks again (the
 * store-buffering pairs in the header need the fence). */
void lfpool_gate_wait_begin(struct lfpool_gate *g)
{
    atomic_fetch_add_explicit(&g->waiters, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
}

/* The same, unless `limit` gets (> 0) already wait: false, not registered
 * (max_waiters: the get fails with EBUSY).  The CAS bounds the count
 * exactly; a get leaving (wait_end) only lowers it. */
bool lfpool_gate_wait_begin_bounded(struct lfpool_gate *g, size_t limit)
{
    int32_t n = atomic_load_explicit(&g->waiters, memory_order_relaxed);
    do {
        if (n >= 0 && (size_t)n >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&g->waiters, &n, n + 1, memory_order_seq_cst,
                                                    memory_order_relaxed));
    atomic_thread_fence(memory_order_seq_cst);
    return true;
}

/* A get leaves its wait loop.  `slept`: it held a grant, or slept; it
 * passes the turn on - producers made no grant while its grant was in
 * flight, and what they pushed into a cache may not have been visible to
 * its look; the next waiter's look closes the caches (cache.c). */
void lfpool_gate_wait_end(struct lfpool_gate *g, bool slept)
{
    atomic_fetch_sub_explicit(&g->waiters, 1, memory_order_seq_cst);
    if (slept && atomic_load_explicit(&g->parked, memory_order_seq_cst) > 0)
        lfpool_gate_signal(g);
}

/* In a fork child (one thread): the FIFO names nodes on the stacks of
 * parent threads, and the lock and grants are theirs. */
void lfpool_gate_fork_reset(struct lfpool_gate *g)
{
    atomic_store(&g->waiters, 0);
    atomic_store(&g->parked, 0);
    atomic_store(&g->woken, 0);
    atomic_store(&g->pending, 0);
    atomic_store(&g->lock, 0);
    atomic_store(&g->gift_wanted, 0);
    g->tickets = 0;
    g->head = g->tail = NULL;
}
