/* SPDX-License-Identifier: MIT */
/*
 * forkjoin_tbb.cpp: the oneTBB peer of bench/forkjoin (see
 * forkjoin_peers.h).  C++17; every entry point is extern "C" and lets no
 * exception out.
 */
#include "forkjoin_peers.h"

#include <cstdint>
#include <memory>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_invoke.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/version.h>

extern "C" {
#include "stats.h"
}

namespace {

/* The arena lives from init to fini, so that its workers start once. */
struct tbb_peer {
  tbb::global_control allow;
  tbb::task_arena arena;

  explicit tbb_peer(int threads)
      : allow(tbb::global_control::max_allowed_parallelism,
              static_cast<std::size_t>(threads)),
        arena(threads) {
    arena.initialize();
  }
};

std::unique_ptr<tbb_peer> peer;

/* One spawn per call that forks: parallel_invoke(f1, f2) spawns f2 (the
 * smaller half) and runs f1 inline, as tandem_join(a, b) does. */
long fib_invoke(int n) {
  long a;
  long b;

  if (n < 2)
    return n;
  tbb::parallel_invoke([&] { a = fib_invoke(n - 1); },
                       [&] { b = fib_invoke(n - 2); });
  return a + b;
}

/* The same with a task_group: run() spawns the smaller half. */
long fib_group(int n) {
  tbb::task_group g;
  long a;
  long b;

  if (n < 2)
    return n;
  g.run([&] { b = fib_group(n - 2); });
  a = fib_group(n - 1);
  g.wait();
  return a + b;
}

} // namespace

extern "C" unsigned tbb_peer_init(unsigned threads) {
  try {
    peer = std::make_unique<tbb_peer>(static_cast<int>(threads));
    return static_cast<unsigned>(peer->arena.max_concurrency());
  } catch (...) {
    peer.reset();
    return 0;
  }
}

extern "C" void tbb_peer_fini(void) {
  try {
    peer.reset();
  } catch (...) {
  }
}

extern "C" const char *tbb_peer_version(void) {
  return TBB_runtime_version();
}

extern "C" double tbb_fib_ns(int n, int use_group, long *result) {
  std::uint64_t t0 = 0;
  std::uint64_t t1 = 0;

  if (!peer)
    return -1;
  try {
    /* The clock runs inside the arena: only the computation is timed. */
    peer->arena.execute([&] {
      t0 = stats_now_ns();
      *result = use_group ? fib_group(n) : fib_invoke(n);
      t1 = stats_now_ns();
    });
  } catch (...) {
    return -1;
  }
  return static_cast<double>(t1 - t0);
}

extern "C" double tbb_mandel_ns(forkjoin_mandel_t *m) {
  std::uint64_t t0;

  if (!peer)
    return -1;
  try {
    t0 = stats_now_ns();
    peer->arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, m->height),
                        [m](const tbb::blocked_range<std::size_t> &r) {
                          forkjoin_mandel_rows(r.begin(), r.end(), m);
                        });
    });
    return static_cast<double>(stats_now_ns() - t0);
  } catch (...) {
    return -1;
  }
}
