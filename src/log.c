/*
 * log.c - per-pool logging and object tracing.
 *
 * Owns: formatting of log lines, the default sink (one line on stderr),
 * level filtering (a message goes out when its level <= the pool's
 * log_level), the tracer call with its "%p" default, and the report of a
 * failed LFPOOL_ASSERT (debug builds).  Invariant: never
 * allocates, never propagates a failure; a line is at most 1023 bytes.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};

static void log_default(void *log_ctx, int level, const char *msg)
{
    (void)log_ctx;
    const char *name = (level >= 0 && level <= 3) ? level_names[level] : "LOG";
    fprintf(stderr, "lfpool %s: %s\n", name, msg);
}

static void log_emit(const lfpool_config *cfg, uint64_t id, int level, const char *fmt, va_list ap)
{
    char line[1024];
    int off = id ? snprintf(line, sizeof line, "pool %llu: ", (unsigned long long)id) : 0;
    if (off < 0)
        off = 0;
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    if (cfg->log)
        cfg->log(cfg->log_ctx, level, line);
    else
        log_default(NULL, level, line);
}

void lfpool_log(const struct lfpool *p, int level, const char *fmt, ...)
{
    if (level > p->cfg.log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(&p->cfg, p->id, level, fmt, ap);
    va_end(ap);
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
    va_list ap;
    va_start(ap, fmt);
    log_emit(cfg, 0, level, fmt, ap);
    va_end(ap);
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
