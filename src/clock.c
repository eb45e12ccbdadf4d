/* SPDX-License-Identifier: MIT */
/*
 * clock.c: choosing and calibrating the clock of clock.h.
 *
 * The TSC's rate is measured against CLOCK_MONOTONIC over about a
 * millisecond of spinning, once per process: a reading costs a few ticks
 * of jitter on either end, so the rate is good to about 1e-5 -- far finer
 * than a histogram bucket (12.5 %).
 */
#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int tdm_clock_tsc;
uint64_t tdm_clock_mult = (uint64_t)1 << TDM_CLOCK_SHIFT; /* ns: 1:1 */

static pthread_once_t once = PTHREAD_ONCE_INIT;

#define CALIBRATE_NS 1000000u

static uint64_t mono_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Does /proc/cpuinfo's first "flags" line name both flags that make the
 * TSC a clock (the same rate on every core, in every power state)? */
static int tsc_invariant(void) {
  char line[4096];
  FILE *f;
  int ok = 0;

  f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "flags", 5) != 0)
      continue;
    ok = strstr(line, " constant_tsc") != NULL &&
         strstr(line, " nonstop_tsc") != NULL;
    break;
  }
  fclose(f);
  return ok;
}

static void choose(void) {
#if defined(__x86_64__)
  uint64_t m0, m1, t0, t1;

  if (!tsc_invariant())
    return;
  m0 = mono_ns();
  t0 = __rdtsc();
  do
    m1 = mono_ns();
  while (m1 - m0 < CALIBRATE_NS);
  t1 = __rdtsc();
  if (t1 <= t0)
    return; /* not a counter we can trust: stay on CLOCK_MONOTONIC */
  tdm_clock_mult = (uint64_t)((((unsigned __int128)(m1 - m0))
                               << TDM_CLOCK_SHIFT) / (t1 - t0));
  tdm_clock_tsc = 1;
#endif
}

void tdm_clock_init(void) {
  pthread_once(&once, choose);
}
