/*
 * percpu.h - one primitive: a per-CPU array of record pointers with
 * restartable-sequence (rseq) pop and push, x86-64; and the rseq
 * compare-and-store that the biased return commits with (bias.c).
 *
 * Owns: struct lfpool_cache and the only code that touches it without a
 * lock.  Invariant: slot[0, count) hold records; only code running on the
 * cache's own CPU inside an rseq critical section, or a "remote" thread that
 * holds `lock` and has fenced the CPU (below; no fence needed from SHUT or
 * CLOSED), reads or writes count/slot.
 *
 * Local operations (the hot path) use no atomic read-modify-write: each is
 * one rseq critical section (Linux rseq(2), registered by glibc >= 2.35 for
 * every thread) that checks it still runs on the CPU whose cache it
 * addresses (or, get's and ret's fast paths, reads the CPU in the section
 * and addresses that CPU's cache: LFPOOL_RSEQ_ENTER_HERE), checks `lock`,
 * and ends with a single committing store of `count`.  Preemption, migration or a signal before that store makes the
 * kernel restart the thread at the abort label, with nothing written that
 * anyone can see (push writes the slot beyond `count` before committing).
 * So on one CPU the operations are atomic with respect to each other.
 * - ABA: none possible; no decision is taken on a value another thread can
 *   change during the section (only the same CPU's sections touch it, and
 *   they cannot interleave).
 * - Ordering: x86-64 is TSO; the committing store of push comes after the
 *   caller's stores to the record (state CACHED, last_ret), and pop reads
 *   the slot before the caller reads the record.  The caller's acquire load
 *   of the record state makes the hand-off visible to the C11 model (and to
 *   ThreadSanitizer): the pusher stored CACHED with release.
 * - Reclamation: records are type-stable (meta.c); a cache never frees.
 *
 * Remote access (a get that must look at other CPUs' caches, the
 * housekeeper's flush, shutdown, fork reset) must not race with the local
 * sections, which are only atomic against their own CPU.  A remote thread
 * takes `lock` (CAS, among remote threads), then issues
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): when it returns, every
 * section in flight on any CPU was aborted or has committed and is visible,
 * and every later section reads lock != 0 and fails.  The remote thread
 * then owns count and slots until it releases the lock (release store).
 *
 * Lock values: LFPOOL_PCPU_OPEN (0); LFPOOL_PCPU_HELD (1), a remote thread
 * owns the cache; LFPOOL_PCPU_SHUT (2), nobody owns it, the cache is empty
 * and stays so while every get and ret must take its slow path (runtime
 * control, control.c); LFPOOL_PCPU_CLOSED (3), the gets closed the caches
 * (the bounded fences of cache.c): the local sections above fail, and the
 * CAS-mode sections below (a locked commit) take their place.  Remote
 * threads take the lock from OPEN, SHUT or CLOSED; one that took it from
 * SHUT or CLOSED needs no membarrier (no plain-store section can commit on
 * either, a CAS-mode section's commit fails once the lock is HELD, and the
 * last locker fenced before it stored SHUT or CLOSED).  SHUT or CLOSED ->
 * OPEN, and SHUT -> CLOSED, need no fence (cache.c).
 *
 * The same membarrier is also the heavy half of an asymmetric fence with
 * the ret path, which pushes and then reads the gate's waiter count with no
 * fence between (see cache.c).
 *
 * Elsewhere (no rseq, another architecture, valgrind) LFPOOL_HAVE_PCPU is 0
 * or cache.c's check of the rseq registration fails (pcpu_available), and
 * the pool uses its shared stack only.
 */
#ifndef LFPOOL_PERCPU_H
#define LFPOOL_PERCPU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/rseq.h>

/* Slots a single push fills at most (the pool's cache_cap is at most
 * this), and slots in all: bulk returns (lfpool_pcpu_push_n) may fill the
 * cache beyond LFPOOL_CACHE_SLOTS, up to the pool's bulk_cap (cache.c), so
 * that a bulk get finds the run a bulk ret left on its CPU.  The single
 * operations touch `count`, `lock` and one slot: the longer array costs
 * them nothing. */
#define LFPOOL_CACHE_SLOTS 14
#define LFPOOL_CACHE_BULK_SLOTS 62

struct lfpool_rec;

enum { LFPOOL_PCPU_OPEN = 0, LFPOOL_PCPU_HELD = 1, LFPOOL_PCPU_SHUT = 2, LFPOOL_PCPU_CLOSED = 3 };

struct lfpool_cache {
    uint32_t count;    /* slot[0, count) hold records */
    uint32_t lock;     /* non-zero: local operations fail (values above) */
    uint32_t pad[2];
    struct lfpool_rec *slot[LFPOOL_CACHE_BULK_SLOTS]; /* at offset 16 */
} __attribute__((aligned(128))); /* pairs of lines: no false sharing with the adjacent-line prefetch */
/* the assembly below hard-codes these offsets */
_Static_assert(__builtin_offsetof(struct lfpool_cache, count) == 0, "count at 0");
_Static_assert(__builtin_offsetof(struct lfpool_cache, lock) == 4, "lock at 4");
_Static_assert(__builtin_offsetof(struct lfpool_cache, slot) == 16, "slots at 16");
_Static_assert(sizeof(struct lfpool_cache) == 512, "eight cache lines, the slots filling them");

enum { LFPOOL_PCPU_OK = 0, LFPOOL_PCPU_FAIL = 1, LFPOOL_PCPU_RETRY = 2 };

#if defined(__x86_64__)
#define LFPOOL_HAVE_PCPU 1
/* glibc's registration signature for x86 (RSEQ_SIG); the kernel checks it
 * in the four bytes before an abort handler. */
#define LFPOOL_RSEQ_SIG_STR "0x53053053"

/* The offset of this thread's struct rseq from the thread pointer: the
 * same for every thread of the process.  A caller that runs several
 * sections reads it once and passes it on (each section's "memory"
 * clobber would make the compiler load the global again). */
static inline long lfpool_pcpu_off(void)
{
    return (long)__rseq_offset;
}

/* The CPU the thread runs on (a hint: it may move right after). */
static inline uint32_t lfpool_pcpu_cpu_at(long off)
{
    uint32_t c;
    __asm__ __volatile__("movl %%fs:(%1), %0" : "=r"(c) : "r"(off));
    return c; /* cpu_id_start: offset 0 of struct rseq */
}
static inline uint32_t lfpool_pcpu_cpu(void)
{
    return lfpool_pcpu_cpu_at(lfpool_pcpu_off());
}

/* The descriptor of one critical section [1, 2) with abort handler 4, and
 * the store of its address into rseq->rseq_cs (offset 8). */
#define LFPOOL_RSEQ_START_VIA(R)                   \
    ".pushsection __rseq_cs, \"aw\"\n\t"          \
    ".balign 32\n\t"                              \
    "3:\n\t"                                      \
    ".long 0x0, 0x0\n\t"                          \
    ".quad 1f, (2f - 1f), 4f\n\t"                 \
    ".popsection\n\t"                             \
    "1:\n\t"                                      \
    "leaq 3b(%%rip), %[" R "]\n\t"                \
    "movq %[" R "], %%fs:8(%[off])\n\t"
/* the descriptor's address made in the asm operand named R (a scratch
 * register): %[st] for most sections */
#define LFPOOL_RSEQ_START LFPOOL_RSEQ_START_VIA("st")
/* A cache's section: then it checks rseq->cpu_id (offset 4) against the
 * CPU the caller chose its cache by (another CPU: restart), and the cache's
 * lock (held or closed: fail).  The sections are `asm goto`: failure and
 * restart jump straight to the caller's C labels, and success falls
 * through, so that no status value is made and tested on the hot path. */
#define LFPOOL_RSEQ_ENTER_CPU                      \
    LFPOOL_RSEQ_START                             \
    "cmpl %[cpu], %%fs:4(%[off])\n\t"             \
    "jnz %l[retry]\n\t"
#define LFPOOL_RSEQ_ENTER                          \
    LFPOOL_RSEQ_ENTER_CPU                         \
    "cmpl $0, 4(%[c])\n\t"                        \
    "jnz %l[fail]\n\t"
/* count and lock are read apart, each as the 32-bit word it is: the
 * previous section on this CPU stored count with a 32-bit store, and one
 * 64-bit load of count and lock (a single unsigned compare for both) would
 * wait for that store to reach the cache instead of taking it from the
 * store buffer - a store-forwarding stall on every pop and push of a tight
 * loop, which cost more than the two instructions it saved. */
/* After the commit (label 2, the section's end): the abort handler, out of
 * line (the kernel checks the signature in the four bytes before it),
 * jumps to the caller's restart label.  Its section is one of its own:
 * not .text.unlikely, where the compiler puts cold functions (a section
 * inlined into one would have the handler right after its commit, in the
 * path that falls through). */
#define LFPOOL_RSEQ_LEAVE                          \
    "2:\n\t"                                      \
    ".pushsection .text.lfpool_rseq_abort, \"ax\"\n\t" \
    ".byte 0x0f, 0xb9, 0x3d\n\t"                  \
    ".long " LFPOOL_RSEQ_SIG_STR "\n\t"           \
    "4:\n\t"                                      \
    "jmp %l[retry]\n\t"                           \
    ".popsection\n\t"

/* Pop the top record of `c`, the cache of CPU `cpu`. */
static inline int lfpool_pcpu_pop_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                     struct lfpool_rec **out)
{
    /* The popped record goes to *out in the section (before its commit:
     * an aborted pop leaves it there, and is restarted), not through an
     * output operand: the callers merge "popped" with "none" (*out as the
     * caller set it, NULL), and GCC 12.2 lost the NULL such a merge needs
     * on the fail edge of an output-only operand (a record pointer from a
     * register left over), while clang before 16 leaves outputs undefined
     * on the jump paths.  Outputs here are scratch only. */
    unsigned long st, v;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER
                              "movl (%[c]), %k[st]\n\t"
                              "subl $1, %k[st]\n\t"
                              "jb %l[fail]\n\t" /* empty: count was 0 */
                              "movq 16(%[c], %[st], 8), %[v]\n\t" /* slot[count - 1] */
                              "movq %[v], %[out]\n\t"
                              "movl %k[st], (%[c])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st), [v] "=&r"(v)
                              : [off] "r"(off), [cpu] "r"(cpu), [c] "r"(c), [out] "m"(*out)
                              : "memory", "cc"
                              : fail, retry);
    (void)st, (void)v;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}
static inline int lfpool_pcpu_pop(struct lfpool_cache *c, uint32_t cpu, struct lfpool_rec **out)
{
    return lfpool_pcpu_pop_at(lfpool_pcpu_off(), c, cpu, out);
}

/* Push `rec` onto `c`, the cache of CPU `cpu`, holding at most `cap`
 * (<= LFPOOL_CACHE_SLOTS) records; `off`: lfpool_pcpu_off(). */
static inline int lfpool_pcpu_push_at(long off, struct lfpool_cache *c, uint32_t cpu, uint32_t cap,
                                      struct lfpool_rec *rec)
{
    unsigned long st;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER
                              "movl (%[c]), %k[st]\n\t"
                              "cmpl %k[n], %k[st]\n\t"
                              "jae %l[fail]\n\t" /* full */
                              "movq %[v], 16(%[c], %[st], 8)\n\t" /* slot[count], beyond count */
                              "addl $1, %k[st]\n\t"
                              "movl %k[st], (%[c])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st)
                              : [off] "r"(off), [cpu] "r"(cpu), [c] "r"(c),
                                [v] "r"(rec), [n] "rm"(cap)
                              : "memory", "cc"
                              : fail, retry);
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}
static inline int lfpool_pcpu_push(struct lfpool_cache *c, uint32_t cpu, uint32_t cap,
                                   struct lfpool_rec *rec)
{
    return lfpool_pcpu_push_at(lfpool_pcpu_off(), c, cpu, cap, rec);
}

/* The hot paths' sections (get's pop, ret's push) choose their cache
 * inside the section: the descriptor's store, then this thread's CPU read
 * from rseq->cpu_id (offset 4) and the cache's address made from it
 * (caches + cpu * 512), then the lock check.  From the section's first
 * instruction on, preemption, migration or a signal aborts it (to the
 * restart label), so the CPU read in it stays the thread's CPU until the
 * commit: no compare with a CPU chosen before the section, no copy of that
 * choice kept for it (three instructions fewer than LFPOOL_RSEQ_ENTER's
 * form).  A registered thread's cpu_id is a possible CPU, below ncaches
 * (cache.c): no bound check, as before.  %[c] is scratch: the descriptor's
 * address, then the cache's. */
#define LFPOOL_RSEQ_ENTER_HERE                     \
    LFPOOL_RSEQ_START_VIA("c")                    \
    "movl %%fs:4(%[off]), %k[c]\n\t"              \
    "shlq $9, %[c]\n\t"                           \
    "addq %[caches], %[c]\n\t"                    \
    "cmpl $0, 4(%[c])\n\t"                        \
    "jnz %l[fail]\n\t"

/* Pop the top record of the cache of the CPU the section runs on
 * (LFPOOL_RSEQ_ENTER_HERE), `caches` the array of every CPU's (the get
 * fast path, handout.c).  The popped record is an output only (no NULL to
 * load first), valid on the fall-through path, which is the only one that
 * reads it; the jump paths go to code that never merges with it. */
static inline __attribute__((always_inline)) int lfpool_pcpu_pop_here_at(long off,
                                                                         struct lfpool_cache *const *caches,
                                                                         struct lfpool_rec **out)
{
    unsigned long st, c;
    struct lfpool_rec *v;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER_HERE
                              "movl (%[c]), %k[st]\n\t"
                              "subl $1, %k[st]\n\t"
                              "jb %l[fail]\n\t"
                              "movq 16(%[c], %[st], 8), %[v]\n\t"
                              "movl %k[st], (%[c])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st), [v] "=&r"(v), [c] "=&r"(c)
                              : [off] "r"(off), [caches] "m"(*caches)
                              : "memory", "cc"
                              : fail, retry);
    (void)st, (void)c;
    *out = v;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}

/* lfpool_pcpu_push_at on the cache of the CPU the section runs on
 * (LFPOOL_RSEQ_ENTER_HERE; the ret fast path, cache.h). */
static inline __attribute__((always_inline)) int lfpool_pcpu_push_here_at(long off,
                                                                          struct lfpool_cache *const *caches,
                                                                          uint32_t cap,
                                                                          struct lfpool_rec *rec)
{
    unsigned long st, c;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER_HERE
                              "movl (%[c]), %k[st]\n\t"
                              "cmpl %k[n], %k[st]\n\t"
                              "jae %l[fail]\n\t" /* full */
                              "movq %[v], 16(%[c], %[st], 8)\n\t" /* slot[count], beyond count */
                              "addl $1, %k[st]\n\t"
                              "movl %k[st], (%[c])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st), [c] "=&r"(c)
                              : [off] "r"(off), [caches] "m"(*caches), [v] "r"(rec),
                                [n] "rm"(cap)
                              : "memory", "cc"
                              : fail, retry);
    (void)st, (void)c;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}

/* Copy k (>= 1) pointers from %[from] to %[to], eight a step (four
 * 16-byte loads and stores; first an odd one alone, then a pair if k & 2,
 * then four if k & 4), index %[i], scratch %[t] and %[x]; local labels 5
 * to 9.  A run of 32 is four steps (it was eight of four: 1.9 instructions
 * a pointer, now 1.6; sixteen of two before that: 2.6). */
#define LFPOOL_PCPU_COPY(from, to)                       \
    "xorl %k[i], %k[i]\n\t"                             \
    "testl $1, %k[k]\n\t"                               \
    "jz 6f\n\t"                                         \
    "movq (%[" from "]), %[t]\n\t"                      \
    "movq %[t], (%[" to "])\n\t"                        \
    "movl $1, %k[i]\n\t"                                \
    "6:\n\t"                                            \
    "testl $2, %k[k]\n\t"                               \
    "jz 8f\n\t"                                         \
    "movdqu (%[" from "], %[i], 8), %[x]\n\t"           \
    "movdqu %[x], (%[" to "], %[i], 8)\n\t"             \
    "addl $2, %k[i]\n\t"                                \
    "8:\n\t"                                            \
    "testl $4, %k[k]\n\t"                               \
    "jz 9f\n\t"                                         \
    "movdqu (%[" from "], %[i], 8), %[x]\n\t"           \
    "movdqu %[x], (%[" to "], %[i], 8)\n\t"             \
    "movdqu 16(%[" from "], %[i], 8), %[x]\n\t"         \
    "movdqu %[x], 16(%[" to "], %[i], 8)\n\t"           \
    "addl $4, %k[i]\n\t"                                \
    "9:\n\t"                                            \
    "cmpl %k[k], %k[i]\n\t"                             \
    "jae 7f\n\t"                                        \
    "5:\n\t"                                            \
    "movdqu (%[" from "], %[i], 8), %[x]\n\t"           \
    "movdqu %[x], (%[" to "], %[i], 8)\n\t"             \
    "movdqu 16(%[" from "], %[i], 8), %[x]\n\t"         \
    "movdqu %[x], 16(%[" to "], %[i], 8)\n\t"           \
    "movdqu 32(%[" from "], %[i], 8), %[x]\n\t"         \
    "movdqu %[x], 32(%[" to "], %[i], 8)\n\t"           \
    "movdqu 48(%[" from "], %[i], 8), %[x]\n\t"         \
    "movdqu %[x], 48(%[" to "], %[i], 8)\n\t"           \
    "addl $8, %k[i]\n\t"                                \
    "cmpl %k[k], %k[i]\n\t"                             \
    "jb 5b\n\t"                                         \
    "7:\n\t"

/* Runs of records, for the bulk calls: one section moves up to n records
 * between the cache and the caller's array, copying them in a loop before
 * its single committing store of `count`.  The argument is the single
 * operations' (above): an abort anywhere before the commit leaves count
 * as it was, and what the loop wrote is invisible - pop writes only the
 * caller's array, push only slots at or beyond `count`, which no section
 * of this CPU can read before the commit (they cannot interleave with
 * this one) and no remote thread reads before its fence (which aborts
 * this one or waits for its commit).  n >= 1.
 *
 * Pop min(n, count) records (the top of the cache) into out[]; *got is
 * that number.  Fails when the cache is empty or not OPEN.  The cache is
 * that of the CPU the section runs on (LFPOOL_RSEQ_ENTER_HERE, `caches`
 * the array of every CPU's), as for the single get's pop: the bulk get
 * pops only on its fast path (FAST_GET: p->pcpu, a cache for every
 * possible CPU, no bound check). */
static inline __attribute__((always_inline)) int lfpool_pcpu_pop_n_here_at(
    long off, struct lfpool_cache *const *caches, struct lfpool_rec **out, uint32_t n,
    uint32_t *got)
{
    unsigned long st, k, i, t, src, c;
    __attribute__((vector_size(16))) long long x;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER_HERE
                              "movl (%[c]), %k[st]\n\t"
                              "movl %[n], %k[k]\n\t"
                              "cmpl %k[st], %k[k]\n\t"
                              "cmoval %k[st], %k[k]\n\t" /* k = min(n, count) */
                              "testl %k[k], %k[k]\n\t"
                              "jz %l[fail]\n\t"
                              "subl %k[k], %k[st]\n\t" /* the new count */
                              "leaq 16(%[c], %[st], 8), %[src]\n\t" /* &slot[count - k] */
                              LFPOOL_PCPU_COPY("src", "o")
                              "movl %k[st], (%[c])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st), [k] "=&r"(k), [i] "=&r"(i), [t] "=&r"(t),
                                [src] "=&r"(src), [x] "=&x"(x), [c] "=&r"(c)
                              : [off] "r"(off), [caches] "m"(*caches), [o] "r"(out), [n] "r"(n)
                              : "memory", "cc"
                              : fail, retry);
    (void)c;
    *got = (uint32_t)k;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}
/* The push of a run (lfpool_pcpu_push_n_at, lfpool_pcpu_push_n_here_at):
 * k = min(n, cap - count) pointers of in[] copied to the slots from
 * count on, then count += k, the commit; fails (%l[fail]) when there is
 * no room.  Operands: the cache %[c], st, k, i, t, dst, x, in, n, cap. */
#define LFPOOL_PCPU_PUSH_N                                                \
    "movl (%[c]), %k[st]\n\t"                                            \
    "movl %[cap], %k[k]\n\t"                                             \
    "subl %k[st], %k[k]\n\t" /* room: cap - count */                     \
    "jbe %l[fail]\n\t"                                                   \
    "cmpl %[n], %k[k]\n\t"                                               \
    "cmoval %[n], %k[k]\n\t" /* k = min(n, room) */                      \
    "leaq 16(%[c], %[st], 8), %[dst]\n\t" /* &slot[count] */             \
    LFPOOL_PCPU_COPY("in", "dst") /* beyond count */                     \
    "addl %k[k], %k[st]\n\t"                                             \
    "movl %k[st], (%[c])\n\t" /* commit */

/* Push min(n, cap - count) records of in[] onto the cache (in[0] first);
 * *put is that number.  Fails when the cache holds `cap` or more, or is
 * not OPEN. */
static inline int lfpool_pcpu_push_n_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                        uint32_t cap, struct lfpool_rec *const *in, uint32_t n,
                                        uint32_t *put)
{
    unsigned long st, k, i, t, dst;
    __attribute__((vector_size(16))) long long x;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER
                              LFPOOL_PCPU_PUSH_N
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st), [k] "=&r"(k), [i] "=&r"(i), [t] "=&r"(t),
                                [dst] "=&r"(dst), [x] "=&x"(x)
                              : [off] "r"(off), [cpu] "r"(cpu), [c] "r"(c), [in] "r"(in),
                                [n] "r"(n), [cap] "r"(cap)
                              : "memory", "cc"
                              : fail, retry);
    *put = (uint32_t)k;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}

/* lfpool_pcpu_push_n_at on the cache of the CPU the section runs on
 * (LFPOOL_RSEQ_ENTER_HERE): for the bulk ret's inline path, which knows
 * p->pcpu (the admission word's FAST_RET_INLINE), as the single ret's
 * push. */
static inline __attribute__((always_inline)) int lfpool_pcpu_push_n_here_at(
    long off, struct lfpool_cache *const *caches, uint32_t cap, struct lfpool_rec *const *in,
    uint32_t n, uint32_t *put)
{
    unsigned long st, k, i, t, dst, c;
    __attribute__((vector_size(16))) long long x;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER_HERE
                              LFPOOL_PCPU_PUSH_N
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st), [k] "=&r"(k), [i] "=&r"(i), [t] "=&r"(t),
                                [dst] "=&r"(dst), [x] "=&x"(x), [c] "=&r"(c)
                              : [off] "r"(off), [caches] "m"(*caches), [in] "r"(in),
                                [n] "r"(n), [cap] "rm"(cap)
                              : "memory", "cc"
                              : fail, retry);
    (void)c;
    *put = (uint32_t)k;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}

/* Closed caches in CAS mode (cache.c): while the gets have closed the
 * caches (lock CLOSED), this CPU's threads still use their cache, with
 * sections whose commit is a locked CMPXCHG of the 64-bit word {count,
 * lock} (count at 0, lock at 4) instead of a plain store, the expected
 * word being {count as read, CLOSED}: the commit itself checks the lock.
 * A remote thread takes such a cache from CLOSED to HELD with a CAS of
 * `lock` and needs no membarrier: a section in flight fails its commit
 * (the word now says HELD, or a count the holder lowered).  ABA: while a
 * section of this CPU is in flight, no other section of this CPU runs
 * (rseq), and remote holders only take records out (they never push), so
 * the word cannot come back to {n, CLOSED} with other slots below n.
 * Nor can a section read a count before a change of the lock and commit
 * after it with that count: OPEN -> CLOSED is a flush, whose membarrier
 * aborts the section; SHUT caches are empty (count 0: the section fails
 * before its commit); HELD -> CLOSED only after the holder took records
 * out or found none (then count was 0 too).  Slots are read before the
 * commit whatever the lock says, and used only if it succeeds: no remote
 * thread writes a slot.  A push writes slot[count] before its commit,
 * beyond the count any holder reads.  The locked commit is a full
 * barrier: a push that then reads the gate's waiter count forms the
 * store-buffering pair with a waiter that registers, fences, then reads
 * the caches (cache.c).  The commit is the section's last instruction;
 * its outcome (ZF) is tested after the section, out of line: a failed
 * compare whose current word still says CLOSED restarts (a holder took a
 * record meanwhile), any other lock fails (the caller's slow path). */
#define LFPOOL_PCPU_CLOSED_WORD "0x300000000" /* {count 0, lock CLOSED} */
_Static_assert(LFPOOL_PCPU_CLOSED == 3, "LFPOOL_PCPU_CLOSED_WORD");
#define LFPOOL_PCPU_CLOSED_LEAVE                   \
    LFPOOL_RSEQ_LEAVE                             \
    "jnz 9f\n\t"                                  \
    ".pushsection .text.lfpool_rseq_abort, \"ax\"\n\t" \
    "9:\n\t"                                      \
    "shrq $32, %%rax\n\t"                         \
    "cmpl $3, %%eax\n\t"                          \
    "je %l[retry]\n\t"                            \
    "jmp %l[fail]\n\t"                            \
    ".popsection\n\t"

/* Pop the top record of `c` (CAS mode, above) into *out, for the get's
 * CAS-mode path (handout.c, get_miss) and the slow path's closed_pop
 * (cache.c): the record is an output of the section, valid on the
 * fall-through path only (as lfpool_pcpu_pop_here_at's). */
static inline __attribute__((always_inline)) int lfpool_pcpu_pop_closed_at(
    long off, struct lfpool_cache *c, uint32_t cpu, struct lfpool_rec **out)
{
    unsigned long w, st;
    struct lfpool_rec *v;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER_CPU
                              "movl (%[c]), %%eax\n\t" /* count; rax = {count, 0} */
                              "testl %%eax, %%eax\n\t"
                              "jz %l[fail]\n\t" /* empty */
                              "movq 8(%[c], %%rax, 8), %[v]\n\t" /* slot[count - 1] */
                              "movabsq $" LFPOOL_PCPU_CLOSED_WORD ", %[st]\n\t"
                              "orq %[st], %%rax\n\t" /* expected: {count, CLOSED} */
                              "leaq -1(%%rax), %[st]\n\t"
                              "lock cmpxchgq %[st], (%[c])\n\t" /* commit */
                              LFPOOL_PCPU_CLOSED_LEAVE
                              : [st] "=&r"(st), [v] "=&r"(v), "=&a"(w)
                              : [off] "r"(off), [cpu] "r"(cpu), [c] "r"(c)
                              : "memory", "cc"
                              : fail, retry);
    (void)w, (void)st;
    *out = v;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}

/* Push `rec` onto `c` (CAS mode, above), holding at most `cap`. */
static inline __attribute__((always_inline)) int lfpool_pcpu_push_closed_at(
    long off, struct lfpool_cache *c, uint32_t cpu, uint32_t cap, struct lfpool_rec *rec)
{
    unsigned long w, st;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_ENTER_CPU
                              "movl (%[c]), %%eax\n\t" /* count; rax = {count, 0} */
                              "cmpl %k[n], %%eax\n\t"
                              "jae %l[fail]\n\t" /* full */
                              "movq %[v], 16(%[c], %%rax, 8)\n\t" /* slot[count], beyond count */
                              "movabsq $" LFPOOL_PCPU_CLOSED_WORD ", %[st]\n\t"
                              "orq %[st], %%rax\n\t" /* expected: {count, CLOSED} */
                              "leaq 1(%%rax), %[st]\n\t"
                              "lock cmpxchgq %[st], (%[c])\n\t" /* commit */
                              LFPOOL_PCPU_CLOSED_LEAVE
                              : [st] "=&r"(st), "=&a"(w)
                              : [off] "r"(off), [cpu] "r"(cpu), [c] "r"(c), [v] "r"(rec),
                                [n] "rm"(cap)
                              : "memory", "cc"
                              : fail, retry);
    (void)w, (void)st;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}

/* Store `nv` into *word if *word == expect and (*mode & mask) == 0, as one
 * rseq critical section whose commit is that store (the biased return,
 * bias.c).  Not atomic against other CPUs by itself: a thread that may
 * change *word on another CPU first makes (*mode & mask) non-zero, then
 * issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ); when that
 * returns, every section that read mode == 0 has committed (and its store
 * is visible) or was aborted, and every later section fails.  Both loads
 * precede the commit (TSO keeps loads in order and a store after them).
 * Returns LFPOOL_PCPU_OK (stored), LFPOOL_PCPU_FAIL (mode set or *word
 * differs: nothing stored) or LFPOOL_PCPU_RETRY (aborted: nothing
 * stored).  No CPU check: nothing here is per-CPU, the section only has
 * to be atomic against preemption, signals and the fence. */
static inline int lfpool_pcpu_store_if_at(long off, const uint32_t *mode, uint32_t mask,
                                          uint32_t *word, uint32_t expect, uint32_t nv)
{
    unsigned long st;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_START
                              "testl %[mask], (%[m])\n\t"
                              "jnz %l[fail]\n\t"
                              "cmpl %[exp], (%[w])\n\t"
                              "jnz %l[fail]\n\t"
                              "movl %[nv], (%[w])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st)
                              : [off] "r"(off), [m] "r"(mode), [mask] "ir"(mask),
                                [w] "r"(word), [exp] "r"(expect), [nv] "r"(nv)
                              : "memory", "cc"
                              : fail, retry);
    (void)st;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}
static inline int lfpool_pcpu_store_if(const uint32_t *mode, uint32_t mask, uint32_t *word,
                                       uint32_t expect, uint32_t nv)
{
    return lfpool_pcpu_store_if_at(lfpool_pcpu_off(), mode, mask, word, expect, nv);
}

/* lfpool_pcpu_store_if_at with a second store, *aux = av, made in the
 * section once both checks passed and before the commit: only a thread
 * whose section found `expect` makes it (an aborted section may have made
 * it without the commit: the caller's CAS then decides, and writes *aux
 * again).  The three words are memory operands, addressed off the
 * caller's registers. */
static inline int lfpool_pcpu_store2_if_at(long off, const uint32_t *mode, uint32_t mask,
                                           uint32_t *word, uint32_t expect, uint32_t nv,
                                           uint64_t *aux, uint64_t av)
{
    unsigned long st;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_START
                              "testl %[mask], %[m]\n\t"
                              "jnz %l[fail]\n\t"
                              "cmpl %[exp], %[w]\n\t"
                              "jnz %l[fail]\n\t"
                              "movq %[av], %[aux]\n\t"
                              "movl %[nv], %[w]\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st)
                              : [off] "r"(off), [m] "m"(*mode), [mask] "i"(mask),
                                [w] "m"(*word), [exp] "r"(expect), [nv] "r"(nv),
                                [aux] "m"(*aux), [av] "r"(av)
                              : "memory", "cc"
                              : fail, retry);
    (void)st;
    return LFPOOL_PCPU_OK;
fail:
    return LFPOOL_PCPU_FAIL;
retry:
    return LFPOOL_PCPU_RETRY;
}
#else
#define LFPOOL_HAVE_PCPU 0
static inline long lfpool_pcpu_off(void) { return 0; }
static inline uint32_t lfpool_pcpu_cpu_at(long off) { (void)off; return 0; }
static inline uint32_t lfpool_pcpu_cpu(void) { return 0; }
static inline int lfpool_pcpu_pop(struct lfpool_cache *c, uint32_t cpu, struct lfpool_rec **out)
{
    (void)c, (void)cpu, (void)out;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_pop_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                     struct lfpool_rec **out)
{
    (void)off, (void)c, (void)cpu, (void)out;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_push_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                      uint32_t cap, struct lfpool_rec *rec)
{
    (void)off, (void)c, (void)cpu, (void)cap, (void)rec;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_push(struct lfpool_cache *c, uint32_t cpu, uint32_t cap,
                                   struct lfpool_rec *rec)
{
    (void)c, (void)cpu, (void)cap, (void)rec;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_pop_here_at(long off, struct lfpool_cache *const *caches,
                                          struct lfpool_rec **out)
{
    (void)off, (void)caches, (void)out;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_push_here_at(long off, struct lfpool_cache *const *caches,
                                           uint32_t cap, struct lfpool_rec *rec)
{
    (void)off, (void)caches, (void)cap, (void)rec;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_push_n_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                        uint32_t cap, struct lfpool_rec *const *in, uint32_t n,
                                        uint32_t *put)
{
    (void)off, (void)c, (void)cpu, (void)cap, (void)in, (void)n, (void)put;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_pop_n_here_at(long off, struct lfpool_cache *const *caches,
                                            struct lfpool_rec **out, uint32_t n, uint32_t *got)
{
    (void)off, (void)caches, (void)out, (void)n, (void)got;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_push_n_here_at(long off, struct lfpool_cache *const *caches,
                                             uint32_t cap, struct lfpool_rec *const *in,
                                             uint32_t n, uint32_t *put)
{
    (void)off, (void)caches, (void)cap, (void)in, (void)n, (void)put;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_pop_closed_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                            struct lfpool_rec **out)
{
    (void)off, (void)c, (void)cpu, (void)out;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_push_closed_at(long off, struct lfpool_cache *c, uint32_t cpu,
                                             uint32_t cap, struct lfpool_rec *rec)
{
    (void)off, (void)c, (void)cpu, (void)cap, (void)rec;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_store_if_at(long off, const uint32_t *mode, uint32_t mask,
                                          uint32_t *word, uint32_t expect, uint32_t nv)
{
    (void)off, (void)mode, (void)mask, (void)word, (void)expect, (void)nv;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_store_if(const uint32_t *mode, uint32_t mask, uint32_t *word,
                                       uint32_t expect, uint32_t nv)
{
    (void)mode, (void)mask, (void)word, (void)expect, (void)nv;
    return LFPOOL_PCPU_FAIL;
}
static inline int lfpool_pcpu_store2_if_at(long off, const uint32_t *mode, uint32_t mask,
                                           uint32_t *word, uint32_t expect, uint32_t nv,
                                           uint64_t *aux, uint64_t av)
{
    (void)off, (void)mode, (void)mask, (void)word, (void)expect, (void)nv, (void)aux, (void)av;
    return LFPOOL_PCPU_FAIL;
}
#endif

#endif
