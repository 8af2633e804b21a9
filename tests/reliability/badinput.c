/*
 * badinput.c - bad input through the public API (issue 4, part 2).
 *
 * Every bad call is followed by `intact()`: the counters of lfpool_stats()
 * did not move, and a full set of max_size gets still succeeds (one more
 * gives EAGAIN), so no bad input lost an object or a capacity token.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rel_common.h"

#include <criterion/criterion.h>

#ifdef REL_HAVE_JANSSON
#include <jansson.h>
#endif

#define MAX 4

static struct rel_world W;
static struct lfx_log L;
static struct lfx_clock C;
static lfpool *P;
static lfpool_config CFG;

static void setup_pool(void)
{
    rel_world_init(&W, 4096);
    lfx_log_init(&L, "REL_LOG");
    atomic_store(&C.us, 1000000);
    rel_config(&CFG, &W, &L, &C);
    CFG.max_size = MAX;
    CFG.min_size = 1;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
}

static void teardown_pool(void)
{
    lfpool_free(P);
    P = NULL;
    cr_expect_eq(atomic_load(&W.hk.n.closed), atomic_load(&W.hk.n.created),
                 "closer calls %llu != created %llu",
                 (unsigned long long)atomic_load(&W.hk.n.closed),
                 (unsigned long long)atomic_load(&W.hk.n.created));
    cr_expect_eq(atomic_load(&W.closer_twice), 0);
    cr_expect_eq(atomic_load(&W.closer_foreign), 0, "closer called on a foreign pointer");
    rel_world_fini(&W);
}

static struct lfpool_stats snap(void)
{
    struct lfpool_stats st;
    cr_assert_eq(lfpool_stats(P, &st), 0);
    return st;
}

/* the counters did not change since `before`, and the pool still serves
 * exactly max_size objects; returns the new snapshot */
static struct lfpool_stats intact_(const struct lfpool_stats *before, const char *what)
{
    struct lfpool_stats now = snap();
    cr_expect(rel_stats_same(before, &now),
              "%s changed the pool: nobjs %llu->%llu navail %llu->%llu nusing %llu->%llu "
              "ncreated %llu->%llu nuses %llu->%llu ndestroys %llu->%llu sem %lld->%lld",
              what, (unsigned long long)before->nobjs, (unsigned long long)now.nobjs,
              (unsigned long long)before->navail, (unsigned long long)now.navail,
              (unsigned long long)before->nusing, (unsigned long long)now.nusing,
              (unsigned long long)before->ncreated, (unsigned long long)now.ncreated,
              (unsigned long long)before->nuses, (unsigned long long)now.nuses,
              (unsigned long long)before->ndestroys, (unsigned long long)now.ndestroys,
              (long long)before->sem_value, (long long)now.sem_value);
    if (!now.shutdown) {
        size_t want = CFG.max_size - now.nusing;
        void *objs[64] = {0};
        for (size_t i = 0; i < want && i < 64; i++)
            cr_expect_eq(lfpool_get(P, &objs[i], 0), 0, "%s: get %zu of %zu failed", what, i + 1,
                         want);
        void *extra = NULL;
        int rc = lfpool_get(P, &extra, 0);
        cr_expect_eq(rc, EAGAIN, "%s: get beyond max_size gave %d", what, rc);
        if (rc == 0)
            lfpool_ret(P, extra);
        for (size_t i = 0; i < want && i < 64; i++)
            if (objs[i])
                cr_expect_eq(lfpool_ret(P, objs[i]), 0);
    }
    return snap();
}
#define intact(b, what) intact_((b), (what))

/* a first full round of gets (creates up to max_size objects) */
static struct lfpool_stats warm(void)
{
    struct lfpool_stats st = snap();
    intact_(&st, "warm-up");
    return snap();
}

TestSuite(bad, .init = setup_pool, .fini = teardown_pool, .timeout = 30);

Test(bad, null_pool_everywhere)
{
    struct lfpool_stats st = warm(), s2;
    void *o = (void *)&st;
    cr_expect_eq(lfpool_get(NULL, &o, 0), EINVAL);
    cr_expect_eq(o, (void *)&st, "get(NULL pool) wrote *obj");
    cr_expect_eq(lfpool_get(NULL, &o, LFPOOL_DEFAULT), EINVAL);
    cr_expect_eq(lfpool_ret(NULL, o), EINVAL);
    cr_expect_eq(lfpool_ret(NULL, NULL), EINVAL);
    cr_expect_eq(lfpool_stats(NULL, &s2), EINVAL);
    cr_expect_eq(lfpool_stats(NULL, NULL), EINVAL);
    cr_expect_eq(lfpool_housekeep(NULL), EINVAL);
    cr_expect_eq(lfpool_shutdown(NULL, 0), EINVAL);
    errno = 0;
    cr_expect_null(lfpool_stats_json(NULL));
    cr_expect_eq(errno, EINVAL);
    lfpool_free(NULL); /* no-op */
    /* NULL out-parameters on a good pool */
    cr_expect_eq(lfpool_get(P, NULL, 0), EINVAL);
    cr_expect_eq(lfpool_stats(P, NULL), EINVAL);
    st = intact(&st, "NULL pool / NULL out-parameter");
    cr_expect_not_null(lfpool_strerror(EINVAL));
    cr_expect_not_null(lfpool_strerror(0));
    cr_expect_not_null(lfpool_strerror(-1));
    cr_expect_not_null(lfpool_strerror(123456));
    cr_expect_not_null(lfpool_strerror(ESTALE));
}

Test(bad, ret_null_object)
{
    struct lfpool_stats st = warm();
    st = snap();
    uint64_t retters = atomic_load(&W.hk.n.retted);
    cr_expect_eq(lfpool_ret(P, NULL), EINVAL);
    cr_expect_eq(atomic_load(&W.hk.n.retted), retters, "retter called on NULL");
    intact(&st, "ret(NULL)");
}

Test(bad, ret_foreign_pointers)
{
    struct lfpool_stats st = warm();
    uint64_t retters = atomic_load(&W.hk.n.retted), tracers = atomic_load(&W.hk.n.traced);
    uint64_t logs = lfx_log_total(&L);
    int local;
    void *heap = malloc(32);
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    st = snap();
    void *foreign[] = {
        &local,                              /* the stack */
        heap,                                /* the heap */
        &W.objs[W.cap - 1],                  /* one of "our" objects, never created */
        (char *)held + 1,                    /* an interior pointer */
        (void *)(uintptr_t)0x10,             /* a small integer */
        (void *)(uintptr_t)UINTPTR_MAX,      /* the top of the address space */
        (void *)&lfpool_get,                 /* code */
    };
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++) {
        cr_expect_eq(lfpool_ret(P, foreign[i]), ENOENT, "foreign pointer %zu", i);
        st = intact(&st, "ret(foreign)");
        /* intact() skipped the held one; keep it out */
    }
    /* each intact() got and returned the MAX-1 objects not held: 7 * 3 retters */
    cr_expect_eq(atomic_load(&W.hk.n.retted) - retters, (uint64_t)(MAX - 1) * 7,
                 "retter called on a foreign pointer");
    cr_expect_eq(atomic_load(&W.hk.n.traced), tracers, "tracer called on a foreign pointer");
    cr_expect_gt(lfx_log_total(&L), logs, "foreign ret not logged");
    cr_expect_eq(lfpool_ret(P, held), 0);
    free(heap);
}

Test(bad, ret_twice)
{
    struct lfpool_stats st = warm();
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0), 0);
    cr_expect_eq(lfpool_ret(P, o), 0);
    st = snap();
    uint64_t retters = atomic_load(&W.hk.n.retted);
    cr_expect_eq(lfpool_ret(P, o), ENOENT, "second ret");
    cr_expect_eq(lfpool_ret(P, o), ENOENT, "third ret");
    cr_expect_eq(atomic_load(&W.hk.n.retted), retters, "retter called on a double ret");
    intact(&st, "double ret");
}

Test(bad, ret_to_the_wrong_pool)
{
    static struct rel_world w2;
    rel_world_init(&w2, 64);
    lfpool_config c2;
    rel_config(&c2, &w2, &L, NULL);
    c2.max_size = 2;
    lfpool *p2;
    cr_assert_eq(lfpool_new(&p2, &c2), 0);
    struct lfpool_stats st = warm();
    void *o2;
    cr_assert_eq(lfpool_get(p2, &o2, 0), 0);
    cr_expect_eq(lfpool_ret(P, o2), ENOENT, "ret to the wrong pool");
    st = intact(&st, "ret to the wrong pool");
    cr_expect_eq(lfpool_ret(p2, o2), 0, "the right pool still has it out");
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0), 0);
    cr_expect_eq(lfpool_ret(p2, o), ENOENT);
    cr_expect_eq(lfpool_ret(P, o), 0);
    lfpool_free(p2);
    cr_expect_eq(atomic_load(&w2.hk.n.closed), atomic_load(&w2.hk.n.created));
    rel_world_fini(&w2);
}

Test(bad, get_bad_timeouts)
{
    struct lfpool_stats st = warm();
    const double bad[] = {NAN, -NAN, -0.5, -2.0, -1e-9, -INFINITY, -1e300};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        void *o = &st;
        cr_expect_eq(lfpool_get(P, &o, bad[i]), EINVAL, "timeout %g", bad[i]);
        st = intact(&st, "get(bad timeout)");
    }
    /* the good ones */
    void *o;
    cr_expect_eq(lfpool_get(P, &o, LFPOOL_DEFAULT), 0);
    cr_expect_eq(lfpool_ret(P, o), 0);
    cr_expect_eq(lfpool_get(P, &o, LFPOOL_FOREVER), 0);
    cr_expect_eq(lfpool_ret(P, o), 0);
    cr_expect_eq(lfpool_get(P, &o, 1e300), 0);
    cr_expect_eq(lfpool_ret(P, o), 0);
    cr_expect_eq(lfpool_get(P, &o, 1e-300), 0);
    cr_expect_eq(lfpool_ret(P, o), 0);
    /* a bad shutdown delay */
    st = snap();
    cr_expect_eq(lfpool_shutdown(P, NAN), EINVAL);
    cr_expect_eq(lfpool_shutdown(P, -1.0), EINVAL);
    intact(&st, "shutdown(bad delay)");
}

Test(bad, after_shutdown)
{
    struct lfpool_stats st = warm();
    void *out;
    cr_assert_eq(lfpool_get(P, &out, 0), 0);
    struct rel_obj *o = out;
    cr_expect_eq(lfpool_shutdown(P, 1.0), 0);
    cr_expect_eq(lfpool_shutdown(P, 1.0), 0, "second shutdown");
    void *x = NULL;
    cr_expect_eq(lfpool_get(P, &x, 0), ESHUTDOWN);
    cr_expect_eq(lfpool_get(P, &x, LFPOOL_FOREVER), ESHUTDOWN);
    cr_expect_null(x);
    cr_expect_eq(lfpool_housekeep(P), ESHUTDOWN);
    cr_expect_eq(atomic_load(&o->closed), 0, "object out closed by shutdown");
    cr_expect_eq(lfpool_ret(P, out), 0, "ret after shutdown");
    cr_expect_eq(atomic_load(&o->closed), 1, "object returned after shutdown not closed");
    cr_expect_eq(lfpool_ret(P, out), ENOENT, "second ret after shutdown");
    int local;
    cr_expect_eq(lfpool_ret(P, &local), ENOENT, "foreign ret after shutdown");
    cr_expect_eq(lfpool_ret(P, NULL), EINVAL);
    st = snap();
    cr_expect(st.shutdown);
    cr_expect_eq(st.nusing, 0);
    cr_expect_eq(st.nobjs, 0, "objects left after shutdown: %llu", (unsigned long long)st.nobjs);
    cr_expect_eq(atomic_load(&W.hk.n.closed), atomic_load(&W.hk.n.created),
                 "shutdown did not close everything");
    char *js = lfpool_stats_json(P);
    cr_expect_not_null(js, "stats_json after shutdown");
    free(js);
}

Test(bad, ret_after_kill_defer)
{
    lfpool_free(P);
    CFG.max_using_delay_kill = 5;
    CFG.delay = 1000;
    CFG.kill_mode = LFPOOL_KILL_DEFER;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0), 0);
    lfx_clock_advance(&C, 6);
    cr_assert_eq(lfpool_housekeep(P), 0);
    struct lfpool_stats st = snap();
    cr_expect_eq(st.nkilled, 1);
    cr_expect_eq(st.nusing, 0, "killed object still counted in nusing");
    cr_expect_eq(st.sem_value, MAX, "kill did not release the token");
    cr_expect_eq(((struct rel_obj *)o)->closed, 0, "DEFER closed the object while held");
    st = intact(&st, "kill (defer)");
    cr_expect_eq(lfpool_ret(P, o), ESTALE);
    cr_expect_eq(((struct rel_obj *)o)->closed, 1, "ESTALE ret did not close");
    cr_expect_eq(lfpool_ret(P, o), ENOENT, "second ret of a killed object");
    st.ndestroys = snap().ndestroys; /* the closer ran in ret */
    intact(&st, "ret after kill (defer)");
}

Test(bad, ret_after_kill_close)
{
    lfpool_free(P);
    CFG.max_using_delay_kill = 5;
    CFG.delay = 1000;
    CFG.kill_mode = LFPOOL_KILL_CLOSE;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    void *o;
    cr_assert_eq(lfpool_get(P, &o, 0), 0);
    lfx_clock_advance(&C, 6);
    cr_assert_eq(lfpool_housekeep(P), 0);
    lfpool_housekeep(P); /* a grace period later the closer has run */
    struct lfpool_stats st = snap();
    cr_expect_eq(st.nkilled, 1);
    cr_expect_eq(st.sem_value, MAX);
    cr_expect_eq(((struct rel_obj *)o)->closed, 1, "CLOSE mode did not close the killed object");
    st = intact(&st, "kill (close)");
    uint64_t retters = atomic_load(&W.hk.n.retted), tracers = atomic_load(&W.hk.n.traced);
    cr_expect_eq(lfpool_ret(P, o), ENOENT);
    cr_expect_eq(lfpool_ret(P, o), ENOENT);
    cr_expect_eq(atomic_load(&W.hk.n.retted), retters, "retter ran on a closed object");
    cr_expect_eq(atomic_load(&W.hk.n.traced), tracers, "tracer ran on a closed object");
    intact(&st, "ret after kill (close)");
}

static void *dup_target;
static void *dup_fun(void *ctx, uint64_t n)
{
    if (dup_target)
        return dup_target;
    return rel_fun(ctx, n);
}

Test(bad, fun_returns_a_held_pointer)
{
    lfpool_free(P);
    CFG.fun = dup_fun;
    CFG.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    struct lfpool_stats st = snap();
    dup_target = a; /* fun now answers with the pointer that is out */
    void *b = NULL;
    cr_expect_eq(lfpool_get(P, &b, 0), EEXIST);
    struct lfpool_stats s2 = snap();
    cr_expect_eq(s2.ncreating, st.ncreating + 1, "the attempt counts in ncreating");
    cr_expect_eq(s2.ncreated, st.ncreated, "a duplicate counted as created");
    cr_expect_eq(((struct rel_obj *)a)->closed, 0, "closer ran on the duplicate");
    cr_expect_eq(s2.sem_value, st.sem_value, "EEXIST leaked a token");
    /* an available one too */
    cr_expect_eq(lfpool_ret(P, a), 0);
    void *c;
    cr_assert_eq(lfpool_get(P, &c, 0), 0); /* gets a back */
    cr_expect_eq(c, a);
    cr_expect_eq(lfpool_get(P, &b, 0), EEXIST);
    cr_expect_eq(lfpool_ret(P, c), 0);
    dup_target = NULL;
    st = snap();
    intact(&st, "EEXIST");
}

static int fixed_errno = ECONNREFUSED;
static void *failing_fun(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    errno = fixed_errno;
    return NULL;
}

Test(bad, fun_failure_codes)
{
    lfpool_free(P);
    CFG.fun = failing_fun;
    CFG.min_size = 0;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    struct lfpool_stats st = snap();
    void *o;
    fixed_errno = ECONNREFUSED;
    cr_expect_eq(lfpool_get(P, &o, 0), ECONNREFUSED);
    fixed_errno = 0;
    cr_expect_eq(lfpool_get(P, &o, 0), EIO, "fun failing with errno 0 must give EIO");
    fixed_errno = ENOMEM;
    for (int i = 0; i < 100; i++)
        cr_expect_eq(lfpool_get(P, &o, 0.001), ENOMEM);
    struct lfpool_stats s2 = snap();
    cr_expect_eq(s2.ncreated, 0);
    cr_expect_eq(s2.ncreating, st.ncreating + 102);
    cr_expect_eq(s2.sem_value, MAX, "a failed creation leaked a token");
    cr_expect_eq(s2.nobjs, 0);
    (void)o;
}

Test(bad, free_with_objects_out)
{
    void *o[MAX];
    for (int i = 0; i < MAX; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    /* teardown frees the pool with everything out: closers must run
     * (checked in teardown), and ASan/valgrind must see no leak */
    for (int i = 0; i < MAX; i++)
        cr_expect_eq(((struct rel_obj *)o[i])->closed, 0);
}

Test(bad, with_macro_on_failure)
{
    void *o[MAX];
    for (int i = 0; i < MAX; i++)
        cr_assert_eq(lfpool_get(P, &o[i], 0), 0);
    struct lfpool_stats st = snap();
    int ran = 0;
    LFPOOL_WITH(P, x, 0) { ran++; (void)x; }
    cr_expect_eq(ran, 0, "LFPOOL_WITH ran its block after a failed get");
    struct lfpool_stats s2 = snap();
    cr_expect(rel_stats_same(&st, &s2), "failed LFPOOL_WITH changed the pool");
    for (int i = 0; i < MAX; i++)
        cr_expect_eq(lfpool_ret(P, o[i]), 0);
    for (int k = 0; k < 10; k++) {
        LFPOOL_WITH(P, y, 0) {
            ran++;
            if (k % 2)
                break;
            if (k == 4)
                goto out;
        }
    }
out:
    cr_expect_eq(ran, 5);
    st = snap();
    cr_expect_eq(st.nusing, 0, "LFPOOL_WITH left an object out");
    intact(&st, "LFPOOL_WITH");
}

/* hostile hooks: a tracer that overflows/does not terminate/returns
 * nonsense and a stats hook that misuses the writer; the JSON stays valid */
static int evil_tracer(void *ctx, void *obj, char *buf, size_t size)
{
    (void)ctx;
    struct rel_obj *o = obj;
    if (size) {
        memset(buf, o->index % 2 ? '"' : 0xff, size); /* no NUL, quotes / bad UTF-8 */
    }
    switch (o->index % 4) {
    case 0: return (int)size * 1000;
    case 1: return -1;
    case 2: return 0x7fffffff;
    default: return (int)size;
    }
}

static int evil_stats(void *ctx, void *obj, struct lfpool_json *j)
{
    (void)ctx;
    struct rel_obj *o = obj;
    switch (o->index % 6) {
    case 0: /* key outside an object, then a value */
        lfpool_json_key(j, "k");
        lfpool_json_integer(j, 1);
        return 0;
    case 1: /* two top-level values */
        lfpool_json_integer(j, 1);
        lfpool_json_integer(j, 2);
        return 0;
    case 2: /* containers left open, strings with escapes and bad UTF-8 */
        lfpool_json_begin_object(j);
        lfpool_json_key(j, "\"quoted\"\n\\");
        lfpool_json_begin_array(j);
        lfpool_json_string(j, "\xff\xfe\x01\"\\");
        lfpool_json_string_len(j, "a\0b", 3);
        lfpool_json_number(j, NAN);
        lfpool_json_number(j, INFINITY);
        return 0;
    case 3: /* nothing written, success */
        return 0;
    case 4: /* writes, then fails */
        lfpool_json_begin_object(j);
        return -1;
    default: /* end without begin, value where a key is expected */
        lfpool_json_end_array(j);
        lfpool_json_begin_object(j);
        lfpool_json_bool(j, true);
        lfpool_json_null(j);
        lfpool_json_end_object(j);
        return 0;
    }
}

static void check_json_valid(const char *what)
{
    char *js = lfpool_stats_json(P);
    cr_assert_not_null(js, "%s: stats_json gave NULL", what);
#ifdef REL_HAVE_JANSSON
    json_error_t err;
    json_t *root = json_loads(js, JSON_ALLOW_NUL, &err); /* \u0000 is valid JSON */
    cr_expect_not_null(root, "%s: invalid JSON (%s at %d): %.300s", what, err.text, err.position, js);
    if (root) {
        static const char *keys[] = {"id", "started", "min_size", "max_size", "max_use", "timeout",
            "delay", "max_avail_delay", "max_using_delay_kill", "max_using_delay_warn",
            "health_freq", "now", "sem", "navail", "nusing", "ntodel", "running", "rel_hk_last",
            "time_per_hk", "shutdown", "avail", "using", "nobjs", "ncreated", "ncreating", "nuses",
            "nkilled", "nrecycled", "nwornout", "nborrows", "nreturns", "ndestroys", "nhealth",
            "bad_health", "hk_rounds", "hk_errors", "hc_rounds", "hc_errors"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            cr_expect_not_null(json_object_get(root, keys[i]), "%s: key %s missing", what, keys[i]);
        json_decref(root);
    }
#endif
    free(js);
}

Test(bad, hostile_tracer_and_stats_hooks)
{
    lfpool_free(P);
    CFG.tracer = evil_tracer;
    CFG.stats = NULL;
    CFG.min_size = MAX;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    void *o[2];
    cr_assert_eq(lfpool_get(P, &o[0], 0), 0);
    cr_assert_eq(lfpool_get(P, &o[1], 0), 0);
    check_json_valid("evil tracer");
    lfpool_ret(P, o[0]);
    lfpool_ret(P, o[1]);
    struct lfpool_stats st = snap();
    intact(&st, "evil tracer");
    lfpool_free(P);
    CFG.tracer = rel_tracer;
    CFG.stats = evil_stats;
    CFG.min_size = MAX;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    for (int k = 0; k < 3; k++) {
        void *x[3];
        for (int i = 0; i < 3; i++)
            cr_assert_eq(lfpool_get(P, &x[i], 0), 0);
        check_json_valid("evil stats hook");
        for (int i = 0; i < 3; i++)
            lfpool_ret(P, x[i]);
    }
    check_json_valid("evil stats hook, all available");
    /* many objects so that every misuse case appears */
    lfpool_free(P);
    CFG.max_size = 0;
    CFG.min_size = 12;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    check_json_valid("evil stats hook, 12 objects");
    CFG.max_size = MAX;
}

/* A tracer whose return value (the length it "wanted") exceeds the text it
 * wrote, e.g. text with an embedded NUL written with "%s": the pool must not
 * copy the bytes past the NUL (its own uninitialized stack) into the JSON.
 * The stack is poisoned with 'Z' first so that such bytes are recognisable. */
static int short_tracer(void *ctx, void *obj, char *buf, size_t size)
{
    (void)ctx;
    (void)obj;
    snprintf(buf, size, "%s", "ab\0cdefgh"); /* writes "ab" */
    return 9;                                 /* claims 9 */
}

static __attribute__((noinline)) void poison_stack(void)
{
    volatile char big[16384];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = 'Z';
}

static __attribute__((noinline)) char *json_after_poison(void)
{
    poison_stack();
    return lfpool_stats_json(P);
}

Test(bad, tracer_shorter_than_its_return_value)
{
    lfpool_free(P);
    CFG.tracer = short_tracer;
    CFG.stats = NULL;
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    char *js = json_after_poison();
    cr_assert_not_null(js);
    cr_expect_null(strstr(js, "ZZZ"), "stats JSON contains uninitialized stack bytes: %.400s", js);
#ifdef REL_HAVE_JANSSON
    json_error_t err;
    json_t *root = json_loads(js, JSON_ALLOW_NUL, &err);
    cr_expect_not_null(root, "invalid JSON: %s", err.text);
    json_t *avail = json_object_get(root, "avail");
    json_t *tr = json_object_get(json_array_get(avail, 0), "trace");
    cr_expect(json_is_string(tr), "no trace for the available object");
    if (json_is_string(tr))
        cr_expect_eq(json_string_length(tr), 2,
                     "trace is %zu bytes: the pool copied past the tracer's NUL (the text "
                     "is \"ab\"; the rest of its buffer was never written)",
                     json_string_length(tr));
    json_decref(root);
#endif
    free(js);
}

/* concurrent bad calls next to good traffic */
struct storm {
    _Atomic int stop;
    _Atomic uint64_t good, bad, wrong;
};
static struct storm S;

static void *good_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&S.stop)) {
        void *o;
        int rc = lfpool_get(P, &o, 0.05);
        if (rc == 0) {
            if (lfpool_ret(P, o) != 0)
                atomic_fetch_add(&S.wrong, 1);
            atomic_fetch_add(&S.good, 1);
        } else if (rc != ETIMEDOUT && rc != EAGAIN) {
            atomic_fetch_add(&S.wrong, 1);
        }
    }
    return NULL;
}

static void *bad_thread(void *arg)
{
    (void)arg;
    int local;
    while (!atomic_load(&S.stop)) {
        void *o = (void *)&local;
        if (lfpool_ret(P, &local) != ENOENT) atomic_fetch_add(&S.wrong, 1);
        if (lfpool_ret(P, NULL) != EINVAL) atomic_fetch_add(&S.wrong, 1);
        if (lfpool_ret(P, &W.objs[W.cap - 2]) != ENOENT) atomic_fetch_add(&S.wrong, 1);
        if (lfpool_get(P, &o, NAN) != EINVAL) atomic_fetch_add(&S.wrong, 1);
        if (lfpool_get(P, &o, -3) != EINVAL) atomic_fetch_add(&S.wrong, 1);
        if (lfpool_get(NULL, &o, 0) != EINVAL) atomic_fetch_add(&S.wrong, 1);
        atomic_fetch_add(&S.bad, 6);
    }
    return NULL;
}

Test(bad, concurrent_bad_calls)
{
    CFG.log_level = LFPOOL_LOG_ERROR;
    lfpool_free(P);
    cr_assert_eq(lfpool_new(&P, &CFG), 0);
    struct lfpool_stats st0 = snap();
    memset(&S, 0, sizeof S);
    pthread_t g[4], b[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&g[i], NULL, good_thread, NULL);
        pthread_create(&b[i], NULL, bad_thread, NULL);
    }
    rel_sleep(rel_slow_env() ? 2.0 : 1.0);
    atomic_store(&S.stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(g[i], NULL);
        pthread_join(b[i], NULL);
    }
    cr_expect_eq(atomic_load(&S.wrong), 0);
    struct lfpool_stats st = snap();
    cr_expect_eq(st.nuses - st0.nuses, atomic_load(&S.good));
    cr_expect_eq(st.nusing, 0);
    cr_expect_eq(st.sem_value, MAX);
    fprintf(stderr, "concurrent_bad_calls: %llu good get/ret pairs, %llu bad calls\n",
            (unsigned long long)atomic_load(&S.good), (unsigned long long)atomic_load(&S.bad));
    intact(&st, "concurrent bad calls");
}

/* ------------------------------------------------ invalid configurations */

struct bad_cfg {
    const char *what;
    void (*apply)(lfpool_config *);
};

static void c_nofun(lfpool_config *c) { c->fun = NULL; }
static void c_min_gt_max(lfpool_config *c) { c->max_size = 2; c->min_size = 3; }
static void c_timeout_neg(lfpool_config *c) { c->timeout = -1; }
static void c_timeout_nan(lfpool_config *c) { c->timeout = NAN; }
static void c_timeout_neginf(lfpool_config *c) { c->timeout = -INFINITY; }
static void c_avail_neg(lfpool_config *c) { c->max_avail_delay = -0.5; }
static void c_avail_nan(lfpool_config *c) { c->max_avail_delay = NAN; }
static void c_using_neg(lfpool_config *c) { c->max_using_delay = -1; }
static void c_using_nan(lfpool_config *c) { c->max_using_delay = NAN; }
static void c_kill_neg(lfpool_config *c) { c->max_using_delay_kill = -1; }
static void c_kill_nan(lfpool_config *c) { c->max_using_delay_kill = NAN; }
static void c_delay_neg(lfpool_config *c) { c->delay = -1; }
static void c_delay_nan(lfpool_config *c) { c->delay = NAN; }
static void c_hfreq0(lfpool_config *c) { c->health_freq = 0; }
static void c_killmode(lfpool_config *c) { c->kill_mode = 2; }
static void c_killmode_neg(lfpool_config *c) { c->kill_mode = -1; }
static void c_loglevel_neg(lfpool_config *c) { c->log_level = -1; }
static void c_loglevel_big(lfpool_config *c) { c->log_level = 4; }
static void c_lazy_min_gt_max(lfpool_config *c) { c->lazy_start = true; c->max_size = 1; c->min_size = 5; }

static const struct bad_cfg BAD_CFGS[] = {
    {"no fun", c_nofun},
    {"min_size > max_size", c_min_gt_max},
    {"negative timeout", c_timeout_neg},
    {"NaN timeout", c_timeout_nan},
    {"-inf timeout", c_timeout_neginf},
    {"negative max_avail_delay", c_avail_neg},
    {"NaN max_avail_delay", c_avail_nan},
    {"negative max_using_delay", c_using_neg},
    {"NaN max_using_delay", c_using_nan},
    {"negative max_using_delay_kill", c_kill_neg},
    {"NaN max_using_delay_kill", c_kill_nan},
    {"negative delay", c_delay_neg},
    {"NaN delay", c_delay_nan},
    {"health_freq 0", c_hfreq0},
    {"kill_mode 2", c_killmode},
    {"kill_mode -1", c_killmode_neg},
    {"log_level -1", c_loglevel_neg},
    {"log_level 4", c_loglevel_big},
    {"lazy, min_size > max_size", c_lazy_min_gt_max},
};

Test(bad, invalid_configurations)
{
    struct lfpool_stats st = warm();
    uint64_t fun_calls = atomic_load(&W.hk.n.fun);
    for (size_t i = 0; i < sizeof BAD_CFGS / sizeof *BAD_CFGS; i++) {
        lfpool_config c;
        rel_config(&c, &W, &L, &C);
        c.max_size = 4;
        BAD_CFGS[i].apply(&c);
        lfpool *p = (lfpool *)&c; /* must not be used on failure */
        uint64_t logs = lfx_log_total(&L);
        int rc = lfpool_new(&p, &c);
        cr_expect_eq(rc, EINVAL, "config '%s' gave %d", BAD_CFGS[i].what, rc);
        if (rc == 0) {
            lfpool_free(p);
            continue;
        }
        cr_expect_gt(lfx_log_total(&L), logs, "config '%s' refused without a logged reason",
                     BAD_CFGS[i].what);
        st = intact(&st, BAD_CFGS[i].what);
    }
    /* refused configs never called fun (intact() may have: count before) */
    (void)fun_calls;
    lfpool *p = NULL;
    cr_expect_eq(lfpool_new(&p, NULL), EINVAL, "NULL config");
    lfpool_config c;
    rel_config(&c, &W, &L, &C);
    cr_expect_eq(lfpool_new(NULL, &c), EINVAL, "NULL pool pointer");
    intact(&st, "NULL new arguments");
}

static uint64_t nofun_calls;
static void *counting_fun(void *ctx, uint64_t n)
{
    (void)ctx; (void)n;
    nofun_calls++;
    return NULL;
}

Test(bad, invalid_configurations_create_nothing)
{
    for (size_t i = 1; i < sizeof BAD_CFGS / sizeof *BAD_CFGS; i++) {
        lfpool_config c;
        rel_config(&c, &W, &L, &C);
        c.fun = counting_fun;
        c.min_size = 1;
        c.max_size = 4;
        BAD_CFGS[i].apply(&c);
        lfpool *p;
        if (lfpool_new(&p, &c) == 0)
            lfpool_free(p);
    }
    cr_expect_eq(nofun_calls, 0, "a refused configuration called fun");
}

Test(bad, accepted_edge_configurations)
{
    static const struct { size_t max, min; double t; } ok[] = {
        {0, 5, 0}, {3, 3, 0}, {1, 0, 0}, {0, 0, INFINITY},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        lfpool_config c;
        rel_config(&c, &W, &L, &C);
        c.max_size = ok[i].max;
        c.min_size = ok[i].min;
        c.timeout = ok[i].t;
        lfpool *p;
        cr_expect_eq(lfpool_new(&p, &c), 0, "config %zu refused", i);
        if (p) {
            void *o;
            cr_expect_eq(lfpool_get(p, &o, 0), 0);
            cr_expect_eq(lfpool_ret(p, o), 0);
            lfpool_free(p);
        }
    }
    /* warn > kill is accepted with a warning, as in the seed */
    lfpool_config c;
    rel_config(&c, &W, &L, &C);
    c.max_using_delay = 10;
    c.max_using_delay_kill = 5;
    uint64_t warns = atomic_load(&L.count[LFPOOL_LOG_WARNING]) + atomic_load(&L.count[LFPOOL_LOG_ERROR]);
    lfpool *p;
    cr_expect_eq(lfpool_new(&p, &c), 0, "warn > kill must be accepted");
    cr_expect_gt(atomic_load(&L.count[LFPOOL_LOG_WARNING]) + atomic_load(&L.count[LFPOOL_LOG_ERROR]),
                 warns, "warn > kill accepted without a warning");
    lfpool_free(p);
}
