/* SPDX-License-Identifier: MIT */
/*
 * forkjoin_peers.h: the interface between bench/forkjoin.c (the driver, the
 * serial and the tandem peers) and the peers built beside it only when
 * their toolchain is there: oneTBB (forkjoin_tbb.cpp, C++17) and OpenMP
 * (forkjoin_omp.c).  The driver compiles a peer's calls in only when
 * FORKJOIN_HAVE_TBB / FORKJOIN_HAVE_OMP is defined.
 *
 * Every peer times only the computation, on the calling thread's own
 * clock (stats_now_ns), and returns the nanoseconds, or a negative number
 * when the runtime failed (out of memory, an exception).  Call them from
 * the driver's thread only, one at a time.
 */
#ifndef BENCH_FORKJOIN_PEERS_H
#define BENCH_FORKJOIN_PEERS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The coarse kernel: a Mandelbrot image of width x height iteration counts
 * (row-major, at most max_iter each).  Every peer runs the same row kernel,
 * forkjoin_mandel_rows() in forkjoin.c, so they differ only in how they
 * share the rows out. */
typedef struct forkjoin_mandel_s {
  unsigned width;
  unsigned height;
  unsigned max_iter;
  uint16_t *pixels;
} forkjoin_mandel_t;

/* Computes rows [lo, hi) of the image `ctx` (a forkjoin_mandel_t), with
 * the signature of a tandem_range_cb.  Any thread; rows are disjoint. */
void forkjoin_mandel_rows(size_t lo, size_t hi, void *ctx);

/* oneTBB.  tbb_peer_init makes a task_arena of `threads` threads (the
 * calling thread is one of them) under a global_control that allows that
 * many; returns the arena's concurrency, or 0 on failure.  The fib is
 * recursive tbb::parallel_invoke (or, with use_group, a tbb::task_group per
 * call), one spawn per call that forks; the image is tbb::parallel_for over
 * a blocked_range of rows, auto_partitioner. */
unsigned tbb_peer_init(unsigned threads);
void tbb_peer_fini(void);
const char *tbb_peer_version(void);
double tbb_fib_ns(int n, int use_group, long *result);
double tbb_mandel_ns(forkjoin_mandel_t *m);

/* OpenMP.  omp_peer_threads returns the team size that num_threads(threads)
 * gets.  The fib is `#pragma omp task` + taskwait in a parallel/single
 * region, one task per call that forks; the image is a parallel for with
 * schedule(dynamic), one row per chunk. */
unsigned omp_peer_threads(unsigned threads);
int omp_peer_version(void); /* _OPENMP, yyyymm */
double omp_fib_ns(int n, unsigned threads, long *result);
double omp_mandel_ns(forkjoin_mandel_t *m, unsigned threads);

#ifdef __cplusplus
}
#endif
#endif /* BENCH_FORKJOIN_PEERS_H */
