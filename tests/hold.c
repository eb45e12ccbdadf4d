/* SPDX-License-Identifier: MIT */
#include "hold.h"

#include <limits.h>
#include <string.h>

#include <uv.h>

#include "run_until.h"

#define HOLD_OPEN INT_MAX

void hold_init(hold_t *h) {
  atomic_init(&h->permits, 0);
  atomic_init(&h->entered, 0);
  atomic_init(&h->passed, 0);
  atomic_init(&h->timed_out, 0);
}

static int hold_take(hold_t *h) {
  int p;

  p = atomic_load(&h->permits);
  while (p > 0) {
    if (p == HOLD_OPEN)
      return 1;
    if (atomic_compare_exchange_weak(&h->permits, &p, p - 1))
      return 1;
  }
  return 0;
}

int hold_wait(hold_t *h) {
  uint64_t deadline;

  atomic_fetch_add(&h->entered, 1);
  deadline =
      uv_hrtime() + (uint64_t)HOLD_MAX_MS * 1000000u * timeout_multiplier();
  while (!hold_take(h)) {
    if (uv_hrtime() >= deadline) {
      atomic_fetch_add(&h->timed_out, 1);
      return 0;
    }
    uv_sleep(1);
  }
  atomic_fetch_add(&h->passed, 1);
  return 1;
}

void hold_release(hold_t *h, int n) {
  int p;

  p = atomic_load(&h->permits);
  while (p != HOLD_OPEN &&
         !atomic_compare_exchange_weak(&h->permits, &p, p + n))
    ;
}

void hold_open(hold_t *h) {
  atomic_store(&h->permits, HOLD_OPEN);
}

int wait_atomic_ge(atomic_int *v, int want, uint64_t max_ms) {
  uint64_t deadline;

  deadline = uv_hrtime() + max_ms * 1000000u * timeout_multiplier();
  while (atomic_load(v) < want) {
    if (uv_hrtime() >= deadline)
      return atomic_load(v) >= want;
    uv_sleep(1);
  }
  return 1;
}

void sleep_past(uint64_t t) {
  while (uv_hrtime() <= t)
    uv_sleep(1);
}

uint64_t stats_settled(tandem_pool_t *pool, size_t offset, uint64_t want,
                       uint64_t max_ms) {
  tandem_stats_t stats;
  uint64_t deadline;
  uint64_t value;

  deadline = uv_hrtime() + max_ms * 1000000u * timeout_multiplier();
  for (;;) {
    value = 0;
    if (tandem_pool_stats(pool, &stats) == 0)
      memcpy(&value, (const char *)&stats + offset, sizeof(value));
    if (value >= want || uv_hrtime() >= deadline)
      return value;
    uv_sleep(1);
  }
}
