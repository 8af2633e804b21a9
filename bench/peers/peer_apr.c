/*
 * peer_apr.c - the "apr" peer: APR-util's apr_reslist (libaprutil1), the
 * resource list Apache httpd uses for database connections and the like.
 *
 * Configuration: min 0 (no background refill), smax = hmax = max_size (or
 * INT_MAX when unbounded), ttl 0 (resources never expire), acquire waits
 * without limit (apr_reslist_timeout_set 0).  `prefill` objects are made by
 * acquiring them all and releasing them again.  The constructor allocates a
 * bench_obj, the destructor frees it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peers.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_reslist.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

struct apr_peer {
    apr_pool_t *pool;
    apr_reslist_t *rl;
};

static pthread_once_t apr_once = PTHREAD_ONCE_INIT;
static apr_status_t apr_init_status = APR_SUCCESS;

static void apr_init_once(void)
{
    apr_init_status = apr_initialize();
    /* apr_terminate is registered so that APR's global pool goes away */
    if (apr_init_status == APR_SUCCESS)
        atexit(apr_terminate);
}

static apr_status_t ap_construct(void **resource, void *params, apr_pool_t *pool)
{
    (void)params;
    (void)pool;
    void *o = bench_obj_new();
    if (!o)
        return APR_ENOMEM;
    *resource = o;
    return APR_SUCCESS;
}

static apr_status_t ap_destruct(void *resource, void *params, apr_pool_t *pool)
{
    (void)params;
    (void)pool;
    bench_obj_free(resource);
    return APR_SUCCESS;
}

/* APR status codes below APR_OS_START_ERROR are errno values. */
static int ap_err(apr_status_t st)
{
    if (st == APR_SUCCESS)
        return 0;
    return st < APR_OS_START_ERROR ? (int)st : EIO;
}

static void ap_close(void *self);

static int ap_open(void **self, size_t max_size, size_t prefill)
{
    pthread_once(&apr_once, apr_init_once);
    if (apr_init_status != APR_SUCCESS)
        return ap_err(apr_init_status);
    if (max_size > INT_MAX || (max_size == 0 && prefill > INT_MAX))
        return EINVAL;
    int hmax = max_size ? (int)max_size : INT_MAX;
    if (max_size && prefill > max_size)
        prefill = max_size;

    struct apr_peer *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    apr_status_t st = apr_pool_create(&p->pool, NULL);
    if (st != APR_SUCCESS) {
        free(p);
        return ap_err(st);
    }
    st = apr_reslist_create(&p->rl, 0, hmax, hmax, 0, ap_construct, ap_destruct, NULL,
                            p->pool);
    if (st != APR_SUCCESS) {
        apr_pool_destroy(p->pool);
        free(p);
        return ap_err(st);
    }
    apr_reslist_timeout_set(p->rl, 0); /* wait forever */

    if (prefill) {
        void **tmp = malloc(prefill * sizeof *tmp);
        if (!tmp) {
            ap_close(p);
            return ENOMEM;
        }
        size_t n = 0;
        for (; n < prefill; n++)
            if ((st = apr_reslist_acquire(p->rl, &tmp[n])) != APR_SUCCESS)
                break;
        for (size_t i = 0; i < n; i++)
            apr_reslist_release(p->rl, tmp[i]);
        free(tmp);
        if (st != APR_SUCCESS) {
            ap_close(p);
            return ap_err(st);
        }
    }
    *self = p;
    return 0;
}

static int ap_get(void *self, void **obj)
{
    struct apr_peer *p = self;
    return ap_err(apr_reslist_acquire(p->rl, obj));
}

static int ap_put(void *self, void *obj)
{
    struct apr_peer *p = self;
    return ap_err(apr_reslist_release(p->rl, obj));
}

static void ap_close(void *self)
{
    struct apr_peer *p = self;
    apr_reslist_destroy(p->rl);
    apr_pool_destroy(p->pool);
    free(p);
}

const struct bench_peer bench_peer_apr = {
    .name = "apr",
    .desc = "APR-util apr_reslist (mutex + condition variable)",
    .can_wait = true,
    .open = ap_open,
    .get = ap_get,
    .put = ap_put,
    .close = ap_close,
    .thread_init = NULL,
    .thread_fini = NULL,
    .supports = NULL,
};
