/* SPDX-License-Identifier: MIT */
/*
 * clock.h: the clock that times jobs (clock.c) -- one read per event, as
 * cheap as the machine allows.  Internal to the library.
 *
 * A reading is a tick count: the CPU's time-stamp counter where the kernel
 * says it is invariant (x86-64 with constant_tsc and nonstop_tsc: it runs
 * at one rate on every core, whatever the power state), else
 * CLOCK_MONOTONIC's nanoseconds.  Only differences of readings mean
 * anything; tdm_clock_ns() turns one into nanoseconds.  On this project's
 * 2-core VM a TSC read costs about half a vDSO clock_gettime (bench/README).
 */
#ifndef TANDEM_CLOCK_H
#define TANDEM_CLOCK_H

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* Set once by tdm_clock_init() (before any pool exists), read-only after:
 * whether readings are TSC ticks, and the fixed-point factor that turns
 * ticks into nanoseconds (ns = ticks * mult >> TDM_CLOCK_SHIFT). */
extern int tdm_clock_tsc;
extern uint64_t tdm_clock_mult;
#define TDM_CLOCK_SHIFT 32

/* Any thread: picks and calibrates the clock, once per process (about a
 * millisecond, the first time).  tandem_pool_new calls it. */
void tdm_clock_init(void);

/* Any thread, after tdm_clock_init(): a reading. */
static inline uint64_t tdm_clock_now(void) {
  struct timespec ts;

#if defined(__x86_64__)
  if (tdm_clock_tsc)
    return __rdtsc();
#endif
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Any thread: the nanoseconds of `ticks`, a difference of readings. */
static inline uint64_t tdm_clock_ns(uint64_t ticks) {
  return (uint64_t)(((unsigned __int128)ticks * tdm_clock_mult) >>
                    TDM_CLOCK_SHIFT);
}

/* The nanoseconds from reading `from` to reading `to`; 0 if `to` is the
 * earlier (two cores' counters may differ by a few ticks). */
static inline uint64_t tdm_clock_since(uint64_t from, uint64_t to) {
  return to > from ? tdm_clock_ns(to - from) : 0;
}

/* Readings a request carries keep their low 56 bits (pool.h): about a
 * year of TSC ticks at 2.8 GHz, which is uptime, so they wrap. */
#define TDM_CLOCK_MASK56 ((UINT64_C(1) << 56) - 1)

/* Is reading `to` at or after `from`, compared modulo 2^56 (either may be
 * a 56-bit one)?  Yes when it is up to 2^55 ticks after. */
static inline int tdm_clock_after56(uint64_t from, uint64_t to) {
  return ((to - from) & TDM_CLOCK_MASK56) < TDM_CLOCK_MASK56 / 2;
}

/* As tdm_clock_since, for readings compared modulo 2^56: 0 when `to` is
 * the earlier (tdm_clock_after56). */
static inline uint64_t tdm_clock_since56(uint64_t from, uint64_t to) {
  return tdm_clock_after56(from, to)
             ? tdm_clock_ns((to - from) & TDM_CLOCK_MASK56)
             : 0;
}

#endif /* TANDEM_CLOCK_H */
