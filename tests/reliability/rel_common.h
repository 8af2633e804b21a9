/*
 * rel_common.h - shared helpers of the reliability tests (tests/reliability).
 *
 * Everything here goes through the public API of lfpool.h only.  The fake
 * clock (struct lfx_clock), the log capture (struct lfx_log), the random
 * generator (lfx_rand, lfx_chance) and the counting hooks with their fault
 * knobs (struct lfx_hooks: opener, getter, retter; fun and closer built on
 * lfx_fun_fails / lfx_closer_fault) are the shared fixture of
 * tests/fixture/lfpool_fixture.h; what is the reliability tests' own:
 *
 *  - rel_obj: pool objects taken from a static arena (never freed, so that a
 *    stale pointer can still be inspected safely), each with a `held` flag
 *    (set with a CAS by whoever the pool handed it to: exclusivity), a
 *    `closed` counter (closer calls), the pid of the creating process and a
 *    use counter.
 *  - rel_world: the shared counting hooks (first member `hk`: calls of each
 *    hook in hk.n, failure rates in per mille in hk.f) plus the world's own
 *    fun, closer, health, tracer and stats hooks, which validate the objects,
 *    with their knobs (health verdicts, stats failures, a hang, slow
 *    closers) and the counters the tests compare with lfpool_stats().
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef REL_COMMON_H
#define REL_COMMON_H

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
#include <unistd.h>

/* ------------------------------------------------------------ real time */

static inline double rel_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void rel_sleep(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* true when running under valgrind (the wrapper sets LD_PRELOAD to its
 * vgpreload libraries) or when the caller asked for a slow-machine mode */
static inline bool rel_slow_env(void)
{
    const char *p = getenv("LD_PRELOAD");
    if (p && strstr(p, "vgpreload"))
        return true;
    p = getenv("REL_SLOW");
    return p && *p && *p != '0';
}

/* -------------------------------------------------------------- objects */

#define REL_MAGIC 0x6C66706F6F6C4F42ull /* "lfpoolOB" */

struct rel_obj {
    uint64_t magic;
    uint32_t index;          /* slot in the arena */
    int32_t pid;             /* process that created it */
    uint64_t n;              /* creation number passed to fun */
    _Atomic int held;        /* 1 while a user or a health check holds it */
    _Atomic int closed;      /* number of closer calls */
    _Atomic int killed_close;/* closer ran while held (LFPOOL_KILL_CLOSE) */
    _Atomic uint64_t uses;   /* successful gets of it */
    _Atomic int borrowed;    /* inside a health check */
    char pad[8];
};

/* ---------------------------------------------------------------- world */

struct rel_world {
    struct lfx_hooks hk; /* first: the counting hooks' ctx */

    /* arena */
    struct rel_obj *objs;
    uint32_t cap;
    _Atomic uint32_t next;

    /* fault knobs, per mille (and those of fun, opener, getter, retter,
     * closer in hk.f) */
    _Atomic unsigned health_bad, health_err, stats_fail;
    _Atomic unsigned slow_closer;      /* per mille of closers that sleep */
    _Atomic int slow_closer_us;
    _Atomic int hang_armed;            /* next health call hangs hang_s */
    double hang_s;
    _Atomic int hanging;               /* a health call is hanging now */
    _Atomic int kill_mode;             /* copy of cfg.kill_mode */

    /* counters (the calls of each hook are in hk.n) */
    _Atomic uint64_t fun_dup;
    _Atomic uint64_t closer_on_held, closer_twice, closer_foreign;
    _Atomic uint64_t closer_on_borrowed, closer_wrong_pid;
    _Atomic uint64_t health_bad_count, health_err_count, health_on_held;
    _Atomic int64_t live; /* created - closed */
    _Atomic int64_t live_max;
    _Atomic int32_t pid_expected; /* closer must see this pid, 0 = no check */
};

static inline void rel_world_init(struct rel_world *w, uint32_t cap)
{
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->objs = calloc(cap, sizeof *w->objs);
    if (!w->objs)
        abort();
    w->hang_s = 1.5;
    w->slow_closer_us = 20000;
}

static inline void rel_world_fini(struct rel_world *w)
{
    free(w->objs);
    w->objs = NULL;
}

static inline bool rel_is_obj(struct rel_world *w, void *p)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)w->objs;
    return a >= b && a < b + (uintptr_t)w->cap * sizeof(struct rel_obj) &&
           (a - b) % sizeof(struct rel_obj) == 0;
}

static inline void rel_max64(_Atomic int64_t *m, int64_t v)
{
    int64_t cur = atomic_load(m);
    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
        ;
}

/* Make slot i a fresh object with creation number n (a new or reused slot). */
static inline struct rel_obj *rel_obj_make(struct rel_world *w, uint32_t i, uint64_t n)
{
    struct rel_obj *o = &w->objs[i];
    o->magic = REL_MAGIC;
    o->index = i;
    o->pid = (int32_t)getpid();
    o->n = n;
    atomic_store(&o->uses, 0);
    atomic_store(&o->killed_close, 0);
    atomic_store(&o->held, 0);
    atomic_store(&o->closed, 0);
    lfx_fun_created(&w->hk);
    rel_max64(&w->live_max, atomic_fetch_add(&w->live, 1) + 1);
    return o;
}

static inline void *rel_fun(void *ctx, uint64_t n)
{
    struct rel_world *w = ctx;
    if (lfx_fun_fails(&w->hk))
        return NULL;
    uint32_t i = atomic_fetch_add(&w->next, 1);
    if (i >= w->cap) {
        lfx_fun_failed(&w->hk);
        errno = ENOMEM;
        return NULL;
    }
    return rel_obj_make(w, i, n);
}

static inline int rel_closer(void *ctx, void *obj)
{
    struct rel_world *w = ctx;
    lfx_count(&w->hk.n.closed);
    if (!rel_is_obj(w, obj)) {
        atomic_fetch_add(&w->closer_foreign, 1);
        return -1;
    }
    struct rel_obj *o = obj;
    int32_t pe = atomic_load(&w->pid_expected);
    if (pe && o->pid != pe)
        atomic_fetch_add(&w->closer_wrong_pid, 1);
    if (atomic_load(&o->borrowed))
        atomic_fetch_add(&w->closer_on_borrowed, 1);
    if (atomic_load(&o->held)) {
        /* legitimate only for a kill in LFPOOL_KILL_CLOSE mode */
        atomic_fetch_add(&w->closer_on_held, 1);
        atomic_store(&o->killed_close, 1);
    }
    if (atomic_fetch_add(&o->closed, 1) != 0)
        atomic_fetch_add(&w->closer_twice, 1);
    else
        atomic_fetch_sub(&w->live, 1);
    if (lfx_chance(atomic_load(&w->slow_closer)))
        usleep((useconds_t)atomic_load(&w->slow_closer_us));
    return lfx_closer_fault(&w->hk);
}

static inline int rel_health(void *ctx, void *obj)
{
    struct rel_world *w = ctx;
    struct rel_obj *o = obj;
    lfx_count(&w->hk.n.health);
    int expect = 0;
    /* a borrowed object must not be held by anyone else */
    if (!atomic_compare_exchange_strong(&o->held, &expect, 1)) {
        atomic_fetch_add(&w->health_on_held, 1);
        return 1;
    }
    atomic_store(&o->borrowed, 1);
    if (atomic_load(&o->closed))
        atomic_fetch_add(&w->health_on_held, 1);
    int one = 1;
    if (atomic_compare_exchange_strong(&w->hang_armed, &one, 0)) {
        atomic_store(&w->hanging, 1);
        rel_sleep(w->hang_s);
        atomic_store(&w->hanging, 0);
    }
    int r = 1;
    uint64_t x = lfx_rand() % 1000;
    unsigned bad = atomic_load(&w->health_bad), err = atomic_load(&w->health_err);
    if (x < bad) {
        r = 0;
        atomic_fetch_add(&w->health_bad_count, 1);
    } else if (x < bad + err) {
        r = -1;
        atomic_fetch_add(&w->health_err_count, 1);
    }
    atomic_store(&o->borrowed, 0);
    atomic_store(&o->held, 0);
    return r;
}

static inline int rel_tracer(void *ctx, void *obj, char *buf, size_t size)
{
    struct rel_world *w = ctx;
    lfx_count(&w->hk.n.traced);
    if (!rel_is_obj(w, obj))
        return snprintf(buf, size, "foreign %p", obj);
    struct rel_obj *o = obj;
    /* quotes, backslashes and a control character: the JSON must escape */
    return snprintf(buf, size, "obj \"%u\" \\ pid=%d\t", o->index, (int)o->pid);
}

static inline int rel_stats_hook(void *ctx, void *obj, struct lfpool_json *j)
{
    struct rel_world *w = ctx;
    struct rel_obj *o = obj;
    lfx_count(&w->hk.n.stats);
    if (lfx_chance(atomic_load(&w->stats_fail)))
        return -1;
    lfpool_json_begin_object(j);
    lfpool_json_key(j, "index");
    lfpool_json_integer(j, o->index);
    lfpool_json_key(j, "uses");
    lfpool_json_integer(j, (int64_t)atomic_load(&o->uses));
    lfpool_json_end_object(j);
    return 0;
}

/* config with every hook of the world wired, the log captured */
static inline void rel_config(lfpool_config *cfg, struct rel_world *w, struct lfx_log *l,
                              struct lfx_clock *c)
{
    lfpool_config_init(cfg);
    lfx_config(cfg, &w->hk, l, c); /* opener, getter, retter, log, clock */
    cfg->fun = rel_fun;
    cfg->closer = rel_closer;
    cfg->tracer = rel_tracer;
}

/* user-side checks around get/ret: exclusivity and liveness */
struct rel_viol {
    _Atomic uint64_t double_handout; /* got an object someone holds */
    _Atomic uint64_t closed_handout; /* got an object already closed */
    _Atomic uint64_t foreign_handout;/* got a pointer that is not ours */
    _Atomic uint64_t bad_ret;        /* unexpected ret code */
    _Atomic uint64_t ret_ok_after_close; /* ret 0 for an object closed while held */
    /* KILL_CLOSE with a kill threshold: a kill may close an object between
     * lfpool_get's return and rel_take (its guard ends with the get), so a
     * closed object at take is counted here, not as closed_handout; the
     * caller checks that each one was a kill (its ret gives ENOENT) */
    bool close_kills;
    _Atomic uint64_t closed_by_kill_at_take;
};

/* take ownership of an object just got; false on a violation */
static inline bool rel_take(struct rel_world *w, struct rel_viol *v, void *p)
{
    if (!rel_is_obj(w, p) || ((struct rel_obj *)p)->magic != REL_MAGIC) {
        atomic_fetch_add(&v->foreign_handout, 1);
        return false;
    }
    struct rel_obj *o = p;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&o->held, &expect, 1)) {
        atomic_fetch_add(&v->double_handout, 1);
        return false;
    }
    if (atomic_load(&o->closed)) {
        if (v->close_kills)
            atomic_fetch_add(&v->closed_by_kill_at_take, 1);
        else
            atomic_fetch_add(&v->closed_handout, 1);
    }
    atomic_fetch_add(&o->uses, 1);
    return true;
}

static inline void rel_release(struct rel_obj *o)
{
    atomic_store(&o->held, 0);
}

static inline uint64_t rel_viol_total(struct rel_viol *v)
{
    return atomic_load(&v->double_handout) + atomic_load(&v->closed_handout) +
           atomic_load(&v->foreign_handout) + atomic_load(&v->bad_ret) +
           atomic_load(&v->ret_ok_after_close);
}

/* compare the counters that no failed bad-input call may change */
static inline bool rel_stats_same(const struct lfpool_stats *a, const struct lfpool_stats *b)
{
    return a->nobjs == b->nobjs && a->navail == b->navail && a->nusing == b->nusing &&
           a->ncreated == b->ncreated && a->ncreating == b->ncreating &&
           a->nuses == b->nuses && a->nkilled == b->nkilled &&
           a->nrecycled == b->nrecycled && a->nwornout == b->nwornout &&
           a->ndestroys == b->ndestroys && a->sem_value == b->sem_value &&
           a->shutdown == b->shutdown;
}

#endif /* REL_COMMON_H */
