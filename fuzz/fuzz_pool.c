/*
 * fuzz_pool.c - libFuzzer target: byte strings decoded into sequences of
 * pool operations, checked against a small sequential model of docs/CONTRACT.md §3.
 *
 * Build: see fuzz/meson.build (clang, -fsanitize=fuzzer,address,undefined)
 * or fuzz/run.sh.  Without libFuzzer, replay_main.c replays the corpus
 * (the `fuzz_replay` test of the default suite).
 *
 * Input layout
 *   bytes 0..7   configuration (max_size, min_size, max_use, kill threshold,
 *                max_avail_delay, flags: kill mode, health hook, stats hook,
 *                lazy start, invalid-config probe; tracer garbage)
 *   then pairs   (op, arg): get(0), get(1 ms), ret, double ret, foreign
 *                ret, clock jump, housekeep, stats/stats_json, next fun
 *                verdicts (ok/fail/duplicate), EINVAL probes, health
 *                verdicts, shutdown.
 *   connection pools: when byte 2 has its top bit (0x80) the pool also gets
 *                validate on borrow (bit 0; bit 1: validate_idle 1 s, else
 *                0), max_creating (bit 2: 1 or 2 by bit 4), create_backoff
 *                (bit 3: 0.5 s, cap 2 s) and max_waiters 1 (bit 6), and op
 *                bytes >= 0xF0 are its ops (low nibble): 0-5 ret_broken of
 *                a held object (its handle when it was got with one), 6-9
 *                validate verdicts, 10-11 ret_broken of an object not out,
 *                12-15 EINVAL probes of ret_broken.  Byte 2 was unused and
 *                0xF0.. op bytes meant op % 16 before: inputs without that
 *                bit decode as they always did, so the corpus keeps its
 *                meaning.  max_lifetime is not modelled, for the reason
 *                max_use is not (its closes and refills run on the
 *                housekeeper thread, asynchronously): unit_conn and the
 *                stress test cover it.
 *   bulk ops:    when byte 2 has bit 0x20, op bytes 0xD0..0xDF are bulk
 *                ops (low nibble): 0-7 lfpool_get_bulk (arg: n = 1 + arg
 *                % 4, bit 2 a 1 ms timeout, else 0; bit 3 on a bounded
 *                pool: n = max_size + 1 + (arg >> 4) % 3, EINVAL), 8-15
 *                lfpool_ret_bulk of up to 1 + arg % 4 held handles, from
 *                slot (arg >> 4) * 3 on, with by (arg >> 2) % 4: 1 a stale
 *                handle among them, 2 the first one twice, 3 a handle with
 *                a NULL obj.  Byte 2's bit 0x20 was unused (no connection
 *                option; without 0x80 byte 2 was ignored), and of the
 *                corpus's inputs that have it (regress_*) none has an op
 *                byte 0xD0..0xDF: they decode as they always did.  Bulk
 *                and connection ops combine (0xF0.. stays conn's).
 *
 * The model owns a fixed arena of 48 objects.  Hooks (fun, closer, health,
 * which may run on the pool's housekeeper thread) update it under a mutex
 * and check every event against the states the model allows:
 *   FREE -> POOL (fun) -> HELD (get) -> POOL (ret) | DYING (worn out)
 *   POOL -> CLOSED (closer, only if recycle-eligible, unhealthy, failed
 *           validation on borrow, worn out, shut down or freed), HELD ->
 *           CLOSED only for a kill in CLOSE mode, a DEFER-killed ret
 *           (ESTALE), a ret after shutdown, a ret_broken, or free.
 * Return codes are exact where the spec makes them so (EINVAL, ENOENT,
 * ESTALE, ESHUTDOWN, EEXIST, the creator's errno, EAGAIN at max_size;
 * lfpool_ret_bulk: the first failure's among its handles);
 * the counters (nuses, nkilled, nusing, ncreated, ncreating) are compared
 * at the points where no background work can be in flight, the getter
 * and retter calls (the fuzzing thread's) always.
 * Any violation prints a line and abort()s (libFuzzer keeps the input).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <lfpool.h>

#include "lfpool_fixture.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef FUZZ_HAVE_JANSSON
#include <jansson.h>
#endif

#define NSLOT 48

enum { S_FREE = 0, S_POOL, S_HELD, S_DYING, S_CLOSED };

struct fobj {
    uint64_t magic;
    int idx;
    char junk[16];
};

struct fslot {
    int state;
    int closes;          /* closer calls since the last creation */
    bool may_close;      /* the pool may remove it now */
    bool killed;         /* held and killed (model) */
    bool stale;          /* CLOSE-mode killed and closed, holder not told yet */
    double get_time, last_ret;
    uint64_t uses;
    int health;          /* verdict for its next health check */
    int valid;           /* verdict for its next validation: 0 good, 1 bad, 2 error */
    bool ever;           /* created at least once */
    bool published;      /* made available by a completed call of the fuzzing
                          * thread (not by a background refill in flight) */
    bool has_h;          /* got with lfpool_get_handle: h is its handle, */
    lfpool_handle h;     /* kept after the ret as a stale copy */
    bool has_prev;       /* the handle of an earlier hand-out (stale) */
    lfpool_handle prev;
};

static struct fobj OBJ[NSLOT];
static struct fobj FOREIGN[4];
static int local_dummy_for_einval;

static struct model {
    pthread_mutex_t mu;
    struct fslot s[NSLOT];
    lfpool_config cfg;
    bool bounded, shutdown;
    struct lfx_clock clock; /* the shared fixture's fake clock */
    struct lfx_log log;     /* its log capture (FUZZ_TRACE: echoed) */
    struct lfx_hooks hk;    /* its hook counters: hk.n.fun, hk.n.created */
    uint64_t gets, kills;
    uint64_t retters;    /* rets whose retter hook must have run (the getter's: gets) */
    uint64_t broken, vfailed, verrors; /* ret_broken successes, failed validations */
    int last_err;        /* errno of the last failed fun (any thread), for the backoff */
    uint8_t verdict[32];
    unsigned nverdict, vi;
    uint8_t tracer_junk;
    pthread_t me;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* per-API-call record of what fun did on the fuzzing thread */
static _Thread_local struct {
    int calls, ok, fail, dup;
    int err;
} TL;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nFUZZ MODEL VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static double now_s(void)
{
    return lfx_clock_now(&M.clock);
}

static int slot_of(void *p)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)OBJ;
    if (a < b || a >= b + sizeof OBJ || (a - b) % sizeof(struct fobj))
        return -1;
    return (int)((a - b) / sizeof(struct fobj));
}

static bool on_fuzz_thread(void)
{
    return pthread_equal(pthread_self(), M.me);
}

/* ------------------------------------------------------------- hooks */

static void *h_fun(void *ctx, uint64_t n)
{
    (void)ctx;
    (void)n;
    pthread_mutex_lock(&M.mu);
    lfx_count(&M.hk.n.fun);
    bool mine = on_fuzz_thread();
    if (mine)
        TL.calls++;
    uint8_t v = M.vi < M.nverdict ? M.verdict[M.vi++] : 0;
    void *ret = NULL;
    if (v % 4 == 1) { /* failure with an errno */
        static const int errs[] = {0, ECONNREFUSED, ENOMEM, ETIMEDOUT};
        int e = errs[(v / 4) % 4];
        if (mine) {
            TL.fail++;
            TL.err = e ? e : EIO;
        }
        M.last_err = e ? e : EIO;
        lfx_fun_failed(&M.hk);
        pthread_mutex_unlock(&M.mu);
        errno = e;
        return NULL;
    }
    /* a pointer the pool holds - asked of the fuzzing thread only.  The
     * model knows what the pool holds only while no call of the fuzzing
     * thread is in flight; a fun on the housekeeper thread (a refill) runs
     * concurrently with the fuzzing thread's rets, rounds and shutdown,
     * which remove objects from the pool.  Between fun's answer and the
     * pool's insertion of it, the object picked here may leave the table
     * (ret of a DEFER-killed object: KILLED -> DEAD, table deletion, then
     * retter, grace period and closer): the pool then rightly accepts it
     * as new (ncreated without a fun success in the model), and the
     * closer of the ret closes an object the pool now holds (a later get
     * returns a slot the model has CLOSED). */
    if (v % 4 == 2 && mine) {
        int pick = -1, k = (v / 4) % NSLOT;
        for (int i = 0; i < NSLOT; i++) {
            int j = (k + i) % NSLOT;
            /* a CLOSE kill removed its object from the pool at once: the
             * pool no longer holds it, even while its holder does */
            if (M.s[j].state == S_POOL ||
                (M.s[j].state == S_HELD &&
                 !(M.s[j].killed && M.cfg.kill_mode == LFPOOL_KILL_CLOSE))) {
                pick = j;
                break;
            }
        }
        if (pick >= 0) {
            if (mine)
                TL.dup++;
            pthread_mutex_unlock(&M.mu);
            return &OBJ[pick];
        }
    }
    /* success: a free slot, preferring reuse of a closed one (address
     * reuse, as malloc does) unless its holder still has it */
    int pick = -1;
    for (int i = 0; i < NSLOT && pick < 0; i++)
        if (M.s[i].state == S_CLOSED && !M.s[i].stale)
            pick = i;
    for (int i = 0; i < NSLOT && pick < 0; i++)
        if (M.s[i].state == S_FREE)
            pick = i;
    if (pick < 0) {
        if (mine) {
            TL.fail++;
            TL.err = ENOSPC;
        }
        M.last_err = ENOSPC;
        lfx_fun_failed(&M.hk);
        pthread_mutex_unlock(&M.mu);
        errno = ENOSPC;
        return NULL;
    }
    struct fslot *s = &M.s[pick];
    int health = s->health, valid = s->valid;
    memset(s, 0, sizeof *s);
    s->health = health ? health : 1;
    s->valid = valid;
    s->state = S_POOL;
    s->ever = true;
    s->last_ret = now_s();
    s->get_time = now_s();
    s->published = mine;
    OBJ[pick].magic = 0xF0F0;
    OBJ[pick].idx = pick;
    lfx_fun_created(&M.hk);
    if (mine)
        TL.ok++;
    ret = &OBJ[pick];
    pthread_mutex_unlock(&M.mu);
    return ret;
}

static int h_closer(void *ctx, void *obj)
{
    (void)ctx;
    int i = slot_of(obj);
    if (i < 0)
        die("closer on a foreign pointer %p", obj);
    pthread_mutex_lock(&M.mu);
    struct fslot *s = &M.s[i];
    if (s->state == S_FREE || s->state == S_CLOSED || s->closes)
        die("closer twice / on a never-created object: slot %d state %d closes %d", i, s->state,
            s->closes);
    if (!s->may_close && !M.shutdown)
        die("closer on slot %d (state %d) the pool had no reason to remove", i, s->state);
    if (s->state == S_HELD) {
        if (!(s->killed && M.cfg.kill_mode == LFPOOL_KILL_CLOSE) && !s->may_close)
            die("closer on held slot %d", i);
        s->stale = true;
    }
    s->closes++;
    s->state = S_CLOSED;
    pthread_mutex_unlock(&M.mu);
    return (i % 3 == 0) ? -1 : 0; /* closer failures are logged only */
}

static int h_health(void *ctx, void *obj)
{
    (void)ctx;
    int i = slot_of(obj);
    if (i < 0)
        die("health on a foreign pointer");
    pthread_mutex_lock(&M.mu);
    struct fslot *s = &M.s[i];
    if (s->state != S_POOL)
        die("health check on slot %d in state %d (held, dying or closed)", i, s->state);
    int v = s->health;
    if (v == 0)
        s->may_close = true; /* unhealthy: removed */
    pthread_mutex_unlock(&M.mu);
    return v;
}

/* validate on borrow: only an available object (the getting thread has
 * not been given it yet); a failed one is destroyed by the get */
static int h_validate(void *ctx, void *obj)
{
    (void)ctx;
    int i = slot_of(obj);
    if (i < 0)
        die("validate on a foreign pointer");
    pthread_mutex_lock(&M.mu);
    struct fslot *s = &M.s[i];
    if (s->state != S_POOL)
        die("validation of slot %d in state %d (held, dying or closed)", i, s->state);
    int v = s->valid == 1 ? 0 : s->valid == 2 ? -1 : 1;
    if (v <= 0) {
        s->may_close = true;
        s->state = S_DYING; /* closed by the get, or by the housekeeper */
        M.vfailed++;
        M.verrors += v < 0;
    }
    pthread_mutex_unlock(&M.mu);
    return v;
}

/* opener, getter, retter: counted as the shared counting hooks do, never
 * on a foreign pointer; odd slots' hooks fail */
static int h_hook(_Atomic uint64_t *calls, void *obj)
{
    lfx_count(calls);
    int i = slot_of(obj);
    if (i < 0)
        die("hook on a foreign pointer");
    return i % 2;
}
static int h_opener(void *ctx, void *obj)
{
    return h_hook(&((struct lfx_hooks *)ctx)->n.opened, obj);
}
static int h_getter(void *ctx, void *obj)
{
    return h_hook(&((struct lfx_hooks *)ctx)->n.got, obj);
}
static int h_retter(void *ctx, void *obj)
{
    return h_hook(&((struct lfx_hooks *)ctx)->n.retted, obj);
}

static int h_tracer(void *ctx, void *obj, char *buf, size_t size)
{
    (void)ctx;
    int i = slot_of(obj);
    if (i < 0)
        die("tracer on a foreign pointer (spec: never on a pointer not out)");
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "slot %d ", i);
    tmp[n++] = (char)M.tracer_junk;       /* any byte: quote, control, bad UTF-8 */
    tmp[n++] = (char)(M.tracer_junk ^ 0x80);
    tmp[n++] = '"';
    tmp[n++] = '\\';
    tmp[n] = 0;
    /* every byte counted in the return value is written (a junk byte may be
     * NUL: the JSON must escape it); truncated like snprintf */
    if (size) {
        size_t w = (size_t)n < size - 1 ? (size_t)n : size - 1;
        memcpy(buf, tmp, w);
        buf[w] = 0;
    }
    return n;
}

static int h_stats(void *ctx, void *obj, struct lfpool_json *j)
{
    (void)ctx;
    int i = slot_of(obj);
    switch ((i + M.tracer_junk) % 4) {
    case 0:
        lfpool_json_begin_object(j);
        lfpool_json_key(j, "slot");
        lfpool_json_integer(j, i);
        lfpool_json_key(j, "junk");
        lfpool_json_string_len(j, (const char *)&M.tracer_junk, 1);
        return lfpool_json_end_object(j);
    case 1: /* misuse: a key at top level, values after */
        lfpool_json_key(j, "x");
        lfpool_json_number(j, NAN);
        return 0;
    case 2:
        return -1;
    default: /* left open */
        lfpool_json_begin_array(j);
        lfpool_json_bool(j, true);
        return 0;
    }
}

/* ----------------------------------------------------------- helpers */

static int held_live(void) /* held and not killed: counted by the pool */
{
    int n = 0;
    for (int i = 0; i < NSLOT; i++)
        if (M.s[i].state == S_HELD && !M.s[i].killed)
            n++;
    return n;
}

static int count_state(int st)
{
    int n = 0;
    for (int i = 0; i < NSLOT; i++)
        n += M.s[i].state == st;
    return n;
}

static bool ASYNC; /* the pool has a housekeeper thread (refills, reaps) */
static bool TRACE; /* FUZZ_TRACE set: each op echoed on stderr */

/* one look at the stats; returns NULL when they agree with the model, else
 * a description (static buffer) */
static const char *stats_mismatch(lfpool *pool, bool exact)
{
    static char why[512];
    struct lfpool_stats st;
    if (lfpool_stats(pool, &st) != 0)
        return "lfpool_stats failed";
    pthread_mutex_lock(&M.mu);
    int hl = held_live();
    uint64_t gets = M.gets, kills = M.kills, retters = M.retters;
    uint64_t got = atomic_load(&M.hk.n.got), retted = atomic_load(&M.hk.n.retted);
    uint64_t broken = M.broken, vfailed = M.vfailed, verrors = M.verrors;
    uint64_t fok = atomic_load(&M.hk.n.created), fcalls = atomic_load(&M.hk.n.fun);
    pthread_mutex_unlock(&M.mu);
    if (st.nusing != (uint64_t)hl)
        snprintf(why, sizeof why, "nusing %llu, model holds %d", (unsigned long long)st.nusing, hl);
    else if (st.nuses != gets)
        snprintf(why, sizeof why, "nuses %llu, model gets %llu", (unsigned long long)st.nuses,
                 (unsigned long long)gets);
    else if (got != gets || retted != retters)
        /* the hooks run on the fuzzing thread, in the calls: exact */
        snprintf(why, sizeof why, "getter ran %llu times, retter %llu; model gets %llu, rets %llu",
                 (unsigned long long)got, (unsigned long long)retted, (unsigned long long)gets,
                 (unsigned long long)retters);
    else if (st.nkilled != kills)
        snprintf(why, sizeof why, "nkilled %llu, model kills %llu", (unsigned long long)st.nkilled,
                 (unsigned long long)kills);
    else if (st.nbroken != broken || st.nvalidate_failed != vfailed ||
             st.nvalidate_errors != verrors)
        snprintf(why, sizeof why, "nbroken %llu / nvalidate_failed %llu / nvalidate_errors %llu, "
                 "model %llu / %llu / %llu", (unsigned long long)st.nbroken,
                 (unsigned long long)st.nvalidate_failed, (unsigned long long)st.nvalidate_errors,
                 (unsigned long long)broken, (unsigned long long)vfailed,
                 (unsigned long long)verrors);
    else if (M.bounded && st.nobjs > M.cfg.max_size)
        snprintf(why, sizeof why, "nobjs %llu > max_size", (unsigned long long)st.nobjs);
    else if (st.ncreated > fok)
        snprintf(why, sizeof why, "ncreated %llu > fun successes %llu",
                 (unsigned long long)st.ncreated, (unsigned long long)fok);
    else if (exact && (st.ncreated != fok || st.ncreating != fcalls))
        snprintf(why, sizeof why, "ncreated %llu / ncreating %llu != fun %llu / %llu",
                 (unsigned long long)st.ncreated, (unsigned long long)st.ncreating,
                 (unsigned long long)fok, (unsigned long long)fcalls);
    else if (st.shutdown != M.shutdown)
        snprintf(why, sizeof why, "stats shutdown flag %d", st.shutdown);
    else
        why[0] = 0;
    if (why[0])
        return why;

    char *js = lfpool_stats_json(pool);
    if (!js)
        return "stats_json NULL";
#ifdef FUZZ_HAVE_JANSSON
    json_error_t err;
    json_t *root = json_loads(js, JSON_ALLOW_NUL, &err);
    if (!root) /* never transient: die at once */
        die("invalid stats JSON: %s at %d: %s", err.text, err.position, js);
    static const char *keys[] = {"id", "started", "min_size", "max_size", "max_use", "timeout",
        "delay", "max_avail_delay", "max_using_delay_kill", "max_using_delay_warn", "health_freq",
        "now", "sem", "navail", "nusing", "ntodel", "running", "rel_hk_last", "time_per_hk",
        "shutdown", "avail", "using", "nobjs", "ncreated", "ncreating", "nuses", "nkilled",
        "nrecycled", "nwornout", "nborrows", "nreturns", "ndestroys", "nhealth", "bad_health",
        "hk_rounds", "hk_errors", "hc_rounds", "hc_errors", "nbroken", "nvalidate_failed",
        "nvalidate_errors", "nexpired", "ncreate_failed", "ncreate_skipped"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (!json_object_get(root, keys[k]))
            die("stats JSON lacks \"%s\"", keys[k]);
    json_t *using = json_object_get(root, "using"), *avail = json_object_get(root, "avail");
    if (!json_is_array(using) || !json_is_array(avail))
        die("using/avail are not arrays");
    json_int_t nu = json_integer_value(json_object_get(root, "nusing"));
    json_int_t na = json_integer_value(json_object_get(root, "navail"));
    if (nu != (json_int_t)json_array_size(using) || na != (json_int_t)json_array_size(avail))
        snprintf(why, sizeof why, "JSON nusing %lld / navail %lld but using[%zu] / avail[%zu]",
                 (long long)nu, (long long)na, json_array_size(using), json_array_size(avail));
    else if (nu != hl)
        snprintf(why, sizeof why, "JSON nusing %lld, model holds %d", (long long)nu, hl);
    else if (json_integer_value(json_object_get(root, "nuses")) != (json_int_t)gets)
        snprintf(why, sizeof why, "JSON nuses");
    else if (M.cfg.timeout == INFINITY && !json_is_null(json_object_get(root, "timeout")))
        die("FOREVER timeout not null");
    json_decref(root);
#endif
    free(js);
    return why[0] ? why : NULL;
}

/* Background refills and reaps (housekeeper thread) may make the figures
 * disagree for a moment; only a disagreement that lasts 0.5 s is a bug. */
static void check_stats(lfpool *pool, bool exact)
{
    const char *why = stats_mismatch(pool, exact);
    for (int i = 0; why && ASYNC && !exact && i < 250; i++) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        why = stats_mismatch(pool, exact);
    }
    if (why)
        die("%s", why);
}

/* ----------------------------------------------------------- the run */

static void reset_model(void)
{
    pthread_mutex_lock(&M.mu);
    memset(M.s, 0, sizeof M.s);
    for (int i = 0; i < NSLOT; i++)
        M.s[i].health = 1;
    M.shutdown = false;
    memset(&M.hk, 0, sizeof M.hk);
    M.gets = M.kills = M.retters = 0;
    M.broken = M.vfailed = M.verrors = 0;
    M.last_err = 0;
    M.nverdict = M.vi = 0;
    lfx_clock_set(&M.clock, 1000.0);
    static bool log_ready;
    if (!log_ready)
        lfx_log_init(&M.log, "FUZZ_TRACE");
    log_ready = true;
    lfx_log_clear(&M.log);
    M.me = pthread_self();
    pthread_mutex_unlock(&M.mu);
}

static bool STARTED; /* a lazy pool's first get also fills to min_size */

/* A get refused at once by a creation backoff: the last fun failure's
 * errno (of any thread: a refill's failure starts a backoff too), without
 * a fun call of its own. */
static bool backoff_refusal(int rc)
{
    pthread_mutex_lock(&M.mu);
    bool r = M.cfg.create_backoff > 0 && rc != 0 && !TL.calls && rc == M.last_err;
    pthread_mutex_unlock(&M.mu);
    return r;
}

/* slot i (POOL) handed out by a get (M.mu held): HELD, its handle kept
 * (the one before it kept as a stale copy) */
static void mark_held(int i, bool handle, lfpool_handle h)
{
    struct fslot *s = &M.s[i];
    s->state = S_HELD;
    if (s->has_h) {
        s->has_prev = true;
        s->prev = s->h;
    }
    s->has_h = handle;
    if (handle)
        s->h = h;
    s->may_close = false;
    s->killed = false;
    s->uses++;
    s->get_time = now_s();
}

/* A get's (`what`) EBUSY, EAGAIN or ETIMEDOUT that the model rules out
 * whatever the pool's state: EBUSY with the one getting thread, EAGAIN
 * when it had a timeout, ETIMEDOUT when it had none. */
static void check_wait_code(int rc, double timeout, const char *what)
{
    if (rc == EBUSY)
        die("%s: EBUSY with one getting thread (max_waiters %zu)", what, M.cfg.max_waiters);
    if (rc == EAGAIN && timeout != 0)
        die("%s: EAGAIN with a timeout", what);
    if (rc == ETIMEDOUT && timeout == 0)
        die("%s: ETIMEDOUT with timeout 0", what);
}

static void do_get(lfpool *pool, double timeout, bool handle)
{
    bool first = !STARTED;
    STARTED = true;
    memset(&TL, 0, sizeof TL);
    pthread_mutex_lock(&M.mu);
    int hl = held_live();
    bool full = M.bounded && (size_t)hl >= M.cfg.max_size;
    pthread_mutex_unlock(&M.mu);
    void *o = NULL;
    lfpool_handle h = {0}; /* a handle get fills it; do_ret checks h.obj */
    int rc = handle ? lfpool_get_handle(pool, &h, timeout) : lfpool_get(pool, &o, timeout);
    if (handle && rc == 0)
        o = h.obj;
    if (M.shutdown) {
        if (rc != ESHUTDOWN)
            die("get after shutdown gave %d", rc);
        return;
    }
    if (rc != 0 && TL.fail && !TL.ok && !TL.dup && rc == TL.err)
        return; /* the creator's errno, whatever it is (even ETIMEDOUT) */
    if (backoff_refusal(rc))
        return;
    check_wait_code(rc, timeout, "get");
    if (rc == EAGAIN || rc == ETIMEDOUT) {
        if (TL.calls)
            die("get called fun and then gave %d", rc);
        if (full)
            return;
        /* capacity is free per the model: only a background fill/reap can
         * hold it for a moment; a patient get must then succeed */
        memset(&TL, 0, sizeof TL);
        /* the same kind of get as the first try: a handle get must fill h,
         * which the model keeps for this slot's ret (a plain get here left
         * h unfilled, and do_ret returned stale stack bytes) */
        rc = handle ? lfpool_get_handle(pool, &h, 2.0) : lfpool_get(pool, &o, 2.0);
        if (handle && rc == 0)
            o = h.obj;
        if (backoff_refusal(rc) || (rc != 0 && TL.fail && !TL.ok && !TL.dup && rc == TL.err))
            return; /* creation failed meanwhile (a background refill's failure too) */
        if (rc == EAGAIN || rc == ETIMEDOUT)
            die("get(0) gave EAGAIN/ETIMEDOUT with %d of %zu held, and again after 2 s", hl,
                M.cfg.max_size);
    }
    if (first && M.cfg.lazy_start) {
        /* the start-up fill ran fun on this thread too: only the result
         * matters here */
        if (rc != 0) {
            if (rc != EEXIST && rc != TL.err && rc != EIO)
                die("first get of a lazy pool gave %d", rc);
            return;
        }
        TL.fail = TL.dup = 0;
        TL.ok = 0;
    }
    if (rc != 0) {
        if (rc == EEXIST) {
            if (!TL.dup)
                die("EEXIST without a duplicate from fun");
            return;
        }
        if (TL.dup)
            die("fun returned a held pointer, get gave %d (want EEXIST)", rc);
        if (TL.fail && rc == TL.err)
            return;
        die("get gave %d (fun calls %d fail %d err %d)", rc, TL.calls, TL.fail, TL.err);
    }
    if (TL.dup)
        die("fun returned a held pointer and get succeeded");
    if (TL.fail && !TL.ok)
        die("fun failed and get succeeded");
    int i = slot_of(o);
    if (i < 0)
        die("get returned a foreign pointer %p", o);
    pthread_mutex_lock(&M.mu);
    struct fslot *s = &M.s[i];
    if (s->state != S_POOL)
        die("get returned slot %d in state %d (held/dying/closed)", i, s->state);
    if (!TL.ok) {
        /* handed an available one: fine */
    }
    if (full)
        die("get succeeded beyond max_size");
    if (TL.ok && !TL.fail) {
        /* it created: was an available object stranded? */
        int avail = 0;
        for (int k = 0; k < NSLOT; k++)
            if (k != i && M.s[k].state == S_POOL && !M.s[k].may_close && M.s[k].published)
                avail++;
        if (avail)
            die("get created an object while %d were available (stranded)", avail);
    }
    mark_held(i, handle, h);
    M.gets++;
    pthread_mutex_unlock(&M.mu);
}

/* A ret of held (or CLOSE-killed, stale) slot i, in two halves around the
 * call, so that lfpool_ret_bulk's handles are modelled as its single rets
 * are.  ret_prepare (M.mu held): what the ret will find (and the closes it
 * allows); ret_want: the code lfpool_ret_handle gives for it; ret_settle
 * (M.mu held): the states after a ret that gave rc. */
struct ret_pre {
    bool killed, stale, wornout;
};

static struct ret_pre ret_prepare(int i)
{
    struct fslot *s = &M.s[i];
    struct ret_pre r = {s->killed, s->stale, M.cfg.max_use && s->uses >= M.cfg.max_use};
    if (M.shutdown || (r.killed && M.cfg.kill_mode == LFPOOL_KILL_DEFER) || r.wornout)
        s->may_close = true;
    return r;
}

static int ret_want(struct ret_pre r)
{
    return !r.killed ? 0 : M.cfg.kill_mode == LFPOOL_KILL_CLOSE ? ENOENT : ESTALE;
}

static void ret_settle(int i, struct ret_pre r, int rc)
{
    struct fslot *s = &M.s[i];
    s->stale = false; /* the holder has given it back, whatever happened */
    if (r.killed && M.cfg.kill_mode == LFPOOL_KILL_CLOSE) {
        if (rc != ENOENT)
            die("ret of a CLOSE-killed object gave %d", rc);
        if (!r.stale && s->state != S_CLOSED)
            die("CLOSE-killed slot %d not closed by the round", i);
    } else if (r.killed) {
        if (rc != ESTALE)
            die("ret of a DEFER-killed object gave %d", rc);
        if (s->state != S_CLOSED)
            die("ESTALE but the closer did not run");
        M.retters++; /* the hand-out was still out: its retter ran */
    } else if (rc != 0) {
        die("ret of held slot %d gave %d", i, rc);
    } else {
        M.retters++;
        if (M.shutdown) {
            if (s->state != S_CLOSED)
                die("ret after shutdown did not close");
        } else if (r.wornout) {
            if (s->state != S_CLOSED)
                s->state = S_DYING; /* closer comes from the housekeeper */
        } else {
            s->state = S_POOL;
            s->last_ret = now_s();
            s->published = true;
        }
    }
}

/* the model's own bookkeeping: the handle it keeps for a slot must be the
 * one a handle get filled for that slot's object */
static void check_kept_handle(int i, lfpool_handle h)
{
    if (h.obj != (void *)&OBJ[i])
        die("model kept handle of %p for slot %d (%p): never filled by a get", h.obj, i,
            (void *)&OBJ[i]);
}

static void do_ret(lfpool *pool, int i)
{
    pthread_mutex_lock(&M.mu);
    struct ret_pre r = ret_prepare(i);
    bool has_h = M.s[i].has_h;
    lfpool_handle h = M.s[i].h;
    pthread_mutex_unlock(&M.mu);
    if (has_h)
        check_kept_handle(i, h);
    int rc = has_h ? lfpool_ret_handle(pool, &h) : lfpool_ret(pool, &OBJ[i]);
    pthread_mutex_lock(&M.mu);
    ret_settle(i, r, rc);
    pthread_mutex_unlock(&M.mu);
}

/* lfpool_ret_broken of held slot i (through its handle when it has one) */
static void do_broken(lfpool *pool, int i)
{
    pthread_mutex_lock(&M.mu);
    struct fslot *s = &M.s[i];
    bool killed = s->killed, stale = s->stale;
    bool close_kill = killed && M.cfg.kill_mode == LFPOOL_KILL_CLOSE;
    if (!close_kill)
        s->may_close = true; /* destroyed (or, DEFER-killed, closed: ESTALE) */
    bool has_h = s->has_h;
    lfpool_handle h = s->h;
    pthread_mutex_unlock(&M.mu);
    memset(&TL, 0, sizeof TL); /* the refill (no housekeeper) runs fun here */
    int rc = has_h ? lfpool_ret_broken_handle(pool, &h) : lfpool_ret_broken(pool, &OBJ[i]);
    pthread_mutex_lock(&M.mu);
    s->stale = false;
    if (close_kill) {
        if (rc != ENOENT)
            die("ret_broken of a CLOSE-killed object gave %d", rc);
        if (!stale && s->state != S_CLOSED)
            die("CLOSE-killed slot %d not closed by the round", i);
    } else if (killed) {
        if (rc != ESTALE)
            die("ret_broken of a DEFER-killed object gave %d", rc);
        if (s->state != S_CLOSED)
            die("ESTALE but the closer did not run");
    } else if (rc != 0) {
        die("ret_broken of held slot %d gave %d", i, rc);
    } else {
        M.broken++;
        if (s->state != S_CLOSED && (M.shutdown || !ASYNC))
            die("ret_broken of slot %d: not closed in the call (shutdown %d)", i, M.shutdown);
        if (s->state != S_CLOSED)
            s->state = S_DYING; /* the housekeeper closes it */
    }
    pthread_mutex_unlock(&M.mu);
}

static void do_housekeep(lfpool *pool)
{
    if (M.shutdown) {
        int rc = lfpool_housekeep(pool);
        if (rc != ESHUTDOWN)
            die("housekeep after shutdown gave %d", rc);
        return;
    }
    pthread_mutex_lock(&M.mu);
    double now = now_s();
    uint64_t kills = 0;
    for (int i = 0; i < NSLOT; i++) {
        struct fslot *s = &M.s[i];
        /* as in the seed, the kill test sits inside the warn test: with a
         * warn threshold above the kill one (accepted, logged), an object
         * is killed once it is out for max(warn, kill) */
        double warn = M.cfg.max_using_delay > 0 ? M.cfg.max_using_delay
                                                : M.cfg.max_using_delay_kill;
        if (s->state == S_HELD && !s->killed && M.cfg.max_using_delay_kill > 0 &&
            now - s->get_time >= M.cfg.max_using_delay_kill && now - s->get_time >= warn) {
            s->killed = true;
            kills++;
            if (M.cfg.kill_mode == LFPOOL_KILL_CLOSE)
                s->may_close = true;
        }
        if (s->state == S_POOL && M.cfg.max_avail_delay > 0 &&
            now - s->last_ret >= M.cfg.max_avail_delay)
            s->may_close = true; /* eligible for recycling */
    }
    M.kills += kills;
    pthread_mutex_unlock(&M.mu);
    memset(&TL, 0, sizeof TL);
    int rc = lfpool_housekeep(pool);
    if (rc != 0)
        die("housekeep gave %d", rc);
    /* the round's own removals were reaped in the round: recycling
     * eligibility ends with it */
    pthread_mutex_lock(&M.mu);
    for (int i = 0; i < NSLOT; i++)
        if (M.s[i].state == S_POOL)
            M.s[i].may_close = false;
    pthread_mutex_unlock(&M.mu);
}

static int pick_state(uint8_t arg, int st)
{
    for (int k = 0; k < NSLOT; k++) {
        int i = (arg + k) % NSLOT;
        if (M.s[i].state == st)
            return i;
    }
    return -1;
}

/* ------------------------------------------------------------ bulk ops */

/* A failed bulk get's code that the model accepts as a creation's: the
 * creator's errno (fun failed: the try ends there, even after objects it
 * created), or a creation backoff's refusal. */
static bool bulk_create_error(int rc)
{
    if (rc != 0 && TL.fail && !TL.dup && rc == TL.err)
        return true;
    pthread_mutex_lock(&M.mu);
    bool r = M.cfg.create_backoff > 0 && rc != 0 && !TL.fail && rc == M.last_err;
    pthread_mutex_unlock(&M.mu);
    return r;
}

/* lfpool_get_bulk of n objects (arg: n = 1 + arg % 4; bit 2, timeout 1 ms,
 * else 0; bit 3 on a bounded pool, n = max_size + 1..3: EINVAL).  All n or
 * none: a try that misses one gives back what it took (bulk_undo_one: not
 * a use, no getter, no retter), so on failure the model's states are those
 * its hooks left (objects fun created stay in the pool, failed validations
 * are dying) and nothing is held; on success every object was available
 * (POOL), becomes HELD with its handle, and counts one use and one getter
 * call.  The codes are exact as the single get's are. */
static void do_get_bulk(lfpool *pool, uint8_t arg)
{
    size_t n = 1 + arg % 4;
    double timeout = arg & 4 ? 0.001 : 0;
    if ((arg & 8) && M.bounded)
        n = M.cfg.max_size + 1 + (arg >> 4) % 3;
    lfpool_handle hs[16];
    memset(hs, 0, sizeof hs);
    bool too_many = M.bounded && n > M.cfg.max_size;
    bool first = !STARTED && !too_many; /* the refusal comes before the start */
    STARTED = STARTED || !too_many;
    memset(&TL, 0, sizeof TL);
    pthread_mutex_lock(&M.mu);
    int hl = held_live();
    bool full = M.bounded && (size_t)hl + n > M.cfg.max_size;
    pthread_mutex_unlock(&M.mu);
    int rc = lfpool_get_bulk(pool, hs, n, timeout);
    if (TRACE)
        fprintf(stderr, "bulk get n %zu timeout %g: %d (fun calls %d ok %d fail %d dup %d)\n", n,
                timeout, rc, TL.calls, TL.ok, TL.fail, TL.dup);
    if (too_many) {
        if (rc != EINVAL || TL.calls)
            die("bulk get of %zu from a pool of at most %zu gave %d (fun calls %d)", n,
                M.cfg.max_size, rc, TL.calls);
        return;
    }
    if (M.shutdown) {
        if (rc != ESHUTDOWN)
            die("bulk get after shutdown gave %d", rc);
        return;
    }
    if (bulk_create_error(rc))
        goto failed;
    check_wait_code(rc, timeout, "bulk get");
    if (rc == EAGAIN || rc == ETIMEDOUT) {
        if (full)
            goto failed; /* fun may have run: what it made stays available */
        /* room for all n per the model: only a background fill/reap can
         * hold some for a moment; a patient bulk get must then succeed */
        memset(&TL, 0, sizeof TL);
        rc = lfpool_get_bulk(pool, hs, n, 2.0);
        if (bulk_create_error(rc))
            goto failed;
        if (rc == EAGAIN || rc == ETIMEDOUT)
            die("bulk get of %zu gave EAGAIN/ETIMEDOUT with %d of %zu held, and again after 2 s",
                n, hl, M.cfg.max_size);
    }
    if (first && M.cfg.lazy_start) {
        /* the start-up fill ran fun on this thread too */
        if (rc != 0) {
            if (rc != EEXIST && rc != TL.err && rc != EIO)
                die("first (bulk) get of a lazy pool gave %d", rc);
            goto failed;
        }
        TL.fail = TL.dup = TL.ok = 0;
    }
    if (rc != 0) {
        if (rc == EEXIST) {
            if (!TL.dup)
                die("bulk get: EEXIST without a duplicate from fun");
            goto failed;
        }
        if (TL.dup)
            die("fun returned a held pointer, bulk get gave %d (want EEXIST)", rc);
        die("bulk get of %zu gave %d (fun calls %d fail %d err %d)", n, rc, TL.calls, TL.fail,
            TL.err);
    }
    if (full)
        die("bulk get of %zu succeeded with %d of %zu held", n, hl, M.cfg.max_size);
    if (TL.dup)
        die("fun returned a held pointer and bulk get succeeded");
    if (TL.fail)
        die("fun failed and bulk get succeeded");
    int idx[16];
    pthread_mutex_lock(&M.mu);
    for (size_t j = 0; j < n; j++) {
        int i = slot_of(hs[j].obj);
        if (i < 0)
            die("bulk get: hs[%zu] is a foreign pointer %p", j, hs[j].obj);
        if (M.s[i].state != S_POOL)
            die("bulk get: hs[%zu] is slot %d in state %d (held/dying/closed)", j, i,
                M.s[i].state);
        for (size_t k = 0; k < j; k++)
            if (idx[k] == i)
                die("bulk get: slot %d handed out twice (hs[%zu], hs[%zu])", i, k, j);
        idx[j] = i;
    }
    if (TL.ok) {
        /* it created: was an available object stranded? */
        int avail = 0;
        for (int k = 0; k < NSLOT; k++) {
            bool taken = false;
            for (size_t j = 0; j < n; j++)
                taken = taken || idx[j] == k;
            if (!taken && M.s[k].state == S_POOL && !M.s[k].may_close && M.s[k].published)
                avail++;
        }
        if (avail)
            die("bulk get created objects while %d were available (stranded)", avail);
    }
    for (size_t j = 0; j < n; j++)
        mark_held(idx[j], true, hs[j]);
    M.gets += n;
    pthread_mutex_unlock(&M.mu);
    return;
failed:
    /* nothing held, no use counted, no getter run (undone takes) */
    check_stats(pool, false);
}

/* lfpool_ret_bulk of up to 1 + arg % 4 held handles (slots with a handle,
 * from (arg >> 4) * 3 on), and by (arg >> 2) % 4: 1, a stale handle among
 * them (an ended hand-out's: ENOENT); 2, the first one twice (ENOENT the
 * second time); 3, a handle whose obj is NULL (EINVAL).  Every handle is
 * returned as lfpool_ret_handle would; the code is the first failure's. */
static void do_ret_bulk(lfpool *pool, uint8_t arg)
{
    lfpool_handle hs[8];
    int slot[8], want[8];
    struct ret_pre pre[8];
    int m = 0, nheld = 1 + arg % 4, extra = (arg >> 2) % 4, start = (arg >> 4) * 3;
    pthread_mutex_lock(&M.mu);
    for (int k = 0; k < NSLOT && m < nheld; k++) {
        int i = (start + k) % NSLOT;
        struct fslot *s = &M.s[i];
        if (s->has_h && (s->state == S_HELD || s->stale)) {
            slot[m] = i;
            hs[m] = s->h;
            m++;
        }
    }
    for (int j = 0; j < m; j++) {
        check_kept_handle(slot[j], hs[j]);
        pre[j] = ret_prepare(slot[j]);
        want[j] = ret_want(pre[j]);
    }
    lfpool_handle xh = {0};
    int xwant = -1, at = m ? (arg >> 4) % (m + 1) : 0;
    if (extra == 1) { /* an ended hand-out's handle, or an earlier one of a held object */
        for (int k = 0; k < NSLOT && xwant < 0; k++) {
            struct fslot *s = &M.s[(start + k) % NSLOT];
            if (s->has_h && s->state != S_HELD && !s->stale)
                xh = s->h, xwant = ENOENT;
            else if (s->state == S_HELD && s->has_prev)
                xh = s->prev, xwant = ENOENT;
        }
    } else if (extra == 2 && m) { /* the first handle again, last */
        xh = hs[0], xwant = ENOENT, at = m;
    } else if (extra == 3) {
        xh.obj = NULL, xwant = EINVAL;
    }
    pthread_mutex_unlock(&M.mu);
    if (xwant >= 0) {
        memmove(&hs[at + 1], &hs[at], (size_t)(m - at) * sizeof *hs);
        memmove(&slot[at + 1], &slot[at], (size_t)(m - at) * sizeof *slot);
        memmove(&want[at + 1], &want[at], (size_t)(m - at) * sizeof *want);
        memmove(&pre[at + 1], &pre[at], (size_t)(m - at) * sizeof *pre);
        hs[at] = xh, slot[at] = -1, want[at] = xwant;
        m++;
    }
    int first = 0;
    for (int j = 0; j < m && !first; j++)
        first = want[j];
    memset(&TL, 0, sizeof TL);
    int rc = lfpool_ret_bulk(pool, hs, (size_t)m);
    if (TRACE)
        fprintf(stderr, "bulk ret of %d (extra %d at %d): %d\n", m, extra, at, rc);
    if (rc != first)
        die("ret_bulk of %d handles gave %d, want %d (the first failure's)", m, rc, first);
    pthread_mutex_lock(&M.mu);
    for (int j = 0; j < m; j++)
        if (slot[j] >= 0)
            ret_settle(slot[j], pre[j], want[j]);
    pthread_mutex_unlock(&M.mu);
    check_stats(pool, false);
}

/* The connection-pool ops (op bytes 0xF0.., see the top of this file). */
static void conn_op(lfpool *pool, uint8_t op, uint8_t arg)
{
    int rc, i;
    if (op <= 5) { /* ret_broken of a held object (or a CLOSE-killed stale one) */
        pthread_mutex_lock(&M.mu);
        i = pick_state(arg, S_HELD);
        for (int k = 0; k < NSLOT && i < 0; k++)
            if (M.s[k].stale)
                i = k;
        pthread_mutex_unlock(&M.mu);
        if (i >= 0)
            do_broken(pool, i);
    } else if (op <= 9) { /* validate verdict: 0 good, 1 bad (0), 2 error (< 0) */
        pthread_mutex_lock(&M.mu);
        M.s[arg % NSLOT].valid = (arg / NSLOT) % 3;
        pthread_mutex_unlock(&M.mu);
    } else if (op <= 11) { /* ret_broken of an object not out: nothing changes */
        pthread_mutex_lock(&M.mu);
        int j = -1;
        for (int k = 0; k < NSLOT && j < 0; k++) {
            int x = (arg + k) % NSLOT;
            if (M.s[x].state != S_HELD && !M.s[x].stale)
                j = x;
        }
        bool stale_h = j >= 0 && M.s[j].has_h;
        lfpool_handle h = j >= 0 ? M.s[j].h : (lfpool_handle){0};
        pthread_mutex_unlock(&M.mu);
        if (j >= 0 && (rc = lfpool_ret_broken(pool, &OBJ[j])) != ENOENT)
            die("ret_broken of slot %d not out (state %d) gave %d", j, M.s[j].state, rc);
        if (stale_h && (rc = lfpool_ret_broken_handle(pool, &h)) != ENOENT)
            die("ret_broken of a stale handle of slot %d gave %d", j, rc);
        /* an earlier hand-out's handle of an object out again: refused */
        pthread_mutex_lock(&M.mu);
        int k = pick_state(arg, S_HELD);
        bool prev = k >= 0 && M.s[k].has_prev;
        h = prev ? M.s[k].prev : (lfpool_handle){0};
        pthread_mutex_unlock(&M.mu);
        if (prev && (rc = lfpool_ret_broken_handle(pool, &h)) != ENOENT)
            die("ret_broken of an earlier handle of held slot %d gave %d", k, rc);
    } else { /* EINVAL probes */
        lfpool_handle nul = {0};
        rc = arg % 3 == 0 ? lfpool_ret_broken(pool, NULL)
             : arg % 3 == 1 ? lfpool_ret_broken_handle(pool, NULL)
                            : lfpool_ret_broken_handle(pool, &nul);
        if (rc != EINVAL)
            die("ret_broken EINVAL probe %d gave %d", arg % 3, rc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    reset_model();
    STARTED = false;
    lfpool_config *c = &M.cfg;
    lfpool_config_init(c);
    c->fun = h_fun;
    c->closer = h_closer;
    lfx_config(c, &M.hk, &M.log, &M.clock); /* then the model's own hooks: */
    c->opener = h_opener;
    c->getter = h_getter;
    c->retter = h_retter;
    c->tracer = h_tracer;
    c->max_size = data[0] % 7;                 /* 0 = unbounded */
    c->min_size = data[1] % 4;
    if (c->max_size && c->min_size > c->max_size)
        c->min_size = c->max_size;
    /* max_use stays 0: wear-out is reaped and refilled asynchronously by the
     * housekeeper thread, which this sequential model cannot follow (it
     * reported creations it could not attribute, crash inputs kept in
     * corpus/); wear-out is covered by the unit, stress and faults tests */
    (void)data[2];
    c->max_use = 0;
    c->max_using_delay_kill = data[3] % 3 == 0 ? 0 : 0.5 + data[3] % 16;
    c->max_avail_delay = data[4] % 3 == 0 ? 0 : 0.5 + data[4] % 16;
    uint8_t f = data[5];
    c->kill_mode = f & 1 ? LFPOOL_KILL_CLOSE : LFPOOL_KILL_DEFER;
    if (f & 2)
        c->health = h_health;
    if (f & 4)
        c->stats = h_stats;
    c->lazy_start = f & 8;
    if (f & 16)
        c->max_using_delay = 0.25 + data[6] % 8; /* warn threshold */
    c->health_freq = 1 + data[6] % 3;
    c->timeout = data[6] & 0x80 ? 0.002 : LFPOOL_FOREVER;
    M.tracer_junk = data[7];
    bool conn = data[2] & 0x80; /* connection-pool options and ops */
    bool bulk = data[2] & 0x20; /* bulk ops (op bytes 0xD0..0xDF) */
    if (conn) {
        if (data[2] & 1)
            c->validate = h_validate;
        c->validate_idle = data[2] & 2 ? 1.0 : 0;
        if (data[2] & 4)
            c->max_creating = 1 + (data[2] >> 4 & 1);
        if (data[2] & 8) {
            c->create_backoff = 0.5;
            c->create_backoff_max = 2.0;
        }
        if (data[2] & 0x40)
            c->max_waiters = 1;
    }
    /* rounds only when the fuzzer asks: the housekeeper thread (if any)
     * only reaps and refills */
    if (c->max_avail_delay > 0 || c->max_using_delay_kill > 0 || c->max_using_delay > 0 ||
        c->health)
        c->delay = 1e6;
    M.bounded = c->max_size != 0;
    ASYNC = c->delay > 0 || c->max_use > 0; /* lfpool starts a housekeeper then */
    if ((f & 0xE0) == 0xE0) {
        /* an invalid configuration must be refused, creating nothing */
        lfpool_config bad = *c;
        switch (data[7] % 5) {
        case 0: bad.fun = NULL; break;
        case 1: bad.max_size = 1; bad.min_size = 2; break;
        case 2: bad.timeout = -1; break;
        case 3: bad.delay = NAN; break;
        default: bad.health_freq = 0; break;
        }
        lfpool *bp = NULL;
        int rc = lfpool_new(&bp, &bad);
        if (rc != EINVAL)
            die("invalid configuration accepted (%d)", rc);
        if (atomic_load(&M.hk.n.fun))
            die("refused configuration called fun");
    }

    lfpool *pool = NULL;
    int rc = lfpool_new(&pool, c);
    if (rc != 0)
        die("lfpool_new refused a valid configuration: %d", rc);
    if (c->lazy_start && atomic_load(&M.hk.n.fun))
        die("lazy pool created objects before the first get");
    if (!c->lazy_start)
        STARTED = true;

    static int trace = -1;
    if (trace < 0)
        trace = getenv("FUZZ_TRACE") != NULL;
    TRACE = trace;
    if (trace)
        fprintf(stderr, "config max %zu min %zu max_use %llu kill %g mad %g mode %d health %d "
                "lazy %d\n", c->max_size, c->min_size, (unsigned long long)c->max_use,
                c->max_using_delay_kill, c->max_avail_delay, c->kill_mode, c->health != NULL,
                c->lazy_start);
    for (size_t k = 8; k + 1 < size; k += 2) {
        uint8_t op = data[k] % 16, arg = data[k + 1];
        int i;
        if (conn && data[k] >= 0xF0) {
            conn_op(pool, op, arg);
            continue;
        }
        if (bulk && data[k] >= 0xD0 && data[k] < 0xE0) {
            if (op < 8)
                do_get_bulk(pool, arg);
            else
                do_ret_bulk(pool, arg);
            continue;
        }
        if (trace) {
            fprintf(stderr, "op %u arg %u |", op, arg);
            for (int q = 0; q < NSLOT; q++)
                if (M.s[q].state)
                    fprintf(stderr, " %d:%c%s", q, "FPHDC"[M.s[q].state],
                            M.s[q].killed ? "k" : "");
            struct lfpool_stats tst;
            if (lfpool_stats(pool, &tst) == 0)
                fprintf(stderr, " | nobjs %llu avail %llu using %llu todel %llu killed %llu",
                        (unsigned long long)tst.nobjs, (unsigned long long)tst.navail,
                        (unsigned long long)tst.nusing, (unsigned long long)tst.ntodel,
                        (unsigned long long)tst.nkilled);
            fprintf(stderr, "\n");
        }
        switch (op) {
        case 0: case 1: case 2: case 3:
            do_get(pool, 0, arg % 2); /* odd: through a handle */
            break;
        case 4:
            /* a short wait, or the configured timeout when it is short */
            do_get(pool, (arg % 2 && M.cfg.timeout < 1) ? LFPOOL_DEFAULT : 0.001, arg % 4 >= 2);
            break;
        case 5: case 6:
            pthread_mutex_lock(&M.mu);
            i = pick_state(arg, S_HELD);
            if (i < 0) { /* a CLOSE-killed, closed, holder not told yet */
                for (int k2 = 0; k2 < NSLOT && i < 0; k2++)
                    if (M.s[k2].stale)
                        i = k2;
            }
            pthread_mutex_unlock(&M.mu);
            if (i >= 0)
                do_ret(pool, i);
            break;
        case 7: { /* double ret: an object not out */
            pthread_mutex_lock(&M.mu);
            int j = -1;
            for (int k2 = 0; k2 < NSLOT; k2++) {
                int x = (arg + k2) % NSLOT;
                if (M.s[x].state != S_HELD && !M.s[x].stale) {
                    j = x;
                    break;
                }
            }
            bool stale_h = j >= 0 && M.s[j].has_h;
            lfpool_handle h = j >= 0 ? M.s[j].h : (lfpool_handle){0};
            pthread_mutex_unlock(&M.mu);
            if (j >= 0 && (rc = lfpool_ret(pool, &OBJ[j])) != ENOENT)
                die("ret of slot %d not out (state %d) gave %d", j, M.s[j].state, rc);
            if (stale_h && (rc = lfpool_ret_handle(pool, &h)) != ENOENT)
                die("stale handle of slot %d (state %d) gave %d", j, M.s[j].state, rc);
            /* an earlier hand-out's handle of an object out again: refused,
             * and the holder keeps it (its own ret checks that later) */
            pthread_mutex_lock(&M.mu);
            int k = pick_state(arg, S_HELD);
            bool prev = k >= 0 && M.s[k].has_prev;
            h = prev ? M.s[k].prev : (lfpool_handle){0};
            pthread_mutex_unlock(&M.mu);
            if (prev && (rc = lfpool_ret_handle(pool, &h)) != ENOENT)
                die("earlier handle of held slot %d gave %d", k, rc);
            break;
        }
        case 8: { /* foreign pointers */
            int local;
            void *p = arg % 3 == 0 ? (void *)&FOREIGN[arg % 4]
                      : arg % 3 == 1 ? (void *)&local : (void *)((char *)&OBJ[arg % NSLOT] + 1);
            if ((rc = lfpool_ret(pool, p)) != ENOENT)
                die("foreign ret gave %d", rc);
            break;
        }
        case 9: /* clock jump, 0.25 s steps */
            lfx_clock_advance(&M.clock, (double)(arg % 64) * 0.25);
            break;
        case 10:
            do_housekeep(pool);
            break;
        case 11:
            check_stats(pool, false);
            break;
        case 12: /* next fun verdicts */
            pthread_mutex_lock(&M.mu);
            if (M.nverdict < sizeof M.verdict)
                M.verdict[M.nverdict++] = arg;
            pthread_mutex_unlock(&M.mu);
            break;
        case 13: { /* EINVAL probes: nothing may change */
            void *o = &local_dummy_for_einval;
            int e = 0;
            lfpool_handle hs[1];
            switch (arg % 8) {
            case 0: e = lfpool_ret(pool, NULL); break;
            case 1: e = lfpool_get(pool, &o, NAN); break;
            case 2: e = lfpool_get(pool, &o, -1.0 - arg); break;
            case 3: e = lfpool_get(pool, NULL, 0); break;
            case 4: e = lfpool_stats(pool, NULL); break;
            case 5: e = arg % 16 < 8 ? lfpool_get_bulk(pool, NULL, 1 + arg % 3, 0)
                                     : lfpool_get_bulk(pool, hs, 1, NAN); break;
            case 6: e = lfpool_ret_bulk(pool, NULL, 1 + arg % 3); break;
            default: e = lfpool_shutdown(pool, -1); break;
            }
            if (e != EINVAL)
                die("EINVAL probe %d gave %d", arg % 8, e);
            break;
        }
        case 14: /* health verdict for a slot: 1 healthy, 0 unhealthy, -1 error */
            pthread_mutex_lock(&M.mu);
            M.s[arg % NSLOT].health = (arg / NSLOT) % 3 == 0 ? 0 : (arg / NSLOT) % 3 == 1 ? -1 : 1;
            pthread_mutex_unlock(&M.mu);
            break;
        case 15:
            if (arg % 4 == 0) {
                pthread_mutex_lock(&M.mu);
                M.shutdown = true;
                for (int k2 = 0; k2 < NSLOT; k2++)
                    if (M.s[k2].state == S_POOL || M.s[k2].state == S_DYING)
                        M.s[k2].may_close = true;
                pthread_mutex_unlock(&M.mu);
                if ((rc = lfpool_shutdown(pool, 1.0)) != 0)
                    die("shutdown gave %d", rc);
                pthread_mutex_lock(&M.mu);
                int left = count_state(S_POOL);
                pthread_mutex_unlock(&M.mu);
                if (left)
                    die("%d available objects not closed by shutdown", left);
                check_stats(pool, true);
            } else {
                check_stats(pool, false);
            }
            break;
        }
    }

    /* the end: everything back, shut down, exact counters, free */
    for (;;) {
        pthread_mutex_lock(&M.mu);
        int i = pick_state(0, S_HELD);
        if (i < 0)
            for (int k2 = 0; k2 < NSLOT && i < 0; k2++)
                if (M.s[k2].stale)
                    i = k2;
        pthread_mutex_unlock(&M.mu);
        if (i < 0)
            break;
        do_ret(pool, i);
    }
    check_stats(pool, false);
    pthread_mutex_lock(&M.mu);
    M.shutdown = true;
    for (int k2 = 0; k2 < NSLOT; k2++)
        M.s[k2].may_close = true;
    pthread_mutex_unlock(&M.mu);
    if ((rc = lfpool_shutdown(pool, 1.0)) != 0)
        die("final shutdown gave %d", rc);
    check_stats(pool, true);
    lfpool_free(pool);
    pthread_mutex_lock(&M.mu);
    for (int k2 = 0; k2 < NSLOT; k2++)
        if (M.s[k2].state != S_FREE && M.s[k2].state != S_CLOSED)
            die("slot %d (state %d) not closed after free", k2, M.s[k2].state);
    pthread_mutex_unlock(&M.mu);
    return 0;
}
