/* SPDX-License-Identifier: MIT */
/*
 * forkjoin_omp.c: the OpenMP peer of bench/forkjoin (see forkjoin_peers.h).
 * Built with the compiler's OpenMP flag (gcc: -fopenmp, libgomp).
 */
#include "forkjoin_peers.h"

#include <omp.h>

#include "stats.h"

/* One task per call that forks: the smaller half is the task, the larger
 * runs inline, as tandem_join and tbb::parallel_invoke do it. */
static long fib(int n) {
  long a;
  long b;

  if (n < 2)
    return n;
#pragma omp task shared(b) firstprivate(n)
  b = fib(n - 2);
  a = fib(n - 1);
#pragma omp taskwait
  return a + b;
}

unsigned omp_peer_threads(unsigned threads) {
  unsigned got = 0;

#pragma omp parallel num_threads(threads)
#pragma omp single
  got = (unsigned)omp_get_num_threads();
  return got;
}

int omp_peer_version(void) {
  return _OPENMP;
}

double omp_fib_ns(int n, unsigned threads, long *result) {
  uint64_t t0 = 0;
  uint64_t t1 = 0;
  long r = 0;

  /* The team is up and waiting at the single's barrier, ready to take
   * tasks, when the clock starts: only the computation is timed. */
#pragma omp parallel num_threads(threads)
#pragma omp single
  {
    t0 = stats_now_ns();
    r = fib(n);
    t1 = stats_now_ns();
  }
  *result = r;
  return (double)(t1 - t0);
}

double omp_mandel_ns(forkjoin_mandel_t *m, unsigned threads) {
  uint64_t t0;
  long rows;
  long y;

  rows = (long)m->height;
  t0 = stats_now_ns();
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (y = 0; y < rows; y++)
    forkjoin_mandel_rows((size_t)y, (size_t)y + 1, m);
  return (double)(stats_now_ns() - t0);
}
