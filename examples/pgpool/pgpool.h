/*
 * pgpool.h - pooling libpq connections with lfpool: the hooks and the
 * application's return rule, small enough to copy into a program.
 *
 * Owns: nothing but the hooks' context (struct pgpool_ctx); the pool owns the
 * connections between a get and the matching release.
 * Invariant: a connection handed out by the pool was CONNECTION_OK, outside a
 * transaction, and passed the cheap query if it had been idle; a connection
 * whose status is no longer CONNECTION_OK never goes back to the pool.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef PGPOOL_H
#define PGPOOL_H

#include <lfpool.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

/* What the hooks need; lives as long as the pool (cfg.ctx points to it). */
struct pgpool_ctx {
    const char *conninfo;     /* libpq connection string */
    const char *init_sql;     /* run on each new connection (SET ...), NULL: none */
    const char *validate_sql; /* the cheap query after idle, NULL: "SELECT 1" */
    lfpool_log_fn log;        /* libpq's messages go here; NULL: stderr */
    void *log_ctx;
    /* counters, read by anyone */
    atomic_uint_fast64_t nconnect;        /* PQconnectdb calls */
    atomic_uint_fast64_t nconnect_failed; /* of which failed (connect or init SQL) */
};

/* Fill *cfg (lfpool_config_init first) for libpq connections: fun =
 * PQconnectdb + init_sql, closer = PQfinish, validate = status + the cheap
 * query after validate_idle, health = status of idle connections without a
 * round trip, tracer = backend pid and database; and the connection-pool
 * settings: max_lifetime 300 s with 30 s of jitter, a creation backoff of
 * 0.1 s doubling up to 5 s, two connects at once.  Change any of them
 * afterwards.  `fun` fails with errno ECONNREFUSED when libpq could not
 * connect, ECONNRESET when the connection died during init_sql, EPROTO when
 * init_sql failed; libpq's message is logged. */
void pgpool_config(lfpool_config *cfg, struct pgpool_ctx *ctx);

/* The application's rule after using a connection, whether its query
 * failed or not: a connection whose status is not CONNECTION_OK is dead and
 * returned broken (lfpool_ret_broken: closed, its capacity free at once);
 * any other goes back (lfpool_ret).  Returns what that call returned (0, or
 * ESTALE when the pool killed the connection while it was held). */
int pgpool_release(lfpool *pool, PGconn *conn);

/* The hooks themselves, for a program that wraps them. */
void *pgpool_connect(void *ctx, uint64_t n);
int pgpool_finish(void *ctx, void *conn);
int pgpool_validate(void *ctx, void *conn);
int pgpool_health(void *ctx, void *conn);
int pgpool_trace(void *ctx, void *conn, char *buf, size_t size);

#endif /* PGPOOL_H */
