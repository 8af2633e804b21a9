/* unit_stats.c - §3.6 stats: every key of the seed, valid JSON for any
 * tracer text, the stats hook through the lfpool_json writer. Parsed with
 * jansson (tests only). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <jansson.h>

LFPOOL_TEST_FIXTURE(stats, (void)0);


static json_t *parse(lfpool *p)
{
    char *txt = lfpool_stats_json(p);
    cr_assert_not_null(txt);
    json_error_t err;
    json_t *j = json_loads(txt, 0, &err);
    cr_assert_not_null(j, "invalid JSON (%s at %d): %s", err.text, err.position, txt);
    free(txt);
    return j;
}

static const char *seed_keys[] = {
    "id", "started", "min_size", "max_size", "max_use", "timeout", "delay", "max_avail_delay",
    "max_using_delay_kill", "max_using_delay_warn", "health_freq", "now", "sem", "navail",
    "nusing", "ntodel", "running", "rel_hk_last", "time_per_hk", "shutdown", "avail", "using",
    "nobjs", "ncreated", "ncreating", "nuses", "nkilled", "nrecycled", "nwornout", "nborrows",
    "nreturns", "ndestroys", "nhealth", "bad_health", "hk_rounds", "hk_errors", "hc_rounds",
    "hc_errors",
};
/* lfpool's own, documented in docs/API.md */
static const char *own_keys[] = {"cpu_cache",        "nflushes",         "nbias_fences",
                                 "nbroken",          "nvalidate_failed", "nvalidate_errors",
                                 "nexpired",         "ncreate_failed",   "ncreate_skipped",
                                 "waiting",          "nwaits",           "ntimeouts",
                                 "nevicted",         "nfences",          "ncloses"};
static const char *own_num_keys[] = {"wait_time", "create_time"};

Test(stats, every_seed_key_present_and_consistent)
{
    C.min_size = 2;
    C.max_size = 4;
    C.timeout = 2.5;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    json_t *j = parse(P);
    for (size_t i = 0; i < sizeof seed_keys / sizeof seed_keys[0]; i++)
        cr_assert_not_null(json_object_get(j, seed_keys[i]), "missing key %s", seed_keys[i]);
    for (size_t i = 0; i < sizeof own_keys / sizeof own_keys[0]; i++)
        cr_assert(json_is_integer(json_object_get(j, own_keys[i])), "missing key %s", own_keys[i]);
    for (size_t i = 0; i < sizeof own_num_keys / sizeof own_num_keys[0]; i++)
        cr_assert(json_is_number(json_object_get(j, own_num_keys[i])), "missing key %s", own_num_keys[i]);
    cr_assert(json_is_boolean(json_object_get(j, "ret_biased")), "missing key ret_biased");
    cr_assert(json_is_boolean(json_object_get(j, "cpu_closed")), "missing key cpu_closed");
    cr_assert_eq(json_object_size(j),
                 sizeof seed_keys / sizeof seed_keys[0] + sizeof own_keys / sizeof own_keys[0] +
                     sizeof own_num_keys / sizeof own_num_keys[0] + 2,
                 "no extra keys");
    cr_assert_eq(json_integer_value(json_object_get(j, "navail")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "nusing")), 1);
    cr_assert_eq(json_array_size(json_object_get(j, "avail")), 1);
    cr_assert_eq(json_array_size(json_object_get(j, "using")), 1);
    cr_assert_float_eq(json_number_value(json_object_get(j, "timeout")), 2.5, 1e-12);
    json_t *sem = json_object_get(j, "sem");
    cr_assert(json_is_object(sem));
    cr_assert_eq(json_integer_value(json_object_get(sem, "value")), 3);
    cr_assert_eq(json_integer_value(json_object_get(sem, "init")), 4);
    cr_assert(json_is_string(json_object_get(j, "started")));
    cr_assert(json_is_false(json_object_get(j, "shutdown")));
    json_t *u = json_array_get(json_object_get(j, "using"), 0);
    cr_assert(json_is_string(json_object_get(u, "trace")));
    cr_assert_eq(json_integer_value(json_object_get(u, "uses")), 1);
    cr_assert_not_null(json_object_get(u, "last_get"));
    cr_assert_not_null(json_object_get(u, "last_ret"));
    json_decref(j);
    /* the struct carries the same figures */
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.navail, 1);
    cr_assert_eq(s.nusing, 1);
    cr_assert_eq(s.sem_value, 3);
    cr_assert_eq(s.sem_init, 4);
    cr_assert_gt(s.started, 1.6e9);
    lfpool_ret(P, a);
}

Test(stats, unbounded_sem_is_null_and_forever_timeout_is_null)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    json_t *j = parse(P);
    cr_assert(json_is_null(json_object_get(j, "sem")));
    cr_assert(json_is_null(json_object_get(j, "timeout")));
    json_decref(j);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.sem_value, -1);
    cr_assert_eq(s.sem_init, -1);
}

static const char *nasty = "quote\" backslash\\ newline\n tab\t ctl\x01 utf8 \xc3\xa9 bad \xff end";
static int nasty_tracer(void *ctx, void *obj, char *buf, size_t size)
{
    (void)ctx;
    (void)obj;
    return snprintf(buf, size, "%s", nasty);
}

Test(stats, tracer_text_is_escaped)
{
    C.tracer = nasty_tracer;
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    json_t *j = parse(P);
    json_t *e = json_array_get(json_object_get(j, "avail"), 0);
    const char *t = json_string_value(json_object_get(e, "trace"));
    cr_assert_not_null(t);
    cr_assert(strncmp(t, "quote\" backslash\\ newline\n tab\t ctl\x01 utf8 \xc3\xa9 bad ", 47) == 0,
              "got %s", t);
    cr_assert(strstr(t, "\xef\xbf\xbd end") != NULL, "invalid byte replaced by U+FFFD");
    json_decref(j);
}

static int good_stats(void *ctx, void *obj, struct lfpool_json *out)
{
    (void)ctx;
    lfpool_json_begin_object(out);
    lfpool_json_key(out, "n");
    lfpool_json_integer(out, (int64_t)((struct tobj *)obj)->n);
    lfpool_json_key(out, "name");
    lfpool_json_string(out, "a \"b\"\n");
    lfpool_json_key(out, "list");
    lfpool_json_begin_array(out);
    lfpool_json_number(out, 1.5);
    lfpool_json_bool(out, true);
    lfpool_json_null(out);
    lfpool_json_number(out, NAN);
    lfpool_json_end_array(out);
    lfpool_json_end_object(out);
    return 0;
}

Test(stats, stats_hook_writes_one_value)
{
    C.stats = good_stats;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    json_t *j = parse(P);
    json_t *e = json_array_get(json_object_get(j, "avail"), 0);
    cr_assert_null(json_object_get(e, "trace"), "stats replaces trace");
    json_t *st = json_object_get(e, "stats");
    cr_assert(json_is_object(st));
    cr_assert_eq(json_integer_value(json_object_get(st, "n")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(st, "name")), "a \"b\"\n");
    json_t *l = json_object_get(st, "list");
    cr_assert_eq(json_array_size(l), 4);
    cr_assert(json_is_null(json_array_get(l, 3)), "NaN becomes null");
    json_decref(j);
}

static int mode;
static int bad_stats(void *ctx, void *obj, struct lfpool_json *out)
{
    (void)ctx;
    (void)obj;
    switch (mode) {
    case 0: /* fails after writing */
        lfpool_json_begin_object(out);
        lfpool_json_key(out, "x");
        return -1;
    case 1: /* writes nothing */
        return 0;
    case 2: /* two values */
        lfpool_json_integer(out, 1);
        cr_assert_eq(lfpool_json_integer(out, 2), EINVAL);
        return 0;
    case 3: /* leaves containers open, with a key pending */
        lfpool_json_begin_object(out);
        lfpool_json_key(out, "a");
        lfpool_json_begin_array(out);
        lfpool_json_integer(out, 7);
        return 0;
    case 4: /* misuse: value without key, closing beyond its level */
        lfpool_json_begin_object(out);
        cr_assert_eq(lfpool_json_integer(out, 3), EINVAL);
        return 0;
    case 5: /* closing the caller's containers poisons the writer */
        cr_assert_eq(lfpool_json_end_object(out), EINVAL);
        cr_assert_eq(lfpool_json_string(out, "ignored"), EINVAL);
        return 0;
    default: /* a plain string */
        return lfpool_json_string(out, "fine");
    }
}

Test(stats, misbehaving_stats_hook_still_yields_valid_json)
{
    C.stats = bad_stats;
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (mode = 0; mode <= 6; mode++) {
        json_t *j = parse(P);
        json_t *e = json_array_get(json_object_get(j, "avail"), 0);
        json_t *st = json_object_get(e, "stats");
        cr_assert_not_null(st, "mode %d", mode);
        if (mode == 0 || mode == 1 || mode == 2 || mode == 4 || mode == 5)
            cr_assert(json_is_null(st), "mode %d gives null", mode);
        if (mode == 3) {
            json_t *a = json_object_get(st, "a");
            cr_assert_eq(json_integer_value(json_array_get(a, 0)), 7);
        }
        if (mode == 6)
            cr_assert_str_eq(json_string_value(st), "fine");
        cr_assert_eq(json_array_size(json_object_get(j, "avail")), 2, "mode %d", mode);
        json_decref(j);
    }
}

Test(stats, counters_follow_operations)
{
    C.min_size = 0;
    C.max_use = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    for (int i = 0; i < 9; i++) {
        void *o;
        cr_assert_eq(lfpool_get(P, &o, 0), 0);
        cr_assert_eq(lfpool_ret(P, o), 0);
    }
    lfpool_housekeep(P);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nuses, 9);
    cr_assert_eq(s.ncreated, 3);
    cr_assert_eq(s.nwornout, 3);
    cr_assert_eq(s.ndestroys, 3);
    cr_assert_eq(s.nobjs, 0);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 3);
}
