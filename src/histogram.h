/* SPDX-License-Identifier: MIT */
/*
 * histogram.h: recording into a tandem_histogram_t from the runtime's own
 * threads (histogram.c has the public calls).  Internal to the library.
 *
 * A histogram that one thread writes (a worker's, the HIGH lane's, a
 * loop's) is recorded with plain increments stored atomically: no lock
 * prefix, no fence; a reader on another thread loads each counter
 * atomically and may see a record half done (its bucket and not yet its
 * count), never a torn value.  The blocking side's threads share one
 * histogram and add with atomic read-modify-writes.
 */
#ifndef TANDEM_HISTOGRAM_H
#define TANDEM_HISTOGRAM_H

#include <stdbool.h>
#include <stdint.h>

#include "tandem.h"

#include "atomic.h"

#define TDM_HIST_SUB TANDEM_HISTOGRAM_SUB_BITS
#define TDM_HIST_LINEAR (1u << TDM_HIST_SUB) /* 0..7: one value each */

/* The bucket of `ns`: the power of two below it, then the next SUB bits.
 * With s = (that power's exponent) - SUB, ns >> s lies in [LINEAR,
 * 2 LINEAR): LINEAR plus the SUB bits, so the bucket is s * LINEAR + (ns
 * >> s).  Or-ing in LINEAR gives values below it s = 0, one bucket each.
 * No branch: a worker adds two values a job. */
static inline unsigned tdm_hist_bucket(uint64_t ns) {
  unsigned s = 63u - (unsigned)__builtin_clzll(ns | TDM_HIST_LINEAR) -
               TDM_HIST_SUB;
  unsigned i = (s << TDM_HIST_SUB) + (unsigned)(ns >> s);

  return i < TANDEM_HISTOGRAM_BUCKETS ? i : TANDEM_HISTOGRAM_BUCKETS - 1;
}

/* Owner thread only: adds `ns`.  The count is not kept here: a read sums
 * the buckets (tdm_hist_merge_live), which saves a store per value. */
static inline void tdm_hist_add(tandem_histogram_t *h, uint64_t ns) {
  unsigned i = tdm_hist_bucket(ns);

  tdm_store_64(&h->bucket[i], h->bucket[i] + 1);
  tdm_store_64(&h->sum_ns, h->sum_ns + ns);
  if (__builtin_expect(ns > h->max_ns, 0))
    tdm_store_64(&h->max_ns, ns);
}

/* Any thread: adds `ns` to a histogram that several threads write. */
void tdm_hist_add_shared(tandem_histogram_t *h, uint64_t ns);

/* Any thread: adds a live histogram (written meanwhile; its count is the
 * sum of its buckets) into `into`, a snapshot of the caller's. */
void tdm_hist_merge_live(tandem_histogram_t *into,
                         const tandem_histogram_t *live);

#endif /* TANDEM_HISTOGRAM_H */
