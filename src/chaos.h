/* SPDX-License-Identifier: MIT */
/*
 * chaos.h: the randomized-interleaving build (cmake -DTANDEM_CHAOS=ON).
 *
 * atomic.h calls tandem__chaos_point() before and after every atomic load,
 * store, cas, fas, faa and fence of the normal (ck_pr) mapping.  At each
 * point the thread draws from its own xorshift generator and, with
 * probability TANDEM_CHAOS_RATE, yields the CPU (one act in four) or spins
 * 1 to 32 pauses (tens to about a thousand cycles).  A thread is then
 * preempted or delayed between two steps of a protocol thousands of times
 * a second, so orderings that a normal run meets once a day -- a consumer
 * between its claim and its swap, a closer between its two reads -- are
 * met in every test run.
 *
 * Environment, read once at the first point in the process:
 *   TANDEM_CHAOS_SEED  the process seed (strtoull, base 0); each thread's
 *                      generator is seeded from it and from the order in
 *                      which threads first reach a point.  Printed to
 *                      stderr at first use so a failing run can be run
 *                      again with the same streams (the interleaving
 *                      itself still depends on the kernel).
 *   TANDEM_CHAOS_RATE  probability of an act at each point, 0 to 1
 *                      (default TDM_CHAOS_DEFAULT_RATE in chaos.c); 0
 *                      turns the acts off.
 *
 * Not part of a normal build: without TANDEM_CHAOS, atomic.h neither
 * includes this header nor calls anything.
 */
#ifndef TANDEM_CHAOS_H
#define TANDEM_CHAOS_H

#include <stdint.h>

/* The thread's generator; 0 until its first point. */
extern _Thread_local uint64_t tandem__chaos_state;
/* A draw at or below this acts; written once, at the first point. */
extern uint64_t tandem__chaos_threshold;

/* Any thread: seeds the thread's generator on its first call, else yields
 * or spins. */
void tandem__chaos_act(void);

/* Any thread: a chaos point.  Inline: the common case is one draw and a
 * compare.  An unseeded generator draws 0, which always calls
 * tandem__chaos_act(), which seeds it. */
static inline void tandem__chaos_point(void) {
  uint64_t x = tandem__chaos_state;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  tandem__chaos_state = x;
  if (x <= __atomic_load_n(&tandem__chaos_threshold, __ATOMIC_RELAXED))
    tandem__chaos_act();
}

#endif /* TANDEM_CHAOS_H */
