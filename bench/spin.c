/* SPDX-License-Identifier: MIT */
/* spin: a calibrated busy loop for compute jobs. */
#include "spin.h"

#include <math.h>
#include <stdlib.h>

static _Thread_local volatile uint64_t spin_sink;

void spin_run(uint64_t iters) {
  uint64_t x = 0x9E3779B97F4A7C15u;
  uint64_t i;

  for (i = 0; i < iters; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  spin_sink = x;
}

static uint64_t time_one_ns(uint64_t iters) {
  uint64_t t0;

  t0 = stats_now_ns();
  spin_run(iters);
  return stats_now_ns() - t0;
}

uint64_t spin_calibrate(uint64_t target_ns) {
  uint64_t iters;
  uint64_t t;
  double best;
  double per;
  int i;

  /* Grow a run to >= 5 ms so the clock's resolution does not matter. */
  for (iters = 1024; iters < ((uint64_t)1 << 40); iters *= 2)
    if (time_one_ns(iters) >= 5000000u)
      break;
  best = INFINITY;
  for (i = 0; i < 7; i++) {
    t = time_one_ns(iters);
    per = (double)t / (double)iters;
    if (per < best)
      best = per;
  }
  iters = (uint64_t)((double)target_ns / best + 0.5);
  return iters > 0 ? iters : 1;
}

void spin_measure(uint64_t iters, unsigned batches, unsigned per_batch,
                  stats_summary_t *out) {
  double *ns;
  uint64_t t0;
  unsigned b;
  unsigned i;

  ns = calloc(batches > 0 ? batches : 1, sizeof(*ns));
  if (ns == NULL || per_batch == 0) {
    free(ns);
    stats_summarize(NULL, 0, out);
    return;
  }
  for (b = 0; b < batches; b++) {
    t0 = stats_now_ns();
    for (i = 0; i < per_batch; i++)
      spin_run(iters);
    ns[b] = (double)(stats_now_ns() - t0) / per_batch;
  }
  stats_summarize(ns, batches, out);
  free(ns);
}
