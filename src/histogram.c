/* SPDX-License-Identifier: MIT */
/*
 * histogram.c: tandem_histogram_t -- HdrHistogram's log-linear layout with
 * 8 sub-buckets per power of two -- and its public calls.
 *
 * Bucket i < 8 holds the value i.  Above, a value v with highest set bit e
 * (v in [2^e, 2^(e+1))) lands in bucket (e - 2) * 8 + the three bits below
 * e: each power of two is cut in 8 equal slices, so a bucket is at most
 * 1/8 of its lower bound wide.
 */
#include "histogram.h"

#include <stddef.h>

_Static_assert(TANDEM_HISTOGRAM_BUCKETS ==
                   (40 - TANDEM_HISTOGRAM_SUB_BITS + 1)
                       << TANDEM_HISTOGRAM_SUB_BITS,
               "buckets cover 0 .. 2^40 ns");

unsigned tandem_histogram_bucket(uint64_t ns) {
  return tdm_hist_bucket(ns);
}

uint64_t tandem_histogram_bucket_lower(unsigned i) {
  unsigned e;

  if (i >= TANDEM_HISTOGRAM_BUCKETS)
    return UINT64_MAX;
  if (i < TDM_HIST_LINEAR)
    return i;
  e = i / TDM_HIST_LINEAR + TDM_HIST_SUB - 1;
  return (uint64_t)(TDM_HIST_LINEAR + i % TDM_HIST_LINEAR)
         << (e - TDM_HIST_SUB);
}

uint64_t tandem_histogram_bucket_upper(unsigned i) {
  if (i + 1 >= TANDEM_HISTOGRAM_BUCKETS)
    return UINT64_MAX;
  return tandem_histogram_bucket_lower(i + 1);
}

void tandem_histogram_record(tandem_histogram_t *h, uint64_t ns) {
  unsigned i;

  if (h == NULL)
    return;
  i = tdm_hist_bucket(ns);
  h->bucket[i]++;
  h->sum_ns += ns;
  if (ns > h->max_ns)
    h->max_ns = ns;
  h->count++;
}

void tandem_histogram_merge(tandem_histogram_t *into,
                            const tandem_histogram_t *from) {
  unsigned i;

  if (into == NULL || from == NULL)
    return;
  for (i = 0; i < TANDEM_HISTOGRAM_BUCKETS; i++)
    into->bucket[i] += from->bucket[i];
  into->count += from->count;
  into->sum_ns += from->sum_ns;
  if (from->max_ns > into->max_ns)
    into->max_ns = from->max_ns;
}

uint64_t tandem_histogram_quantile(const tandem_histogram_t *h, double q) {
  uint64_t rank;
  uint64_t seen;
  uint64_t top;
  unsigned i;

  if (h == NULL || h->count == 0)
    return 0;
  if (!(q > 0)) /* also NaN */
    q = 0;
  if (q > 1)
    q = 1;
  rank = (uint64_t)(q * (double)h->count); /* then round up: ceil */
  if ((double)rank < q * (double)h->count || rank == 0)
    rank++;
  seen = 0;
  for (i = 0; i < TANDEM_HISTOGRAM_BUCKETS; i++) {
    seen += h->bucket[i];
    if (seen >= rank)
      break;
  }
  if (i == TANDEM_HISTOGRAM_BUCKETS) /* count ran ahead of the buckets */
    return h->max_ns;
  top = tandem_histogram_bucket_upper(i);
  top = top == UINT64_MAX ? h->max_ns : top - 1;
  return top < h->max_ns ? top : h->max_ns;
}

uint64_t tandem_histogram_mean(const tandem_histogram_t *h) {
  if (h == NULL || h->count == 0)
    return 0;
  return h->sum_ns / h->count;
}

/* ---------------------------------------------- the runtime's own side */

void tdm_hist_add_shared(tandem_histogram_t *h, uint64_t ns) {
  uint64_t max;

  tdm_faa_64(&h->bucket[tdm_hist_bucket(ns)], 1);
  tdm_faa_64(&h->sum_ns, ns);
  max = tdm_load_64(&h->max_ns);
  while (ns > max && !tdm_cas_64(&h->max_ns, max, ns))
    max = tdm_load_64(&h->max_ns);
}

void tdm_hist_merge_live(tandem_histogram_t *into,
                         const tandem_histogram_t *live) {
  uint64_t max;
  unsigned i;
  uint64_t n;

  for (i = 0; i < TANDEM_HISTOGRAM_BUCKETS; i++) {
    n = tdm_load_64(&live->bucket[i]);
    into->bucket[i] += n;
    into->count += n;
  }
  into->sum_ns += tdm_load_64(&live->sum_ns);
  max = tdm_load_64(&live->max_ns);
  if (max > into->max_ns)
    into->max_ns = max;
}
