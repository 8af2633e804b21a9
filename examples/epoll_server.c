/*
 * epoll_server.c - a small TCP server on one epoll loop whose requests each
 * need a pooled object, and a driver that measures it.
 *
 * Owns: the example of lfpool's event-loop API (docs/API.md, "Event
 * loops").  Invariant: traffic stays on 127.0.0.1 (an ephemeral port),
 * every run is bounded by a request count, and the loop never sleeps
 * anywhere but in epoll_wait.
 *
 * The pool holds K simulated backend connections.  A request (one byte
 * from a client) needs one for a 1 ms "query": the loop starts the
 * connection's timerfd and answers (one byte) when it fires, then returns
 * the connection.  Two ways to get the connection without blocking the
 * loop:
 *   async  lfpool_get_async: a ticket waits in the pool's FIFO; the loop's
 *          eventfd says when the connection was handed over;
 *   poll   lfpool_get_handle(..., 0): on EAGAIN the request waits in the
 *          loop's own queue and the loop retries on every turn (epoll_wait
 *          with a 0 timeout while anything waits: it never sleeps then).
 * Client threads (one connection each, one request at a time) measure
 * requests per second and the p50/p99 latency of each mode.  --blockers N
 * adds N threads that take connections with a blocking lfpool_get (and
 * hold them for the query time), to show who is served.
 *
 * --mode tickets measures the loop's side of the API alone: the loop keeps
 * --outstanding tickets queued on K objects; a returner thread returns
 * every object the loop receives at once, stamping the time of the
 * hand-over; the loop records hand-over -> handle taken.  Prints tickets
 * per second, p50/p99 of that latency and the process's descriptors.
 *
 *   epoll_server [--mode async|poll|both|tickets|all] [--requests N]
 *                [--clients C] [--objects K] [--query-us U] [--blockers B]
 *                [--outstanding M]
 */
#include <lfpool.h>

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int nrequests = 4000, nclients = 16, nobjects = 4, query_us = 1000, nblockers = 0;
static int outstanding = 1000;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "epoll_server: %s: %s\n", what, strerror(err));
    exit(1);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = -1; /* the directory's own */
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* ------------------------------------------------------------ the backend */

enum kind { K_LISTEN, K_LOOP, K_CONN, K_BACKEND };

struct conn;
struct backend {          /* the pooled object */
    enum kind kind;       /* K_BACKEND: its timerfd is in the loop's epoll set */
    int tfd;
    struct conn *c;       /* the request it serves */
    lfpool_handle h;
    _Atomic double t_ret; /* --mode tickets: when it was handed back */
};

static void *backend_open(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    struct backend *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->kind = K_BACKEND;
    b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (b->tfd < 0) {
        int e = errno;
        free(b);
        errno = e;
        return NULL;
    }
    return b;
}

static int backend_close(void *ctx, void *obj)
{
    (void)ctx;
    struct backend *b = obj;
    close(b->tfd);
    free(b);
    return 0;
}

static lfpool *make_pool(void)
{
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    cfg.fun = backend_open;
    cfg.closer = backend_close;
    cfg.max_size = (size_t)nobjects;
    cfg.min_size = (size_t)nobjects;
    lfpool *p;
    int r = lfpool_new(&p, &cfg);
    if (r)
        die("lfpool_new", r);
    return p;
}

/* ------------------------------------------------------------- the server */

struct conn {
    enum kind kind; /* K_CONN */
    int fd;
    bool waiting;            /* a request waits for a backend */
    lfpool_ticket *ticket;   /* async: its ticket */
    struct backend *b;       /* the backend serving it */
    struct conn *next;       /* poll: the loop's queue of waiting requests */
};

struct server {
    bool async;
    lfpool *pool;
    lfpool_loop *loop;
    int ep, lfd;
    enum kind listen_kind, loop_kind;
    struct conn *qhead, *qtail; /* poll mode */
    _Atomic int stop;
    unsigned long served, retries;
};

static void ep_add(struct server *s, int fd, void *ptr)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev))
        die("epoll_ctl", errno);
}

/* The backend is ours: run the 1 ms query on its timer. */
static void start_query(struct server *s, struct conn *c, lfpool_handle h)
{
    struct backend *b = h.obj;
    b->c = c;
    b->h = h;
    c->b = b;
    c->waiting = false;
    struct itimerspec its = {.it_value = {query_us / 1000000, (query_us % 1000000) * 1000L}};
    if (timerfd_settime(b->tfd, 0, &its, NULL))
        die("timerfd_settime", errno);
    (void)s;
}

static void query_done(struct server *s, struct backend *b)
{
    uint64_t x;
    if (read(b->tfd, &x, sizeof x) != sizeof x)
        return;
    struct conn *c = b->c;
    b->c = NULL;
    lfpool_handle h = b->h;
    if (c) {
        c->b = NULL;
        if (write(c->fd, "r", 1) == 1)
            s->served++;
    }
    lfpool_ret_handle(s->pool, &h); /* async: may complete the next ticket */
}

static void request(struct server *s, struct conn *c)
{
    lfpool_handle h;
    if (s->async) {
        int r = lfpool_get_async(s->loop, c, &h, &c->ticket);
        if (r == 0)
            start_query(s, c, h);
        else if (r == EINPROGRESS)
            c->waiting = true;
        else
            die("lfpool_get_async", r);
        return;
    }
    if (lfpool_get_handle(s->pool, &h, 0) == 0) {
        start_query(s, c, h);
        return;
    }
    c->waiting = true; /* EAGAIN: queue it, retry on every turn */
    c->next = NULL;
    if (s->qtail)
        s->qtail->next = c;
    else
        s->qhead = c;
    s->qtail = c;
}

static void retry_queue(struct server *s)
{
    lfpool_handle h;
    while (s->qhead) {
        s->retries++;
        if (lfpool_get_handle(s->pool, &h, 0) != 0)
            return;
        struct conn *c = s->qhead;
        s->qhead = c->next;
        if (!s->qhead)
            s->qtail = NULL;
        start_query(s, c, h);
    }
}

static void conn_event(struct server *s, struct conn *c)
{
    char buf[64];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++)
            request(s, c); /* clients send one at a time */
        return;
    }
    if (n < 0 && errno == EAGAIN)
        return;
    /* gone: give up its ticket, its queued request, its backend's answer */
    if (c->waiting && s->async)
        lfpool_ticket_cancel(s->loop, c->ticket);
    if (c->waiting && !s->async) {
        struct conn **pp = &s->qhead, *prev = NULL;
        while (*pp && *pp != c) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = c->next;
            if (s->qtail == c)
                s->qtail = prev;
        }
    }
    if (c->b)
        c->b->c = NULL;
    close(c->fd);
    free(c);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    struct epoll_event evs[64];
    lfpool_loop_event done[64];
    while (!atomic_load(&s->stop)) {
        int n = epoll_wait(s->ep, evs, 64, s->qhead ? 0 : 50);
        if (n < 0 && errno != EINTR)
            die("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            enum kind *k = evs[i].data.ptr;
            if (*k == K_LISTEN) {
                int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    continue;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct conn *c = calloc(1, sizeof *c);
                c->kind = K_CONN;
                c->fd = fd;
                ep_add(s, fd, c);
            } else if (*k == K_LOOP) {
                size_t got;
                do {
                    lfpool_loop_ready(s->loop, done, 64, &got);
                    for (size_t j = 0; j < got; j++) {
                        struct conn *c = done[j].udata;
                        if (done[j].err)
                            die("ticket", done[j].err);
                        start_query(s, c, done[j].h);
                    }
                } while (got == 64);
            } else if (*k == K_CONN) {
                conn_event(s, (struct conn *)k);
            } else {
                query_done(s, (struct backend *)k);
            }
        }
        if (!s->async)
            retry_queue(s);
    }
    return NULL;
}

/* ------------------------------------------------------------- the driver */

struct client {
    int port, quota;
    double *lat;
    int n;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a))
        die("connect", errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < c->quota; i++) {
        char x;
        double t0 = now();
        if (write(fd, "q", 1) != 1 || read(fd, &x, 1) != 1)
            die("request", errno ? errno : EPIPE);
        c->lat[c->n++] = now() - t0;
    }
    close(fd);
    return NULL;
}

struct blocker {
    lfpool *pool;
    _Atomic int *stop;
    unsigned long gets;
};

static void *blocker_main(void *arg)
{
    struct blocker *b = arg;
    struct timespec q = {query_us / 1000000, (query_us % 1000000) * 1000L};
    while (!atomic_load(b->stop)) {
        void *o;
        if (lfpool_get(b->pool, &o, 0.1))
            continue;
        nanosleep(&q, NULL); /* a thread may sleep: it is not the loop */
        lfpool_ret(b->pool, o);
        b->gets++;
    }
    return NULL;
}

static void run_server(bool async)
{
    struct server s = {.async = async, .listen_kind = K_LISTEN, .loop_kind = K_LOOP};
    s.pool = make_pool();
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s.ep < 0 || s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&a, sizeof a) ||
        listen(s.lfd, 128) || getsockname(s.lfd, (struct sockaddr *)&a, &al))
        die("listen", errno);
    ep_add(&s, s.lfd, &s.listen_kind);
    if (async) {
        int r = lfpool_loop_new(s.pool, &s.loop);
        if (r)
            die("lfpool_loop_new", r);
        ep_add(&s, lfpool_loop_fd(s.loop), &s.loop_kind);
    }
    /* every backend's timer in the epoll set once: get them all, then return them */
    lfpool_handle hs[256];
    for (int i = 0; i < nobjects && i < 256; i++) {
        if (lfpool_get_handle(s.pool, &hs[i], 0))
            die("get", EIO);
        ep_add(&s, ((struct backend *)hs[i].obj)->tfd, hs[i].obj);
    }
    for (int i = 0; i < nobjects && i < 256; i++)
        lfpool_ret_handle(s.pool, &hs[i]);

    pthread_t st, ct[nclients], bt[nblockers > 0 ? nblockers : 1];
    struct client cl[nclients];
    struct blocker bl[nblockers > 0 ? nblockers : 1];
    pthread_create(&st, NULL, server_main, &s);
    int per = nrequests / nclients;
    double t0 = now();
    for (int i = 0; i < nblockers; i++) {
        bl[i] = (struct blocker){.pool = s.pool, .stop = &s.stop};
        pthread_create(&bt[i], NULL, blocker_main, &bl[i]);
    }
    for (int i = 0; i < nclients; i++) {
        cl[i] = (struct client){.port = ntohs(a.sin_port), .quota = per,
                                .lat = malloc(sizeof(double) * (size_t)per)};
        pthread_create(&ct[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < nclients; i++)
        pthread_join(ct[i], NULL);
    double took = now() - t0;
    atomic_store(&s.stop, 1);
    unsigned long bgets = 0;
    for (int i = 0; i < nblockers; i++) {
        pthread_join(bt[i], NULL);
        bgets += bl[i].gets;
    }
    pthread_join(st, NULL);

    size_t total = (size_t)per * (size_t)nclients, k = 0;
    double *all = malloc(sizeof(double) * total);
    for (int i = 0; i < nclients; i++) {
        memcpy(all + k, cl[i].lat, sizeof(double) * (size_t)cl[i].n);
        k += (size_t)cl[i].n;
        free(cl[i].lat);
    }
    qsort(all, k, sizeof *all, cmp_double);
    printf("%-6s %6zu requests %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  (%d clients, %d objects, "
           "query %d us; blocking threads' gets meanwhile: %lu; loop get retries: %lu)\n",
           async ? "async" : "poll", k, (double)k / took, pct(all, k, 0.5) * 1e3,
           pct(all, k, 0.99) * 1e3, nclients, nobjects, query_us, bgets, s.retries);
    free(all);
    lfpool_loop_free(s.loop);
    close(s.lfd);
    close(s.ep);
    lfpool_free(s.pool); /* the connections still open on the server side are leaked fds of this run */
}

/* ----------------------------------------------------- --mode tickets */

struct returner {
    lfpool *pool;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lfpool_handle *q;
    size_t qn, qcap;
    bool stop;
};

static void *returner_main(void *arg)
{
    struct returner *r = arg;
    lfpool_handle batch[64];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->qn && !r->stop)
            pthread_cond_wait(&r->cv, &r->mu);
        if (!r->qn && r->stop) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        size_t n = r->qn < 64 ? r->qn : 64;
        memcpy(batch, r->q + r->qn - n, n * sizeof *batch);
        r->qn -= n;
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n; i++) {
            struct backend *b = batch[i].obj;
            atomic_store_explicit(&b->t_ret, now(), memory_order_relaxed);
            lfpool_ret_handle(r->pool, &batch[i]); /* hands it to the next ticket */
        }
    }
}

static void run_tickets(void)
{
    lfpool *p = make_pool();
    lfpool_loop *l;
    int rr = lfpool_loop_new(p, &l);
    if (rr)
        die("lfpool_loop_new", rr);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ee = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfpool_loop_fd(l), &ee);
    struct returner r = {.pool = p, .qcap = (size_t)nobjects + 64};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.q = malloc(r.qcap * sizeof *r.q);
    /* hold every object, so that all tickets queue */
    lfpool_handle hs[256];
    int nh = 0;
    for (; nh < nobjects && nh < 256; nh++)
        lfpool_get_handle(p, &hs[nh], 0);
    int fds0 = count_fds();
    double *lat = malloc(sizeof(double) * (size_t)nrequests);
    size_t nlat = 0;
    int issued = 0, done = 0, fds_max = 0;
    lfpool_handle h;
    lfpool_ticket *t;
    while (issued < nrequests && issued - done < outstanding) {
        if (lfpool_get_async(l, NULL, &h, &t) != EINPROGRESS)
            die("get_async", EIO);
        issued++;
    }
    pthread_t rt;
    pthread_create(&rt, NULL, returner_main, &r);
    double t0 = now();
    pthread_mutex_lock(&r.mu);
    for (int i = 0; i < nh; i++)
        r.q[r.qn++] = hs[i];
    pthread_cond_signal(&r.cv);
    pthread_mutex_unlock(&r.mu);
    lfpool_loop_event ev[64];
    while (done < nrequests) {
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, 5000) != 1)
            die("no completion for 5 s", ETIMEDOUT);
        int fds = count_fds();
        fds_max = fds > fds_max ? fds : fds_max;
        size_t got;
        do {
            lfpool_loop_ready(l, ev, 64, &got);
            double tn = now();
            pthread_mutex_lock(&r.mu);
            for (size_t i = 0; i < got; i++) {
                if (ev[i].err)
                    die("ticket", ev[i].err);
                struct backend *b = ev[i].h.obj;
                double tr = atomic_load_explicit(&b->t_ret, memory_order_relaxed);
                if (nlat < (size_t)nrequests)
                    lat[nlat++] = tn - tr;
                r.q[r.qn++] = ev[i].h;
                done++;
            }
            pthread_cond_signal(&r.cv);
            pthread_mutex_unlock(&r.mu);
            for (size_t i = 0; i < got && issued < nrequests; i++) {
                int x = lfpool_get_async(l, NULL, &h, &t);
                if (x == 0) { /* an object went back to the set: hand it on */
                    pthread_mutex_lock(&r.mu);
                    r.q[r.qn++] = h;
                    pthread_cond_signal(&r.cv);
                    pthread_mutex_unlock(&r.mu);
                    done++;
                } else if (x != EINPROGRESS) {
                    die("get_async", x);
                }
                issued++;
            }
        } while (got == 64);
    }
    double took = now() - t0;
    pthread_mutex_lock(&r.mu);
    r.stop = true;
    pthread_cond_signal(&r.cv);
    pthread_mutex_unlock(&r.mu);
    pthread_join(rt, NULL);
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("tickets %6d through one loop %9.0f tickets/s  hand-over -> handle taken p50 %6.2f us  "
           "p99 %6.2f us  (%d objects, %d tickets outstanding; descriptors: %d before the "
           "loop, at most %d with the loop's eventfd and its epoll)\n",
           done, (double)done / took, pct(lat, nlat, 0.5) * 1e6, pct(lat, nlat, 0.99) * 1e6,
           nobjects, outstanding, fds0 - 2, fds_max);
    free(lat);
    free(r.q);
    lfpool_loop_free(l);
    close(ep);
    lfpool_free(p);
}

int main(int argc, char **argv)
{
    const char *mode = "both";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--mode"))
            mode = v;
        else if (!strcmp(k, "--requests"))
            nrequests = atoi(v);
        else if (!strcmp(k, "--clients"))
            nclients = atoi(v);
        else if (!strcmp(k, "--objects"))
            nobjects = atoi(v);
        else if (!strcmp(k, "--query-us"))
            query_us = atoi(v);
        else if (!strcmp(k, "--blockers"))
            nblockers = atoi(v);
        else if (!strcmp(k, "--outstanding"))
            outstanding = atoi(v);
        else {
            fprintf(stderr, "usage: %s [--mode async|poll|both|tickets|all] [--requests N] "
                            "[--clients C] [--objects K] [--query-us U] [--blockers B] "
                            "[--outstanding M]\n", argv[0]);
            return 2;
        }
    }
    if (nrequests < 1 || nclients < 1 || nobjects < 1 || nobjects > 256 || query_us < 1 ||
        nblockers < 0 || outstanding < 1)
        die("arguments", EINVAL);
    if (nrequests < nclients)
        nclients = nrequests;
    bool all = !strcmp(mode, "all");
    if (all || !strcmp(mode, "both") || !strcmp(mode, "async"))
        run_server(true);
    if (all || !strcmp(mode, "both") || !strcmp(mode, "poll"))
        run_server(false);
    if (all || !strcmp(mode, "tickets"))
        run_tickets();
    return 0;
}
