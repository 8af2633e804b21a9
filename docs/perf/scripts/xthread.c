/* xthread.c - returns from another thread: one thread gets objects and
 * passes them through a single-producer ring to a second thread, which
 * returns them (every return is a careful one, without the getter's hint).
 * Prints ns per pair over N pairs (default 2 M), and with -DNEW the biased
 * return's statistics (docs/PERFORMANCE.md, "Biased return").
 *
 *   gcc -O2 [-DNEW] -I$TREE/include xthread.c -o xthread -L$TREE/build \
 *       -llfpool -lpthread -Wl,-rpath,$TREE/build
 *   ./xthread 3000000
 */
#include <lfpool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define RING 256
static void *ring[RING];
static _Atomic unsigned long head, tail;
static lfpool *P;
static unsigned long N = 2000000;
static void *fun(void *c, uint64_t n) { (void)c; (void)n; return malloc(64); }
static int closer(void *c, void *o) { (void)c; free(o); return 0; }
static void *cons(void *a) {
    (void)a;
    unsigned long t = 0;
    while (t < N) {
        while (atomic_load_explicit(&head, memory_order_acquire) == t) ;
        void *o = ring[t % RING];
        atomic_store_explicit(&tail, ++t, memory_order_release);
        if (lfpool_ret(P, o)) abort();
    }
    return NULL;
}
int main(int argc, char **argv) {
    if (argc > 1) N = strtoul(argv[1], 0, 10);
    lfpool_config c; lfpool_config_init(&c); c.fun = fun; c.closer = closer;
    if (lfpool_new(&P, &c)) return 1;
    pthread_t th; pthread_create(&th, 0, cons, 0);
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
    for (unsigned long h = 0; h < N; h++) {
        void *o; if (lfpool_get(P, &o, LFPOOL_DEFAULT)) abort();
        while (h - atomic_load_explicit(&tail, memory_order_acquire) >= RING) ;
        ring[h % RING] = o;
        atomic_store_explicit(&head, h + 1, memory_order_release);
    }
    pthread_join(th, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    struct lfpool_stats st; lfpool_stats(P, &st);
#ifdef NEW
    printf("%.1f ns/pair  fences %llu biased %d created %llu\n", s * 1e9 / N,
           (unsigned long long)st.nbias_fences, st.ret_biased, (unsigned long long)st.ncreated);
#else
    printf("%.1f ns/pair  created %llu\n", s * 1e9 / N, (unsigned long long)st.ncreated);
#endif
    lfpool_free(P);
    return 0;
}
