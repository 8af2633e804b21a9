/*
 * pgpool.c - lfpool hooks for libpq connections (see pgpool.h).
 *
 * Owns: the life of each PGconn the pool asks for (PQconnectdb in `fun`,
 * PQfinish in `closer`) and the checks run on it.
 * Invariant: `fun` returns a connection that is CONNECTION_OK and has run
 * init_sql, or NULL with errno set and libpq's message logged; every
 * returned PGconn is finished exactly once, by the pool's closer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pgpool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void pgpool_log(struct pgpool_ctx *ctx, int level, const char *what, PGconn *conn)
{
    char line[512];
    const char *msg = conn ? PQerrorMessage(conn) : "";
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--; /* libpq's messages end with a newline */
    snprintf(line, sizeof line, "pgpool: %s: %.*s", what, (int)n, msg);
    for (char *p = line; *p; p++)
        if (*p == '\n')
            *p = ' '; /* one log line per event */
    if (ctx->log)
        ctx->log(ctx->log_ctx, level, line);
    else
        fprintf(stderr, "%s\n", line);
}

/* Server notices and errors that arrive outside a query (a FATAL before
 * the server closes an idle connection) go to the pool's log, not stderr. */
static void pgpool_notice(void *vctx, const char *msg)
{
    struct pgpool_ctx *ctx = vctx;
    char line[512];
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        n--;
    snprintf(line, sizeof line, "pgpool: server: %.*s", (int)n, msg);
    if (ctx->log)
        ctx->log(ctx->log_ctx, LFPOOL_LOG_WARNING, line);
    else
        fprintf(stderr, "%s\n", line);
}

void *pgpool_connect(void *vctx, uint64_t n)
{
    struct pgpool_ctx *ctx = vctx;
    (void)n;
    atomic_fetch_add(&ctx->nconnect, 1);
    PGconn *conn = PQconnectdb(ctx->conninfo);
    if (conn == NULL) {
        atomic_fetch_add(&ctx->nconnect_failed, 1);
        errno = ENOMEM;
        return NULL;
    }
    int err = 0;
    PQsetNoticeProcessor(conn, pgpool_notice, ctx);
    if (PQstatus(conn) != CONNECTION_OK) {
        pgpool_log(ctx, LFPOOL_LOG_WARNING, "connect failed", conn);
        err = ECONNREFUSED;
    } else if (ctx->init_sql) {
        PGresult *res = PQexec(conn, ctx->init_sql);
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            pgpool_log(ctx, LFPOOL_LOG_WARNING, "init SQL failed", conn);
            err = PQstatus(conn) == CONNECTION_OK ? EPROTO : ECONNRESET;
        }
    }
    if (err) {
        PQfinish(conn);
        atomic_fetch_add(&ctx->nconnect_failed, 1);
        errno = err; /* last: PQfinish and the log may change errno */
        return NULL;
    }
    return conn;
}

int pgpool_finish(void *ctx, void *conn)
{
    (void)ctx;
    PQfinish(conn);
    return 0;
}

/* Alive without a round trip: read what the server may have sent while the
 * connection sat idle (libpq's socket is non-blocking, so this does not
 * wait).  A backend that was terminated, or a server that shut down, has
 * sent its FATAL message and closed the socket: PQconsumeInput then fails
 * and the status becomes CONNECTION_BAD.  A connection left inside a
 * transaction is not reusable either. */
static int pgpool_alive(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return 0;
    if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
        return 0;
    return PQtransactionStatus(conn) == PQTRANS_IDLE;
}

int pgpool_health(void *ctx, void *conn)
{
    (void)ctx;
    return pgpool_alive(conn);
}

int pgpool_validate(void *vctx, void *conn)
{
    struct pgpool_ctx *ctx = vctx;
    if (!pgpool_alive(conn))
        return 0;
    PGresult *res = PQexec(conn, ctx->validate_sql ? ctx->validate_sql : "SELECT 1");
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    return (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && PQstatus(conn) == CONNECTION_OK;
}

/* Runs on the housekeeper while another thread may use the connection:
 * it reads only what libpq set while connecting (the backend pid and the
 * database name), which nothing changes afterwards. */
int pgpool_trace(void *ctx, void *conn, char *buf, size_t size)
{
    (void)ctx;
    return snprintf(buf, size, "PGconn backend %d db %s", PQbackendPID(conn), PQdb(conn));
}

void pgpool_config(lfpool_config *cfg, struct pgpool_ctx *ctx)
{
    cfg->ctx = ctx;
    cfg->fun = pgpool_connect;
    cfg->closer = pgpool_finish;
    cfg->validate = pgpool_validate;
    cfg->validate_idle = 0.5;
    cfg->health = pgpool_health;
    cfg->tracer = pgpool_trace;
    cfg->max_lifetime = 300;
    cfg->max_lifetime_jitter = 30;
    cfg->create_backoff = 0.1;
    cfg->create_backoff_max = 5;
    cfg->max_creating = 2;
}

int pgpool_release(lfpool *pool, PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return lfpool_ret_broken(pool, conn);
    return lfpool_ret(pool, conn);
}
