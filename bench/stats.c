/* SPDX-License-Identifier: MIT */
/* stats: monotonic clock and order statistics for the benchmarks. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t stats_now_ns(void) {
  struct timespec ts;

  /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double stats_min(const double *v, size_t n) {
  double m;
  size_t i;

  if (n == 0)
    return NAN;
  m = v[0];
  for (i = 1; i < n; i++)
    if (v[i] < m)
      m = v[i];
  return m;
}

double stats_max(const double *v, size_t n) {
  double m;
  size_t i;

  if (n == 0)
    return NAN;
  m = v[0];
  for (i = 1; i < n; i++)
    if (v[i] > m)
      m = v[i];
  return m;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;

  return (x > y) - (x < y);
}

/* p-th percentile of an already sorted sample. */
static double percentile_sorted(const double *s, size_t n, double p) {
  double rank;
  size_t lo;

  rank = p / 100.0 * (double)(n - 1);
  lo = (size_t)rank;
  if (lo + 1 >= n)
    return s[n - 1];
  return s[lo] + (rank - (double)lo) * (s[lo + 1] - s[lo]);
}

double stats_percentile(const double *v, size_t n, double p) {
  double *s;
  double r;

  if (n == 0 || !(p >= 0.0 && p <= 100.0))
    return NAN;
  s = malloc(n * sizeof(*s));
  if (s == NULL)
    return NAN;
  memcpy(s, v, n * sizeof(*s));
  qsort(s, n, sizeof(*s), cmp_double);
  r = percentile_sorted(s, n, p);
  free(s);
  return r;
}

double stats_median(const double *v, size_t n) {
  return stats_percentile(v, n, 50.0);
}

void stats_summarize(const double *v, size_t n, stats_summary_t *out) {
  out->n = n;
  out->min = stats_min(v, n);
  out->p25 = stats_percentile(v, n, 25.0);
  out->median = stats_percentile(v, n, 50.0);
  out->p75 = stats_percentile(v, n, 75.0);
  out->max = stats_max(v, n);
}
