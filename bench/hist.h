/* SPDX-License-Identifier: MIT */
/*
 * hist: what the benchmarks do with tandem_histogram_t (include/tandem.h,
 * "metrics"): take the values recorded between two snapshots of a
 * cumulative histogram, and write one as JSON.  Plain functions over the
 * caller's histograms; any thread that owns them.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdio.h>

#include "tandem.h"

/* Adds to *into the values `after` holds and `before` did not: bucket by
 * bucket after - before (a bucket that went down counts 0), the sums
 * likewise; into->count becomes the sum of its buckets.  The largest value
 * of that interval is not known from two snapshots, only its bucket (the
 * highest that grew): into->max_ns becomes after->max_ns if it lies in
 * that bucket, else the bucket's top, so that tandem_histogram_quantile()
 * stays within one bucket's width.
 * `before` and `after` are snapshots of one cumulative histogram, e.g.
 * tandem_pool_metrics()'s wait around a measurement. */
void hist_add_delta(tandem_histogram_t *into, const tandem_histogram_t *after,
                    const tandem_histogram_t *before);

/* Writes h as a JSON object:
 *   {"count", "mean_ns", "max_ns", "p50_ns", "p90_ns", "p99_ns",
 *    "p999_ns", "buckets": [[lower_ns, count], ...]}
 * with only the buckets that hold values, lowest first; bucket i holds
 * lower_ns <= v < the next bucket's lower bound
 * (tandem_histogram_bucket_upper(i)); the percentiles are
 * tandem_histogram_quantile()'s, within one bucket's width (12.5 %). */
void hist_write_json(FILE *f, const tandem_histogram_t *h);

#endif /* BENCH_HIST_H */
