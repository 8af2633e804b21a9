/*
 * histogram.h - the pool's observability counters: log2 histograms of wait,
 * hold and creation times, and the per-CPU recording of hold times.
 *
 * Owns: struct lfpool_obs (embedded in struct lfpool) and the only code
 * that writes it.  Invariant: every recorded value is counted exactly once,
 * in exactly one bucket of exactly one of the copies a reader sums
 * (lfpool_histogram, histogram.c); a copy is only ever added to, so a
 * reader's sum is a snapshot that never loses a value it saw before.
 *
 * Where each histogram is written:
 *  - WAIT and CREATE are recorded on slow paths only (a get that waited, a
 *    call of `fun`), with relaxed atomic adds on one shared copy: those
 *    paths already made system calls or ran user code.
 *  - HOLD is recorded by every return when cfg.hold_histogram is on, so it
 *    is kept per CPU: each CPU's copy is written only by threads running
 *    on that CPU, with a plain add that is the commit of an rseq critical
 *    section (lfpool_obs_pcpu_add below), no locked instruction.  Argument:
 *    the section checks rseq->cpu_id against the CPU whose copy it
 *    addresses and ends with one add to memory.  An x86 instruction is not
 *    split by an interrupt, so preemption, migration or a signal either
 *    come before the add (the kernel moves the thread to the abort label:
 *    nothing written, the caller retries on the CPU it is on now) or after
 *    it (the add is complete).  Two threads on one CPU never run at the
 *    same instant, so adds to one CPU's copy never race.  Count and sum are
 *    two sections: a reader may see one before the other (a snapshot under
 *    load), never a value counted twice.  ABA: nothing is compared but the
 *    CPU number.  Ordering: none needed, readers want totals only (relaxed
 *    loads; x86-64 loads of aligned 8-byte words do not tear).
 *    Reclamation: the copies live as long as the pool.
 *    Without rseq (the pool's per-CPU caches off: not registered, another
 *    architecture, valgrind), or on a CPU beyond the copies, an add is a
 *    relaxed atomic add on one extra copy that no rseq section writes
 *    (plain and locked adds on one word would race).
 *  - HOLD's bucket 0 on ret's inline path (a hold of 0 s: the coarse clock
 *    did not tick, which is every short hold) is kept per record instead:
 *    the records of a pool with cfg.hold_histogram are allocated with one
 *    more word, rec->hold_zero[0] (meta.c), and the returner adds 1 to it
 *    with one unlocked add (rec_count_hold_zero, internal.h), as the holder
 *    counts its uses (rec_count_use).  Argument: the returner is the record's only writer
 *    of that word - it adds after its commit made the record CACHED and
 *    its own, before the push puts it in the set, and a record is only
 *    ever CACHED-and-not-in-the-set for one thread at a time; the next
 *    writer (a later hand-out's returner) got the record through the
 *    set's release/acquire, so adds never race.  Readers load the word
 *    relaxed (an aligned 8-byte word: never torn).  A record leaves the
 *    table (meta.c's deletions, lfpool_obs_gone) with its count moved to
 *    hold_zero_gone, as `uses` moves to dead_uses, and a reused record
 *    starts from 0.  The reader sums hold_zero_gone and the table's
 *    records: never a record twice, and none missed unless a deletion
 *    overlaps the read, which the deletions' bracket lets the reader see
 *    and retry (meta.c, lfpool_meta_read_begin: a sequence count whose
 *    writers are the rare deletions); a figure never goes down
 *    (hold_zero_seen).  Reclamation: records are type-stable
 *    (meta.c).
 */
#ifndef LFPOOL_HISTOGRAM_H
#define LFPOOL_HISTOGRAM_H

#include "lfpool.h"
#include "percpu.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* One histogram's figures: count per bucket, the sum in nanoseconds. */
struct lfpool_hist_cells {
    uint64_t count[LFPOOL_HIST_BUCKETS];
    uint64_t sum_ns;
};

/* A per-CPU copy of the hold histogram: four cache lines of its own. */
struct lfpool_hist_cpu {
    struct lfpool_hist_cells c;
} __attribute__((aligned(256)));

struct lfpool_obs {
    /* slow paths: atomic adds (__atomic builtins on plain words) */
    struct lfpool_hist_cells wait, create;
    uint64_t ntimeouts;
    /* HOLD, per CPU: nhold rseq copies and one more for atomic adds (NULL
     * unless cfg.hold_histogram) */
    struct lfpool_hist_cpu *hold;
    unsigned nhold;
    bool hold_pcpu; /* the rseq adds apply (the pool's caches are on) */
    /* HOLD's bucket 0 of records no longer in the table, and the largest
     * sum of the records' bucket 0 a reader found; with hold only */
    _Atomic uint64_t hold_zero_gone, hold_zero_seen;
};

/* Bucket of a value in seconds: the smallest i with v <= 2^(i-20), 0 for
 * v <= 2^-20 (zero, negative, NaN), the last bucket above 64 s.  ceil(log2
 * v) of a normal positive double is its exponent, plus one when the
 * mantissa is not zero: adding 2^52 - 1 to the bits carries into the
 * exponent exactly then. */
static inline unsigned lfpool_hist_bucket(double v)
{
    if (!(v > 0x1p-20))
        return 0;
    if (v > 0x1p6)
        return LFPOOL_HIST_BUCKETS - 1;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int e = (int)((bits + 0xfffffffffffffULL) >> 52) - 1023;
    return (unsigned)(e + 20);
}

/* Seconds to whole nanoseconds, 0 for anything not positive; capped at
 * about 31 years so that the sum cannot wrap within a pool's life. */
static inline uint64_t lfpool_hist_ns(double v)
{
    if (!(v > 0))
        return 0;
    if (v > 1e9)
        v = 1e9;
    return (uint64_t)(v * 1e9 + 0.5);
}

/* Slow paths: record v seconds into a shared histogram. */
static inline void lfpool_hist_add_shared(struct lfpool_hist_cells *h, double v)
{
    __atomic_fetch_add(&h->count[lfpool_hist_bucket(v)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, lfpool_hist_ns(v), __ATOMIC_RELAXED);
}

#if LFPOOL_HAVE_PCPU
/* *word += v as one rseq section on CPU `cpu` (see the argument above).
 * LFPOOL_PCPU_OK: added; LFPOOL_PCPU_RETRY: aborted or not on `cpu`,
 * nothing added.  An `asm goto` like percpu.h's sections. */
static inline int lfpool_obs_pcpu_add_at(long off, uint64_t *word, uint32_t cpu, uint64_t v)
{
    unsigned long st;
    __asm__ __volatile__ goto(LFPOOL_RSEQ_START
                              "cmpl %[cpu], %%fs:4(%[off])\n\t"
                              "jnz %l[retry]\n\t"
                              "addq %[v], (%[w])\n\t" /* commit */
                              LFPOOL_RSEQ_LEAVE
                              : [st] "=&r"(st)
                              : [off] "r"(off), [cpu] "r"(cpu), [w] "r"(word),
                                [v] "r"(v)
                              : "memory", "cc"
                              : retry);
    (void)st;
    return LFPOOL_PCPU_OK;
retry:
    return LFPOOL_PCPU_RETRY;
}
static inline int lfpool_obs_pcpu_add(uint64_t *word, uint32_t cpu, uint64_t v)
{
    return lfpool_obs_pcpu_add_at(lfpool_pcpu_off(), word, cpu, v);
}
#endif

/* Add v to the field at byte offset `off` of this CPU's hold copy. */
static inline __attribute__((always_inline)) void lfpool_obs_hold_bump(struct lfpool_obs *o, size_t off, uint64_t v)
{
#if LFPOOL_HAVE_PCPU
    if (__builtin_expect(o->hold_pcpu, 1)) {
        for (;;) {
            uint32_t cpu = lfpool_pcpu_cpu();
            if (__builtin_expect(cpu >= o->nhold, 0))
                break;
            uint64_t *w = (uint64_t *)((char *)&o->hold[cpu].c + off);
            if (__builtin_expect(lfpool_obs_pcpu_add(w, cpu, v) == LFPOOL_PCPU_OK, 1))
                return;
        }
    }
#endif
    /* the last copy takes atomic adds only: never one of the rseq copies */
    __atomic_fetch_add((uint64_t *)((char *)&o->hold[o->nhold].c + off), v, __ATOMIC_RELAXED);
}

/* Record a hold of v seconds (the caller checked o->hold != NULL). */
static inline __attribute__((always_inline)) void lfpool_obs_hold(struct lfpool_obs *o, double v)
{
    lfpool_obs_hold_bump(o, offsetof(struct lfpool_hist_cells, count) +
                                lfpool_hist_bucket(v) * sizeof(uint64_t), 1);
    /* holds shorter than the coarse clock's tick read 0 s: nothing to add
     * to the sum (the common case of a short hold: one section, not two) */
    uint64_t ns = lfpool_hist_ns(v);
    if (ns)
        lfpool_obs_hold_bump(o, offsetof(struct lfpool_hist_cells, sum_ns), ns);
}

#endif
