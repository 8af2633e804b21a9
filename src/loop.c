/*
 * loop.c - event loops: gets that never block the calling thread, with
 * readiness on a file descriptor.
 *
 * Owns: lfpool_loop (its eventfd, its list of completed tickets, its live
 * tickets), the tickets, the pool's serve list (tickets the housekeeper
 * must look for) and the housekeeper started on demand for loops.
 * Invariants: a ticket is in exactly one of the states below, changed only
 * under the gate lock; each ticket gives exactly one event or is cancelled;
 * a record handed to a ticket is given to the loop's user, or back to the
 * pool (to the next waiter), never dropped; `fun` runs for a ticket on the
 * housekeeper only.
 *
 * A ticket is a waiter of the gate's FIFO (gate.c) whose node sits in the
 * ticket (`async`), not on a sleeping thread's stack.  Nobody sleeps on it:
 * - a ret that would publish a record while a ticket is at the head hands
 *   it the record (lfpool_gate_gift -> lfpool_loop_on_gift): the ticket is
 *   completed on the spot, in the FIFO's order, with the record still
 *   CACHED (the housekeeper leaves it alone); the loop claims it later;
 * - any other producer's grant (a flush, a freed slot, a health check,
 *   a gift whose trylock failed) that reaches a ticket at the head asks
 *   the housekeeper to look on its behalf (lfpool_loop_on_grant, serve_one
 *   below): it claims what is available, or reserves a slot and runs `fun`
 *   there, then completes the ticket if it is still queued;
 * - shutdown completes every queued ticket with ESHUTDOWN.
 * Completing a ticket: unlink it, set its result, append it to its loop's
 * done list and, if the loop was not signalled since its last drain, write
 * the eventfd (so 10,000 completions while the loop is busy are one
 * write(2)).  All under the gate lock: the done list needs no lock-free
 * protocol, and lfpool_loop_free knows that no completer is still inside
 * once it has taken the lock after cancelling its tickets.
 *
 * Order.  Tickets park at the back of the FIFO only (the housekeeper
 * never parks one again: a look that finds nothing leaves it where it is),
 * only the head is granted (scheduled) or handed a record, and a get_async
 * that sees room to create grants the head rather than its own ticket.
 * A get_async takes an available object at once only while no get waits
 * (the waiter count: queued, or granted and not yet running); otherwise it
 * queues, and what its look after parking finds goes on to the head of
 * the FIFO (given back: the ret path hands it over) unless its own ticket
 * is the head, or the head takes no hand-over (a bulk get).  While tickets
 * wait, every return is handed to the head, a sleeper too (gate.c).
 * So tickets are served in the order they were queued, whichever loop
 * they belong to, and complete in that order but for one case: a ticket
 * the housekeeper creates for leaves the FIFO before `fun` runs (as a
 * sleeper does: no hand-over waits on user code), so the tickets behind it
 * may be handed returned objects before `fun` returns.  With the sleepers
 * the FIFO decides too, except that a granted sleeper that lost its race
 * parks again at the front, and a running get (blocking or not) may take
 * an available object first.
 *
 * States (t->st, under the gate lock):
 *   QUEUED     in the FIFO.  -> DONE (gift, shutdown), -> CANCELLED
 *              (cancel, or get_async's own look that found an object),
 *              -> SERVING (the housekeeper's look took it back).
 *   SERVING    taken out of the FIFO by the housekeeper's look, which
 *              found an object or is creating one for it.  -> DONE,
 *              -> CANCELLED (cancel: the housekeeper then gives it back).
 *   DONE       on its loop's done list with a result.  -> drained (the
 *              event is returned), -> CANCELLED_DONE (cancel: the record
 *              goes back at once; the drain frees it without an event).
 *   CANCELLED, CANCELLED_DONE: the loop gave it up.
 * The ticket leaves the gate's waiter count (entered in get_async) on its
 * first move into DONE or CANCELLED.
 *
 * Reclamation: t->refs counts the holders of a ticket, under the gate lock:
 * its loop (from get_async until its event is drained or it is cancelled
 * out of the FIFO), and each serve-list entry (one at most: `sched`), which
 * the housekeeper holds until its look is over.  Whoever drops the count to
 * 0 frees it, after the lock.  So a look in progress on a ticket that a
 * gift completes and the loop drains meanwhile still reads live memory.
 *
 * No lost wake-up (the gate's argument, gate.c, extended).  A ticket enters
 * the waiter count, then parks, then looks (get_async), as a sleeper does.
 * A grant to a ticket that is already scheduled is absorbed; the
 * housekeeper clears `sched` under the lock before its look, so a producer
 * whose grant was absorbed (it read sched set, under the lock) published
 * before that clear, and the look (a flush, and the stack) sees it.  A look
 * that does not end with this ticket completed by it - the ticket was
 * completed or cancelled meanwhile, or the look took a record the ticket
 * no longer wanted - passes the turn on (signals the gate if anything is
 * parked), as a sleeper that leaves does: its record, or the one that an
 * absorbed grant announced, may be the next waiter's.
 */
#include "cache.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { T_QUEUED, T_SERVING, T_DONE, T_CANCELLED, T_CANCELLED_DONE };

struct lfpool_ticket {
    struct lfpool_gate_node node; /* in the gate's FIFO while QUEUED */
    struct lfpool_loop *loop;
    void *udata;
    int st;                        /* the state (gate lock) */
    int refs;                      /* holders (gate lock) */
    bool sched;                    /* on the serve list, its look not started (gate lock) */
    bool cached;                   /* the result is a handed-over record, CACHED, in h.priv_rec */
    const void *caller;            /* lfpool_get_async's call site (leak attribution) */
    double since;                  /* when it started to wait (the wait histogram) */
    int err;                       /* the result: 0 (h) or an errno */
    lfpool_handle h;
    struct lfpool_ticket *dnext;   /* the loop's done list (gate lock) */
    struct lfpool_ticket *snext;   /* the pool's serve list (gate lock) */
    struct lfpool_ticket *lprev, *lnext; /* the loop's live tickets (loop thread) */
};

struct lfpool_loop {
    struct lfpool *p;
    int efd;
    bool signalled;                /* the eventfd was written since the last drain (gate lock) */
    struct lfpool_ticket *done_head, *done_tail; /* completed, oldest first (gate lock) */
    struct lfpool_ticket *live;    /* not yet drained or cancelled (loop thread) */
};

static struct lfpool *pool_of(struct lfpool_gate *g)
{
    return caa_container_of(g, struct lfpool, gate);
}

static struct lfpool_ticket *ticket_of(struct lfpool_gate_node *n)
{
    return caa_container_of(n, struct lfpool_ticket, node);
}

/* ---- the loop's live list (its thread only) */

static void live_add(struct lfpool_loop *l, struct lfpool_ticket *t)
{
    t->lprev = NULL;
    t->lnext = l->live;
    if (l->live)
        l->live->lprev = t;
    l->live = t;
}

static void live_remove(struct lfpool_loop *l, struct lfpool_ticket *t)
{
    if (t->lprev)
        t->lprev->lnext = t->lnext;
    else
        l->live = t->lnext;
    if (t->lnext)
        t->lnext->lprev = t->lprev;
    t->lprev = t->lnext = NULL;
}

/* ---- completion and scheduling (gate lock held) */

static void leave_waiters(struct lfpool *p)
{
    atomic_fetch_sub_explicit(&p->gate.waiters, 1, memory_order_seq_cst);
}

/* t (out of the FIFO) has its result: onto its loop's done list. */
static void complete_locked(struct lfpool *p, struct lfpool_ticket *t)
{
    struct lfpool_loop *l = t->loop;
    t->st = T_DONE;
    t->dnext = NULL;
    if (l->done_tail)
        l->done_tail->dnext = t;
    else
        l->done_head = t;
    l->done_tail = t;
    leave_waiters(p);
    /* a completed ticket is a get that waited (nwaits, wait_time) */
    lfpool_hist_add_shared(&p->obs.wait, lfpool_now_fresh(p) - t->since);
    if (t->err == 0) /* the hand-out's call site: where the loop asked */
        atomic_store_explicit(&((struct lfpool_rec *)t->h.priv_rec)->caller, t->caller,
                              memory_order_relaxed);
    if (!l->signalled) {
        /* an eventfd counter cannot overflow one write per drain */
        uint64_t one = 1;
        ssize_t w = write(l->efd, &one, sizeof one);
        (void)w;
        l->signalled = true;
    }
}

static void schedule_locked(struct lfpool *p, struct lfpool_ticket *t);
static bool validation_due(struct lfpool *p, struct lfpool_rec *rec);

bool lfpool_loop_on_gift(struct lfpool_gate *g, struct lfpool_gate_node *n, struct lfpool_rec *rec)
{
    struct lfpool_ticket *t = ticket_of(n);
    struct lfpool *p = pool_of(g);
    if (lfpool_unlikely(lfpool_ctl_flags(p)) && lfpool_ctl_hold(p))
        return false; /* paused (control.c): no hand-out; resume looks */
    if (lfpool_unlikely(validation_due(pool_of(g), rec))) {
        /* the `validate` hook must not run on the loop's thread: the
         * housekeeper's look takes it (the ret publishes it, then signals) */
        schedule_locked(pool_of(g), t);
        return false;
    }
    lfpool_gate_unlink(g, n);
    t->err = 0;
    t->cached = true;
    memset(&t->h, 0, sizeof t->h);
    t->h.priv_rec = rec;
    complete_locked(pool_of(g), t);
    return true;
}

void lfpool_loop_on_wake_all(struct lfpool_gate *g, struct lfpool_gate_node *n)
{
    struct lfpool_ticket *t = ticket_of(n);
    if (!atomic_load(&pool_of(g)->shutdown)) { /* a resume: look for it */
        schedule_locked(pool_of(g), t);
        return;
    }
    lfpool_gate_unlink(g, n);
    t->err = ESHUTDOWN;
    t->cached = false;
    complete_locked(pool_of(g), t);
}

/* Ask the housekeeper to look for t (once until that look starts). */
static void schedule_locked(struct lfpool *p, struct lfpool_ticket *t)
{
    if (t->sched)
        return;
    t->sched = true;
    t->refs++;
    t->snext = NULL;
    if (p->async.serve_tail)
        p->async.serve_tail->snext = t;
    else
        __atomic_store_n(&p->async.serve_head, t, __ATOMIC_RELEASE);
    p->async.serve_tail = t;
    lfpool_hk_kick(p);
}

void lfpool_loop_on_grant(struct lfpool_gate *g, struct lfpool_gate_node *n)
{
    schedule_locked(pool_of(g), ticket_of(n));
}

/* ---- claims and give-backs */

/* Validation on borrow is due for rec: a `validate` hook, and the record
 * was available at least validate_idle (handout.c, get_validate). */
static bool validation_due(struct lfpool *p, struct lfpool_rec *rec)
{
    if (lfpool_likely(!p->cfg.validate))
        return false;
    /* relaxed: stored before the release that made it available */
    double ret_t = atomic_load_explicit(&rec->last_ret, memory_order_relaxed);
    return lfpool_now(p) - ret_t >= p->cfg.validate_idle;
}

static void give_back(struct lfpool *p, const lfpool_handle *h);

enum { CLAIM_NONE, CLAIM_OK, CLAIM_DECLINED };

/* Claim an available record as a get does, into *h.  `waiting`: the
 * ticket is in the FIFO (the look flushes the per-CPU caches).  On the
 * housekeeper (`hk`) a record whose validation is due is validated there
 * (a failure destroys it, and the look goes on); on the loop's thread it
 * is given back (CLAIM_DECLINED): the housekeeper's look will take it. */
static int claim(struct lfpool *p, bool waiting, lfpool_handle *h, bool hk)
{
    for (;;) {
        /* runtime control (control.c): as a get, shed surplus, then read
         * the flags and claim in one read-side section */
        bool ctl = lfpool_unlikely(lfpool_ctl_flags(p) != 0);
        if (ctl)
            lfpool_ctl_shed(p);
        bool guard = p->guard_get || ctl;
        if (guard)
            rcu_read_lock();
        if (ctl && lfpool_ctl_hold(p)) {
            rcu_read_unlock();
            return CLAIM_NONE;
        }
        struct lfpool_rec *rec = lfpool_avail_get(p, lfpool_now(p), waiting);
        if (rec) {
            rec_count_use(rec);
            h->obj = rec->obj;
            h->priv_rec = rec;
            h->priv_pool = p->id;
            h->priv_word = rec_word(atomic_load_explicit(&rec->state, memory_order_relaxed), REC_OUT);
        }
        if (guard)
            rcu_read_unlock();
        if (!rec)
            return CLAIM_NONE;
        if (lfpool_likely(!validation_due(p, rec)))
            return CLAIM_OK;
        if (!hk) {
            give_back(p, h);
            return CLAIM_DECLINED;
        }
        if (lfpool_handout_validate(p, rec, h->obj, h->priv_word))
            return CLAIM_OK;
    }
}

/* A record handed over (CACHED, ours) that nobody will take: publish it
 * (a parked waiter may be handed it at once). */
static void gift_back(struct lfpool *p, struct lfpool_rec *rec)
{
    if (lfpool_unlikely(lfpool_ctl_flags(p)))
        lfpool_ctl_put(p, rec); /* closed instead when control says so */
    else
        lfpool_avail_put(p, rec);
    if (atomic_load(&p->shutdown))
        lfpool_close_available(p);
}

/* A record claimed for a ticket that nobody will take (the user never saw
 * it): end the hand-out as a ret would, without its hooks or its use.
 * The CAS expects the hand-out's word (a loop's hand-out has no biased
 * owner: bias.c); a kill, shutdown, or an object worn out or expired
 * leaves it to the ret's careful path. */
static void give_back(struct lfpool *p, const lfpool_handle *h)
{
    struct lfpool_rec *rec = h->priv_rec;
    uint32_t w = h->priv_word;
    /* the claim was not a use: counted apart (uses_undone), as a failed
     * validation is (handout.c), not taken off rec->uses - a CLOSE kill
     * may have removed the record and its reaper moved its uses already */
    lfpool_stat_inc(&p->c.uses_undone);
    atomic_store_explicit(&rec->last_ret, lfpool_now(p), memory_order_relaxed);
    /* worn out or expired (max_use, max_lifetime): the ret ends it */
    bool worn = p->wear && (atomic_load_explicit(&rec->uses, memory_order_relaxed) >= p->max_use ||
                            lfpool_now(p) >= atomic_load_explicit(&rec->expires, memory_order_relaxed));
    if (!worn && !atomic_load(&p->shutdown) &&
        atomic_compare_exchange_strong_explicit(&rec->state, &w, rec_word(w, REC_CACHED),
                                                memory_order_acq_rel, memory_order_acquire)) {
        gift_back(p, rec);
        return;
    }
    lfpool_handout_give_back(p, h);
}

/* A look that did not end with its ticket completed by it: the next
 * waiter may be owed what it saw (header). */
static void pass_on(struct lfpool *p)
{
    if (atomic_load_explicit(&p->gate.parked, memory_order_seq_cst) > 0)
        lfpool_gate_signal(&p->gate);
}

static bool may_create(struct lfpool *p)
{
    size_t max = lfpool_max_size(p);
    size_t limit = max ? max : SIZE_MAX;
    return (uint64_t)atomic_load_explicit(&p->nobjs, memory_order_relaxed) < limit;
}

/* ---- the housekeeper's side */

bool lfpool_loop_has_work(struct lfpool *p)
{
    return __atomic_load_n(&p->async.serve_head, __ATOMIC_ACQUIRE) != NULL;
}

/* Drop one holder of t; free it if it was the last. */
static void release(struct lfpool *p, struct lfpool_ticket *t)
{
    lfpool_gate_lock(&p->gate);
    bool last = --t->refs == 0;
    lfpool_gate_unlock(&p->gate);
    if (last)
        free(t);
}

/* Take t out of the FIFO for this look: false if somebody else did. */
static bool take_back(struct lfpool *p, struct lfpool_ticket *t)
{
    lfpool_gate_lock(&p->gate);
    bool ok = t->st == T_QUEUED;
    if (ok) {
        lfpool_gate_unlink(&p->gate, &t->node);
        t->st = T_SERVING;
    }
    lfpool_gate_unlock(&p->gate);
    return ok;
}

/* The housekeeper's look ends with a result for t (SERVING, or CANCELLED
 * meanwhile: then the object goes back); drops its hold. */
static void finish(struct lfpool *p, struct lfpool_ticket *t, int err, const lfpool_handle *h)
{
    bool give = false;
    lfpool_gate_lock(&p->gate);
    if (t->st == T_CANCELLED) {
        give = err == 0;
    } else {
        LFPOOL_ASSERT(t->st == T_SERVING);
        t->err = err;
        t->cached = false;
        if (err == 0)
            t->h = *h;
        complete_locked(p, t);
    }
    bool last = --t->refs == 0;
    lfpool_gate_unlock(&p->gate);
    if (give)
        give_back(p, h);
    if (last)
        free(t);
    pass_on(p); /* signals absorbed while t was scheduled may be the next waiter's */
}

/* Put t (SERVING, its creation refused: max_creating) back at the head
 * of the FIFO, where it was; false if it was cancelled meanwhile. */
static bool requeue_front(struct lfpool *p, struct lfpool_ticket *t)
{
    lfpool_gate_lock(&p->gate);
    bool ok = t->st == T_SERVING;
    if (ok) {
        lfpool_gate_park_locked(&p->gate, &t->node, true);
        t->st = T_QUEUED;
    }
    lfpool_gate_unlock(&p->gate);
    atomic_thread_fence(memory_order_seq_cst); /* parked, then the look */
    return ok;
}

/* Look for a scheduled ticket, as a granted sleeper looks (handout.c,
 * get_slow), and create for it when the pool may: `fun` and `validate`
 * run here, never on the loop's thread. */
static void serve_one(struct lfpool *p, struct lfpool_ticket *t)
{
    /* off the serve list: from here a grant schedules it again (header).
     * Only here: once requeued (below) it may be on the list again, and
     * `sched` then says so - clearing it would let a second grant put it
     * on the list twice (and cut the list at its first place). */
    lfpool_gate_lock(&p->gate);
    t->sched = false;
    lfpool_gate_unlock(&p->gate);
    for (;;) {
        lfpool_gate_lock(&p->gate);
        bool queued = t->st == T_QUEUED;
        lfpool_gate_unlock(&p->gate);
        if (!queued) { /* completed or cancelled since */
            release(p, t);
            pass_on(p);
            return;
        }
        lfpool_handle h;
        memset(&h, 0, sizeof h);
        if (atomic_load(&p->shutdown)) {
            if (take_back(p, t))
                finish(p, t, ESHUTDOWN, NULL);
            else
                release(p, t);
            return;
        }
        if (claim(p, true, &h, true) == CLAIM_OK) {
            if (take_back(p, t)) {
                finish(p, t, 0, &h);
            } else { /* handed a record meanwhile, or cancelled */
                give_back(p, &h);
                release(p, t);
            }
            return;
        }
        /* a creation backoff refuses at once, as it does a blocking get;
         * max_creating calls of `fun` running: it waits in the FIFO (the
         * end of one signals the gate, objects.c) */
        if (lfpool_unlikely(lfpool_ctl_flags(p)) && lfpool_ctl_hold(p)) {
            release(p, t); /* paused: no creation; the resume looks again */
            return;
        }
        size_t max = lfpool_max_size(p);
        size_t limit = max ? max : SIZE_MAX;
        int cr = lfpool_create_check(p);
        if (lfpool_unlikely(cr > 0)) {
            if (take_back(p, t))
                finish(p, t, cr, NULL);
            else
                release(p, t);
            return;
        }
        if (cr == 0 && lfpool_reserve(p, limit)) {
            if (!take_back(p, t)) {
                lfpool_unreserve(p);
                release(p, t);
                return;
            }
            /* out of the FIFO before `fun` runs, as a sleeper leaves it:
             * hand-overs go to the next waiter meanwhile */
            struct lfpool_rec *rec;
            void *obj;
            uint32_t word;
            int r = lfpool_create(p, &rec, &obj, &word, true);
            if (r == LFPOOL_CREATE_BUSY) { /* lost the creation slot: wait */
                if (requeue_front(p, t))
                    continue; /* parked again: look again */
                release(p, t); /* cancelled meanwhile */
                return;
            }
            if (r == 0) {
                h.obj = obj;
                h.priv_rec = rec;
                h.priv_pool = p->id;
                h.priv_word = word;
                if (lfpool_unlikely(lfpool_ctl_flags(p)) && lfpool_ctl_hold(p)) {
                    /* paused while `fun` ran: the object goes to the set
                     * (or is closed), the ticket back to the head; a
                     * resume after the requeue finds it there */
                    give_back(p, &h);
                    if (!requeue_front(p, t)) {
                        release(p, t);
                        return;
                    }
                    if (lfpool_ctl_flags(p) && lfpool_ctl_hold(p)) {
                        release(p, t);
                        return;
                    }
                    continue;
                }
            }
            finish(p, t, r, &h);
            return;
        }
        /* nothing: it stays in the FIFO; the next producer's grant
         * schedules it again, or a ret hands it a record */
        release(p, t);
        return;
    }
}

void lfpool_loop_serve(struct lfpool *p)
{
    lfpool_gate_lock(&p->gate);
    struct lfpool_ticket *t = p->async.serve_head;
    __atomic_store_n(&p->async.serve_head, NULL, __ATOMIC_RELAXED);
    p->async.serve_tail = NULL;
    lfpool_gate_unlock(&p->gate);
    while (t) {
        struct lfpool_ticket *next = t->snext; /* read before serve_one may free it */
        serve_one(p, t);
        t = next;
    }
}

/* ---- life: init, fork, the housekeeper on demand, the deferred free */

void lfpool_loop_init(struct lfpool *p)
{
    pthread_mutex_init(&p->async.lock, NULL);
    p->async.nloops = 0;
    p->async.free_pending = false;
    p->async.serve_head = p->async.serve_tail = NULL;
}

/* In a fork child: the parent's loops and tickets are not the child's
 * (the gate's FIFO was emptied); their memory is left alone. */
void lfpool_loop_fork_reset(struct lfpool *p)
{
    lfpool_loop_init(p);
}

bool lfpool_loop_free_ok(struct lfpool *p)
{
    pthread_mutex_lock(&p->async.lock);
    size_t n = p->async.nloops;
    if (n)
        p->async.free_pending = true;
    pthread_mutex_unlock(&p->async.lock);
    if (n)
        lfpool_log(p, LFPOOL_LOG_ERROR,
                   "lfpool_free with %zu event loops alive: pool shut down, its memory is "
                   "released by the last lfpool_loop_free", n);
    return n == 0;
}

/* Shutdown stops the housekeeper: a lfpool_loop_new that did not see the
 * shutdown flag has finished starting its housekeeper once this lock was
 * had (the flag is set before), and one that comes later sees it. */
bool lfpool_loop_hk_stop(struct lfpool *p, double wait)
{
    pthread_mutex_lock(&p->async.lock);
    pthread_mutex_unlock(&p->async.lock);
    return lfpool_hk_stop(p, wait);
}

/* ---- the API */

int lfpool_loop_new(lfpool *p, lfpool_loop **loop)
{
    if (!p || !loop) {
        if (p)
            lfpool_log(p, LFPOOL_LOG_ERROR, "loop_new: NULL loop");
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_loop_new: NULL pool");
        return EINVAL;
    }
    *loop = NULL;
    for (;;) { /* started (a lazy pool here), not by another thread still */
        int r = lfpool_life_make_ready(p);
        if (r)
            return r;
        if (atomic_load_explicit(&p->lp->life, memory_order_acquire) == LIFE_READY)
            break;
        sched_yield();
    }
    struct lfpool_loop *l = calloc(1, sizeof *l);
    if (!l)
        return ENOMEM;
    l->p = p;
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) {
        int e = errno;
        free(l);
        lfpool_log(p, LFPOOL_LOG_ERROR, "loop_new: eventfd: %s", strerror(e));
        return e;
    }
    int r = 0;
    pthread_mutex_lock(&p->async.lock);
    if (atomic_load(&p->shutdown))
        r = ESHUTDOWN;
    else if (p->hk.shared) /* tickets need a thread of the pool's own */
        r = ENOTSUP;
    else if (!p->hk.has_thread) /* tickets need a thread that may run `fun` */
        r = lfpool_hk_start(p);
    if (!r)
        p->async.nloops++;
    pthread_mutex_unlock(&p->async.lock);
    if (r) {
        close(l->efd);
        free(l);
        return r;
    }
    *loop = l;
    return 0;
}

int lfpool_loop_fd(const lfpool_loop *loop)
{
    return loop ? loop->efd : -1;
}

int lfpool_get_async(lfpool_loop *l, void *udata, lfpool_handle *h, lfpool_ticket **ticket)
{
    if (!l || !h || !ticket) {
        if (l)
            lfpool_log(l->p, LFPOOL_LOG_ERROR, "get_async: NULL handle or ticket");
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_get_async: NULL loop");
        return EINVAL;
    }
    struct lfpool *p = l->p;
    struct lfpool_gate *g = &p->gate;
    const void *caller = __builtin_return_address(0);
    *ticket = NULL;
    if (atomic_load_explicit(&p->lp->life, memory_order_acquire) != LIFE_READY) {
        int r = lfpool_life_make_ready(p);
        if (r)
            return r;
    }
    if (atomic_load(&p->shutdown))
        return ESHUTDOWN;
    /* available: no ticket - unless other gets wait (queued, or granted
     * and not yet running): what is available then is theirs, and this
     * get queues behind them (FIFO order, header) */
    int c = atomic_load_explicit(&g->waiters, memory_order_seq_cst) > 0 ? CLAIM_NONE
                                                                       : claim(p, false, h, false);
    if (c == CLAIM_OK)
        goto got;
    /* a ticket is a waiting get: max_waiters bounds them too */
    if (p->cfg.max_waiters) {
        if (!lfpool_gate_wait_begin_bounded(g, p->cfg.max_waiters))
            return EBUSY;
    } else {
        lfpool_gate_wait_begin(g);
    }
    struct lfpool_ticket *t = calloc(1, sizeof *t);
    if (!t) {
        atomic_fetch_sub_explicit(&g->waiters, 1, memory_order_seq_cst);
        return ENOMEM;
    }
    t->node.async = true;
    t->loop = l;
    t->udata = udata;
    t->caller = caller;
    t->since = lfpool_now_fresh(p);
    t->st = T_QUEUED;
    t->refs = 1;
    live_add(l, t);
    /* a waiter: counted (above), parked, then one more look (gate.c) */
    lfpool_gate_lock(g);
    lfpool_gate_park_locked(g, &t->node, false);
    lfpool_gate_unlock(g);
    atomic_thread_fence(memory_order_seq_cst); /* parked, then the look */
    int r = EINPROGRESS;
    bool declined = c == CLAIM_DECLINED;
    if (atomic_load(&p->shutdown)) {
        r = ESHUTDOWN;
    } else {
        c = claim(p, true, h, false);
        if (c == CLAIM_OK)
            r = 0;
        declined = declined || c == CLAIM_DECLINED;
    }
    if (r != EINPROGRESS) {
        /* leave the FIFO, unless a producer completed the ticket (or the
         * housekeeper took it) meanwhile: then it is the loop's event.
         * An object the look found while an earlier waiter that takes a
         * hand-over heads the FIFO is that waiter's: given back (the ret
         * path hands it to the head), the ticket stays queued. */
        lfpool_gate_lock(g);
        bool mine = t->st == T_QUEUED;
        bool last = false;
        if (mine && r == 0 && g->head != &t->node &&
            (g->head->wants_gift || g->head->may_gift)) {
            lfpool_gate_unlock(g);
            give_back(p, h);
            *ticket = t;
            return EINPROGRESS;
        }
        if (mine) {
            lfpool_gate_unlink(g, &t->node);
            t->st = T_CANCELLED;
            leave_waiters(p);
            last = --t->refs == 0;
            live_remove(l, t);
        }
        lfpool_gate_unlock(g);
        if (mine) {
            if (last)
                free(t);
            if (r == 0)
                goto got;
            return r;
        }
        if (r == 0)
            give_back(p, h);
    } else if (declined || may_create(p)) {
        /* room to create, or an object to validate: a grant to the head of
         * the FIFO, as a freed slot makes one - a ticket there gets a look
         * by the housekeeper, which validates or runs `fun` for it; so
         * creations follow the FIFO too */
        lfpool_gate_wake(g, false);
    }
    *ticket = t;
    return EINPROGRESS;
got:
    atomic_store_explicit(&((struct lfpool_rec *)h->priv_rec)->caller, caller, memory_order_relaxed);
    if (p->cfg.getter)
        lfpool_call_hook(p, p->cfg.getter, h->obj, "getter");
    return 0;
}

/* A handed-over record (CACHED) becomes the event's hand-out, as a
 * sleeper takes its gift (handout.c, get_from_gift); after shutdown it is
 * put back and the event says ESHUTDOWN. */
static void take_gift(struct lfpool *p, lfpool_loop_event *ev)
{
    struct lfpool_rec *rec = ev->h.priv_rec;
    memset(&ev->h, 0, sizeof ev->h);
    if (atomic_load(&p->shutdown)) {
        gift_back(p, rec);
        ev->err = ESHUTDOWN;
        return;
    }
    if (lfpool_unlikely(p->guard_get))
        rcu_read_lock();
    uint32_t w = lfpool_avail_claim_cached(rec, rec_load(rec), lfpool_now(p));
    rec_count_use(rec);
    ev->h.obj = rec->obj;
    ev->h.priv_rec = rec;
    ev->h.priv_pool = p->id;
    ev->h.priv_word = w;
    if (lfpool_unlikely(p->guard_get))
        rcu_read_unlock();
}

int lfpool_loop_ready(lfpool_loop *l, lfpool_loop_event *ev, size_t n, size_t *got)
{
    if (!l || !got || (!ev && n)) {
        if (l)
            lfpool_log(l->p, LFPOOL_LOG_ERROR, "loop_ready: NULL events or count");
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_loop_ready: NULL loop");
        return EINVAL;
    }
    struct lfpool *p = l->p;
    struct lfpool_ticket *dead = NULL, *t;
    size_t k = 0;
    *got = 0;
    lfpool_gate_lock(&p->gate);
    while (k < n && (t = l->done_head) != NULL) {
        l->done_head = t->dnext;
        if (!l->done_head)
            l->done_tail = NULL;
        if (t->st == T_DONE) {
            /* copied under the lock: once the loop's hold is dropped the
             * housekeeper may free t (it holds the other reference) */
            ev[k].ticket = t;
            ev[k].udata = t->udata;
            ev[k].err = t->err;
            ev[k].h = t->h; /* cached: h.obj NULL, h.priv_rec the record */
            k++;
            live_remove(l, t);
        } /* CANCELLED_DONE: out of the live list, its record given back */
        if (--t->refs == 0) {
            t->dnext = dead;
            dead = t;
        }
    }
    if (!l->done_head && l->signalled) {
        /* under the lock: a completion after it writes again */
        uint64_t v;
        ssize_t rd = read(l->efd, &v, sizeof v);
        (void)rd;
        l->signalled = false;
    }
    lfpool_gate_unlock(&p->gate);
    for (size_t i = 0; i < k; i++) {
        if (ev[i].err == 0 && ev[i].h.obj == NULL)
            take_gift(p, &ev[i]);
        if (ev[i].err == 0 && p->cfg.getter)
            lfpool_call_hook(p, p->cfg.getter, ev[i].h.obj, "getter");
    }
    while ((t = dead) != NULL) {
        dead = t->dnext;
        free(t);
    }
    *got = k;
    return 0;
}

int lfpool_ticket_cancel(lfpool_loop *l, lfpool_ticket *t)
{
    if (!l || !t || t->loop != l) {
        if (l)
            lfpool_log(l->p, LFPOOL_LOG_ERROR, "ticket_cancel: NULL ticket or another loop's");
        else
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_ticket_cancel: NULL loop");
        return EINVAL;
    }
    struct lfpool *p = l->p;
    bool last = false, give = false, cached = false;
    lfpool_handle h;
    lfpool_gate_lock(&p->gate);
    switch (t->st) {
    case T_QUEUED:
        lfpool_gate_unlink(&p->gate, &t->node);
        /* fall through */
    case T_SERVING: /* the housekeeper gives back what it made */
        t->st = T_CANCELLED;
        leave_waiters(p);
        last = --t->refs == 0;
        break;
    case T_DONE: /* handed a record or an error: it stays on the done list */
        t->st = T_CANCELLED_DONE;
        give = t->err == 0;
        cached = t->cached;
        h = t->h;
        break;
    default:
        lfpool_gate_unlock(&p->gate);
        lfpool_log(p, LFPOOL_LOG_ERROR, "ticket_cancel: ticket %p already cancelled", (void *)t);
        return EINVAL;
    }
    live_remove(l, t);
    lfpool_gate_unlock(&p->gate);
    if (give) { /* to the next waiter, never lost */
        if (cached)
            gift_back(p, h.priv_rec);
        else
            give_back(p, &h);
    }
    if (last)
        free(t);
    return 0;
}

void lfpool_loop_free(lfpool_loop *l)
{
    if (!l)
        return;
    struct lfpool *p = l->p;
    while (l->live)
        lfpool_ticket_cancel(l, l->live);
    /* only cancelled tickets are left on the done list, and no completer
     * can reach this loop any more: none of its tickets is in the FIFO or
     * SERVING uncancelled; the lock orders us after the last one */
    struct lfpool_ticket *dead = NULL, *t;
    lfpool_gate_lock(&p->gate);
    while ((t = l->done_head) != NULL) {
        l->done_head = t->dnext;
        if (--t->refs == 0) {
            t->dnext = dead;
            dead = t;
        }
    }
    l->done_tail = NULL;
    lfpool_gate_unlock(&p->gate);
    while ((t = dead) != NULL) {
        dead = t->dnext;
        free(t);
    }
    close(l->efd);
    free(l);
    pthread_mutex_lock(&p->async.lock);
    bool last = --p->async.nloops == 0 && p->async.free_pending;
    pthread_mutex_unlock(&p->async.lock);
    if (last)
        lfpool_free(p);
}
