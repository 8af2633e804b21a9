/* unit_loop.c - event loops (src/loop.c): tickets in the gate's FIFO,
 * completed through one eventfd per loop, objects created for them on the
 * housekeeper, cancel, shutdown, lfpool_free with a loop alive; and one
 * real epoll loop with 10,000 tickets on 4 objects while two blocking
 * threads get too.
 *
 * Waits are for readiness with a generous bound (a lost completion ends
 * there and fails the test); nothing is measured by time. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

LFPOOL_TEST_FIXTURE(loop, (C.getter = NULL, C.retter = NULL));

/* ---- helpers */

/* open descriptors of this process */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* the loop's descriptor is readable within `ms` */
static bool readable(lfpool_loop *l, int ms)
{
    struct pollfd pfd = {.fd = lfpool_loop_fd(l), .events = POLLIN};
    return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

/* Wait for and take exactly `want` events (5 s bound). */
static void take_events(lfpool_loop *l, lfpool_loop_event *ev, size_t want)
{
    size_t have = 0;
    while (have < want) {
        cr_assert(readable(l, 5000), "%zu of %zu events came", have, want);
        size_t got;
        cr_assert_eq(lfpool_loop_ready(l, ev + have, want - have, &got), 0);
        have += got;
    }
}

/* fun on the pool: records the thread it ran on */
static pthread_t loop_thread;
static _Atomic int loop_armed, fun_on_loop, fun_calls;
static void *thread_fun(void *ctx, uint64_t n)
{
    atomic_fetch_add(&fun_calls, 1);
    if (atomic_load(&loop_armed) && pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&fun_on_loop, 1);
    return tfun(ctx, n);
}

/* ---- basics */

Test(loop, available_object_is_taken_at_once)
{
    C.max_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    cr_assert_geq(lfpool_loop_fd(l), 0);
    lfpool_handle h;
    lfpool_ticket *t = (lfpool_ticket *)1;
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), 0);
    cr_assert_not_null(h.obj);
    cr_assert_null(t);
    cr_assert_not(readable(l, 0));
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    lfpool_loop_free(l);
}

Test(loop, bad_arguments)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    lfpool_handle h;
    lfpool_ticket *t;
    size_t got;
    cr_assert_eq(lfpool_loop_new(NULL, &l), EINVAL);
    cr_assert_eq(lfpool_loop_new(P, NULL), EINVAL);
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    cr_assert_eq(lfpool_get_async(NULL, NULL, &h, &t), EINVAL);
    cr_assert_eq(lfpool_get_async(l, NULL, NULL, &t), EINVAL);
    cr_assert_eq(lfpool_get_async(l, NULL, &h, NULL), EINVAL);
    cr_assert_eq(lfpool_loop_ready(NULL, NULL, 0, &got), EINVAL);
    cr_assert_eq(lfpool_loop_ready(l, NULL, 1, &got), EINVAL);
    cr_assert_eq(lfpool_loop_ready(l, NULL, 0, NULL), EINVAL);
    cr_assert_eq(lfpool_loop_ready(l, NULL, 0, &got), 0);
    cr_assert_eq(got, 0);
    cr_assert_eq(lfpool_ticket_cancel(l, NULL), EINVAL);
    cr_assert_eq(lfpool_ticket_cancel(NULL, NULL), EINVAL);
    cr_assert_eq(lfpool_loop_fd(NULL), -1);
    cr_assert_str_eq(lfpool_strerror(EINPROGRESS),
                     "no object available yet: the ticket completes through its loop");
    lfpool_loop_free(NULL);
    lfpool_loop_free(l);
}

Test(loop, a_return_completes_the_ticket_through_the_fd)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t;
    int tag;
    cr_assert_eq(lfpool_get_async(l, &tag, &h, &t), EINPROGRESS);
    cr_assert_not_null(t);
    cr_assert_not(readable(l, 0));
    lfpool_loop_event ev[4];
    size_t got = 9;
    cr_assert_eq(lfpool_loop_ready(l, ev, 4, &got), 0);
    cr_assert_eq(got, 0);
    cr_assert_eq(lfpool_ret(P, held), 0);
    cr_assert(readable(l, 5000));
    cr_assert_eq(lfpool_loop_ready(l, ev, 4, &got), 0);
    cr_assert_eq(got, 1);
    cr_assert_eq(ev[0].ticket, t);
    cr_assert_eq(ev[0].udata, &tag);
    cr_assert_eq(ev[0].err, 0);
    cr_assert_eq(ev[0].h.obj, held);
    cr_assert_not(readable(l, 0), "drained: the fd is not readable any more");
    cr_assert_eq(tstats(P).nusing, 1);
    cr_assert_eq(lfpool_ret_handle(P, &ev[0].h), 0);
    cr_assert_eq(lfpool_ret_handle(P, &ev[0].h), ENOENT, "one hand-out, one return");
    lfpool_loop_free(l);
}

/* The fd is written once per batch and stays readable while events wait
 * that a too small `n` left behind. */
Test(loop, the_fd_stays_readable_while_events_wait)
{
    enum { N = 5 };
    C.max_size = N;
    C.min_size = N;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(lfpool_get(P, &held[i], 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(lfpool_get_async(l, (void *)(intptr_t)i, &h, &t[i]), EINPROGRESS);
    for (int i = 0; i < N; i++)
        cr_assert_eq(lfpool_ret(P, held[i]), 0);
    lfpool_loop_event ev[N];
    size_t got, total = 0;
    for (int round = 0; round < N; round++) {
        cr_assert(readable(l, 5000), "round %d", round);
        cr_assert_eq(lfpool_loop_ready(l, ev, 1, &got), 0);
        cr_assert_eq(got, 1);
        cr_assert_eq(ev[0].udata, (void *)(intptr_t)round, "FIFO order");
        cr_assert_eq(ev[0].err, 0);
        cr_assert_eq(lfpool_ret_handle(P, &ev[0].h), 0);
        total += got;
    }
    cr_assert_eq(total, N);
    cr_assert_not(readable(l, 0));
    lfpool_loop_free(l);
}

/* ---- creation */

Test(loop, objects_for_tickets_are_created_on_the_housekeeper)
{
    enum { N = 4 };
    C.max_size = N;
    C.min_size = 0;
    C.fun = thread_fun;
    loop_thread = pthread_self();
    atomic_store(&loop_armed, 1);
    atomic_store(&fun_on_loop, 0);
    atomic_store(&fun_calls, 0);
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(lfpool_get_async(l, (void *)(intptr_t)i, &h, &t[i]), EINPROGRESS);
    lfpool_loop_event ev[N];
    take_events(l, ev, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ev[i].err, 0);
        cr_assert_eq(ev[i].udata, (void *)(intptr_t)i, "created in FIFO order");
        for (int j = 0; j < i; j++)
            cr_assert_neq(ev[i].h.obj, ev[j].h.obj);
    }
    cr_assert_eq(atomic_load(&fun_calls), N);
    cr_assert_eq(atomic_load(&fun_on_loop), 0, "fun ran on the loop's thread");
    for (int i = 0; i < N; i++)
        cr_assert_eq(lfpool_ret_handle(P, &ev[i].h), 0);
    lfpool_loop_free(l);
}

Test(loop, a_failed_creation_completes_the_ticket_with_its_errno)
{
    C.max_size = 2;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    T.fx.f.fun_errno = ECONNREFUSED;
    atomic_store(&T.fx.f.fail_next_fun, 1);
    lfpool_handle h;
    lfpool_ticket *t;
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    lfpool_loop_event ev;
    take_events(l, &ev, 1);
    cr_assert_eq(ev.ticket, t);
    cr_assert_eq(ev.err, ECONNREFUSED);
    cr_assert_eq(tstats(P).nobjs, 0, "the slot went back");
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    take_events(l, &ev, 1);
    cr_assert_eq(ev.err, 0);
    cr_assert_eq(lfpool_ret_handle(P, &ev.h), 0);
    lfpool_loop_free(l);
}

/* ---- cancel */

Test(loop, cancel_a_queued_ticket)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t1, *t2;
    cr_assert_eq(lfpool_get_async(l, (void *)1, &h, &t1), EINPROGRESS);
    cr_assert_eq(lfpool_get_async(l, (void *)2, &h, &t2), EINPROGRESS);
    cr_assert_eq(lfpool_ticket_cancel(l, t1), 0);
    cr_assert_eq(lfpool_ret(P, held), 0);
    lfpool_loop_event ev[2];
    take_events(l, ev, 1);
    cr_assert_eq(ev[0].ticket, t2);
    cr_assert_eq(ev[0].udata, (void *)2);
    size_t got;
    cr_assert_eq(lfpool_loop_ready(l, ev, 2, &got), 0);
    cr_assert_eq(got, 0, "the cancelled ticket gives no event");
    cr_assert_eq(lfpool_ret_handle(P, &ev[0].h), 0);
    lfpool_loop_free(l);
}

/* A ticket handed an object and cancelled before its event was taken: the
 * object goes to the next waiter (here the next ticket), never lost. */
Test(loop, cancel_after_the_hand_over_passes_the_object_on)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t1, *t2;
    cr_assert_eq(lfpool_get_async(l, (void *)1, &h, &t1), EINPROGRESS);
    cr_assert_eq(lfpool_get_async(l, (void *)2, &h, &t2), EINPROGRESS);
    cr_assert_eq(lfpool_ret(P, held), 0);
    cr_assert(readable(l, 5000)); /* t1 holds it now */
    cr_assert_eq(lfpool_ticket_cancel(l, t1), 0);
    cr_assert_eq(lfpool_ticket_cancel(l, t1), EINVAL, "already cancelled");
    lfpool_loop_event ev[2];
    take_events(l, ev, 1);
    cr_assert_eq(ev[0].ticket, t2, "the object went on to the next waiter");
    cr_assert_eq(ev[0].err, 0);
    cr_assert_eq(ev[0].h.obj, held);
    size_t got;
    cr_assert_eq(lfpool_loop_ready(l, ev + 1, 1, &got), 0);
    cr_assert_eq(got, 0);
    cr_assert_eq(lfpool_ret_handle(P, &ev[0].h), 0);
    lfpool_loop_free(l);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.nobjs, 1);
}

/* Freeing a loop with tickets completed but not drained gives their
 * objects back. */
Test(loop, loop_free_gives_handed_objects_back)
{
    C.max_size = 3;
    C.min_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_get(P, &held[i], 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_ret(P, held[i]), 0);
    cr_assert(readable(l, 5000));
    lfpool_loop_free(l);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_get(P, &held[i], 0), 0, "object %d lost", i);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(lfpool_ret(P, held[i]), 0);
}

/* ---- shutdown, free */

Test(loop, shutdown_completes_every_ticket)
{
    enum { N = 100 };
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t;
    for (int i = 0; i < N; i++)
        cr_assert_eq(lfpool_get_async(l, (void *)(intptr_t)i, &h, &t), EINPROGRESS);
    cr_assert_eq(lfpool_shutdown(P, 5.0), 0);
    lfpool_loop_event ev[N];
    take_events(l, ev, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ev[i].err, ESHUTDOWN);
        cr_assert_eq(ev[i].udata, (void *)(intptr_t)i);
    }
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), ESHUTDOWN);
    lfpool_loop *l2;
    cr_assert_eq(lfpool_loop_new(P, &l2), ESHUTDOWN);
    lfpool_loop_free(l);
    cr_assert_eq(lfpool_ret(P, held), 0);
}

/* lfpool_free with a loop alive: shut down at once (the ticket completes
 * with ESHUTDOWN), memory released by the last lfpool_loop_free (ASan
 * checks that it is, and that nothing is touched after). */
Test(loop, free_with_a_loop_alive_is_deferred)
{
    C.max_size = 1;
    C.log_level = LFPOOL_LOG_ERROR;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t;
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    lfx_log_clear(&T.log);
    lfpool_free(P);
    P = NULL;
    cr_assert_geq(lfx_log_total(&T.log), 1, "the misuse is logged");
    lfpool_loop_event ev;
    take_events(l, &ev, 1);
    cr_assert_eq(ev.err, ESHUTDOWN);
    lfpool_loop_free(l); /* frees the pool */
}

/* ---- FIFO across blocking gets and tickets */

struct blocker {
    lfpool *p;
    _Atomic pid_t tid;
    _Atomic int done;
    void *obj;
    int *order, *norder;
    pthread_mutex_t *mu;
};

static void *blocker_main(void *arg)
{
    struct blocker *b = arg;
    atomic_store(&b->tid, (pid_t)syscall(SYS_gettid));
    cr_assert_eq(lfpool_get(b->p, &b->obj, 10.0), 0);
    pthread_mutex_lock(b->mu);
    b->order[(*b->norder)++] = 100; /* the blocking get's turn */
    pthread_mutex_unlock(b->mu);
    cr_assert_eq(lfpool_ret(b->p, b->obj), 0);
    atomic_store(&b->done, 1);
    return NULL;
}

/* the thread is asleep in futex(2) (parked on the gate) */
static bool in_futex(pid_t tid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool r = fgets(buf, sizeof buf, f) && atoi(buf) == SYS_futex;
    fclose(f);
    return r;
}

Test(loop, fifo_across_blocking_gets_and_tickets)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    int order[3], norder = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct blocker b = {.p = P, .order = order, .norder = &norder, .mu = &mu};
    lfpool_handle h;
    lfpool_ticket *t1, *t2;
    /* queue: t1, the blocking get, t2 */
    cr_assert_eq(lfpool_get_async(l, (void *)1, &h, &t1), EINPROGRESS);
    pthread_t th;
    pthread_create(&th, NULL, blocker_main, &b);
    for (int i = 0; i < 5000 && !(atomic_load(&b.tid) && in_futex(atomic_load(&b.tid))); i++)
        usleep(1000);
    cr_assert(in_futex(atomic_load(&b.tid)), "the blocking get did not park");
    cr_assert_eq(lfpool_get_async(l, (void *)2, &h, &t2), EINPROGRESS);
    cr_assert_eq(lfpool_ret(P, held), 0);
    lfpool_loop_event ev;
    for (int k = 0; k < 2; k++) {
        take_events(l, &ev, 1);
        cr_assert_eq(ev.err, 0);
        pthread_mutex_lock(&mu);
        order[norder++] = (int)(intptr_t)ev.udata;
        pthread_mutex_unlock(&mu);
        cr_assert_eq(lfpool_ret_handle(P, &ev.h), 0);
    }
    pthread_join(th, NULL);
    cr_assert_eq(norder, 3);
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 100, "the blocking get queued between the tickets is served between them");
    cr_assert_eq(order[2], 2);
    lfpool_loop_free(l);
}

/* Waiting gets come first, whatever kind they are.  A sleeper parked for
 * the first time heads the FIFO (it did not ask for a hand-over), a ticket
 * waits behind it: a return grants the sleeper, and the object it returned
 * used to be free for anybody running until the sleeper ran - a get_async
 * took it at once, or the returning thread's next get took it back, both
 * ahead of the sleeper and the ticket.  Now, while tickets wait, every
 * return is handed to the head.  (Without caches - max_size 1 on two CPUs
 * - the object went to the shared stack; with them, to the CPU's cache;
 * the same either way.) */
static void wait_parked(struct blocker *b)
{
    for (int i = 0; i < 5000 && !(atomic_load(&b->tid) && in_futex(atomic_load(&b->tid))); i++)
        usleep(1000);
    cr_assert(in_futex(atomic_load(&b->tid)), "the blocking get did not park");
}

static void order_add(struct blocker *b, int who)
{
    pthread_mutex_lock(b->mu);
    b->order[(*b->norder)++] = who;
    pthread_mutex_unlock(b->mu);
}

/* The start of the two tests below: a sleeper (100) parks, then ticket 1
 * queues behind it. */
static int st_order[3], st_norder;
static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static void sleeper_then_ticket(lfpool_loop *l, struct blocker *s, pthread_t *th, lfpool_handle *h)
{
    st_norder = 0;
    *s = (struct blocker){.p = P, .order = st_order, .norder = &st_norder, .mu = &st_mu};
    pthread_create(th, NULL, blocker_main, s);
    wait_parked(s);
    lfpool_ticket *t1;
    cr_assert_eq(lfpool_get_async(l, (void *)1, h, &t1), EINPROGRESS);
}

/* The end of the two tests below: the two tickets (udata 1, then 2)
 * complete, each returned at once, after the sleeper (100), which is
 * served first. */
static void tickets_after_sleeper(lfpool_loop *l, struct blocker *s, pthread_t th)
{
    lfpool_loop_event ev;
    for (int k = 0; k < 2; k++) {
        take_events(l, &ev, 1);
        cr_assert_eq(ev.err, 0);
        order_add(s, (int)(intptr_t)ev.udata);
        cr_assert_eq(lfpool_ret_handle(P, &ev.h), 0);
    }
    pthread_join(th, NULL);
    cr_assert_eq(*s->norder, 3);
    cr_assert_eq(s->order[0], 100, "the sleeper queued first is served first");
    cr_assert_eq(s->order[1], 1);
    cr_assert_eq(s->order[2], 2);
}

Test(loop, a_ticket_is_not_served_before_a_waiting_sleeper)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    struct blocker s;
    pthread_t th;
    lfpool_handle h;
    lfpool_ticket *t2;
    sleeper_then_ticket(l, &s, &th, &h);
    cr_assert_eq(lfpool_ret(P, held), 0); /* to the sleeper, the head */
    int r = lfpool_get_async(l, (void *)2, &h, &t2);
    cr_assert_eq(r, EINPROGRESS, "a new get_async took the object the waiting sleeper was granted");
    tickets_after_sleeper(l, &s, th);
    lfpool_loop_free(l);
}

/* The same with per-CPU caches and biased returns on (max_size two per
 * CPU: a slot per cache), where the returning thread's ret is the inline
 * path, whose push does not read the gate's gift flag: while the head
 * wants a hand-over the admission word sends rets elsewhere, so the
 * return still goes to the sleeper and the new get_async waits.  (In the
 * _norseq run there are no caches: the stack path, as above.) */
Test(loop, a_ticket_is_not_served_before_a_waiting_sleeper_with_caches)
{
    size_t n = 2 * (size_t)sysconf(_SC_NPROCESSORS_CONF);
    if (n > 64)
        n = 64;
    C.max_size = n;
    C.min_size = n;
    C.clock = NULL; /* an injected clock would make every ret careful */
    C.clock_ctx = NULL;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held[64];
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(lfpool_get(P, &held[i], 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    struct blocker s;
    pthread_t th;
    lfpool_handle h;
    lfpool_ticket *t2;
    sleeper_then_ticket(l, &s, &th, &h);
    /* the last object got: its return hint is this thread's for sure */
    cr_assert_eq(lfpool_ret(P, held[n - 1]), 0); /* to the sleeper, the head */
    /* pushed into this CPU's cache instead, the object would be this
     * thread's next get's at once, ahead of the sleeper and the ticket */
    void *again;
    cr_assert_eq(lfpool_get(P, &again, 0), EAGAIN,
                 "the returning thread took back the object the waiting sleeper was handed");
    int r = lfpool_get_async(l, (void *)2, &h, &t2);
    cr_assert_eq(r, EINPROGRESS, "a new get_async took the object the waiting sleeper was granted");
    tickets_after_sleeper(l, &s, th);
    for (size_t i = 0; i + 1 < n; i++)
        cr_assert_eq(lfpool_ret(P, held[i]), 0);
    lfpool_loop_free(l);
}

/* A thread that returns its object and gets again queues behind the
 * waiters: the sleeper at the head, then the ticket. */
struct regetter {
    struct blocker b;
    _Atomic int got, go;
};

static void *regetter_main(void *arg)
{
    struct regetter *g = arg;
    void *o;
    cr_assert_eq(lfpool_get(g->b.p, &o, 0), 0);
    atomic_store(&g->got, 1);
    while (!atomic_load(&g->go))
        usleep(100);
    cr_assert_eq(lfpool_ret(g->b.p, o), 0); /* to the sleeper, the head */
    atomic_store(&g->b.tid, (pid_t)syscall(SYS_gettid));
    cr_assert_eq(lfpool_get(g->b.p, &o, 10.0), 0);
    order_add(&g->b, 200);
    cr_assert_eq(lfpool_ret(g->b.p, o), 0);
    return NULL;
}

Test(loop, a_return_then_get_queues_behind_the_waiters)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    int order[3], norder = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct regetter g = {.b = {.p = P, .order = order, .norder = &norder, .mu = &mu}};
    struct blocker s = {.p = P, .order = order, .norder = &norder, .mu = &mu};
    pthread_t tg, ts;
    pthread_create(&tg, NULL, regetter_main, &g);
    while (!atomic_load(&g.got))
        usleep(100);
    pthread_create(&ts, NULL, blocker_main, &s); /* the sleeper: 100 */
    wait_parked(&s);
    lfpool_handle h;
    lfpool_ticket *t1;
    cr_assert_eq(lfpool_get_async(l, (void *)1, &h, &t1), EINPROGRESS);
    atomic_store(&g.go, 1);
    lfpool_loop_event ev;
    take_events(l, &ev, 1); /* after the sleeper's return */
    cr_assert_eq(ev.err, 0);
    order_add(&s, 1);
    cr_assert_eq(lfpool_ret_handle(P, &ev.h), 0);
    pthread_join(ts, NULL);
    pthread_join(tg, NULL);
    cr_assert_eq(norder, 3);
    cr_assert_eq(order[0], 100, "the thread that returned got its object back before the waiters");
    cr_assert_eq(order[1], 1, "the ticket is served before the get that came after it");
    cr_assert_eq(order[2], 200);
    lfpool_loop_free(l);
}

/* ---- one epoll loop, 10,000 tickets, 4 objects, two blocking threads */

enum { BIG = 10000, NOBJ = 4 };
enum { T_NONE, T_PENDING, T_DONE, T_CANCELLED };

struct big {
    lfpool *p;
    _Atomic int stop;
    _Atomic int doubles, errors;
    _Atomic uint64_t blocking_gets;
};

/* An object handed out for the first time since the run started was just
 * created (its tobj says whether a test saw it handed out before; the
 * objects of the min_size fill are marked before the run). */
static bool first_hand_out(void *o)
{
    return atomic_exchange(&((struct tobj *)o)->handed, 1) == 0;
}

static void *big_blocker(void *arg)
{
    struct big *b = arg;
    while (!atomic_load(&b->stop)) {
        void *o;
        int r = lfpool_get(b->p, &o, 0.2);
        if (r == ETIMEDOUT)
            continue;
        if (r) {
            atomic_fetch_add(&b->errors, 1);
            break;
        }
        struct tobj *to = o;
        if (atomic_exchange(&to->held, 1))
            atomic_fetch_add(&b->doubles, 1);
        first_hand_out(o);
        sched_yield();
        atomic_store(&to->held, 0);
        if (lfpool_ret(b->p, o))
            atomic_fetch_add(&b->errors, 1);
        atomic_fetch_add(&b->blocking_gets, 1);
    }
    return NULL;
}

/* The loop's side of the run: every ticket's state, the order check, the
 * objects held until the next turn. */
struct big_loop {
    lfpool_loop *l;
    struct big *b;
    uint8_t state[BIG];
    lfpool_ticket *tk[BIG];
    int issued, immediate, completed, cancelled;
    int pending;   /* tickets in T_PENDING */
    int last_done; /* the last ticket served from the FIFO, in order */
    lfpool_handle held[512];
    int nheld;
    lfpool_loop_event ev[256];
};

static void big_hold(struct big_loop *bl, const lfpool_handle *h)
{
    struct tobj *to = h->obj;
    if (atomic_exchange(&to->held, 1))
        atomic_fetch_add(&bl->b->doubles, 1);
    cr_assert_lt(bl->nheld, 512);
    bl->held[bl->nheld++] = *h;
}

/* Take the completions the loop has.  FIFO: tickets are served in the
 * order they were queued, but for those the housekeeper created an object
 * for (they left the FIFO while `fun` ran: tickets behind may have been
 * handed returned objects meanwhile). */
static void big_drain(struct big_loop *bl)
{
    size_t got;
    cr_assert_eq(lfpool_loop_ready(bl->l, bl->ev, 256, &got), 0);
    for (size_t k = 0; k < got; k++) {
        lfpool_loop_event *e = &bl->ev[k];
        int i = (int)(intptr_t)e->udata;
        cr_assert_eq(e->ticket, bl->tk[i]);
        cr_assert_eq(bl->state[i], T_PENDING, "ticket %d: an event after %d", i, bl->state[i]);
        cr_assert_eq(e->err, 0, "ticket %d: %d", i, e->err);
        if (!first_hand_out(e->h.obj)) {
            cr_assert_gt(i, bl->last_done, "ticket %d completed after ticket %d", i, bl->last_done);
            bl->last_done = i;
        }
        bl->state[i] = T_DONE;
        bl->pending--;
        bl->completed++;
        big_hold(bl, &e->h);
    }
}

static void big_run(void)
{
    static struct big_loop bl;
    static int bag[BIG];
    memset(&bl, 0, sizeof bl);
    bl.last_done = -1;
    C.max_size = NOBJ;
    C.min_size = NOBJ;
    C.max_use = 64; /* objects wear out: some are created for tickets */
    C.clock = NULL; /* the real fast paths */
    C.fun = thread_fun;
    atomic_store(&loop_armed, 0); /* the min_size fill runs here */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(atomic_load(&T.nobjs), NOBJ);
    for (int k = 0; k < NOBJ; k++) /* not made for a ticket */
        atomic_store(&T.objs[k]->handed, 1);
    loop_thread = pthread_self(); /* from now on, this is the loop's thread */
    atomic_store(&loop_armed, 1);
    atomic_store(&fun_on_loop, 0);
    atomic_store(&fun_calls, 0);
    int fd0 = count_fds();

    cr_assert_eq(lfpool_loop_new(P, &bl.l), 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    cr_assert_geq(ep, 0);
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = bl.l};
    cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, lfpool_loop_fd(bl.l), &ee), 0);

    struct big b = {.p = P};
    bl.b = &b;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, big_blocker, &b);

    /* half of the tickets (chosen at random) are cancelled, in a random
     * order: a bag of the chosen ones, drawn from at random */
    uint64_t rs = 0x9e3779b97f4a7c15ULL;
    int nbag = 0, max_fds = 0;

    while (bl.completed + bl.cancelled + bl.immediate < BIG) {
        /* issue a few, keeping up to 100 tickets pending (a get served at
         * once is not pending: it must not hold the next ones back) */
        for (int k = 0; k < 64 && bl.issued < BIG && bl.pending < 100; k++) {
            int i = bl.issued++;
            lfpool_handle h;
            int r = lfpool_get_async(bl.l, (void *)(intptr_t)i, &h, &bl.tk[i]);
            if (r == 0) {
                /* taken at once: nobody waits (the library looks at its
                 * waiters), so every earlier ticket has completed - its
                 * event is there to take now */
                big_drain(&bl);
                cr_assert_eq(bl.pending, 0, "ticket %d served at once while %d earlier wait", i,
                             bl.pending);
                first_hand_out(h.obj);
                bl.last_done = i; /* served after every earlier one */
                big_hold(&bl, &h);
                bl.state[i] = T_DONE;
                bl.immediate++;
            } else {
                cr_assert_eq(r, EINPROGRESS);
                bl.state[i] = T_PENDING;
                bl.pending++;
                if (lfx_rand_r(&rs) & 1)
                    bag[nbag++] = i;
            }
            if (bl.nheld >= 256)
                break;
        }
        /* cancel some of the chosen ones, drawn at random */
        for (int k = 0; k < 64 && nbag > 0; k++) {
            int j = (int)(lfx_rand_r(&rs) % (uint64_t)nbag);
            int i = bag[j];
            bag[j] = bag[--nbag];
            if (bl.state[i] == T_PENDING) { /* not completed meanwhile */
                cr_assert_eq(lfpool_ticket_cancel(bl.l, bl.tk[i]), 0);
                bl.state[i] = T_CANCELLED;
                bl.pending--;
                bl.cancelled++;
            }
        }
        /* the objects held since the last turn go back */
        for (int k = 0; k < bl.nheld; k++) {
            struct tobj *to = bl.held[k].obj;
            atomic_store(&to->held, 0);
            cr_assert_eq(lfpool_ret_handle(P, &bl.held[k]), 0);
        }
        bl.nheld = 0;
        struct epoll_event out;
        int w = epoll_wait(ep, &out, 1, bl.issued < BIG ? 0 : 5000);
        cr_assert_geq(w, 0);
        if (w == 0 && bl.issued >= BIG)
            cr_assert_fail("no completion for 5 s: %d completed, %d cancelled, %d immediate of %d",
                           bl.completed, bl.cancelled, bl.immediate, BIG);
        int nfd = count_fds();
        if (nfd > max_fds)
            max_fds = nfd;
        big_drain(&bl);
    }
    for (int k = 0; k < bl.nheld; k++) {
        struct tobj *to = bl.held[k].obj;
        atomic_store(&to->held, 0);
        cr_assert_eq(lfpool_ret_handle(P, &bl.held[k]), 0);
    }
    atomic_store(&b.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);

    for (int i = 0; i < BIG; i++)
        cr_assert(bl.state[i] == T_DONE || bl.state[i] == T_CANCELLED, "ticket %d: state %d", i,
                  bl.state[i]);
    cr_assert_eq(bl.completed + bl.cancelled + bl.immediate, BIG);
    cr_assert_gt(bl.cancelled, BIG / 4, "about half cancelled (%d)", bl.cancelled);
    cr_assert_gt(bl.completed, BIG / 10, "tickets completed through the loop (%d)", bl.completed);
    cr_assert_eq(atomic_load(&b.doubles), 0, "an object was handed out twice");
    cr_assert_eq(atomic_load(&b.errors), 0);
    cr_assert_eq(atomic_load(&fun_on_loop), 0, "fun ran on the loop's thread");
    cr_assert_leq(max_fds, fd0 + 2, "descriptors grew: %d, %d before", max_fds, fd0);

    lfpool_loop_free(bl.l);
    close(ep);
    cr_assert_eq(count_fds(), fd0);
    /* nothing lost: all NOBJ objects can be had again */
    void *o[NOBJ];
    for (int i = 0; i < NOBJ; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 5.0), 0, "object %d lost", i);
    for (int i = 0; i < NOBJ; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
    cr_assert_gt(atomic_load(&fun_calls), 0, "worn-out objects were created again");
    cr_log_info("10000 tickets: %d through the loop, %d immediate, %d cancelled; %llu blocking gets; "
                "%d creations",
                bl.completed, bl.immediate, bl.cancelled,
                (unsigned long long)atomic_load(&b.blocking_gets), atomic_load(&fun_calls));
}

Test(loop, epoll_10000_tickets_4_objects_two_blocking_threads, .timeout = 120)
{
    big_run();
}

/* ---- connection-pool settings (validate on borrow, creation backoff,
 * max_waiters) apply to tickets too */

static _Atomic int validate_calls, validate_on_loop, validate_answer = 1;
static int thread_validate(void *ctx, void *o)
{
    (void)ctx;
    (void)o;
    atomic_fetch_add(&validate_calls, 1);
    if (atomic_load(&loop_armed) && pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&validate_on_loop, 1);
    return atomic_load(&validate_answer);
}

/* An available object whose validation is due is not handed out on the
 * loop's thread: the housekeeper validates it; one that fails is
 * destroyed and the ticket gets a new object, created there. */
Test(loop, validation_runs_on_the_housekeeper)
{
    C.max_size = 1;
    C.min_size = 1;
    C.validate = thread_validate;
    C.validate_idle = 0; /* every get validates */
    loop_thread = pthread_self();
    atomic_store(&loop_armed, 1);
    atomic_store(&validate_calls, 0);
    atomic_store(&validate_on_loop, 0);
    atomic_store(&validate_answer, 1);
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t;
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS, "validation due: a ticket");
    lfpool_loop_event ev;
    take_events(l, &ev, 1);
    cr_assert_eq(ev.err, 0);
    cr_assert_geq(atomic_load(&validate_calls), 1);
    void *first = ev.h.obj;
    cr_assert_eq(lfpool_ret_handle(P, &ev.h), 0);
    /* now it fails validation: destroyed, a new one is made for the ticket */
    atomic_store(&validate_answer, 0);
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    take_events(l, &ev, 1);
    cr_assert_eq(ev.err, 0);
    cr_assert_neq(ev.h.obj, first, "the object that failed was handed out");
    cr_assert_eq(atomic_load(&validate_on_loop), 0, "validate ran on the loop's thread");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nvalidate_failed, 1);
    cr_assert_eq(lfpool_ret_handle(P, &ev.h), 0);
    lfpool_loop_free(l);
    atomic_store(&loop_armed, 0);
}

/* During a creation backoff a ticket is refused at once with the errno of
 * the failure, as a blocking get is. */
Test(loop, a_creation_backoff_refuses_tickets)
{
    C.max_size = 2;
    C.min_size = 0;
    C.create_backoff = 10.0; /* on the fake clock: it does not move here */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    T.fx.f.fun_errno = ECONNREFUSED;
    atomic_store(&T.fx.f.fail_next_fun, 1);
    lfpool_handle h;
    lfpool_ticket *t;
    lfpool_loop_event ev;
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    take_events(l, &ev, 1);
    cr_assert_eq(ev.err, ECONNREFUSED);
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t), EINPROGRESS);
    take_events(l, &ev, 1);
    cr_assert_eq(ev.err, ECONNREFUSED, "refused by the backoff");
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(atomic_load(&T.fx.n.fun), 1, "fun is not called during the backoff");
    cr_assert_geq(s.ncreate_skipped, 1);
    lfpool_loop_free(l);
}

Test(loop, max_waiters_bounds_tickets)
{
    C.max_size = 1;
    C.max_waiters = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t1, *t2, *t3;
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t1), EINPROGRESS);
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t2), EINPROGRESS);
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t3), EBUSY);
    cr_assert_null(t3);
    cr_assert_eq(lfpool_get(P, &h.obj, 1.0), EBUSY, "blocking gets count the tickets");
    cr_assert_eq(lfpool_ticket_cancel(l, t2), 0);
    cr_assert_eq(lfpool_get_async(l, NULL, &h, &t3), EINPROGRESS, "a cancel makes room");
    lfpool_loop_free(l);
    cr_assert_eq(lfpool_ret(P, held), 0);
}

/* ---- runtime control: a paused pool hands nothing to tickets; the
 * resume serves them in order.  A pool on the shared housekeeper takes no
 * loop (ENOTSUP). */

Test(loop, pause_holds_tickets_and_resume_serves_them)
{
    C.max_size = 2;
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(lfpool_get(P, &held[i], 0), 0);
    lfpool_loop *l;
    cr_assert_eq(lfpool_loop_new(P, &l), 0);
    lfpool_handle h;
    lfpool_ticket *t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(lfpool_get_async(l, (void *)(intptr_t)i, &h, &t[i]), EINPROGRESS);
    cr_assert_eq(lfpool_pause(P), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(lfpool_ret(P, held[i]), 0);
    cr_assert_not(readable(l, 200), "a paused pool handed an object to a ticket");
    cr_assert_eq(lfpool_resume(P), 0);
    lfpool_loop_event ev[2];
    take_events(l, ev, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ev[i].err, 0);
        cr_assert_eq(ev[i].udata, (void *)(intptr_t)i, "served in order");
    }
    for (int i = 0; i < 2; i++)
        cr_assert_eq(lfpool_ret_handle(P, &ev[i].h), 0);
    lfpool_loop_free(l);
}

Test(loop, a_shared_housekeeper_pool_takes_no_loop)
{
    C.housekeeper = LFPOOL_HK_SHARED;
    C.delay = 10;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_loop *l = (lfpool_loop *)1;
    cr_assert_eq(lfpool_loop_new(P, &l), ENOTSUP);
    cr_assert_null(l);
}
