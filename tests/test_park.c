/* SPDX-License-Identifier: MIT */
/*
 * test_park.c: the event count idle workers sleep on (src/park.c,
 * tdm_parker_*) on its own: a wait returns at once once the count moved
 * past its snapshot, and with many sleepers and many wakers no wake-up is
 * lost -- each sleeper sees every round.  A lost wake-up leaves a sleeper
 * asleep for good: the round's waker gives up after a generous deadline
 * (scaled by CK_TIMEOUT_MULTIPLIER) and the test fails, naming it.
 */
#include <check.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "park.h"
#include "run_until.h"
#include "suite_run.h"

/* Single-threaded: the count moves on each wake; a wait on a snapshot the
 * count has moved past returns at once, whether it moved before or after
 * the snapshot was taken. */
START_TEST(test_wait_returns_once_count_moved) {
  tdm_parker_t p;
  uint32_t snap;
  uint32_t next;

  tdm_parker_init(&p);
  snap = tdm_parker_snapshot(&p);
  tdm_parker_wake(&p);
  next = tdm_parker_snapshot(&p);
  ck_assert_uint_ne(next, snap);
  tdm_parker_wait(&p, snap); /* would sleep forever if it did not return */
  tdm_parker_wake(&p);
  tdm_parker_wake(&p);
  ck_assert_uint_ne(tdm_parker_snapshot(&p), next);
  tdm_parker_wait(&p, next);
}
END_TEST

/* ------------------------------------------- many sleepers, many wakers */

#define SLEEPERS 8
#define WAKERS 4

typedef struct park_run_s park_run_t;

typedef struct sleeper_s {
  park_run_t *run;
  uv_thread_t thread;
  tdm_parker_t parker;
  atomic_uint seen; /* the last round it observed */
  unsigned skipped; /* rounds it never saw; read after join */
  unsigned waits;   /* times it went to sleep; read after join */
} sleeper_t;

typedef struct waker_s {
  park_run_t *run;
  uv_thread_t thread;
  unsigned index;
} waker_t;

struct park_run_s {
  unsigned rounds;
  atomic_uint round;  /* the flag the sleepers check: the current round */
  atomic_uint acks;   /* sleepers that saw the current round */
  atomic_uint stuck;  /* rounds whose wake-up some sleeper never saw */
  atomic_int give_up; /* a round got stuck: everyone stops */
  sleeper_t sleepers[SLEEPERS];
  waker_t wakers[WAKERS];
};

/* The sleeper's loop, the owner's side of the protocol: snapshot, check
 * the flag, sleep only if it has not moved. */
static void sleeper_main(void *arg) {
  sleeper_t *s = arg;
  park_run_t *run = s->run;
  unsigned last = 0;
  unsigned r;
  uint32_t snap;

  for (;;) {
    snap = tdm_parker_snapshot(&s->parker);
    if (atomic_load(&run->give_up))
      return;
    r = atomic_load(&run->round);
    if (r != last) {
      s->skipped += r - last - 1;
      last = r;
      atomic_store(&s->seen, r);
      atomic_fetch_add(&run->acks, 1);
      if (last == run->rounds)
        return;
      continue;
    }
    /* Widen the window between the check and the sleep now and then:
     * a wake that lands in it must still count. */
    if (s->waits++ % 2 == 0)
      sched_yield();
    tdm_parker_wait(&s->parker, snap);
  }
}

/* Round r + 1 is led by waker r % WAKERS, which raises the flag; then each
 * sleeper i gets exactly one wake, from waker (i + r) % WAKERS, so the
 * wakers wake different sleepers at once and each sleeper is woken by a
 * different thread every round.  No one starts round r + 2 before every
 * sleeper saw r + 1. */
static void waker_main(void *arg) {
  waker_t *w = arg;
  park_run_t *run = w->run;
  uint64_t deadline;
  unsigned r;
  unsigned i;

  for (r = 0; r < run->rounds; r++) {
    if (r % WAKERS == w->index) {
      atomic_store(&run->acks, 0);
      atomic_store(&run->round, r + 1);
    } else {
      /* At least r + 1, not exactly: a waker descheduled long enough may
       * find the round already past r + 1 (every sleeper then saw it
       * without this waker's wakes); it catches up, its wakes for r + 1
       * are spurious and harmless.  Waiting for exactly r + 1 left it
       * waiting for good, and its sleepers unwoken in the next round: a
       * false "lost wake-up" seen in CI under load. */
      while (atomic_load(&run->round) < r + 1)
        if (atomic_load(&run->give_up))
          return;
        else
          sched_yield();
    }
    for (i = 0; i < SLEEPERS; i++)
      if ((i + r) % WAKERS == w->index)
        tdm_parker_wake(&run->sleepers[i].parker);
    /* Wait for every sleeper to see the round (or for the next round to
     * start, which means they did): a lost wake-up never comes. */
    deadline = uv_hrtime() + 20000000000ull * timeout_multiplier();
    while (atomic_load(&run->acks) != SLEEPERS &&
           atomic_load(&run->round) == r + 1) {
      if (atomic_load(&run->give_up))
        return;
      if (uv_hrtime() > deadline) {
        atomic_fetch_add(&run->stuck, 1);
        atomic_store(&run->give_up, 1);
        return;
      }
      sched_yield();
    }
  }
}

static unsigned env_count(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

/* 8 sleepers, 4 wakers, 2,000 rounds (TANDEM_PARK_ROUNDS): every sleeper
 * sees every round, none is left asleep. */
START_TEST(test_no_lost_wakeup_many_sleepers_many_wakers) {
  park_run_t *run;
  unsigned waits;
  unsigned i;

  run = calloc(1, sizeof(*run));
  ck_assert_ptr_nonnull(run);
  run->rounds = env_count("TANDEM_PARK_ROUNDS", 2000);
  for (i = 0; i < SLEEPERS; i++) {
    run->sleepers[i].run = run;
    tdm_parker_init(&run->sleepers[i].parker);
    ck_assert_int_eq(uv_thread_create(&run->sleepers[i].thread, sleeper_main,
                                      &run->sleepers[i]),
                     0);
  }
  for (i = 0; i < WAKERS; i++) {
    run->wakers[i].run = run;
    run->wakers[i].index = i;
    ck_assert_int_eq(
        uv_thread_create(&run->wakers[i].thread, waker_main, &run->wakers[i]),
        0);
  }
  for (i = 0; i < WAKERS; i++)
    ck_assert_int_eq(uv_thread_join(&run->wakers[i].thread), 0);
  /* A stuck run: wake everyone until they have all returned. */
  if (atomic_load(&run->give_up))
    for (i = 0; i < SLEEPERS; i++)
      tdm_parker_wake(&run->sleepers[i].parker);
  for (i = 0; i < SLEEPERS; i++)
    ck_assert_int_eq(uv_thread_join(&run->sleepers[i].thread), 0);

  if (atomic_load(&run->stuck) != 0) {
    for (i = 0; i < SLEEPERS - 1; i++)
      if (atomic_load(&run->sleepers[i].seen) != atomic_load(&run->round))
        break;
    ck_abort_msg("lost wake-up: round %u never reached sleeper %u (it saw "
                 "round %u)",
                 atomic_load(&run->round), i,
                 atomic_load(&run->sleepers[i].seen));
  }
  waits = 0;
  for (i = 0; i < SLEEPERS; i++) {
    ck_assert_uint_eq(run->sleepers[i].skipped, 0);
    ck_assert_uint_eq(atomic_load(&run->sleepers[i].seen), run->rounds);
    waits += run->sleepers[i].waits;
  }
  /* They did sleep: the test exercised the futex path, not only spins. */
  ck_assert_uint_gt(waits, 0);
  free(run);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("park");
  tc = tcase_create("park");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_wait_returns_once_count_moved);
  tcase_add_test(tc, test_no_lost_wakeup_many_sleepers_many_wakers);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
