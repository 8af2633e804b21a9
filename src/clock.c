/*
 * clock.c - time for the pool.
 *
 * Owns: the library's monotonic and epoch clocks, the pool's coarse time
 * (`coarse_now`, refreshed by the housekeeper every tick, after each health
 * check and closer batch, and by creation, rounds and stats) and conversions to absolute CLOCK_MONOTONIC deadlines for futex
 * waits.  Invariant: the get/ret hot path never calls clock_gettime(); it
 * reads `coarse_now` (or calls the injected clock, which tests own).
 */
#include "internal.h"

#include <math.h>
#include <time.h>

double lfpool_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double lfpool_epoch_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The pool's clock, read fresh (slow paths: refreshes the coarse time). */
double lfpool_now_fresh(struct lfpool *p)
{
    if (p->cfg.clock)
        return p->cfg.clock(p->cfg.clock_ctx);
    double t = lfpool_mono_now();
    atomic_store_explicit(&p->coarse_now, t, memory_order_relaxed);
    return t;
}

/* Every conversion of seconds (a double) to a timespec goes through here:
 * *ts += secs.  A float-to-integer conversion of a value out of range is
 * undefined behaviour (lfpool_shutdown(p, 1e300) once returned at once
 * instead of waiting), so secs is clamped to [0, LFPOOL_SECS_MAX]: NaN and
 * negative add nothing, anything longer than about 31,700 years (infinity
 * included) waits that long, which is forever for every caller. */
#define LFPOOL_SECS_MAX 1e12
void lfpool_timespec_add(struct timespec *ts, double secs)
{
    if (!(secs > 0))
        return;
    if (secs > LFPOOL_SECS_MAX)
        secs = LFPOOL_SECS_MAX;
    double whole = floor(secs);
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)((secs - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Absolute `clock` deadline `timeout` seconds from now (clamped as above). */
void lfpool_deadline_in(clockid_t clock, double timeout, struct timespec *ts)
{
    clock_gettime(clock, ts);
    lfpool_timespec_add(ts, timeout);
}

/* Absolute CLOCK_MONOTONIC deadline `timeout` seconds from now. */
void lfpool_abs_deadline(double timeout, struct timespec *ts)
{
    lfpool_deadline_in(CLOCK_MONOTONIC, timeout, ts);
}

/* Has the CLOCK_MONOTONIC deadline passed (a waiter woken often must still
 * time out)? */
bool lfpool_deadline_passed(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}
