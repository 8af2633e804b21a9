/*
 * gate.c - the capacity gate: how a get waits at max_size.
 *
 * Owns: the waiter count and the futex event word of a bounded pool.
 * The seed's semaphore becomes: the atomic object count `nobjs` (never
 * above max_size; reserved by CAS before `fun` runs), the available set,
 * and this gate, on which a get sleeps when the pool is at max_size and the
 * set is empty.  Every event that could let a waiter proceed (an object
 * pushed into the set, an object removed so one may be created, shutdown)
 * calls lfpool_gate_signal() or lfpool_gate_wake().
 *
 * No lost wake-up: a waiter (1) increments `waiters` (seq_cst) and issues a
 * seq_cst fence, (2) reads `seq`, (3) re-checks the set and the count, and
 * (4) sleeps with FUTEX_WAIT_BITSET only while `seq` still equals what it
 * read.  A producer (a) publishes with a seq_cst operation, (b) reads
 * `waiters` (seq_cst) and, when non-zero, bumps `seq` before FUTEX_WAKE.
 * By the seq_cst total order either the producer sees the waiter, and the
 * bump makes the sleep return at once, or the waiter's re-check (3) sees
 * the published object.
 *
 * The system call is saved when nobody sleeps: a waiter increments
 * `sleepers` (seq_cst) right before FUTEX_WAIT; a producer bumps `seq`
 * first, then calls FUTEX_WAKE only if `sleepers` is non-zero.  If the
 * producer reads sleepers == 0, the waiter's increment comes later in the
 * total order, so its FUTEX_WAIT compares against the bumped `seq` and
 * returns at once.  (Waiters that are registered but preempted, common
 * with many threads on few cores, no longer cost every ret a syscall.)
 *
 * One wake-up in flight: `woken` is set by the producer whose FUTEX_WAKE
 * woke a sleeper, and cleared by any sleeper coming back from FUTEX_WAIT
 * (or by the producer again if its wake found nobody).  While it is set,
 * producers bump `seq` but make no system call: the woken waiter has yet
 * to look, and it will see what they published.  With many threads on
 * few cores, waking one sleeper per ret cost a context switch per pair for
 * a waiter that mostly found the object taken again by a running thread.
 * No lost wake-up: a producer that skips the wake read woken == 1 after
 * its publication and `seq` bump (seq_cst); the waiter clears woken, then
 * reads `seq` and looks (seq_cst), so it sees that bump and what it
 * published.  What it does not take itself it passes on: a waiter that
 * slept and leaves with an object wakes another sleeper if the set still
 * looks non-empty or a unit is free (lfpool_get, pool.c).  Deadlines are absolute CLOCK_MONOTONIC and are
 * also checked after every wake-up.  Nothing wakes the gate for an object
 * a waiter cannot take (a record under a health check), so a wait sleeps.
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

void lfpool_gate_wake(struct lfpool_gate *g, bool all)
{
    atomic_fetch_add_explicit(&g->seq, 1, memory_order_seq_cst);
    if (all) {
        futex(&g->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, 0);
        return;
    }
    /* one wake in flight at a time (see the header comment) */
    if (atomic_load_explicit(&g->sleepers, memory_order_seq_cst) > 0 &&
        !atomic_load_explicit(&g->woken, memory_order_relaxed) &&
        !atomic_exchange_explicit(&g->woken, 1, memory_order_seq_cst) &&
        futex(&g->seq, FUTEX_WAKE_PRIVATE, 1, NULL, 0) <= 0)
        atomic_store_explicit(&g->woken, 0, memory_order_seq_cst); /* woke nobody */
}

/* Sleep while g->seq == seen, until woken or `deadline` (NULL: forever).
 * Returns 0 (woken, or seq already moved), ETIMEDOUT, or EINTR. */
int lfpool_gate_sleep(struct lfpool_gate *g, uint32_t seen, const struct timespec *deadline)
{
    atomic_fetch_add_explicit(&g->sleepers, 1, memory_order_seq_cst);
    long r = futex(&g->seq, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, seen, deadline,
                   FUTEX_BITSET_MATCH_ANY);
    int e = errno;
    atomic_fetch_sub_explicit(&g->sleepers, 1, memory_order_relaxed);
    /* the wake in flight (ours, or another's: clearing early costs at most
     * one more wake-up) has arrived; the caller looks again from here */
    atomic_store_explicit(&g->woken, 0, memory_order_seq_cst);
    errno = e;
    if (r == 0)
        return 0;
    if (errno == ETIMEDOUT)
        return ETIMEDOUT;
    if (errno == EINTR)
        return EINTR;
    return 0; /* EAGAIN: seq changed before we slept */
}
