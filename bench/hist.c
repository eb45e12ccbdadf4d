/* SPDX-License-Identifier: MIT */
/* hist: deltas of cumulative histograms, and their JSON. */
#include "hist.h"

#include <inttypes.h>

void hist_add_delta(tandem_histogram_t *into, const tandem_histogram_t *after,
                    const tandem_histogram_t *before) {
  uint64_t count = 0;
  uint64_t d;
  uint64_t top;
  int highest = -1;
  unsigned i;

  for (i = 0; i < TANDEM_HISTOGRAM_BUCKETS; i++) {
    d = after->bucket[i] > before->bucket[i]
            ? after->bucket[i] - before->bucket[i]
            : 0;
    if (d > 0)
      highest = (int)i;
    into->bucket[i] += d;
    count += d;
  }
  into->count += count;
  if (after->sum_ns > before->sum_ns)
    into->sum_ns += after->sum_ns - before->sum_ns;
  if (highest < 0)
    return;
  /* The interval's largest value lies in the highest bucket that grew:
   * after->max_ns if it lies there too, else at most that bucket's top. */
  top = tandem_histogram_bucket_upper((unsigned)highest) - 1;
  if (after->max_ns < top)
    top = after->max_ns;
  if (top < tandem_histogram_bucket_lower((unsigned)highest))
    top = tandem_histogram_bucket_lower((unsigned)highest);
  if (top > into->max_ns)
    into->max_ns = top;
}

void hist_write_json(FILE *f, const tandem_histogram_t *h) {
  const char *sep = "";
  unsigned i;

  fprintf(
      f,
      "{\"count\": %" PRIu64 ", \"mean_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64
      ", \"p50_ns\": %" PRIu64 ", \"p90_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64
      ", \"p999_ns\": %" PRIu64 ",\n       \"buckets\": [",
      h->count, tandem_histogram_mean(h), h->max_ns,
      tandem_histogram_quantile(h, 0.5), tandem_histogram_quantile(h, 0.9),
      tandem_histogram_quantile(h, 0.99), tandem_histogram_quantile(h, 0.999));
  for (i = 0; i < TANDEM_HISTOGRAM_BUCKETS; i++) {
    if (h->bucket[i] == 0)
      continue;
    fprintf(f, "%s[%" PRIu64 ", %" PRIu64 "]", sep,
            tandem_histogram_bucket_lower(i), h->bucket[i]);
    sep = ", ";
  }
  fprintf(f, "]}");
}
