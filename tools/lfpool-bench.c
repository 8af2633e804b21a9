/*
 * lfpool-bench - command-line workload driver: lfpool against its peers.
 *
 * T threads loop get -> bench_use() (claim, touch, optional spin, release)
 * -> put on one pool, for every peer (bench/peers.h), every case (threads,
 * max_size, hold) and every round; peers are interleaved round by round and
 * the median over rounds is reported.  See --help and bench/README.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "bench_cases.h"
#include "peers.h"

#include <lfpool.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024
#define MAX_ROUNDS 1000
#define SAMPLE_CAP (1u << 16) /* latency samples kept per thread */

/* ------------------------------------------------------------ options */

struct bcase {
    unsigned threads;
    size_t max_size;
    unsigned hold;
};

static struct {
    struct bcase *cases;
    size_t ncases;
    const struct bench_peer **peers;
    size_t npeers;
    double duration; /* seconds per measurement (0: use ops) */
    bool duration_set; /* given on the command line: no per-thread floor */
    uint64_t ops;    /* pairs per measurement, all threads together */
    unsigned rounds;
    unsigned sample_every;
    double warmup;
    bool pin;
    bool quiet;
    bool verbose;
    bool tight, alloc, no_main; /* the extra cases (bench_cases.c) */
    const char *alloc_child;
    const char *json, *csv, *plot;
} opt = {
    .duration = 0.06,
    .rounds = 5,
    .sample_every = 64,
    .warmup = 0.02,
};

static void usage(FILE *f)
{
    fprintf(f,
"Usage: lfpool-bench [OPTIONS]\n"
"Drive T threads through get -> touch -> put loops on lfpool and its peers.\n"
"\n"
"Workload (the cases are every combination of the three lists; --case adds one):\n"
"  -t, --threads LIST     thread counts, e.g. 1,2,4 (default 1,2)\n"
"  -m, --max-size LIST    pool bounds, 0 = unbounded (default 64)\n"
"  -H, --hold LIST        spin iterations while holding an object (default 0)\n"
"  -c, --case T:M:H       one more case: T threads, max_size M, hold H\n"
"                         (repeatable)\n"
"      Without -t/-m/-H/-c: 1:64:0, 2:64:0 and 32:2:50 (bounded contention).\n"
"  -d, --duration SEC     seconds per measurement (default 0.06, and at least\n"
"                         6 ms per thread so that the scheduler gives every\n"
"                         thread a fair chance: 0.19 s at 32 threads)\n"
"  -n, --ops N            pairs per measurement instead of a duration\n"
"  -r, --rounds R         rounds; every round runs every peer on every case,\n"
"                         the median over rounds is reported (default 5)\n"
"  -p, --peers LIST       peers to run (default: all compiled in:");
    for (size_t i = 0; bench_peers[i]; i++)
        fprintf(f, " %s", bench_peers[i]->name);
    fprintf(f, ")\n"
"      --pin              pin worker i to the i-th allowed CPU (modulo)\n"
"  -s, --sample N         time every Nth get for latency (default 64)\n"
"      --warmup SEC       untimed warm-up per peer and case (default 0.02)\n"
"\n"
"Extra cases, printed after the table (the same --rounds; --duration per\n"
"measurement, default 0.1 s):\n"
"      --tight            tight loop: 1 thread, max_size 64, get then put at once\n"
"                         with nothing else timed: lfpool, handles, bulk of 32,\n"
"                         DPDK get/put and get_bulk/put_bulk of 32, and the\n"
"                         bulk floor (the bookkeeping alone: a lower bound)\n"
"      --alloc            allocator case: 64-byte blocks, 32 taken then given\n"
"                         back, at 1 and 2 threads: lfpool handles and bulk,\n"
"                         glibc malloc, jemalloc and tcmalloc (each in its own\n"
"                         child process, LD_PRELOAD), as examples/blockcache.c\n"
"      --no-main          only the extra cases, not the table\n"
"\n"
"Output (the table always goes to stdout):\n"
"      --json FILE        every figure, per round too, as JSON\n"
"      --csv FILE         the table as CSV\n"
"      --plot FILE.png    throughput vs threads, one line per peer (gnuplot), and\n"
"                         FILE-wait.png: the wait histogram of the contention case\n"
"  -q, --quiet            no progress on stderr\n"
"  -v, --verbose          per-thread pair counts of every measurement on stderr\n"
"  -l, --list             list the peers and exit\n"
"  -h, --help             this help\n"
"\n"
"Columns: ns/pair is wall-clock time over all threads divided by all\n"
"get+put pairs; vs-lfpool is the peer's ns/pair over lfpool's (above 1:\n"
"lfpool is faster); p50/p99/p99.9 are get latencies in ns, waits included,\n"
"sampled every Nth get with clock_gettime; errors are double hand-outs\n"
"(an object given to two threads at once) plus failed gets/puts; fair is\n"
"the least productive thread's share of the mean pairs per thread (median\n"
"over rounds; 0: a thread starved); starved counts thread runs, over all\n"
"rounds, that completed no pair at all.\n"
"n/a: the peer cannot run the case (DPDK has no blocking get).\n"
"Exit status: 0, 1 when any error was counted, 2 on bad usage or setup.\n");
}

static int parse_list(const char *s, uint64_t *out, size_t max, uint64_t lo, uint64_t hi,
                      const char *what)
{
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || (*end && *end != ',') || n == max) {
            fprintf(stderr, "lfpool-bench: bad %s list '%s' (%" PRIu64 "..%" PRIu64 ")\n",
                    what, s, lo, hi);
            exit(2);
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        fprintf(stderr, "lfpool-bench: empty %s list\n", what);
        exit(2);
    }
    return (int)n;
}

static void add_case(unsigned t, size_t m, unsigned h)
{
    for (size_t i = 0; i < opt.ncases; i++)
        if (opt.cases[i].threads == t && opt.cases[i].max_size == m && opt.cases[i].hold == h)
            return;
    struct bcase *c = realloc(opt.cases, (opt.ncases + 1) * sizeof *c);
    if (!c) {
        perror("lfpool-bench");
        exit(2);
    }
    opt.cases = c;
    opt.cases[opt.ncases++] = (struct bcase){t, m, h};
}

static double parse_double(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0) || !isfinite(v)) {
        fprintf(stderr, "lfpool-bench: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static uint64_t parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what)
{
    uint64_t v;
    parse_list(s, &v, 1, lo, hi, what);
    return v;
}

static void parse_peers(const char *s)
{
    char *copy = strdup(s);
    char *save = NULL;
    opt.npeers = 0;
    free(opt.peers);
    opt.peers = calloc(strlen(s) + 1, sizeof *opt.peers);
    if (!copy || !opt.peers) {
        perror("lfpool-bench");
        exit(2);
    }
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const struct bench_peer *p = bench_peer_find(tok);
        if (!p) {
            if (bench_peer_known(tok)) {
                fprintf(stderr, "lfpool-bench: peer '%s' is not compiled in "
                                "(configure with -D%s=enabled), skipped\n", tok, tok);
                continue;
            }
            fprintf(stderr, "lfpool-bench: unknown peer '%s' (see --list)\n", tok);
            exit(2);
        }
        bool dup = false;
        for (size_t i = 0; i < opt.npeers; i++)
            dup |= opt.peers[i] == p;
        if (!dup)
            opt.peers[opt.npeers++] = p;
    }
    free(copy);
    if (opt.npeers == 0) {
        fprintf(stderr, "lfpool-bench: no peer to run\n");
        exit(2);
    }
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, 't'},
        {"max-size", required_argument, NULL, 'm'},
        {"hold", required_argument, NULL, 'H'},
        {"case", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"ops", required_argument, NULL, 'n'},
        {"rounds", required_argument, NULL, 'r'},
        {"peers", required_argument, NULL, 'p'},
        {"pin", no_argument, NULL, 'P'},
        {"sample", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'W'},
        {"json", required_argument, NULL, 'J'},
        {"csv", required_argument, NULL, 'C'},
        {"plot", required_argument, NULL, 'G'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"list", no_argument, NULL, 'l'},
        {"tight", no_argument, NULL, 'T'},
        {"alloc", no_argument, NULL, 'A'},
        {"no-main", no_argument, NULL, 'N'},
        {"alloc-child", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t threads[64], sizes[64], holds[64];
    int nthreads = 0, nsizes = 0, nholds = 0;
    bool grid = false;
    int c;

    while ((c = getopt_long(argc, argv, "t:m:H:c:d:n:r:p:s:qvlh", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            nthreads = parse_list(optarg, threads, 64, 1, MAX_THREADS, "threads");
            grid = true;
            break;
        case 'm':
            nsizes = parse_list(optarg, sizes, 64, 0, UINT32_MAX, "max-size");
            grid = true;
            break;
        case 'H':
            nholds = parse_list(optarg, holds, 64, 0, 100000000, "hold");
            grid = true;
            break;
        case 'c': {
            unsigned t, h;
            size_t m;
            char tail;
            if (sscanf(optarg, "%u:%zu:%u%c", &t, &m, &h, &tail) != 3 || t < 1 ||
                t > MAX_THREADS) {
                fprintf(stderr, "lfpool-bench: bad case '%s' (THREADS:MAX_SIZE:HOLD)\n", optarg);
                exit(2);
            }
            add_case(t, m, h);
            break;
        }
        case 'd':
            opt.duration = parse_double(optarg, "duration");
            if (opt.duration <= 0) {
                fprintf(stderr, "lfpool-bench: duration must be > 0\n");
                exit(2);
            }
            opt.ops = 0;
            opt.duration_set = true;
            break;
        case 'n':
            opt.ops = parse_u64(optarg, 1, UINT64_MAX / 2, "ops");
            opt.duration = 0;
            break;
        case 'r':
            opt.rounds = (unsigned)parse_u64(optarg, 1, MAX_ROUNDS, "rounds");
            break;
        case 'p':
            parse_peers(optarg);
            break;
        case 'P':
            opt.pin = true;
            break;
        case 's':
            opt.sample_every = (unsigned)parse_u64(optarg, 1, 1u << 30, "sample");
            break;
        case 'W':
            opt.warmup = parse_double(optarg, "warmup");
            break;
        case 'J':
            opt.json = optarg;
            break;
        case 'C':
            opt.csv = optarg;
            break;
        case 'G':
            opt.plot = optarg;
            break;
        case 'q':
            opt.quiet = true;
            break;
        case 'T':
            opt.tight = true;
            break;
        case 'A':
            opt.alloc = true;
            break;
        case 'N':
            opt.no_main = true;
            break;
        case 'X':
            opt.alloc_child = optarg;
            break;
        case 'v':
            opt.verbose = true;
            break;
        case 'l':
            for (size_t i = 0; bench_peers[i]; i++)
                printf("%-11s %s\n", bench_peers[i]->name, bench_peers[i]->desc);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "Try 'lfpool-bench --help'.\n");
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lfpool-bench: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    if (grid) {
        if (!nthreads)
            threads[nthreads++] = 1, threads[nthreads++] = 2;
        if (!nsizes)
            sizes[nsizes++] = 64;
        if (!nholds)
            holds[nholds++] = 0;
        for (int h = 0; h < nholds; h++)
            for (int m = 0; m < nsizes; m++)
                for (int t = 0; t < nthreads; t++)
                    add_case((unsigned)threads[t], (size_t)sizes[m], (unsigned)holds[h]);
    } else if (opt.ncases == 0) {
        add_case(1, 64, 0);
        add_case(2, 64, 0);
        add_case(32, 2, 50);
    }
    if (!opt.peers) {
        size_t n = 0;
        while (bench_peers[n])
            n++;
        opt.peers = calloc(n, sizeof *opt.peers);
        if (!opt.peers) {
            perror("lfpool-bench");
            exit(2);
        }
        opt.npeers = 0;
        for (size_t i = 0; i < n; i++) /* lfpool-hold, -strict, -budget, -twin only when asked for (-p) */
            if (strcmp(bench_peers[i]->name, "lfpool-hold") != 0 &&
                strcmp(bench_peers[i]->name, "lfpool-strict") != 0 &&
                strcmp(bench_peers[i]->name, "lfpool-budget") != 0 &&
                strcmp(bench_peers[i]->name, "lfpool-twin") != 0)
                opt.peers[opt.npeers++] = bench_peers[i];
    }
}

/* ------------------------------------------------------------- running */

struct sample_buf {
    uint32_t *v;
    size_t n;
    unsigned stride; /* each kept sample stands for stride gets */
};

struct worker {
    pthread_t tid;
    struct run *run;
    unsigned idx;
    int init_err;
    uint64_t pairs, errors, fails;
    uint64_t t_end;
    struct sample_buf s;
} __attribute__((aligned(64)));

struct run {
    const struct bench_peer *peer;
    void *pool;
    unsigned hold;
    unsigned threads;
    uint64_t ops_per_thread; /* 0: until stop */
    _Atomic bool stop __attribute__((aligned(64)));
    pthread_barrier_t start __attribute__((aligned(64)));
    struct worker *w;
    bool record;
};

/* the measured outcome of one run */
struct measure {
    bool ok;
    double ns_per_pair;
    double p50, p99, p999;
    double fair;
    uint64_t pairs, errors, fails;
    unsigned starved; /* threads that completed no pair */
};

static int *cpu_list;
static int ncpus;

/* The host's price of an uncontended atomic read-modify-write, in ns: a
 * lock cmpxchg on a private line, back to back.  lfpool's ret does one
 * (the state CAS that arbitrates returns and kills, DESIGN §8) and DPDK's
 * cache put does none, so the P1 and P6 ratios move with this figure; it
 * has been seen between about 1 and 6 ns on the same VM (PERFORMANCE.md).
 * Probed before and after the rounds. */
static double host_cas_ns(void)
{
    static _Atomic uint64_t word __attribute__((aligned(64)));
    enum { N = 1 << 21 };
    double best = INFINITY;
    for (int rep = 0; rep < 3; rep++) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < N; i++) {
            uint64_t e = atomic_load_explicit(&word, memory_order_relaxed);
            atomic_compare_exchange_strong(&word, &e, e + 1);
        }
        double ns = (double)(bench_now_ns() - t0) / N;
        if (ns < best)
            best = ns;
    }
    return best;
}
static double cas_ns_start = NAN, cas_ns_end = NAN;

static void sample_add(struct sample_buf *s, uint64_t ns)
{
    if (s->n == SAMPLE_CAP) { /* full: keep every other one, halve the rate */
        for (size_t i = 0; i < SAMPLE_CAP / 2; i++)
            s->v[i] = s->v[2 * i];
        s->n = SAMPLE_CAP / 2;
        s->stride *= 2;
    }
    s->v[s->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    const struct bench_peer *peer = r->peer;
    void *pool = r->pool;
    const unsigned hold = r->hold;
    const uint64_t limit = r->ops_per_thread;
    const unsigned every = opt.sample_every;
    uint64_t n = 0, errors = 0, fails = 0;
    unsigned skip = 1 + w->idx % every; /* stagger the sampled gets */
    unsigned sub = 1;                    /* of the kept samples: 1 in s.stride */

    if (peer->thread_init)
        w->init_err = peer->thread_init(pool);
    pthread_barrier_wait(&r->start);
    if (w->init_err) {
        w->t_end = bench_now_ns();
        return NULL;
    }
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed) && (limit == 0 || n < limit)) {
        void *o;
        int rc;
        if (--skip == 0) {
            skip = every;
            if (--sub == 0) {
                uint64_t t0 = bench_now_ns();
                rc = peer->get(pool, &o);
                uint64_t t1 = bench_now_ns();
                if (r->record)
                    sample_add(&w->s, t1 - t0);
                sub = w->s.stride;
            } else {
                rc = peer->get(pool, &o);
            }
        } else {
            rc = peer->get(pool, &o);
        }
        if (rc != 0) {
            if (++fails >= 16) /* a broken peer: stop this thread */
                break;
            continue;
        }
        errors += (uint64_t)bench_use(o, hold);
        if (peer->put(pool, o) != 0)
            fails++;
        n++;
    }
    w->t_end = bench_now_ns();
    w->pairs = n;
    w->errors = errors;
    w->fails = fails;
    if (peer->thread_fini)
        peer->thread_fini(pool);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

struct wsample {
    uint32_t v, weight;
};

static int cmp_wsample(const void *a, const void *b)
{
    return cmp_u32(&((const struct wsample *)a)->v, &((const struct wsample *)b)->v);
}

/* weighted percentiles over every worker's kept samples */
static void percentiles(struct worker *w, unsigned nw, double *p50, double *p99, double *p999)
{
    size_t total = 0;
    for (unsigned i = 0; i < nw; i++)
        total += w[i].s.n;
    *p50 = *p99 = *p999 = NAN;
    if (total == 0)
        return;
    struct wsample *all = malloc(total * sizeof *all);
    if (!all)
        return;
    size_t k = 0;
    double wsum = 0;
    for (unsigned i = 0; i < nw; i++)
        for (size_t j = 0; j < w[i].s.n; j++) {
            all[k++] = (struct wsample){w[i].s.v[j], w[i].s.stride};
            wsum += w[i].s.stride;
        }
    qsort(all, total, sizeof *all, cmp_wsample);
    const double q[3] = {0.5, 0.99, 0.999};
    double *out[3] = {p50, p99, p999};
    double acc = 0;
    size_t qi = 0;
    for (size_t i = 0; i < total && qi < 3; i++) {
        acc += all[i].weight;
        while (qi < 3 && acc >= q[qi] * wsum)
            *out[qi++] = all[i].v;
    }
    while (qi < 3)
        *out[qi++] = all[total - 1].v;
    free(all);
}

static struct worker *workers;

/* One measurement (or an untimed warm-up when !record). */
static struct measure run_once(const struct bench_peer *peer, void *pool, const struct bcase *c,
                               double duration, uint64_t ops, bool record)
{
    struct measure m = {0};
    struct run r = {
        .peer = peer,
        .pool = pool,
        .hold = c->hold,
        .threads = c->threads,
        .ops_per_thread = ops ? (ops + c->threads - 1) / c->threads : 0,
        .w = workers,
        .record = record,
    };
    atomic_init(&r.stop, false);
    pthread_barrier_init(&r.start, NULL, c->threads + 1);

    unsigned started = 0;
    for (unsigned i = 0; i < c->threads; i++) {
        struct worker *w = &workers[i];
        uint32_t *v = w->s.v;
        memset(w, 0, sizeof *w);
        w->s.v = v;
        w->s.stride = 1;
        w->run = &r;
        w->idx = i;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (opt.pin && ncpus > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu_list[i % (unsigned)ncpus], &set);
            pthread_attr_setaffinity_np(&attr, sizeof set, &set);
        }
        int err = pthread_create(&w->tid, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (err) {
            fprintf(stderr, "lfpool-bench: pthread_create: %s\n", strerror(err));
            exit(2); /* the barrier would never open */
        }
        started++;
    }
    uint64_t t_start = bench_now_ns();
    pthread_barrier_wait(&r.start);
    if (duration > 0) {
        struct timespec ts = {(time_t)duration, (long)((duration - floor(duration)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        atomic_store_explicit(&r.stop, true, memory_order_relaxed);
    }
    uint64_t t_end = t_start;
    uint64_t minp = UINT64_MAX;
    int init_err = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(workers[i].tid, NULL);
        struct worker *w = &workers[i];
        if (w->init_err)
            init_err = w->init_err;
        if (w->t_end > t_end)
            t_end = w->t_end;
        m.pairs += w->pairs;
        m.errors += w->errors;
        m.fails += w->fails;
        if (w->pairs < minp)
            minp = w->pairs;
    }
    pthread_barrier_destroy(&r.start);
    if (init_err) {
        fprintf(stderr, "lfpool-bench: %s: thread_init: %s\n", peer->name, strerror(init_err));
        return m;
    }
    if (opt.verbose && record) {
        fprintf(stderr, "%s %u threads max %zu hold %u: pairs per thread:", peer->name,
                c->threads, c->max_size, c->hold);
        for (unsigned i = 0; i < started; i++)
            fprintf(stderr, " %" PRIu64, workers[i].pairs);
        fprintf(stderr, "\n");
    }
    for (unsigned i = 0; i < started; i++)
        m.starved += workers[i].pairs == 0;
    m.ok = m.pairs > 0;
    m.ns_per_pair = m.pairs ? (double)(t_end - t_start) / (double)m.pairs : NAN;
    m.fair = m.pairs ? (double)minp / ((double)m.pairs / c->threads) : 0;
    if (record)
        percentiles(workers, c->threads, &m.p50, &m.p99, &m.p999);
    return m;
}

/* ------------------------------------------------------------- results */

struct result {
    const struct bench_peer *peer;
    const struct bcase *c;
    void *pool;
    bool opened, na;
    char why[96];
    struct measure *rounds; /* opt.rounds */
    unsigned nrounds;
    /* medians over rounds */
    double ns, p50, p99, p999, fair;
    uint64_t pairs, errors, fails;
    unsigned starved; /* thread runs with no pair, over all rounds */
    /* lfpool peers in a contention case (more threads than objects): the
     * pool's wait histogram over warm-up and every round, read at close */
    bool has_wait;
    struct lfpool_histogram wait;
    uint64_t nuses;
    /* lfpool peers, every case: the pool's gets and membarrier calls
     * (nfences, of which nbias_fences) over warm-up and every round, read at
     * close - fences must stay rare by construction (issue 19) */
    bool has_fences;
    uint64_t fence_gets, fences, bias_fences;
};

/* The contention case: bounded, more threads than objects (P3). */
static bool contention_case(const struct bcase *c)
{
    return c->max_size > 0 && c->threads > c->max_size;
}

/* The lfpool peers' pool handle is the lfpool itself (bench/peer_lfpool.c). */
static bool is_lfpool_peer(const struct bench_peer *p)
{
    return strncmp(p->name, "lfpool", 6) == 0; /* lfpool, lfpool-h, lfpool-hold, lfpool-strict, lfpool-budget, lfpool-twin */
}

static void summarize(struct result *res)
{
    double v[MAX_ROUNDS];
    unsigned n = res->nrounds;
#define MED(field)                                                                       \
    do {                                                                                 \
        for (unsigned i = 0; i < n; i++)                                                 \
            v[i] = res->rounds[i].ok ? res->rounds[i].field : NAN;                       \
        res->field = bench_median(v, n);                                                 \
    } while (0)
    for (unsigned i = 0; i < n; i++)
        v[i] = res->rounds[i].ok ? res->rounds[i].ns_per_pair : NAN;
    res->ns = bench_median(v, n);
    MED(p50);
    MED(p99);
    MED(p999);
#undef MED
    for (unsigned i = 0; i < n; i++)
        v[i] = res->rounds[i].ok ? res->rounds[i].fair : 0;
    res->fair = bench_median(v, n);
    for (unsigned i = 0; i < n; i++) {
        res->pairs += res->rounds[i].pairs;
        res->errors += res->rounds[i].errors;
        res->fails += res->rounds[i].fails;
        res->starved += res->rounds[i].starved;
    }
}

static struct result *results;
static size_t nresults;

static struct result *find_result(const char *peer, const struct bcase *c)
{
    for (size_t i = 0; i < nresults; i++)
        if (results[i].c == c && strcmp(results[i].peer->name, peer) == 0)
            return &results[i];
    return NULL;
}

static double ratio_to_lfpool(const struct result *r)
{
    const struct result *l = find_result("lfpool", r->c);
    if (!l || l->na || r->na || isnan(l->ns) || isnan(r->ns) || l->ns <= 0)
        return NAN;
    return r->ns / l->ns;
}

static void fmt_num(char *buf, size_t size, double v, const char *f)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, f, v);
}

static void print_table(FILE *f)
{
    fprintf(f, "%-11s %7s %8s %5s %9s %9s %9s %8s %8s %9s %7s %5s %7s\n", "peer", "threads",
            "max_size", "hold", "ns/pair", "Mpairs/s", "vs-lfpool", "p50", "p99", "p99.9",
            "errors", "fair", "starved");
    const struct bcase *prev = NULL;
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        if (prev && prev != r->c)
            fprintf(f, "\n");
        prev = r->c;
        char maxs[24];
        if (r->c->max_size)
            snprintf(maxs, sizeof maxs, "%zu", r->c->max_size);
        else
            snprintf(maxs, sizeof maxs, "unbound");
        if (r->na) {
            fprintf(f, "%-11s %7u %8s %5u %9s   (%s)\n", r->peer->name, r->c->threads, maxs,
                    r->c->hold, "n/a", r->why);
            continue;
        }
        char ns[24], mp[24], ra[24], p50[24], p99[24], p999[24], fair[24];
        fmt_num(ns, sizeof ns, r->ns, "%.1f");
        fmt_num(mp, sizeof mp, 1e3 / r->ns, "%.2f");
        fmt_num(ra, sizeof ra, ratio_to_lfpool(r), "%.2fx");
        fmt_num(p50, sizeof p50, r->p50, "%.0f");
        fmt_num(p99, sizeof p99, r->p99, "%.0f");
        fmt_num(p999, sizeof p999, r->p999, "%.0f");
        fmt_num(fair, sizeof fair, r->fair, "%.2f");
        fprintf(f, "%-11s %7u %8s %5u %9s %9s %9s %8s %8s %9s %7" PRIu64 " %5s %7u\n",
                r->peer->name, r->c->threads, maxs, r->c->hold, ns, mp, ra, p50, p99, p999,
                r->errors + r->fails, fair, r->starved);
    }
}

/* The membarrier calls of each lfpool peer in each case (warm-up and every
 * round): per get, they were about one in the contention case before the
 * caches closed for waiting gets (docs/DESIGN.md §4). */
static void print_fence_table(FILE *f)
{
    bool any = false;
    for (size_t i = 0; i < nresults; i++)
        any = any || results[i].has_fences;
    if (!any)
        return;
    fprintf(f, "\nfences (membarrier calls; warm-up and all rounds):\n");
    fprintf(f, "%-8s %7s %8s %5s %12s %9s %9s %10s\n", "peer", "threads", "max_size", "hold",
            "gets", "fences", "of bias", "per get");
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        if (!r->has_fences)
            continue;
        char maxs[24], per[24];
        if (r->c->max_size)
            snprintf(maxs, sizeof maxs, "%zu", r->c->max_size);
        else
            snprintf(maxs, sizeof maxs, "unbound");
        fmt_num(per, sizeof per, r->fence_gets ? (double)r->fences / (double)r->fence_gets : NAN,
                "%.2g");
        fprintf(f, "%-8s %7u %8s %5u %12" PRIu64 " %9" PRIu64 " %9" PRIu64 " %10s\n", r->peer->name,
                r->c->threads, maxs, r->c->hold, r->fence_gets, r->fences, r->bias_fences, per);
    }
}

/* A bucket bound for people: 1us, 512us, 1.05ms, 64s. */
static void fmt_le(char *buf, size_t size, int i)
{
    double le = LFPOOL_HIST_LE(i);
    if (isinf(le))
        snprintf(buf, size, "+Inf");
    else if (le < 1e-3)
        snprintf(buf, size, "%.3gus", le * 1e6);
    else if (le < 1)
        snprintf(buf, size, "%.3gms", le * 1e3);
    else
        snprintf(buf, size, "%.3gs", le);
}

/* The wait histogram of each lfpool peer in each contention case: the
 * non-empty range of buckets, count and cumulative share of waits. */
static void print_wait_tables(FILE *f)
{
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        if (!r->has_wait)
            continue;
        const struct lfpool_histogram *h = &r->wait;
        fprintf(f, "\nwait histogram: %s, %u threads, max_size %zu, hold %u (warm-up and all "
                   "rounds): %" PRIu64 " of %" PRIu64 " gets waited, mean wait %.1f us\n",
                r->peer->name, r->c->threads, r->c->max_size, r->c->hold, h->total, r->nuses,
                h->total ? h->sum / (double)h->total * 1e6 : 0.0);
        if (!h->total)
            continue;
        int lo = 0, hi = LFPOOL_HIST_BUCKETS - 1;
        while (h->count[lo] == 0)
            lo++;
        while (h->count[hi] == 0)
            hi--;
        fprintf(f, "%10s %12s %7s %7s\n", "wait <=", "gets", "share", "cum");
        uint64_t cum = 0;
        for (int b = lo; b <= hi; b++) {
            char le[24];
            fmt_le(le, sizeof le, b);
            cum += h->count[b];
            fprintf(f, "%10s %12" PRIu64 " %6.2f%% %6.2f%%\n", le, h->count[b],
                    100.0 * (double)h->count[b] / (double)h->total,
                    100.0 * (double)cum / (double)h->total);
        }
    }
}

/* --plot FILE.png: FILE-wait.png beside it, one bar series per lfpool peer
 * and contention case (share of waits per bucket). */
static int write_wait_plot(const char *path)
{
    size_t n = 0;
    for (size_t i = 0; i < nresults; i++)
        n += results[i].has_wait && results[i].wait.total > 0;
    if (n == 0)
        return 0; /* no contention case run: nothing to draw */
    char out[1024];
    size_t len = strlen(path);
    if (len > 4 && strcmp(path + len - 4, ".png") == 0)
        len -= 4;
    snprintf(out, sizeof out, "%.*s-wait.png", (int)len, path);
    char escaped[2100];
    size_t k = 0;
    for (const char *p = out; *p && k < sizeof escaped - 2; p++) {
        if (*p == '\'')
            escaped[k++] = '\'';
        escaped[k++] = *p;
    }
    escaped[k] = 0;
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, "lfpool-bench: cannot run gnuplot: %s\n", strerror(errno));
        return -1;
    }
    fprintf(g, "set terminal pngcairo size 1000,600 noenhanced font ',10'\n");
    fprintf(g, "set output '%s'\n", escaped);
    fprintf(g, "set title 'lfpool-bench: how long gets waited (contention case, all rounds)'\n");
    fprintf(g, "set xlabel 'wait <= (log2 buckets)'\nset ylabel 'share of waits (%%)'\n"
               "set style data histograms\nset style histogram clustered gap 1\n"
               "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\n"
               "set xtics rotate by -45\nset yrange [0:*]\nset key outside right top\n");
    int lo = LFPOOL_HIST_BUCKETS, hi = -1;
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        if (!r->has_wait || !r->wait.total)
            continue;
        for (int b = 0; b < LFPOOL_HIST_BUCKETS; b++)
            if (r->wait.count[b]) {
                lo = b < lo ? b : lo;
                hi = b > hi ? b : hi;
            }
    }
    fprintf(g, "$w << EOD\n");
    for (int b = lo; b <= hi; b++) {
        char le[24];
        fmt_le(le, sizeof le, b);
        fprintf(g, "%s", le);
        for (size_t i = 0; i < nresults; i++) {
            const struct result *r = &results[i];
            if (r->has_wait && r->wait.total)
                fprintf(g, " %.4f", 100.0 * (double)r->wait.count[b] / (double)r->wait.total);
        }
        fprintf(g, "\n");
    }
    fprintf(g, "EOD\nplot ");
    int col = 2;
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        if (!r->has_wait || !r->wait.total)
            continue;
        fprintf(g, "%s$w using %d:xtic(1) title '%s, %u threads, max %zu, hold %u'",
                col > 2 ? ", " : "", col, r->peer->name, r->c->threads, r->c->max_size, r->c->hold);
        col++;
    }
    fprintf(g, "\n");
    int st = pclose(g);
    if (st != 0) {
        fprintf(stderr, "lfpool-bench: gnuplot failed (status %d); is gnuplot installed?\n", st);
        return -1;
    }
    return 0;
}

static void json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

static int write_json(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "lfpool-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    fprintf(f, "{\n  \"tool\": \"lfpool-bench\",\n");
    fprintf(f, "  \"machine\": {\"cpus_online\": %ld, \"cpus_allowed\": %d, \"kernel\": \"%s\", "
               "\"arch\": \"%s\", \"cas_ns_start\": ",
            sysconf(_SC_NPROCESSORS_ONLN), ncpus, u.release, u.machine);
    json_num(f, cas_ns_start);
    fprintf(f, ", \"cas_ns_end\": ");
    json_num(f, cas_ns_end);
    fprintf(f, "},\n");
    fprintf(f, "  \"config\": {\"rounds\": %u, \"duration_s\": ", opt.rounds);
    json_num(f, opt.duration > 0 ? opt.duration : NAN);
    fprintf(f, ", \"ops\": %" PRIu64 ", \"sample_every\": %u, \"pin\": %s, \"warmup_s\": ",
            opt.ops, opt.sample_every, opt.pin ? "true" : "false");
    json_num(f, opt.warmup);
    fprintf(f, "},\n  \"results\": [");
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        fprintf(f, "%s\n    {\"peer\": \"%s\", \"threads\": %u, \"max_size\": %zu, \"hold\": %u, ",
                i ? "," : "", r->peer->name, r->c->threads, r->c->max_size, r->c->hold);
        if (r->na) {
            fprintf(f, "\"na\": true, \"reason\": \"%s\"}", r->why);
            continue;
        }
        fprintf(f, "\"na\": false, \"ns_per_pair\": ");
        json_num(f, r->ns);
        fprintf(f, ", \"mpairs_per_s\": ");
        json_num(f, 1e3 / r->ns);
        fprintf(f, ", \"ratio_to_lfpool\": ");
        json_num(f, ratio_to_lfpool(r));
        fprintf(f, ", \"get_p50_ns\": ");
        json_num(f, r->p50);
        fprintf(f, ", \"get_p99_ns\": ");
        json_num(f, r->p99);
        fprintf(f, ", \"get_p999_ns\": ");
        json_num(f, r->p999);
        fprintf(f, ", \"min_thread_share\": ");
        json_num(f, r->fair);
        fprintf(f, ", \"starved_thread_runs\": %u", r->starved);
        if (r->has_fences)
            fprintf(f, ", \"gets\": %" PRIu64 ", \"fences\": %" PRIu64 ", \"bias_fences\": %" PRIu64,
                    r->fence_gets, r->fences, r->bias_fences);
        fprintf(f, ", \"pairs\": %" PRIu64 ", \"double_handouts\": %" PRIu64
                   ", \"failed_ops\": %" PRIu64 ", \"rounds\": [",
                r->pairs, r->errors, r->fails);
        for (unsigned k = 0; k < r->nrounds; k++) {
            struct measure *m = &r->rounds[k];
            fprintf(f, "%s{\"ns_per_pair\": ", k ? ", " : "");
            json_num(f, m->ok ? m->ns_per_pair : NAN);
            fprintf(f, ", \"get_p99_ns\": ");
            json_num(f, m->ok ? m->p99 : NAN);
            fprintf(f, ", \"pairs\": %" PRIu64 "}", m->pairs);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

static int write_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "lfpool-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "peer,threads,max_size,hold,ns_per_pair,mpairs_per_s,ratio_to_lfpool,"
               "get_p50_ns,get_p99_ns,get_p999_ns,double_handouts,failed_ops,"
               "min_thread_share,starved_thread_runs,rounds,na\n");
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        if (r->na) {
            fprintf(f, "%s,%u,%zu,%u,,,,,,,,,,,%u,1\n", r->peer->name, r->c->threads,
                    r->c->max_size, r->c->hold, opt.rounds);
            continue;
        }
        double ra = ratio_to_lfpool(r);
        fprintf(f, "%s,%u,%zu,%u,%.3f,%.4f,", r->peer->name, r->c->threads, r->c->max_size,
                r->c->hold, r->ns, 1e3 / r->ns);
        if (!isnan(ra))
            fprintf(f, "%.4f", ra);
        fprintf(f, ",%.0f,%.0f,%.0f,%" PRIu64 ",%" PRIu64 ",%.3f,%u,%u,0\n", r->p50, r->p99,
                r->p999, r->errors, r->fails, r->fair, r->starved, r->nrounds);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int write_plot(const char *path)
{
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, "lfpool-bench: cannot run gnuplot: %s\n", strerror(errno));
        return -1;
    }
    /* series: one per peer and (max_size, hold) */
    struct series {
        const struct bench_peer *peer;
        size_t max_size;
        unsigned hold;
    } *ser = calloc(nresults, sizeof *ser);
    size_t nser = 0, ncombo = 0;
    struct {
        size_t m;
        unsigned h;
    } combos[64];
    for (size_t i = 0; i < nresults && ser; i++) {
        struct result *r = &results[i];
        bool seen = false;
        for (size_t k = 0; k < ncombo; k++)
            seen |= combos[k].m == r->c->max_size && combos[k].h == r->c->hold;
        if (!seen && ncombo < 64)
            combos[ncombo].m = r->c->max_size, combos[ncombo++].h = r->c->hold;
        seen = false;
        for (size_t k = 0; k < nser; k++)
            seen |= ser[k].peer == r->peer && ser[k].max_size == r->c->max_size &&
                    ser[k].hold == r->c->hold;
        if (!seen)
            ser[nser++] = (struct series){r->peer, r->c->max_size, r->c->hold};
    }
    char escaped[1024];
    size_t k = 0;
    for (const char *p = path; *p && k < sizeof escaped - 2; p++) {
        if (*p == '\'')
            escaped[k++] = '\'';
        escaped[k++] = *p;
    }
    escaped[k] = 0;
    fprintf(g, "set terminal pngcairo size 1000,600 noenhanced font ',10'\n");
    fprintf(g, "set output '%s'\n", escaped);
    fprintf(g, "set title 'lfpool-bench: get+put throughput, all threads (median of %u rounds)'\n",
            opt.rounds);
    fprintf(g, "set xlabel 'threads'\nset ylabel 'Mpairs/s'\nset logscale x 2\n"
               "set grid\nset key outside right top\nset yrange [0:*]\n");
    /* drop series without a point (n/a everywhere) */
    size_t kept = 0;
    for (size_t s = 0; s < nser; s++) {
        bool any = false;
        for (size_t i = 0; i < nresults; i++) {
            struct result *r = &results[i];
            any |= r->peer == ser[s].peer && r->c->max_size == ser[s].max_size &&
                   r->c->hold == ser[s].hold && !r->na && !isnan(r->ns);
        }
        if (any)
            ser[kept++] = ser[s];
    }
    nser = kept;
    if (nser == 0) {
        fprintf(stderr, "lfpool-bench: nothing to plot\n");
        free(ser);
        pclose(g);
        return -1;
    }
    for (size_t s = 0; s < nser; s++) {
        fprintf(g, "$d%zu << EOD\n", s);
        for (size_t i = 0; i < nresults; i++) {
            struct result *r = &results[i];
            if (r->peer != ser[s].peer || r->c->max_size != ser[s].max_size ||
                r->c->hold != ser[s].hold || r->na || isnan(r->ns))
                continue;
            fprintf(g, "%u %.4f\n", r->c->threads, 1e3 / r->ns);
        }
        fprintf(g, "EOD\n");
    }
    fprintf(g, "plot ");
    for (size_t s = 0; s < nser; s++) {
        char title[128];
        if (ncombo > 1 || ser[s].hold) {
            char ms[32];
            if (ser[s].max_size)
                snprintf(ms, sizeof ms, "max %zu", ser[s].max_size);
            else
                snprintf(ms, sizeof ms, "unbounded");
            snprintf(title, sizeof title, "%s (%s, hold %u)", ser[s].peer->name, ms, ser[s].hold);
        } else {
            snprintf(title, sizeof title, "%s", ser[s].peer->name);
        }
        fprintf(g, "%s$d%zu using 1:2 with linespoints pointtype 7 title '%s'", s ? ", " : "", s,
                title);
    }
    fprintf(g, "\n");
    free(ser);
    int st = pclose(g);
    if (st != 0) {
        fprintf(stderr, "lfpool-bench: gnuplot failed (status %d); is gnuplot installed?\n", st);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- main */

/* the default duration grows with the thread count (see --help) */

static double case_duration(const struct bcase *c)
{
    if (opt.duration <= 0 || opt.duration_set)
        return opt.duration;
    double floor_s = 0.006 * c->threads;
    return opt.duration > floor_s ? opt.duration : floor_s;
}

static void init_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        ncpus = 0;
        return;
    }
    cpu_list = calloc(CPU_SETSIZE, sizeof *cpu_list);
    if (!cpu_list)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            cpu_list[ncpus++] = c;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (opt.alloc_child)
        return bench_alloc_child(opt.alloc_child);
    init_cpus();
    if (opt.no_main)
        opt.ncases = 0;

    unsigned maxthreads = 1;
    for (size_t i = 0; i < opt.ncases; i++)
        if (opt.cases[i].threads > maxthreads)
            maxthreads = opt.cases[i].threads;
    workers = aligned_alloc(64, maxthreads * sizeof *workers);
    if (!workers) {
        perror("lfpool-bench");
        return 2;
    }
    for (unsigned i = 0; i < maxthreads; i++) {
        workers[i].s.v = malloc(SAMPLE_CAP * sizeof(uint32_t));
        if (!workers[i].s.v) {
            perror("lfpool-bench");
            return 2;
        }
    }

    cas_ns_start = host_cas_ns();

    /* results in display order: case by case, peers in the given order */
    nresults = opt.ncases * opt.npeers;
    results = calloc(nresults, sizeof *results);
    if (!results) {
        perror("lfpool-bench");
        return 2;
    }
    for (size_t c = 0; c < opt.ncases; c++)
        for (size_t p = 0; p < opt.npeers; p++) {
            struct result *r = &results[c * opt.npeers + p];
            r->peer = opt.peers[p];
            r->c = &opt.cases[c];
            r->rounds = calloc(opt.rounds, sizeof *r->rounds);
            if (!r->rounds) {
                perror("lfpool-bench");
                return 2;
            }
            if (r->peer->supports && !r->peer->supports(r->c->max_size, r->c->threads)) {
                r->na = true;
                snprintf(r->why, sizeof r->why, "%s",
                         r->peer->can_wait ? "unsupported"
                                           : "no blocking get: threads could starve");
            }
        }

    /* progress: announce when the run is long */
    size_t nmeasure = 0;
    for (size_t i = 0; i < nresults; i++)
        nmeasure += !results[i].na;
    double est = 0;
    for (size_t i = 0; i < nresults; i++)
        if (!results[i].na)
            est += opt.rounds * case_duration(results[i].c) + opt.warmup;
    if (opt.duration <= 0)
        est = NAN;
    bool tty = isatty(STDERR_FILENO);
    bool progress = !opt.quiet && (isnan(est) || est > 3.0);
    if (progress && !isnan(est))
        fprintf(stderr, "lfpool-bench: %zu peer/case pairs x %u rounds, about %.0f s\n", nmeasure,
                opt.rounds, est);
    uint64_t t0 = bench_now_ns();

    for (unsigned round = 0; round < opt.rounds; round++) {
        for (size_t c = 0; c < opt.ncases; c++) {
            for (size_t k = 0; k < opt.npeers; k++) {
                /* rotate the peer order every round */
                size_t p = (k + round) % opt.npeers;
                struct result *r = &results[c * opt.npeers + p];
                if (r->na)
                    continue;
                if (progress && (tty || (c == 0 && k == 0))) {
                    double el = (double)(bench_now_ns() - t0) * 1e-9;
                    if (tty)
                        fprintf(stderr, "\r\033[K[round %u/%u] %-6s %3u threads max %zu hold %u"
                                        "  (%.1f s)", round + 1, opt.rounds, r->peer->name,
                                r->c->threads, r->c->max_size, r->c->hold, el);
                    else
                        fprintf(stderr, "[round %u/%u] (%.1f s)\n", round + 1, opt.rounds, el);
                }
                if (!r->opened) {
                    int err = r->peer->open(&r->pool, r->c->max_size,
                                            r->c->max_size ? r->c->max_size
                                                           : (r->c->threads > 64 ? r->c->threads : 64));
                    if (err) {
                        r->na = true;
                        snprintf(r->why, sizeof r->why, "open failed: %s", strerror(err));
                        continue;
                    }
                    r->opened = true;
                    if (opt.warmup > 0)
                        (void)run_once(r->peer, r->pool, r->c, opt.warmup, 0, false);
                }
                r->rounds[r->nrounds++] =
                    run_once(r->peer, r->pool, r->c, case_duration(r->c), opt.ops, true);
            }
        }
    }
    if (progress) {
        fprintf(stderr, "%sdone in %.1f s\n", tty ? "\r\033[K" : "",
                (double)(bench_now_ns() - t0) * 1e-9);
    }
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        if (r->opened && is_lfpool_peer(r->peer) && contention_case(r->c)) {
            struct lfpool_stats st;
            r->has_wait = lfpool_histogram(r->pool, LFPOOL_HIST_WAIT, &r->wait) == 0 &&
                          lfpool_stats(r->pool, &st) == 0;
            r->nuses = r->has_wait ? st.nuses : 0;
        }
        if (r->opened && is_lfpool_peer(r->peer)) {
            struct lfpool_stats st;
            r->has_fences = lfpool_stats(r->pool, &st) == 0;
            r->fence_gets = st.nuses;
            r->fences = st.nfences;
            r->bias_fences = st.nbias_fences;
        }
        if (results[i].opened)
            results[i].peer->close(results[i].pool);
        if (!results[i].na)
            summarize(&results[i]);
    }

    cas_ns_end = host_cas_ns();
    printf("lfpool-bench: %u rounds of %s per peer and case, median shown; %d CPUs%s;\n"
           "  host: an uncontended CAS costs %.1f ns (before) / %.1f ns (after)\n",
           opt.rounds, opt.duration > 0 ? "a fixed duration" : "a fixed number of pairs", ncpus,
           opt.pin ? ", pinned" : "", cas_ns_start, cas_ns_end);
    if (opt.ncases) {
        print_table(stdout);
        print_fence_table(stdout);
        print_wait_tables(stdout);
    }
    fflush(stdout);

    int status = 0;
    double extra_s = opt.duration_set ? opt.duration : 0.1;
    if (opt.tight) {
        int r = bench_tight_run(extra_s, opt.rounds, opt.quiet, stdout);
        status = r > status ? r : status;
    }
    if (opt.alloc) {
        int r = bench_alloc_run("/proc/self/exe", extra_s, opt.rounds, opt.quiet, stdout);
        status = r > status ? r : status;
    }
    fflush(stdout);
    for (size_t i = 0; i < nresults; i++)
        if (!results[i].na && (results[i].errors || results[i].fails)) {
            fprintf(stderr, "lfpool-bench: %s: %" PRIu64 " double hand-outs, %" PRIu64
                            " failed gets/puts (threads %u, max_size %zu)\n",
                    results[i].peer->name, results[i].errors, results[i].fails,
                    results[i].c->threads, results[i].c->max_size);
            status = 1;
        }
    if (opt.json && write_json(opt.json) != 0)
        status = status ? status : 2;
    if (opt.csv && write_csv(opt.csv) != 0)
        status = status ? status : 2;
    if (opt.plot && write_plot(opt.plot) != 0)
        status = status ? status : 2;
    if (opt.plot && write_wait_plot(opt.plot) != 0)
        status = status ? status : 2;

    for (size_t i = 0; i < nresults; i++)
        free(results[i].rounds);
    free(results);
    for (unsigned i = 0; i < maxthreads; i++)
        free(workers[i].s.v);
    free(workers);
    free(cpu_list);
    free(opt.cases);
    free(opt.peers);
    return status;
}
