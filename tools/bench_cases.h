/*
 * bench_cases.h - lfpool-bench's tight-loop and allocator cases
 * (bench_cases.c).
 *
 * Owns: their entry points.  Invariant: each returns 0, 1 (a measurement
 * failed or counted errors) or 2 (setup), as lfpool-bench's exit status.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef LFPOOL_BENCH_CASES_H
#define LFPOOL_BENCH_CASES_H

#include <stdbool.h>
#include <stdio.h>

/* --tight: the tight loops of bench_tights[] (peers.h), `seconds` each per
 * round; the table goes to `out`. */
/* The median of the non-NaN values of v[0..n) (reorders v); NaN if none.
 * Shared with lfpool-bench.c's table. */
double bench_median(double *v, size_t n);

int bench_tight_run(double seconds, unsigned rounds, bool quiet, FILE *out);
/* --alloc: every allocator at 1 and 2 threads, each in a child process
 * (`self`: this program's path, re-executed with --alloc-child). */
int bench_alloc_run(const char *self, double seconds, unsigned rounds, bool quiet, FILE *out);
/* --alloc-child KIND:THREADS:SECONDS: one measurement, printed on stdout. */
int bench_alloc_child(const char *spec);

#endif
