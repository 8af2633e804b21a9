/*
 * main.c - pgpool-demo: N threads share a pool of libpq connections and run
 * a mix of `SELECT 1` and INSERTs for a few seconds, then print the
 * throughput, p50/p99 of the get and of the query, and the pool's stats.
 *
 *   pgpool-demo [-c CONNINFO] [-t THREADS] [-s MAX_SIZE] [-d SECONDS] [-i INSERT_PERCENT]
 *
 * CONNINFO defaults to "" (libpq's environment: PGHOST, PGDATABASE, ...).
 *
 * Owns: the demo table pgpool_demo (created if missing) and the latency
 * samples of its threads.
 * Invariant: every connection a worker got goes back through
 * pgpool_release(), whatever its query did.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pgpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_SAMPLES 100000 /* per thread; later operations are counted, not sampled */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct worker {
    pthread_t tid;
    int id;
    lfpool *pool;
    double deadline;
    int insert_pct;
    unsigned seed;
    long ops, failed;
    size_t nsamples;
    double *get_s, *query_s; /* seconds, MAX_SAMPLES each */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char sql[128];
    while (now() < w->deadline) {
        double t0 = now();
        PGconn *conn;
        int err = lfpool_get(w->pool, (void **)&conn, LFPOOL_DEFAULT);
        if (err) {
            fprintf(stderr, "thread %d: get: %s\n", w->id, lfpool_strerror(err));
            w->failed++;
            usleep(10000); /* the server may be down: do not spin */
            continue;
        }
        double t1 = now();
        const char *q = "SELECT 1";
        if ((int)(rand_r(&w->seed) % 100) < w->insert_pct) {
            snprintf(sql, sizeof sql, "INSERT INTO pgpool_demo(thread, n) VALUES (%d, %ld)", w->id, w->ops);
            q = sql;
        }
        PGresult *res = PQexec(conn, q);
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            fprintf(stderr, "thread %d: %s", w->id, PQerrorMessage(conn));
            w->failed++;
        } else {
            w->ops++;
        }
        PQclear(res);
        double t2 = now();
        pgpool_release(w->pool, conn); /* ret, or ret_broken when the connection died */
        if (w->nsamples < MAX_SAMPLES) {
            w->get_s[w->nsamples] = t1 - t0;
            w->query_s[w->nsamples] = t2 - t1;
            w->nsamples++;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p50 and p99 of the samples of every worker, in microseconds */
static void percentiles(struct worker *w, int n, int query, double *p50, double *p99)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += w[i].nsamples;
    *p50 = *p99 = 0;
    if (total == 0)
        return;
    double *all = malloc(total * sizeof *all);
    if (!all)
        return;
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < w[i].nsamples; j++)
            all[k++] = query ? w[i].query_s[j] : w[i].get_s[j];
    qsort(all, total, sizeof *all, cmp_double);
    *p50 = all[total / 2] * 1e6;
    *p99 = all[(size_t)((double)(total - 1) * 0.99)] * 1e6;
    free(all);
}

static int setup_table(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);
    int ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
        PGresult *res = PQexec(conn, "CREATE TABLE IF NOT EXISTS pgpool_demo "
                                     "(id bigserial PRIMARY KEY, thread int, n bigint, at timestamptz DEFAULT now())");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok)
        fprintf(stderr, "pgpool-demo: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *conninfo = "";
    int nthreads = 16, insert_pct = 20, opt;
    size_t max_size = 8;
    double seconds = 3;
    while ((opt = getopt(argc, argv, "c:t:s:d:i:h")) != -1) {
        switch (opt) {
        case 'c': conninfo = optarg; break;
        case 't': nthreads = atoi(optarg); break;
        case 's': max_size = (size_t)atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'i': insert_pct = atoi(optarg); break;
        default:
            fprintf(opt == 'h' ? stdout : stderr,
                    "usage: %s [-c CONNINFO] [-t THREADS] [-s MAX_SIZE] [-d SECONDS] [-i INSERT_PERCENT]\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS || max_size < 1 || !(seconds > 0) || insert_pct < 0 || insert_pct > 100) {
        fprintf(stderr, "pgpool-demo: bad arguments\n");
        return 2;
    }
    if (setup_table(conninfo))
        return 1;

    /* the pool: libpq hooks from pgpool.c, then this program's sizes */
    static struct pgpool_ctx pctx; /* zero counters; outlives the pool */
    pctx.conninfo = conninfo;
    pctx.init_sql = "SET application_name = 'pgpool-demo'";
    lfpool_config cfg;
    lfpool_config_init(&cfg);
    pgpool_config(&cfg, &pctx);
    cfg.max_size = max_size;
    cfg.min_size = max_size < 2 ? max_size : 2;
    cfg.timeout = 5;
    cfg.max_lifetime = 60;
    cfg.max_lifetime_jitter = 10;
    cfg.max_using_delay_kill = 30; /* a query stuck this long: killed, and logged */
    lfpool *pool;
    int err = lfpool_new(&pool, &cfg);
    if (err) {
        fprintf(stderr, "lfpool_new: %s\n", lfpool_strerror(err));
        return 1;
    }

    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    if (!w)
        return 1;
    double start = now();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){.id = i, .pool = pool, .deadline = start + seconds,
                               .insert_pct = insert_pct, .seed = (unsigned)i * 2654435761u};
        w[i].get_s = malloc(MAX_SAMPLES * sizeof(double));
        w[i].query_s = malloc(MAX_SAMPLES * sizeof(double));
        if (!w[i].get_s || !w[i].query_s || pthread_create(&w[i].tid, NULL, work, &w[i])) {
            fprintf(stderr, "pgpool-demo: cannot start thread %d\n", i);
            return 1;
        }
    }
    long ops = 0, failed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        ops += w[i].ops;
        failed += w[i].failed;
    }
    double elapsed = now() - start;

    double g50, g99, q50, q99;
    percentiles(w, nthreads, 0, &g50, &g99);
    percentiles(w, nthreads, 1, &q50, &q99);
    printf("threads %d, max_size %zu, %d%% INSERT, %.1f s\n", nthreads, max_size, insert_pct, elapsed);
    printf("throughput   %.0f queries/s (%ld ok, %ld failed)\n", (double)ops / elapsed, ops, failed);
    printf("get          p50 %8.1f us   p99 %8.1f us\n", g50, g99);
    printf("query        p50 %8.1f us   p99 %8.1f us\n", q50, q99);
    printf("connects     %llu (%llu failed)\n", (unsigned long long)atomic_load(&pctx.nconnect),
           (unsigned long long)atomic_load(&pctx.nconnect_failed));
    char *json = lfpool_stats_json(pool);
    if (json) {
        printf("%s\n", json);
        free(json);
    }
    lfpool_free(pool);
    for (int i = 0; i < nthreads; i++) {
        free(w[i].get_s);
        free(w[i].query_s);
    }
    free(w);
    return failed ? 1 : 0;
}
