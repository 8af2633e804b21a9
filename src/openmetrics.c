/*
 * openmetrics.c - lfpool_stats_openmetrics(): the statistics of several
 * pools as one OpenMetrics text exposition (which Prometheus also reads).
 *
 * Owns: the metric names, their types and help texts (the table below),
 * and the text rendering.  Invariant: the output is one valid exposition
 * whatever the pools and names: families are written once each, every
 * pool's samples of a family together under that family's # TYPE/# HELP,
 * label values escaped, counters end in _total, every histogram has its
 * +Inf bucket equal to its _count (both come from one snapshot's counts),
 * and the text ends with "# EOF".  Reads through the public calls only
 * (lfpool_stats, lfpool_histogram): one snapshot per pool, taken before
 * anything is written, so a family never mixes two snapshots of a pool.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct om_buf {
    char *s;
    size_t len, cap;
    bool nomem;
};

static void om_put(struct om_buf *b, const char *s, size_t n)
{
    if (b->nomem)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->nomem = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void om_str(struct om_buf *b, const char *s)
{
    om_put(b, s, strlen(s));
}

static void om_printf(struct om_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void om_printf(struct om_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    om_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A label value: backslash, double quote and newline escaped. */
static void om_label_value(struct om_buf *b, const char *v)
{
    for (const char *c = v; *c; c++) {
        if (*c == '\\')
            om_str(b, "\\\\");
        else if (*c == '"')
            om_str(b, "\\\"");
        else if (*c == '\n')
            om_str(b, "\\n");
        else
            om_put(b, c, 1);
    }
}

/* A number as OpenMetrics writes it: +Inf, -Inf, NaN, else %.17g (which
 * round-trips a double; integers up to 2^53 print as integers). */
static void om_number(struct om_buf *b, double v)
{
    if (isnan(v))
        om_str(b, "NaN");
    else if (isinf(v))
        om_str(b, v > 0 ? "+Inf" : "-Inf");
    else
        om_printf(b, "%.17g", v);
}

/* ---- the families */

enum om_kind { OM_COUNTER, OM_GAUGE };

/* One scalar family: a field of struct lfpool_stats. */
struct om_scalar {
    const char *name; /* family name; counters get _total on the sample */
    enum om_kind kind;
    bool seconds;     /* # UNIT seconds (the name ends in _seconds) */
    const char *help;
    double (*get)(const struct lfpool_stats *s);
};

#define F(field) \
    static double get_##field(const struct lfpool_stats *s) { return (double)s->field; }
F(ncreated) F(ncreating) F(nuses) F(nkilled) F(nrecycled) F(nwornout) F(nborrows) F(nreturns)
F(ndestroys) F(nhealth) F(bad_health) F(hk_rounds) F(hk_errors) F(hc_rounds) F(hc_errors)
F(nflushes) F(nbias_fences) F(nwaits) F(ntimeouts) F(wait_time) F(create_time)
F(nobjs) F(navail) F(nusing) F(ntodel) F(waiting) F(sem_value) F(running) F(rel_hk_last)
F(time_per_hk) F(shutdown) F(ret_biased) F(cpu_cache) F(min_size) F(max_size) F(max_use)
F(timeout) F(delay) F(max_avail_delay) F(max_using_delay_warn) F(max_using_delay_kill)
F(health_freq) F(nbroken) F(nvalidate_failed) F(nvalidate_errors) F(nexpired) F(ncreate_failed)
F(ncreate_skipped) F(nevicted) F(nfences) F(ncloses) F(cpu_closed)
#undef F

static const struct om_scalar scalars[] = {
    /* counters */
    {"lfpool_ncreated", OM_COUNTER, false, "Objects created (fun succeeded and the object was accepted).", get_ncreated},
    {"lfpool_ncreating", OM_COUNTER, false, "Creations started (calls of fun).", get_ncreating},
    {"lfpool_nuses", OM_COUNTER, false, "Successful gets.", get_nuses},
    {"lfpool_nwaits", OM_COUNTER, false, "Gets that waited at max_size, whatever the outcome.", get_nwaits},
    {"lfpool_ntimeouts", OM_COUNTER, false, "Gets that gave ETIMEDOUT.", get_ntimeouts},
    {"lfpool_wait_time_seconds", OM_COUNTER, true, "Seconds gets spent waiting, in total.", get_wait_time},
    {"lfpool_create_time_seconds", OM_COUNTER, true, "Seconds spent in fun, in total.", get_create_time},
    {"lfpool_nkilled", OM_COUNTER, false, "Objects killed for being held past max_using_delay_kill.", get_nkilled},
    {"lfpool_nrecycled", OM_COUNTER, false, "Objects closed for being idle past max_avail_delay.", get_nrecycled},
    {"lfpool_nwornout", OM_COUNTER, false, "Objects closed after max_use uses.", get_nwornout},
    {"lfpool_ndestroys", OM_COUNTER, false, "Closer calls.", get_ndestroys},
    {"lfpool_nborrows", OM_COUNTER, false, "Health-check borrows.", get_nborrows},
    {"lfpool_nreturns", OM_COUNTER, false, "Health-check borrows given back.", get_nreturns},
    {"lfpool_nhealth", OM_COUNTER, false, "Health checks run.", get_nhealth},
    {"lfpool_bad_health", OM_COUNTER, false, "Health checks that found an object unhealthy.", get_bad_health},
    {"lfpool_hk_rounds", OM_COUNTER, false, "Housekeeping rounds.", get_hk_rounds},
    {"lfpool_hk_errors", OM_COUNTER, false, "Housekeeping errors (out of memory).", get_hk_errors},
    {"lfpool_hc_rounds", OM_COUNTER, false, "Health-check rounds.", get_hc_rounds},
    {"lfpool_hc_errors", OM_COUNTER, false, "Health checks that failed to run (hook < 0).", get_hc_errors},
    {"lfpool_nflushes", OM_COUNTER, false, "Per-CPU cache flushes.", get_nflushes},
    {"lfpool_nbias_fences", OM_COUNTER, false, "Fences that ended a biased-return stretch.", get_nbias_fences},
    {"lfpool_nfences", OM_COUNTER, false, "membarrier system calls the pool made (every kind).", get_nfences},
    {"lfpool_ncreate_failed", OM_COUNTER, false, "Calls of fun that failed.", get_ncreate_failed},
    {"lfpool_ncreate_skipped", OM_COUNTER, false, "Creations refused at once during a creation backoff.", get_ncreate_skipped},
    {"lfpool_nbroken", OM_COUNTER, false, "Objects returned broken (lfpool_ret_broken) and destroyed.", get_nbroken},
    {"lfpool_nvalidate_failed", OM_COUNTER, false, "Validations on borrow that failed; each object destroyed.", get_nvalidate_failed},
    {"lfpool_nvalidate_errors", OM_COUNTER, false, "Validations on borrow whose hook gave < 0.", get_nvalidate_errors},
    {"lfpool_nexpired", OM_COUNTER, false, "Objects destroyed for passing max_lifetime.", get_nexpired},
    {"lfpool_nevicted", OM_COUNTER, false, "Objects closed by lfpool_evict.", get_nevicted},
    {"lfpool_ncloses", OM_COUNTER, false, "Closings of the per-CPU caches by gets that wanted every cache (one membarrier each).", get_ncloses},
    /* gauges */
    {"lfpool_nobjs", OM_GAUGE, false, "Objects the pool holds, creations in progress included.", get_nobjs},
    {"lfpool_navail", OM_GAUGE, false, "Objects available.", get_navail},
    {"lfpool_nusing", OM_GAUGE, false, "Objects held by users or the health check.", get_nusing},
    {"lfpool_ntodel", OM_GAUGE, false, "Objects removed whose closer has not run.", get_ntodel},
    {"lfpool_waiting", OM_GAUGE, false, "Gets waiting now.", get_waiting},
    {"lfpool_sem_value", OM_GAUGE, false, "max_size - nusing (-1: unbounded pool).", get_sem_value},
    {"lfpool_running_seconds", OM_GAUGE, true, "Seconds since the pool was created.", get_running},
    {"lfpool_rel_hk_last_seconds", OM_GAUGE, true, "Last housekeeping round relative to now (negative).", get_rel_hk_last},
    {"lfpool_time_per_hk_seconds", OM_GAUGE, true, "Mean seconds per housekeeping round.", get_time_per_hk},
    {"lfpool_shutdown", OM_GAUGE, false, "1 once the pool is shut down.", get_shutdown},
    {"lfpool_ret_biased", OM_GAUGE, false, "1 while returns by the getting thread commit without a locked instruction.", get_ret_biased},
    {"lfpool_cpu_cache", OM_GAUGE, false, "Records each per-CPU cache holds (0: off).", get_cpu_cache},
    {"lfpool_cpu_closed", OM_GAUGE, false, "1 while the gets keep the per-CPU caches closed (CAS mode).", get_cpu_closed},
    /* settings, as gauges */
    {"lfpool_min_size", OM_GAUGE, false, "Setting: min_size.", get_min_size},
    {"lfpool_max_size", OM_GAUGE, false, "Setting: max_size (0: unbounded).", get_max_size},
    {"lfpool_max_use", OM_GAUGE, false, "Setting: max_use (0: unlimited).", get_max_use},
    {"lfpool_timeout_seconds", OM_GAUGE, true, "Setting: timeout (+Inf: unlimited).", get_timeout},
    {"lfpool_delay_seconds", OM_GAUGE, true, "Effective housekeeping period (0: no rounds).", get_delay},
    {"lfpool_max_avail_delay_seconds", OM_GAUGE, true, "Setting: max_avail_delay.", get_max_avail_delay},
    {"lfpool_max_using_delay_warn_seconds", OM_GAUGE, true, "Effective warn threshold.", get_max_using_delay_warn},
    {"lfpool_max_using_delay_kill_seconds", OM_GAUGE, true, "Setting: max_using_delay_kill.", get_max_using_delay_kill},
    {"lfpool_health_freq", OM_GAUGE, false, "Setting: health_freq.", get_health_freq},
};

static const struct {
    const char *name;
    int which;
    const char *help;
} hists[] = {
    {"lfpool_wait_seconds", LFPOOL_HIST_WAIT, "How long gets that waited waited."},
    {"lfpool_hold_seconds", LFPOOL_HIST_HOLD, "How long objects were held, get to ret (cfg.hold_histogram)."},
    {"lfpool_create_seconds", LFPOOL_HIST_CREATE, "How long fun took."},
};
#define NHISTS (sizeof hists / sizeof hists[0])

struct om_pool {
    struct lfpool_stats st;
    struct lfpool_histogram h[NHISTS];
    char idname[32];
    const char *name;
};

static void om_meta(struct om_buf *b, const char *name, const char *type, bool seconds,
                    const char *help)
{
    om_printf(b, "# TYPE %s %s\n", name, type);
    if (seconds)
        om_printf(b, "# UNIT %s seconds\n", name);
    om_printf(b, "# HELP %s %s\n", name, help);
}

static void om_sample_start(struct om_buf *b, const char *name, const char *suffix,
                            const struct om_pool *op)
{
    om_str(b, name);
    om_str(b, suffix);
    om_str(b, "{pool=\"");
    om_label_value(b, op->name);
    om_str(b, "\"");
}

static void om_histogram(struct om_buf *b, const char *name, const struct om_pool *op,
                         const struct lfpool_histogram *h)
{
    uint64_t cum = 0;
    for (unsigned i = 0; i < LFPOOL_HIST_BUCKETS; i++) {
        cum += h->count[i];
        om_sample_start(b, name, "_bucket", op);
        om_str(b, ",le=\"");
        om_number(b, LFPOOL_HIST_LE(i)); /* powers of two: %.17g is exact */
        om_printf(b, "\"} %" PRIu64 "\n", cum);
    }
    om_sample_start(b, name, "_count", op);
    om_printf(b, "} %" PRIu64 "\n", cum);
    om_sample_start(b, name, "_sum", op);
    om_str(b, "} ");
    om_number(b, h->sum);
    om_str(b, "\n");
}

char *lfpool_stats_openmetrics(lfpool *const *pools, const char *const *names, size_t n)
{
    if (n > 0 && !pools) {
        lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_stats_openmetrics: NULL pools");
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!pools[i]) {
            lfpool_log_cfg(NULL, LFPOOL_LOG_ERROR, "lfpool_stats_openmetrics: pools[%zu] is NULL", i);
            errno = EINVAL;
            return NULL;
        }
    struct om_pool *ops = calloc(n ? n : 1, sizeof *ops);
    if (!ops) {
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct om_pool *op = &ops[i];
        lfpool_stats(pools[i], &op->st);
        for (size_t k = 0; k < NHISTS; k++)
            lfpool_histogram(pools[i], hists[k].which, &op->h[k]);
        snprintf(op->idname, sizeof op->idname, "%" PRIu64, op->st.id);
        op->name = names && names[i] ? names[i] : op->idname;
    }

    struct om_buf b = {0};
    for (size_t f = 0; f < sizeof scalars / sizeof scalars[0]; f++) {
        const struct om_scalar *sc = &scalars[f];
        bool counter = sc->kind == OM_COUNTER;
        om_meta(&b, sc->name, counter ? "counter" : "gauge", sc->seconds, sc->help);
        for (size_t i = 0; i < n; i++) {
            om_sample_start(&b, sc->name, counter ? "_total" : "", &ops[i]);
            om_str(&b, "} ");
            om_number(&b, sc->get(&ops[i].st));
            om_str(&b, "\n");
        }
    }
    for (size_t k = 0; k < NHISTS; k++) {
        om_meta(&b, hists[k].name, "histogram", true, hists[k].help);
        for (size_t i = 0; i < n; i++)
            om_histogram(&b, hists[k].name, &ops[i], &ops[i].h[k]);
    }
    om_str(&b, "# EOF\n");
    free(ops);
    if (b.nomem) {
        free(b.s);
        errno = ENOMEM;
        return NULL;
    }
    return b.s;
}
