/* SPDX-License-Identifier: MIT */
/*
 * spin: a calibrated busy loop, the "compute job" of the benchmarks.
 *
 * spin_run(iters) does `iters` rounds of dependent integer arithmetic (a
 * xorshift step) and stores the result into a thread-local volatile sink, so
 * the compiler can neither drop nor shorten it, and concurrent jobs on
 * different threads share no cache line.
 */
#ifndef BENCH_SPIN_H
#define BENCH_SPIN_H

#include <stdint.h>

#include "stats.h"

/* Spins for `iters` rounds.  Any thread. */
void spin_run(uint64_t iters);

/* Returns how many rounds of spin_run() take about `target_ns` on the
 * calling thread (at least 1).  Takes about 0.1 s.  Uses the fastest of
 * several timed runs, so a busy machine disturbs it less. */
uint64_t spin_calibrate(uint64_t target_ns);

/* Times spin_run(iters) on the calling thread: `batches` batches of
 * `per_batch` calls each; *out summarizes the batches in ns per call. */
void spin_measure(uint64_t iters, unsigned batches, unsigned per_batch,
                  stats_summary_t *out);

#endif /* BENCH_SPIN_H */
