#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static _Alignas(64) _Atomic uintptr_t w[8];
#define N 100000000L
int main(void){
  double t0,t1; uintptr_t acc=0;
  for(int rep=0;rep<3;rep++){
  t0=now(); for(long i=0;i<N;i++){ uintptr_t v=atomic_load_explicit(&w[0],memory_order_relaxed); atomic_store_explicit(&w[0],v+1,memory_order_relaxed);} t1=now();
  printf("plain load+store     %.2f ns/op\n",(t1-t0)*1e9/N);
  t0=now(); for(long i=0;i<N;i++){ acc+=atomic_exchange_explicit(&w[1],(uintptr_t)i,memory_order_acquire);} t1=now();
  printf("xchg                 %.2f ns/op\n",(t1-t0)*1e9/N);
  t0=now(); for(long i=0;i<N;i++){ uintptr_t e=atomic_load_explicit(&w[2],memory_order_relaxed); atomic_compare_exchange_strong_explicit(&w[2],&e,e+1,memory_order_acq_rel,memory_order_relaxed);} t1=now();
  printf("lock cmpxchg         %.2f ns/op\n",(t1-t0)*1e9/N);
  t0=now(); for(long i=0;i<N;i++){ uintptr_t e=atomic_load_explicit(&w[3],memory_order_relaxed); atomic_compare_exchange_strong_explicit(&w[3],&e,e+1,memory_order_acq_rel,memory_order_relaxed); atomic_exchange_explicit(&w[4],(uintptr_t)i,memory_order_acquire); e=atomic_load_explicit(&w[5],memory_order_relaxed);atomic_compare_exchange_strong_explicit(&w[5],&e,e+1,memory_order_acq_rel,memory_order_relaxed); e=atomic_load_explicit(&w[6],memory_order_relaxed);atomic_compare_exchange_strong_explicit(&w[6],&e,e+1,memory_order_acq_rel,memory_order_relaxed);} t1=now();
  printf("4 locked RMW (xchg+3 cmpxchg, 4 lines) %.2f ns/iter\n",(t1-t0)*1e9/N);
  }
  return (int)(acc&1);
}
