/* SPDX-License-Identifier: MIT */
/*
 * chaos.c: the generators and the acts of the chaos build (see chaos.h).
 *
 * Nothing here may use atomic.h's operations: they would call back in.
 */
#include "chaos.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include <ck_pr.h>
#include <uv.h>

/* Probability of an act at each chaos point.  In the soak a job passes
 * about 100 points (its own operations, cancels aimed at it, idle workers
 * looking for it), so this is a few acts per job.  Measured on the 2-core
 * VM: the whole suite takes about 1.5x as long as at 0.01 and a third less
 * than at 0.1, and the soak still runs some 100k jobs a second.  Races
 * whose window is a pair of adjacent atomics are met more often per second
 * at higher rates, up to where the acts slow everything down. */
#define TDM_CHAOS_DEFAULT_RATE 0.05
#define TDM_CHAOS_DEFAULT_SEED 0x7a6dc4a05eedull
/* One act in YIELD_ONE_IN gives up the CPU: that is what lets another
 * thread run in the middle of a protocol on a machine with few cores.  The
 * others spin up to SPIN_MAX pauses (~14 ns each on the VM's Xeon), which
 * widens a window without a trip through the scheduler. */
#define YIELD_ONE_IN 4
#define SPIN_MAX 32

_Thread_local uint64_t tandem__chaos_state;
uint64_t tandem__chaos_threshold;

static uv_once_t chaos_once = UV_ONCE_INIT;
static uint64_t chaos_seed;
static uint64_t chaos_threads; /* threads seeded so far */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void chaos_init(void) {
  const char *s;
  char *end;
  double rate;
  uint64_t threshold;

  chaos_seed = TDM_CHAOS_DEFAULT_SEED;
  s = getenv("TANDEM_CHAOS_SEED");
  if (s != NULL && *s != '\0') {
    chaos_seed = strtoull(s, &end, 0);
    if (*end != '\0') {
      fprintf(stderr, "tandem chaos: bad TANDEM_CHAOS_SEED '%s'\n", s);
      chaos_seed = TDM_CHAOS_DEFAULT_SEED;
    }
  }
  rate = TDM_CHAOS_DEFAULT_RATE;
  s = getenv("TANDEM_CHAOS_RATE");
  if (s != NULL && *s != '\0') {
    rate = strtod(s, &end);
    if (*end != '\0' || !(rate >= 0 && rate <= 1)) {
      fprintf(stderr, "tandem chaos: bad TANDEM_CHAOS_RATE '%s'\n", s);
      rate = TDM_CHAOS_DEFAULT_RATE;
    }
  }
  if (rate >= 1)
    threshold = UINT64_MAX;
  else
    threshold = (uint64_t)(rate * 18446744073709551616.0); /* 2^64 */
  fprintf(stderr,
          "tandem chaos: TANDEM_CHAOS_SEED=0x%llx TANDEM_CHAOS_RATE=%g\n",
          (unsigned long long)chaos_seed, rate);
  __atomic_store_n(&tandem__chaos_threshold, threshold, __ATOMIC_RELAXED);
}

static uint64_t draw(void) {
  uint64_t x = tandem__chaos_state;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return tandem__chaos_state = x;
}

void tandem__chaos_act(void) {
  uint64_t n;
  uint64_t x;

  if (tandem__chaos_state == 0) {
    /* The thread's first point: seed its generator from the process seed
     * and its rank among the threads, so two threads never share a stream. */
    uv_once(&chaos_once, chaos_init);
    n = __atomic_fetch_add(&chaos_threads, 1, __ATOMIC_RELAXED);
    x = splitmix64(chaos_seed ^ splitmix64(n));
    tandem__chaos_state = x != 0 ? x : 1;
    return;
  }
  /* A fresh draw: the one that brought us here is small by construction. */
  x = draw();
  if (x % YIELD_ONE_IN == 0) {
    sched_yield();
    return;
  }
  for (n = 1 + (x >> 32) % SPIN_MAX; n != 0; n--)
    ck_pr_stall();
}
