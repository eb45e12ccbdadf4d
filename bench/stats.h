/* SPDX-License-Identifier: MIT */
/*
 * stats: a monotonic clock and order statistics of a sample, shared by the
 * benchmarks.  Every function is thread-safe and leaves its input alone.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC.  Any thread. */
uint64_t stats_now_ns(void);

/* Smallest and largest of v[0..n); NAN when n is 0. */
double stats_min(const double *v, size_t n);
double stats_max(const double *v, size_t n);

/* The p-th percentile (0 <= p <= 100) of v[0..n), interpolating linearly
 * between the two nearest ranks of the sorted sample, as numpy's default
 * does.  NAN when n is 0, p is out of range or memory runs out. */
double stats_percentile(const double *v, size_t n, double p);

/* stats_percentile(v, n, 50). */
double stats_median(const double *v, size_t n);

/* Everything a benchmark prints about one sample. */
typedef struct stats_summary_s {
  size_t n;
  double min;
  double p25;
  double median;
  double p75;
  double max;
} stats_summary_t;

/* Fills *out for v[0..n) (fields are NAN when n is 0). */
void stats_summarize(const double *v, size_t n, stats_summary_t *out);

#endif /* BENCH_STATS_H */
