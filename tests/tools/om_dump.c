/* om_dump.c - writes, for check_openmetrics.py, the OpenMetrics exposition
 * of three pools (one with a name that needs every escape, one recording
 * hold times, one with waits, timeouts and failed creations) and, as JSON,
 * what the C API says about the same quiescent pools: lfpool_stats_json()
 * and every histogram from lfpool_histogram().  Output: the JSON document
 * on one line, a line "--", then the exposition. */
#include <lfpool.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic int nfun;

static void *make(void *ctx, uint64_t n)
{
    (void)ctx, (void)n;
    if (atomic_fetch_add(&nfun, 1) % 4 == 3) { /* every fourth creation fails */
        errno = ECONNREFUSED;
        return NULL;
    }
    return malloc(16);
}

static int drop(void *ctx, void *o)
{
    (void)ctx;
    free(o);
    return 0;
}

static void quiet(void *ctx, int level, const char *msg)
{
    (void)ctx, (void)level, (void)msg;
}

static lfpool *pools[3];

static void *worker(void *arg)
{
    lfpool *p = arg;
    for (int i = 0; i < 2000; i++) {
        void *o;
        if (lfpool_get(p, &o, LFPOOL_FOREVER) == 0) {
            if (i % 500 == 0)
                usleep(200);
            lfpool_ret(p, o);
        }
    }
    return NULL;
}

static void hist_json(FILE *f, lfpool *p, int which)
{
    struct lfpool_histogram h;
    lfpool_histogram(p, which, &h);
    fprintf(f, "{\"count\":[");
    for (int i = 0; i < LFPOOL_HIST_BUCKETS; i++)
        fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)h.count[i]);
    fprintf(f, "],\"total\":%llu,\"sum\":%.17g}", (unsigned long long)h.total, h.sum);
}

int main(void)
{
    const char *names[3] = {"main", "we\"ird\\name\nx", "hold"};
    for (int i = 0; i < 3; i++) {
        lfpool_config cfg;
        lfpool_config_init(&cfg);
        cfg.fun = make;
        cfg.closer = drop;
        cfg.log = quiet;
        cfg.max_size = i == 0 ? 1 : 4;
        cfg.hold_histogram = i == 2;
        if (lfpool_new(&pools[i], &cfg) != 0)
            return 1;
    }
    /* pool 0: contention (waits), a timeout, failed creations */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, pools[i % 2 ? 2 : 0]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    void *a, *c;
    if (lfpool_get(pools[0], &a, LFPOOL_FOREVER) != 0 || lfpool_get(pools[0], &c, 0.001) != ETIMEDOUT)
        return 2;
    lfpool_ret(pools[0], a);
    /* pool 1: a few uses, one object kept out */
    void *o1;
    for (int i = 0; i < 5; i++)
        if (lfpool_get(pools[1], &o1, 0) == 0)
            lfpool_ret(pools[1], o1);
    while (lfpool_get(pools[1], &o1, 0) != 0)
        ;

    printf("{\"pools\":[");
    for (int i = 0; i < 3; i++) {
        char *js = lfpool_stats_json(pools[i]);
        if (!js)
            return 3;
        printf("%s{\"stats\":%s,\"hist\":{\"wait\":", i ? "," : "", js);
        free(js);
        hist_json(stdout, pools[i], LFPOOL_HIST_WAIT);
        printf(",\"hold\":");
        hist_json(stdout, pools[i], LFPOOL_HIST_HOLD);
        printf(",\"create\":");
        hist_json(stdout, pools[i], LFPOOL_HIST_CREATE);
        printf("}}");
    }
    printf("],\"names\":[\"main\",\"we\\\"ird\\\\name\\nx\",\"hold\"]}\n--\n");
    char *om = lfpool_stats_openmetrics(pools, names, 3);
    if (!om)
        return 4;
    fputs(om, stdout);
    free(om);
    lfpool_ret(pools[1], o1);
    for (int i = 0; i < 3; i++)
        lfpool_free(pools[i]);
    return 0;
}
