/*
 * log.c - per-pool logging and object tracing.
 *
 * Owns: formatting of log lines, the default sink (one line on stderr),
 * level filtering (a message goes out when its level <= the pool's
 * log_level), the folding of repeated lines (below), the tracer call
 * with its "%p" default, and the report of a failed LFPOOL_ASSERT (debug
 * builds).  Invariant: never allocates, never propagates a
 * failure; a line is at most 1023 bytes; the sink is never called with a
 * lock of the pool held (it is user code and may call into the pool).
 *
 * Folding.  A line a pool writes again within LOG_WINDOW (one second, on
 * the pool's clock: the injected one when set) of the last time it was
 * written is not written; it is counted.  The next time it comes after the
 * window, or at the first other line, round or lfpool_free after the
 * window, "<line> (repeated N times)" is written instead, N being the times
 * it came since it was last written (the current one included when it is
 * what triggers the summary).  A pool remembers its last LOG_SLOTS
 * distinct lines (struct lfpool_logdup, in struct lfpool); a line pushed
 * out of them writes its pending summary first, so no count is lost.  The
 * slots are guarded by a spin lock held only to compare and copy (never
 * across the sink or the clock); a fork child resets it
 * (lfpool_log_fork_reset).  Lines of lfpool_log_cfg (no pool yet) are
 * never folded.
 */
#include "internal.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_WINDOW 1.0

static const char *const level_names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};

static void log_default(void *log_ctx, int level, const char *msg)
{
    (void)log_ctx;
    const char *name = (level >= 0 && level <= 3) ? level_names[level] : "LOG";
    fprintf(stderr, "lfpool %s: %s\n", name, msg);
}

/* Write one line: "pool N: " (when id) and the text. */
static void log_write(const lfpool_config *cfg, uint64_t id, int level, const char *text,
                      uint64_t repeated)
{
    char line[LFPOOL_LOG_LINE];
    if (repeated)
        snprintf(line, sizeof line, "pool %llu: %s (repeated %llu times)", (unsigned long long)id,
                 text, (unsigned long long)repeated);
    else if (id)
        snprintf(line, sizeof line, "pool %llu: %s", (unsigned long long)id, text);
    else
        snprintf(line, sizeof line, "%s", text);
    if (cfg->log)
        cfg->log(cfg->log_ctx, level, line);
    else
        log_default(NULL, level, line);
}

/* ---- folding */

static uint64_t text_hash(int level, const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)(unsigned)level;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h | 1; /* 0 marks an empty slot */
}

static void dup_lock(struct lfpool_logdup *d)
{
    while (atomic_exchange_explicit(&d->lock, 1, memory_order_acquire))
        sched_yield();
}

static void dup_unlock(struct lfpool_logdup *d)
{
    atomic_store_explicit(&d->lock, 0, memory_order_release);
}

/* What is to be written after the lock is left. */
struct dup_out {
    int n;
    struct {
        int level;
        uint64_t repeated;
        char text[LFPOOL_LOG_KEEP];
    } line[LFPOOL_LOG_SLOTS];
};

/* Summaries of the slots whose window has passed (all of them: `all`). */
static void dup_due(struct lfpool_logdup *d, double now, bool all, struct dup_out *o)
{
    for (int i = 0; i < LFPOOL_LOG_SLOTS; i++) {
        struct lfpool_logdup_slot *s = &d->slot[i];
        if (!s->hash || !s->folded)
            continue;
        double age = now - s->written;
        if (!all && age >= 0 && age < LOG_WINDOW)
            continue;
        o->line[o->n].level = s->level;
        o->line[o->n].repeated = s->folded;
        memcpy(o->line[o->n].text, s->text, sizeof s->text);
        o->n++;
        s->folded = 0;
        s->written = now;
    }
}

static void dup_flush_out(const struct lfpool *p, struct dup_out *o)
{
    for (int i = 0; i < o->n; i++)
        log_write(&p->cfg, p->id, o->line[i].level, o->line[i].text, o->line[i].repeated);
}

static double log_clock(const struct lfpool *p)
{
    if (p->cfg.clock)
        return p->cfg.clock(p->cfg.clock_ctx);
    return lfpool_mono_now();
}

/* Decide for one line: true, write it (*repeated: as a summary of that
 * many); false, folded.  Summaries that became due go to *o. */
static bool dup_admit(struct lfpool_logdup *d, int level, const char *text, double now,
                      uint64_t *repeated, struct dup_out *o)
{
    uint64_t h = text_hash(level, text);
    bool write = true;
    *repeated = 0;
    dup_lock(d);
    struct lfpool_logdup_slot *s = NULL, *victim = &d->slot[0];
    for (int i = 0; i < LFPOOL_LOG_SLOTS; i++) {
        struct lfpool_logdup_slot *c = &d->slot[i];
        if (c->hash == h && c->level == level && strncmp(c->text, text, sizeof c->text - 1) == 0) {
            s = c;
            break;
        }
        if (!c->hash || (victim->hash && c->used < victim->used))
            victim = c;
    }
    if (s) {
        double age = now - s->written;
        if (age >= 0 && age < LOG_WINDOW) {
            s->folded++;
            write = false;
        } else {
            *repeated = s->folded ? s->folded + 1 : 0;
            s->folded = 0;
            s->written = now;
        }
        s->used = ++d->uses;
    }
    dup_due(d, now, false, o);
    if (!s) {
        /* a line pushed out writes its pending count first */
        if (victim->hash && victim->folded) {
            o->line[o->n].level = victim->level;
            o->line[o->n].repeated = victim->folded;
            memcpy(o->line[o->n].text, victim->text, sizeof victim->text);
            o->n++;
        }
        victim->hash = h;
        victim->level = level;
        victim->folded = 0;
        victim->written = now;
        victim->used = ++d->uses;
        size_t n = strnlen(text, sizeof victim->text - 1);
        memcpy(victim->text, text, n);
        victim->text[n] = '\0';
    }
    dup_unlock(d);
    return write;
}

void lfpool_log(const struct lfpool *p, int level, const char *fmt, ...)
{
    if (level > p->cfg.log_level)
        return;
    char text[LFPOOL_LOG_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* the slots are the pool's own mutable state, also in a const pool */
    struct lfpool_logdup *d = (struct lfpool_logdup *)&p->logdup;
    struct dup_out o;
    uint64_t repeated;
    o.n = 0;
    bool write = dup_admit(d, level, text, log_clock(p), &repeated, &o);
    dup_flush_out(p, &o);
    if (write)
        log_write(&p->cfg, p->id, level, text, repeated);
}

/* Write the summaries that are due (`all`: every pending one: free). */
void lfpool_log_flush(struct lfpool *p, bool all)
{
    struct dup_out o;
    o.n = 0;
    double now = log_clock(p);
    dup_lock(&p->logdup);
    dup_due(&p->logdup, now, all, &o);
    dup_unlock(&p->logdup);
    dup_flush_out(p, &o);
}

/* A fork child: the lock may have been held by a parent thread. */
void lfpool_log_fork_reset(struct lfpool *p)
{
    memset(&p->logdup, 0, sizeof p->logdup);
}

/* Before a pool exists (configuration errors). */
void lfpool_log_cfg(const lfpool_config *cfg, int level, const char *fmt, ...)
{
    lfpool_config dflt = {.log_level = LFPOOL_LOG_WARNING};
    if (!cfg)
        cfg = &dflt;
    int max = (cfg->log_level >= LFPOOL_LOG_ERROR && cfg->log_level <= LFPOOL_LOG_DEBUG)
                  ? cfg->log_level : LFPOOL_LOG_WARNING;
    if (level > max)
        return;
    char text[LFPOOL_LOG_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log_write(cfg, 0, level, text, 0);
}

/* Describe obj into buf; returns the text length (truncated to size-1). */
int lfpool_trace(const struct lfpool *p, void *obj, char *buf, size_t size)
{
    int n = -1;
    if (p->cfg.tracer) {
        buf[0] = '\0';
        n = p->cfg.tracer(p->cfg.ctx, obj, buf, size);
        if (n < 0)
            n = snprintf(buf, size, "<tracer failed on %p>", obj);
    } else {
        n = snprintf(buf, size, "%p", obj);
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= size)
        n = (int)size - 1;
    buf[n] = '\0';
    /* a tracer may claim more than it wrote (embedded NUL): trust the text */
    return (int)strnlen(buf, (size_t)n);
}

#ifdef LFPOOL_DEBUG
/* LFPOOL_ASSERT's failure (internal.h): no pool, no allocation - the
 * state is already wrong. */
void lfpool_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "lfpool: %s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
#endif
