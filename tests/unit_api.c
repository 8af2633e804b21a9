/* unit_api.c - §2 argument checking, LFPOOL_WITH, shutdown (§3.8), lazy
 * start and fork (§3.7). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

LFPOOL_TEST_FIXTURE(api, (void)0);


Test(api, invalid_configurations)
{
    lfpool *p = (lfpool *)0x1;
    cr_assert_eq(lfpool_new(NULL, &C), EINVAL);
    cr_assert_eq(lfpool_new(&p, NULL), EINVAL);
    lfpool_config c;
#define BAD(stmt)                                                     \
    do {                                                              \
        tcfg(&c, &T);                                                 \
        stmt;                                                         \
        p = (lfpool *)0x1;                                            \
        cr_assert_eq(lfpool_new(&p, &c), EINVAL, "accepted: " #stmt); \
        cr_assert_null(p);                                            \
    } while (0)
    BAD(c.fun = NULL);
    BAD((c.max_size = 2, c.min_size = 3));
    BAD(c.timeout = -1);
    BAD(c.timeout = NAN);
    BAD(c.max_avail_delay = -0.5);
    BAD(c.max_using_delay = NAN);
    BAD(c.max_using_delay_kill = -3);
    BAD(c.delay = NAN);
    BAD(c.delay = -1);
    BAD(c.health_freq = 0);
    BAD(c.kill_mode = 7);
    BAD(c.log_level = 9);
#undef BAD
    cr_assert(strstr(T.log.text, "min_size > max_size") != NULL, "reason logged: %s", T.log.text);
    cr_assert_eq(atomic_load(&T.fx.n.created), 0);
    /* unbounded: min_size has no upper limit */
    tcfg(&c, &T);
    c.min_size = 5;
    cr_assert_eq(lfpool_new(&P, &c), 0);
    cr_assert_eq(tstats(P).nobjs, 5);
}

Test(api, null_and_bad_arguments)
{
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *o;
    struct lfpool_stats s;
    cr_assert_eq(lfpool_get(NULL, &o, 0), EINVAL);
    cr_assert_eq(lfpool_get(P, NULL, 0), EINVAL);
    cr_assert_eq(lfpool_get(P, &o, NAN), EINVAL);
    cr_assert_eq(lfpool_get(P, &o, -2), EINVAL);
    cr_assert_eq(lfpool_ret(NULL, &o), EINVAL);
    cr_assert_eq(lfpool_ret(P, NULL), EINVAL);
    cr_assert_eq(lfpool_stats(NULL, &s), EINVAL);
    cr_assert_eq(lfpool_stats(P, NULL), EINVAL);
    cr_assert_eq(lfpool_housekeep(NULL), EINVAL);
    cr_assert_eq(lfpool_shutdown(NULL, 0), EINVAL);
    cr_assert_eq(lfpool_shutdown(P, NAN), EINVAL);
    errno = 0;
    cr_assert_null(lfpool_stats_json(NULL));
    cr_assert_eq(errno, EINVAL);
    lfpool_free(NULL);
    s = tstats(P);
    cr_assert_eq(s.nusing, 0);
    cr_assert_eq(s.navail, 1);
    cr_assert_eq(s.shutdown, false);
}

Test(api, foreign_double_and_null_returns)
{
    C.max_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    int foreign;
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    uint64_t retted = atomic_load(&T.fx.n.retted);
    cr_assert_eq(lfpool_ret(P, &foreign), ENOENT);
    cr_assert_eq(atomic_load(&T.fx.n.retted), retted, "retter must not see a foreign pointer");
    cr_assert(strstr(T.log.text, "unexpected object returned") != NULL, "%s", T.log.text);
    cr_assert_eq(lfpool_ret(P, a), 0);
    cr_assert_eq(lfpool_ret(P, a), ENOENT);
    cr_assert_eq(atomic_load(&T.fx.n.retted), retted + 1);
    /* nothing lost: both slots usable, nothing handed out twice */
    void *x, *y, *z;
    cr_assert_eq(lfpool_get(P, &x, 0), 0);
    cr_assert_eq(lfpool_get(P, &y, 0), 0);
    cr_assert_neq(x, y);
    cr_assert_eq(lfpool_get(P, &z, 0), EAGAIN);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.nusing, 2);
    cr_assert_eq(s.nobjs, 2);
    lfpool_ret(P, x);
    lfpool_ret(P, y);
}

static int with_helper(lfpool *p, void **seen)
{
    LFPOOL_WITH(p, o, 0)
    {
        *seen = o;
        return 42; /* leaves the block by return */
    }
    return -1;
}

Test(api, with_returns_on_every_exit_path)
{
    C.max_size = 1;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *seen = NULL;
    int runs = 0;
    LFPOOL_WITH(P, o, 0) { runs++; seen = o; }
    cr_assert_eq(runs, 1);
    cr_assert_eq(tstats(P).nusing, 0, "returned after falling off the block");
    LFPOOL_WITH(P, o, 0) { runs++; break; }
    cr_assert_eq(runs, 2);
    cr_assert_eq(tstats(P).nusing, 0, "returned after break");
    cr_assert_eq(with_helper(P, &seen), 42);
    cr_assert_eq(tstats(P).nusing, 0, "returned after return");
    LFPOOL_WITH(P, o, 0)
    {
        runs++;
        goto out;
    }
out:
    cr_assert_eq(runs, 3);
    cr_assert_eq(tstats(P).nusing, 0, "returned after goto");
    void *held;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    LFPOOL_WITH(P, o, 0) { runs++; }
    cr_assert_eq(runs, 3, "block skipped when the get fails");
    lfpool_ret(P, held);
}

Test(api, shutdown_closes_and_refuses)
{
    C.min_size = 3;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    cr_assert_eq(lfpool_shutdown(P, 0.5), 0);
    cr_assert_eq(atomic_load(&T.fx.n.closed), 2, "available objects closed");
    struct lfpool_stats s = tstats(P);
    cr_assert(s.shutdown);
    cr_assert_eq(s.navail, 0);
    cr_assert_eq(s.nusing, 1);
    void *b;
    cr_assert_eq(lfpool_get(P, &b, 0), ESHUTDOWN);
    cr_assert_eq(lfpool_housekeep(P), ESHUTDOWN);
    cr_assert_eq(lfpool_ret(P, a), 0, "ret after shutdown closes and succeeds");
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    cr_assert_eq(lfpool_shutdown(P, 0), 0, "second shutdown harmless");
    cr_assert_eq(atomic_load(&T.fx.n.closed), 3);
    cr_assert_eq(lfpool_ret(P, a), ENOENT);
}

Test(api, free_closes_objects_still_out)
{
    C.min_size = 2;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    lfpool_free(P);
    P = NULL;
    cr_assert_eq(atomic_load(&T.fx.n.closed), 2);
    cr_assert_eq(atomic_load(&((struct tobj *)a)->closed), 1);
    cr_assert(strstr(T.log.text, "still out") != NULL, "%s", T.log.text);
}

Test(api, lazy_start_creates_nothing_until_first_get)
{
    C.min_size = 3;
    C.lazy_start = true;
    C.delay = 0.01;
    C.clock = NULL;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    usleep(50000);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 0);
    cr_assert_eq(s.hk_rounds, 0, "no housekeeper before the first get");
    void *a;
    cr_assert_eq(lfpool_get(P, &a, 0), 0);
    s = tstats(P);
    cr_assert_eq(s.ncreated, 3);
    for (int i = 0; i < 200 && tstats(P).hk_rounds == 0; i++)
        usleep(5000);
    cr_assert_gt(tstats(P).hk_rounds, 0, "housekeeper started by the first get");
    lfpool_ret(P, a);
}

/* clang 14's AddressSanitizer allocator is not fork-safe: if another thread
 * of the parent is inside malloc at fork(), a thread created in the child
 * (here: the child's own housekeeper) deadlocks in ASan's allocator before it
 * runs a line of ours.  Under ASan the child therefore gets a pool without a
 * housekeeper thread; the rest of the test is unchanged. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

Test(api, fork_child_never_gets_parent_objects)
{
    C.min_size = 2;
#ifdef UNDER_ASAN
    C.delay = 0;
#else
    C.delay = 0.01;
#endif
    C.clock = NULL;
    cr_assert_eq(lfpool_new(&P, &C), 0);
    void *held, *o;
    cr_assert_eq(lfpool_get(P, &held, 0), 0);
    int parent_objs = atomic_load(&T.nobjs);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        struct lfpool_stats s;
        lfpool_stats(P, &s);
        if (s.nobjs != 0 || s.navail != 0) bad |= 1;
        if (lfpool_ret(P, held) != ENOENT) bad |= 2; /* parent's object */
        for (int i = 0; i < 5; i++) {
            void *c[3];
            for (int k = 0; k < 3; k++) {
                if (lfpool_get(P, &c[k], 0) != 0) { bad |= 4; _exit(bad); }
                for (int j = 0; j < parent_objs; j++)
                    if (c[k] == (void *)T.objs[j]) bad |= 8;
            }
            for (int k = 0; k < 3; k++)
                if (lfpool_ret(P, c[k]) != 0) bad |= 16;
        }
        lfpool_stats(P, &s);
        if (s.ncreated != 3) bad |= 32;
#ifndef UNDER_ASAN
        for (int i = 0; i < 200 && (lfpool_stats(P, &s), s.hk_rounds == 0); i++)
            usleep(5000);
        if (s.hk_rounds == 0) bad |= 64; /* own housekeeper */
#endif
        int closed_before = atomic_load(&T.fx.n.closed);
        lfpool_free(P);
        /* only the child's three objects are closed in the child */
        if (atomic_load(&T.fx.n.closed) - closed_before != 3) bad |= 128;
        _exit(bad);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st));
    cr_assert_eq(WEXITSTATUS(st), 0, "child failures mask %d", WEXITSTATUS(st));
    /* parent untouched */
    cr_assert_eq(atomic_load(&T.fx.n.closed), 0);
    cr_assert_eq(lfpool_get(P, &o, 0), 0);
    cr_assert_eq(lfpool_ret(P, o), 0);
    cr_assert_eq(lfpool_ret(P, held), 0);
    struct lfpool_stats s = tstats(P);
    cr_assert_eq(s.ncreated, 2);
    cr_assert_eq(s.navail, 2);
}

Test(api, strerror_covers_every_code)
{
    int codes[] = {0, EINVAL, ENOMEM, EAGAIN, ETIMEDOUT, ESHUTDOWN, ENOENT, ESTALE, EEXIST, EIO};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = lfpool_strerror(codes[i]);
        cr_assert_not_null(m);
        cr_assert_gt(strlen(m), 3);
    }
    cr_assert_str_neq(lfpool_strerror(ESTALE), lfpool_strerror(ENOENT));
}

Test(api, pool_ids_increase)
{
    lfpool *a, *b;
    cr_assert_eq(lfpool_new(&a, &C), 0);
    cr_assert_eq(lfpool_new(&b, &C), 0);
    cr_assert_eq(tstats(b).id, tstats(a).id + 1);
    lfpool_free(a);
    lfpool_free(b);
}
