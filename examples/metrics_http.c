/*
 * metrics_http.c - serve an lfpool's metrics to Prometheus.
 *
 * A few worker threads share a small pool (more workers than objects, so
 * some gets wait); a tiny blocking HTTP server on 127.0.0.1 answers
 * GET /metrics with lfpool_stats_openmetrics() for that pool and a second,
 * idle one.  The port (ephemeral unless given) is printed on stdout as
 * "port N".  GET /quit, SIGINT or SIGTERM stop it, and so does the time
 * limit (argument 2, seconds; default 60).
 *
 *   ./metrics_http [port [seconds]] &
 *   curl -s http://127.0.0.1:PORT/metrics
 *
 * Prometheus scrape config:
 *   - job_name: app
 *     static_configs: [{targets: ['127.0.0.1:PORT']}]
 */
#include <lfpool.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4

static volatile sig_atomic_t stop;
static atomic_bool workers_stop;
static lfpool *pools[2];
static const char *names[2] = {"db", "cache"};

static void *open_obj(void *ctx, uint64_t n)
{
    (void)ctx;
    struct timespec ts = {0, 200000}; /* a slow-ish connect: 200 us */
    nanosleep(&ts, NULL);
    uint64_t *o = malloc(sizeof *o);
    if (o)
        *o = n;
    return o;
}

static int close_obj(void *ctx, void *o)
{
    (void)ctx;
    free(o);
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    while (!atomic_load(&workers_stop)) {
        void *o;
        if (lfpool_get(pools[0], &o, 0.5) == 0) {
            struct timespec ts = {0, 50000}; /* a 50 us query */
            nanosleep(&ts, NULL);
            lfpool_ret(pools[0], o);
        }
    }
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *type, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, strlen(body));
    write_all(fd, head, (size_t)n);
    write_all(fd, body, strlen(body));
}

/* One request per connection: read the request line, answer, close. */
static void serve(int fd)
{
    char req[1024];
    size_t len = 0;
    while (len < sizeof req - 1 && !memchr(req, '\n', len)) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 2000) <= 0)
            return;
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
    }
    req[len] = '\0';
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
        char *text = lfpool_stats_openmetrics(pools, names, 2);
        if (text) {
            respond(fd, "200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", text);
            free(text);
        } else {
            respond(fd, "500 Internal Server Error", "text/plain", "out of memory\n");
        }
    } else if (strncmp(req, "GET /quit ", 10) == 0) {
        respond(fd, "200 OK", "text/plain", "bye\n");
        stop = 1;
    } else {
        respond(fd, "404 Not Found", "text/plain", "try /metrics\n");
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    double limit = argc > 2 ? atof(argv[2]) : 60;

    for (int i = 0; i < 2; i++) {
        lfpool_config cfg;
        lfpool_config_init(&cfg);
        cfg.fun = open_obj;
        cfg.closer = close_obj;
        cfg.max_size = i == 0 ? 2 : 8;
        cfg.timeout = 1.0;
        cfg.max_using_delay = 5; /* warn about objects held 5 s */
        cfg.hold_histogram = i == 0;
        int err = lfpool_new(&pools[i], &cfg);
        if (err) {
            fprintf(stderr, "lfpool_new: %s\n", lfpool_strerror(err));
            return 1;
        }
    }

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
        perror("listen on 127.0.0.1");
        return 1;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, NULL);

    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);

    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!stop) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 > limit)
            break;
        struct pollfd pfd = {ls, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            continue;
        serve(fd);
        close(fd);
    }

    atomic_store(&workers_stop, true);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    close(ls);
    for (int i = 0; i < 2; i++)
        lfpool_free(pools[i]);
    return 0;
}
