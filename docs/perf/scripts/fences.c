/*
 * fences.c - membarrier calls under saturation: T threads, max_size M, each
 * get held briefly (a yield every 4th), then returned; prints the pool's
 * nflushes and nbias_fences per get, and (since issue 19's bounded fences)
 * nfences, every membarrier.  No housekeeper unless a delay is given.
 * cc -O2 -Iinclude fences.c build/liblfpool.a -lurcu-bp -lurcu-cds -lurcu-common -lck -lpthread -lm
 * ./a.out 16 8 3000
 */
#include <lfpool.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
static lfpool *p; static int iters;
static void *blk_new(void *c, uint64_t n){(void)c;(void)n;return aligned_alloc(64,64);}
static int blk_free(void *c, void *b){(void)c;free(b);return 0;}
static void *w(void *a){ (void)a; for(int i=0;i<iters;i++){ void *o; if(lfpool_get(p,&o,LFPOOL_FOREVER)) abort(); if (i % 4 == 0) sched_yield(); else for (volatile int k=0;k<200;k++); lfpool_ret(p,o);} return NULL; }
int main(int argc,char**argv){
  int T=atoi(argv[1]), M=atoi(argv[2]); iters=atoi(argv[3]);
  lfpool_config cfg; lfpool_config_init(&cfg); cfg.fun=blk_new; cfg.closer=blk_free; cfg.max_size=M; cfg.min_size=M;
  if (argc>4) cfg.delay = atof(argv[4]);
  lfpool_new(&p,&cfg);
  pthread_t th[64]; for(int i=0;i<T;i++) pthread_create(&th[i],0,w,0); for(int i=0;i<T;i++) pthread_join(th[i],0);
  struct lfpool_stats s; lfpool_stats(p,&s);
  printf("gets %lu flushes %lu (%.3f/get) fences %lu (%.2g/get) bias_fences %lu hk_rounds %lu cpu_cache %lu\n", s.nuses, s.nflushes, (double)s.nflushes/s.nuses, s.nfences, (double)s.nfences/s.nuses, s.nbias_fences, s.hk_rounds, s.cpu_cache);
  lfpool_free(p);
}
