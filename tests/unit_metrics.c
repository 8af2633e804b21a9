/* unit_metrics.c - observability: wait/timeout counters, the wait, hold
 * and creation histograms (exact counts, bucket bounds), leak attribution
 * (call site, tracer text and age in the warn lines, "caller" in the JSON,
 * the late return's line) and the OpenMetrics text.  Time comes from the
 * injected clock; the only real waits are two bounded gets of 1 ms. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <unistd.h>

LFPOOL_TEST_FIXTURE(metrics, (void)0);

static void advance(double s)
{
    tclock_advance(&T, s);
}

static struct lfpool_histogram thist(lfpool *p, int which)
{
    struct lfpool_histogram h;
    cr_assert_eq(lfpool_histogram(p, which, &h), 0);
    uint64_t sum = 0;
    for (int i = 0; i < LFPOOL_HIST_BUCKETS; i++)
        sum += h.count[i];
    cr_assert_eq(sum, h.total, "total is the sum of the buckets");
    return h;
}

Test(metrics, bucket_bounds)
{
    cr_assert_float_eq(LFPOOL_HIST_LE(0), 0x1p-20, 0);
    cr_assert_float_eq(LFPOOL_HIST_LE(20), 1.0, 0);
    cr_assert_float_eq(LFPOOL_HIST_LE(26), 64.0, 0);
    cr_assert(isinf(LFPOOL_HIST_LE(LFPOOL_HIST_BUCKETS - 1)));
    struct lfpool_histogram h;
    cr_assert_eq(lfpool_histogram(NULL, LFPOOL_HIST_WAIT, &h), EINVAL);
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_histogram(P, LFPOOL_HIST_KINDS, &h), EINVAL);
    cr_assert_eq(lfpool_histogram(P, -1, &h), EINVAL);
    cr_assert_eq(lfpool_histogram(P, LFPOOL_HIST_HOLD, NULL), EINVAL);
}

/* ---- waits */

struct waiter {
    pthread_t th;
    int r;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    void *o;
    w->r = lfpool_get(P, &o, LFPOOL_FOREVER);
    if (w->r == 0)
        w->r = lfpool_ret(P, o);
    return NULL;
}

Test(metrics, waits_counted_once_each_with_their_time)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct waiter w[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&w[i].th, NULL, waiter_main, &w[i]);
    for (int i = 0; i < 10000 && tstats(P).waiting < 3; i++)
        usleep(1000);
    cr_assert_eq(tstats(P).waiting, 3, "the gauge counts the gets waiting now");
    cr_assert_eq(tstats(P).nwaits, 0, "a wait is counted when it ends");
    advance(1.5);
    cr_assert_eq(lfpool_ret(P, a), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(w[i].th, NULL);
        cr_assert_eq(w[i].r, 0);
    }
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.waiting, 0);
    cr_assert_eq(s.nwaits, 3);
    cr_assert_eq(s.ntimeouts, 0);
    cr_assert_float_eq(s.wait_time, 4.5, 1e-6);
    struct lfpool_histogram h = thist(P, LFPOOL_HIST_WAIT);
    cr_assert_eq(h.total, 3);
    cr_assert_eq(h.count[21], 3, "1 < 1.5 s <= 2: bucket 21");
    cr_assert_float_eq(h.sum, 4.5, 1e-6);
    cr_assert_eq(thist(P, LFPOOL_HIST_HOLD).total, 0, "hold_histogram is off");
}

Test(metrics, timeouts_are_waits_and_counted)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), EAGAIN);
    cr_assert_eq(tstats(P).nwaits, 0, "timeout 0 does not wait");
    cr_assert_eq(lfpool_get(P, &b, 0.001), ETIMEDOUT);
    cr_assert_eq(lfpool_get(P, &b, 0.001), ETIMEDOUT);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nwaits, 2);
    cr_assert_eq(s.ntimeouts, 2);
    cr_assert_eq(thist(P, LFPOOL_HIST_WAIT).total, 2);
    cr_assert_eq(lfpool_ret(P, a), 0);
}

/* ---- creation */

/* durations on and around bucket bounds: a clock of exact doubles (the
 * fixture's counts whole microseconds) */
static const double create_secs[] = {0x1p-20, 1.5, 64.0, 65.0, 0.5};
static _Atomic int create_calls;
static _Atomic double create_now = 1000.0;

static double create_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&create_now);
}

static void *slow_fun(void *ctx, uint64_t n)
{
    int i = atomic_fetch_add(&create_calls, 1);
    atomic_store(&create_now, atomic_load(&create_now) + create_secs[i % 5]);
    if (i % 5 == 4) {
        errno = ECONNREFUSED;
        return NULL;
    }
    return tfun(ctx, n);
}

Test(metrics, create_time_per_call_of_fun)
{
    atomic_store(&create_calls, 0);
    C.fun = slow_fun;
    C.clock = create_clock;
    C.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[5];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    cr_assert_eq(lfpool_get(P, &o[4], 0), ECONNREFUSED);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreating, 5);
    cr_assert_eq(s.ncreated, 4);
    cr_assert_float_eq(s.create_time, 0x1p-20 + 1.5 + 64 + 65 + 0.5, 1e-6);
    struct lfpool_histogram h = thist(P, LFPOOL_HIST_CREATE);
    cr_assert_eq(h.total, 5, "every call of fun, the failed one too");
    cr_assert_eq(h.count[0], 1, "2^-20 s is bucket 0's bound, included");
    cr_assert_eq(h.count[21], 1, "1.5 s");
    cr_assert_eq(h.count[26], 1, "64 s is bucket 26's bound, included");
    cr_assert_eq(h.count[27], 1, "65 s: above 64");
    cr_assert_eq(h.count[19], 1, "0.5 s is bucket 19's bound, included");
    for (int i = 0; i < 4; i++)
        lfpool_ret(P, o[i]);
}

/* ---- hold */

static size_t count_of(const char *hay, const char *needle);

Test(metrics, hold_recorded_per_return_from_the_records_stamps)
{
    C.hold_histogram = true;
    C.max_using_delay_kill = 100;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    advance(3);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    advance(0.75);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    /* a killed object's late return ends its hand-out too (ESTALE) */
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    advance(101);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert_eq(lfpool_ret(P, b), ESTALE);
    cr_assert_eq(lfpool_ret(P, b), ENOENT, "a refused return is no hold");
    /* and so does a broken one */
    void *c;
    cr_assert_eq(lfpool_get(P, &c, 0), 0);
    advance(2.5);
    cr_assert_eq(lfpool_ret_broken(P, c), 0);
    struct lfpool_histogram hh = thist(P, LFPOOL_HIST_HOLD);
    cr_assert_eq(hh.total, 5);
    cr_assert_eq(hh.count[22], 2, "3 s and 2.5 s: 2 < v <= 4");
    cr_assert_eq(hh.count[0], 1, "0 s");
    cr_assert_eq(hh.count[20], 1, "0.75 s: 0.5 < 0.75 <= 1");
    cr_assert_eq(hh.count[27], 1, "101 s");
    cr_assert_float_eq(hh.sum, 3 + 0.75 + 101 + 2.5, 1e-6);
}

static void *hold_worker(void *arg)
{
    for (int i = 0; i < 20000; i++) {
        void *o;
        if (lfpool_get(P, &o, LFPOOL_FOREVER) != 0 || lfpool_ret(P, o) != 0)
            *(int *)arg = 1;
        if (i % 1000 == 0)
            sched_yield(); /* migrate now and then */
    }
    return NULL;
}

Test(metrics, hold_count_exact_on_the_fast_path_across_threads)
{
    lfpool_config_init(&C);
    C.fun = tfun;
    C.ctx = &T;
    C.hold_histogram = true;
    C.max_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    pthread_t th[3];
    int bad[3] = {0};
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, hold_worker, &bad[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(bad[i], 0);
    }
    lfpool_handle h;
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nuses, 60001);
    cr_assert_eq(thist(P, LFPOOL_HIST_HOLD).total, 60001, "one hold per return, none lost");
}

/* Bucket 0 of the hold histogram is kept in the records while their
 * objects live (a hold of 0 s on ret's inline path), as their use counts
 * are: closing objects must not lose the holds or uses they made, a record
 * reused for a new object must not bring old ones, and a reader racing
 * with the closings must never see a counter go down.  Two threads get and return (pointers, handles) and
 * evict the available objects now and then; this thread reads. */
static _Atomic int evict_running;
/* thousands of objects: plain ones, freed by their closer (tfun keeps 4096) */
static void *plain_fun(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    return malloc(16);
}
static int plain_close(void *ctx, void *o)
{
    (void)ctx;
    free(o);
    return 0;
}
static void *evict_worker(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 20000; i += 8) {
        lfpool_handle h[8];
        void *o[8];
        /* eight at a time: every record holds counts when it is closed */
        for (int k = 0; k < 8; k++)
            if ((*bad & 2) ? lfpool_get_handle(P, &h[k], 1) : lfpool_get(P, &o[k], 1))
                *bad |= 1;
        for (int k = 0; k < 8; k++)
            if ((*bad & 2) ? lfpool_ret_handle(P, &h[k]) : lfpool_ret(P, o[k]))
                *bad |= 1;
        if (i % 64 == 0 && lfpool_evict(P, LFPOOL_EVICT_IDLE) != 0)
            *bad |= 1;
    }
    atomic_fetch_sub(&evict_running, 1);
    return NULL;
}

Test(metrics, hold_counts_outlive_their_objects)
{
    lfpool_config_init(&C);
    C.fun = plain_fun;
    C.closer = plain_close;
    C.hold_histogram = true;
    C.max_size = 32;
    C.min_size = 32; /* each eviction closes what is available and refills */
    cr_assert_eq(lfpool_new(&P, &C), 0);
    pthread_t th[2];
    int bad[2] = {0, 2}; /* bit 1: handles */
    atomic_store(&evict_running, 2);
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, evict_worker, &bad[i]);
    uint64_t last_total = 0, last_zero = 0, last_uses = 0, reads = 0;
    while (atomic_load(&evict_running) > 0) {
        struct lfpool_histogram h = thist(P, LFPOOL_HIST_HOLD);
        cr_assert_geq(h.total, last_total, "a hold seen before was lost");
        cr_assert_geq(h.count[0], last_zero, "a hold of 0 s seen before was lost");
        /* and nuses, a counter too (uses of closed objects: dead_uses) */
        uint64_t uses = tstats(P).nuses;
        cr_assert_geq(uses, last_uses, "nuses went down: %llu after %llu",
                      (unsigned long long)uses, (unsigned long long)last_uses);
        last_total = h.total;
        last_zero = h.count[0];
        last_uses = uses;
        reads++;
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(bad[i] & 1, 0);
    }
    struct lfpool_stats s = tstats(P);
    cr_assert_gt(s.nevicted, 0, "objects were closed meanwhile");
    cr_assert_gt(s.ncreated, 32, "and new ones made, on reused records");
    cr_assert_eq(s.nuses, 40000);
    struct lfpool_histogram h = thist(P, LFPOOL_HIST_HOLD);
    cr_assert_eq(h.total, 40000, "one hold per return, none lost to a closed object");
    cr_assert_gt(h.count[0], 0, "short holds read 0 s");
    cr_assert_gt(reads, 0);
}

/* A pool on the real clock with the fast paths (no injected clock, no
 * getter or retter) whose housekeeper warns about hand-outs out 20 ms. */
static void real_clock_pool(bool hold)
{
    C.clock = NULL;
    C.clock_ctx = NULL;
    C.getter = NULL;
    C.retter = NULL;
    C.hold_histogram = hold;
    C.max_using_delay = 0.02;
    C.max_size = 4;
    cr_assert_eq(lfpool_new(&P, &C), 0);
}

/* Wait (2 s at most) until the housekeeper has warned about two hand-outs. */
static void warned_two(void)
{
    for (int i = 0; i < 400 && !strstr(T.log.text, "long running objects: 2"); i++)
        usleep(5000);
    cr_assert(strstr(T.log.text, "long running objects: 2") != NULL, "%s", T.log.text);
}

/* Where the log's text ends now (under the capture's lock: the housekeeper
 * may be writing). */
static size_t log_mark(void)
{
    pthread_mutex_lock(&T.log.mu);
    size_t n = strlen(T.log.text);
    pthread_mutex_unlock(&T.log.mu);
    return n;
}

/* After `mark`, every return that logged "returned after a warning" ended a
 * hand-out the housekeeper warned about after `mark` too: the lines such a
 * return logs are at most the hand-outs the warnings named ("long running
 * objects: N").  On a quiet host both are 0; on a loaded one (valgrind on a
 * busy machine) a short hold of the loop may itself last the 20 ms and be
 * warned about, then its return logs the line, rightly.  A round still in
 * flight logs its warning after its walk: lfpool_housekeep waits for it
 * (rounds are serialised) and then makes one of its own (nothing is out). */
static void warned_returns_were_warned(size_t mark)
{
    cr_assert_eq(lfpool_housekeep(P), 0);
    pthread_mutex_lock(&T.log.mu);
    const char *after = T.log.text + mark;
    size_t rets = count_of(after, "returned after a warning");
    unsigned long long named = 0;
    const char *needle = "long running objects: ";
    for (const char *s = after; (s = strstr(s, needle)) != NULL; s++)
        named += strtoull(s + strlen(needle), NULL, 10);
    pthread_mutex_unlock(&T.log.mu);
    cr_assert_leq(rets, named, "%zu warned returns, %llu hand-outs warned about", rets, named);
}

/* Returns observed on the real clock take the inline path's recording
 * (per-CPU caches on; returns observed: the admission word's observe bit):
 * holds of 0 s in one add, longer holds and warned hand-outs out of line.
 * Real holds of tens of milliseconds, the housekeeper's own rounds. */
Test(metrics, hold_on_the_real_clock_long_holds_and_warned_returns)
{
    real_clock_pool(true);
    void *a, *b;
    lfpool_handle h;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    cr_assert_eq(lfpool_ret(P, b), 0);
    warned_two(); /* a and h */
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    cr_assert_eq(count_of(T.log.text, "returned after a warning"), 2, "%s", T.log.text);
    struct lfpool_histogram hh = thist(P, LFPOOL_HIST_HOLD);
    cr_assert_eq(hh.total, 3);
    uint64_t long_holds = 0;
    for (int i = 14; i < LFPOOL_HIST_BUCKETS; i++) /* above 2^-6 s = 15.6 ms */
        long_holds += hh.count[i];
    cr_assert_eq(long_holds, 2, "a and h were held at least 20 ms");
    cr_assert_geq(hh.sum, 0.04);
    /* and the many short holds after them, one each; no more warned
     * returns than warnings about them */
    size_t mark = log_mark();
    for (int i = 0; i < 5000; i++) {
        cr_assert_eq(lfpool_get(P, &a, 0), 0);
        cr_assert_eq(lfpool_ret(P, a), 0);
        cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
        cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    }
    cr_assert_eq(thist(P, LFPOOL_HIST_HOLD).total, 10003);
    warned_returns_were_warned(mark);
}

/* Without the hold histogram, warned hand-outs out switch returns to the
 * observed steps (the admission word's observe bit): their returns log the
 * line, on the real clock, and nothing is recorded. */
Test(metrics, warned_returns_on_the_real_clock_without_hold_histogram)
{
    real_clock_pool(false);
    void *a;
    lfpool_handle h;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_get_handle(P, &h, 0), 0);
    warned_two();
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    cr_assert_eq(count_of(T.log.text, "returned after a warning"), 2, "%s", T.log.text);
    size_t mark = log_mark();
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(lfpool_get(P, &a, 0), 0);
        cr_assert_eq(lfpool_ret(P, a), 0);
    }
    warned_returns_were_warned(mark);
    cr_assert_eq(thist(P, LFPOOL_HIST_HOLD).total, 0);
}

Test(metrics, hold_off_records_nothing)
{
    lfpool_config_init(&C);
    C.fun = tfun;
    C.ctx = &T;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    int bad = 0;
    hold_worker(&bad);
    cr_assert_eq(bad, 0);
    cr_assert_eq(thist(P, LFPOOL_HIST_HOLD).total, 0);
}

/* ---- leak attribution */

static int ttracer(void *ctx, void *obj, char *buf, size_t size)
{
    (void)ctx;
    return snprintf(buf, size, "conn-%llu", (unsigned long long)((struct tobj *)obj)->n);
}

__attribute__((noinline)) int leaky_get_site(lfpool *p, void **o)
{
    int r = lfpool_get(p, o, 0);
    __asm__ __volatile__("" ::: "memory"); /* not a tail call: the site is here */
    return r;
}

__attribute__((noinline)) int handle_get_site(lfpool *p, lfpool_handle *h)
{
    int r = lfpool_get_handle(p, h, 0);
    __asm__ __volatile__("" ::: "memory");
    return r;
}

__attribute__((noinline)) int bulk_get_site(lfpool *p, lfpool_handle *hs, size_t n)
{
    int r = lfpool_get_bulk(p, hs, n, 0);
    __asm__ __volatile__("" ::: "memory");
    return r;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
        n++;
    return n;
}

Test(metrics, warn_lines_name_tracer_age_and_call_site)
{
    C.max_using_delay = 5;
    C.tracer = ttracer;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a, *b;
    cr_assert_eq(leaky_get_site(P, &a), 0);
    cr_assert_eq(lfpool_get(P, &b, 0), 0);
    advance(7);
    cr_assert_eq(lfpool_housekeep(P), 0);
    char want[64];
    snprintf(want, sizeof want, "conn-%llu", (unsigned long long)((struct tobj *)a)->n);
    cr_assert(strstr(T.log.text, "long running objects: 2") != NULL, "%s", T.log.text);
    cr_assert(strstr(T.log.text, want) != NULL, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "held 7") != NULL, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "leaky_get_site+0x") != NULL, "%s", T.log.text);

    /* the JSON's using entries carry the call site */
    char *js = lfpool_stats_json(P);
    json_error_t err;
    json_t *doc = json_loads(js, 0, &err);
    cr_assert_not_null(doc, "%s", err.text);
    json_t *using = json_object_get(doc, "using");
    cr_assert_eq(json_array_size(using), 2);
    int named = 0;
    for (size_t i = 0; i < 2; i++) {
        const char *c = json_string_value(json_object_get(json_array_get(using, i), "caller"));
        cr_assert_not_null(c);
        named += strstr(c, "leaky_get_site+0x") != NULL;
    }
    cr_assert_eq(named, 1);
    json_decref(doc);
    free(js);

    /* the late return says once how long it was held */
    advance(3);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(count_of(T.log.text, "returned after"), 1, "%s", T.log.text);
    cr_assert(strstr(T.log.text, "held for 10") != NULL, "%s", T.log.text);
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(count_of(T.log.text, "returned after"), 1, "a later hand-out is not warned");
    cr_assert_eq(lfpool_ret(P, b), 0);
    cr_assert_eq(count_of(T.log.text, "returned after"), 2, "%s", T.log.text);
}

Test(metrics, warn_lines_are_capped_per_round)
{
    C.max_using_delay = 5;
    C.tracer = ttracer;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o[12];
    for (int i = 0; i < 12; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    advance(6);
    cr_assert_eq(lfpool_housekeep(P), 0);
    cr_assert(strstr(T.log.text, "long running objects: 12") != NULL, "%s", T.log.text);
    size_t lines = count_of(T.log.text, "long running object ");
    cr_assert(lines >= 1 && lines <= 5, "%zu lines: %s", lines, T.log.text);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(lfpool_ret(P, o[i]), 0);
}

Test(metrics, fast_path_gets_record_their_call_site)
{
    lfpool_config_init(&C);
    C.fun = tfun;
    C.ctx = &T;
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    lfpool_handle h;
    for (int round = 0; round < 2; round++) { /* the second from the caches */
        cr_assert_eq(leaky_get_site(P, &a), 0);
        cr_assert_eq(handle_get_site(P, &h), 0);
        char *js = lfpool_stats_json(P);
        cr_assert(strstr(js, "\"caller\":\"leaky_get_site+0x") != NULL, "%s", js);
        cr_assert(strstr(js, "\"caller\":\"handle_get_site+0x") != NULL, "%s", js);
        free(js);
        cr_assert_eq(lfpool_ret(P, a), 0);
        cr_assert_eq(lfpool_ret_handle(P, &h), 0);
    }
}

/* A bulk get stores each record's get time and call site with one 16-byte
 * store of the pair (the run from its CPU's cache, the second round): each
 * of the 32 objects out names the bulk call's site, was got after its last
 * return (a pair stored the wrong way round would show the site's address
 * as a time, and a time as the site), and counts its two uses. */
Test(metrics, bulk_gets_record_each_objects_call_site_and_times)
{
    lfpool_config_init(&C);
    C.fun = tfun;
    C.ctx = &T;
    C.min_size = 32;
    C.max_size = 32;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    lfpool_handle hs[32];
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(bulk_get_site(P, hs, 32), 0);
        if (round == 0)
            cr_assert_eq(lfpool_ret_bulk(P, hs, 32), 0); /* a run in this CPU's cache */
    }
    char *js = lfpool_stats_json(P);
    json_error_t err;
    json_t *doc = json_loads(js, 0, &err);
    cr_assert_not_null(doc, "%s", err.text);
    json_t *using = json_object_get(doc, "using");
    cr_assert_eq(json_array_size(using), 32, "%s", js);
    for (size_t i = 0; i < 32; i++) {
        json_t *o = json_array_get(using, i);
        const char *c = json_string_value(json_object_get(o, "caller"));
        cr_assert(c && strstr(c, "bulk_get_site+0x") == c, "object %zu: caller %s", i, c);
        cr_assert_eq(json_integer_value(json_object_get(o, "uses")), 2, "%s", js);
        double got = json_number_value(json_object_get(o, "last_get"));
        double ret = json_number_value(json_object_get(o, "last_ret"));
        /* seconds before the JSON's now: the pool's coarse clock is at most
         * a housekeeping tick behind it */
        cr_assert(isfinite(got) && got <= 0 && got > -5, "object %zu: last_get %g", i, got);
        cr_assert(got >= ret, "object %zu: got at %g, returned at %g", i, got, ret);
    }
    json_decref(doc);
    free(js);
    cr_assert_eq(lfpool_ret_bulk(P, hs, 32), 0);
    cr_assert_eq(tstats(P).nuses, 64);
}

/* ---- OpenMetrics (the real parser runs in tests/tools) */

Test(metrics, openmetrics_structure_and_escaping)
{
    lfpool *q;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    cr_assert_eq(lfpool_new(&q, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_ret(P, a), 0);
    lfpool *pools[] = {P, q};
    const char *names[] = {"a", "we\"ird\\name\n"};
    char *t = lfpool_stats_openmetrics(pools, names, 2);
    cr_assert_not_null(t);
    cr_assert(strstr(t, "lfpool_nuses_total{pool=\"a\"} 1\n") != NULL, "%s", t);
    cr_assert(strstr(t, "lfpool_nuses_total{pool=\"we\\\"ird\\\\name\\n\"} 0\n") != NULL, "%s", t);
    cr_assert_eq(count_of(t, "# TYPE lfpool_nuses counter\n"), 1);
    cr_assert_eq(count_of(t, "# TYPE lfpool_wait_seconds histogram\n"), 1);
    cr_assert(strstr(t, "lfpool_wait_seconds_bucket{pool=\"a\",le=\"+Inf\"} 0\n") != NULL, "%s", t);
    size_t len = strlen(t);
    cr_assert(len > 6 && strcmp(t + len - 6, "# EOF\n") == 0);
    free(t);
    t = lfpool_stats_openmetrics(pools, NULL, 1); /* names: the ids */
    char want[64];
    snprintf(want, sizeof want, "lfpool_nuses_total{pool=\"%llu\"} 1\n",
             (unsigned long long)tstats(P).id);
    cr_assert(strstr(t, want) != NULL, "%s", t);
    free(t);
    lfpool *bad[] = {P, NULL};
    errno = 0;
    cr_assert_null(lfpool_stats_openmetrics(bad, NULL, 2));
    cr_assert_eq(errno, EINVAL);
    t = lfpool_stats_openmetrics(NULL, NULL, 0);
    cr_assert_str_eq(strstr(t, "# EOF"), "# EOF\n");
    free(t);
    lfpool_free(q);
}
