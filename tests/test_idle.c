/* SPDX-License-Identifier: MIT */
/*
 * test_idle.c: the idle module (src/idle.c) on its own, driven by two
 * stand-in workers and a stand-in loop, with made-up queues.  It checks
 * the promise of resting: work never waits with every worker asleep.
 *
 * A worker rests (looks at its own deque only) while a loop streams on its
 * CPU.  It decides so before it looks, and parks later; the window in
 * between is where the defect of CI stop 16 lived -- test_many_loops hung
 * in the chaos build with both workers parked resting, the stream over and
 * the loops' jobs queued.  tdm_idle__before_park stops a worker in that
 * window, so each case replays its interleaving exactly.
 *
 * All threads are pinned to one CPU, so that "a loop streams on this
 * worker's CPU" holds; the pool is made before, so it may rest (which
 * needs two usable CPUs -- the case is skipped, saying so, with fewer).
 * The "policy" case checks the search cap and the yield rule as pure
 * functions of the idle words (idle.h), with made-up counts.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_* */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "idle.h"
#include "renice.h"
#include "suite_run.h"

#define WORKERS 2

typedef struct stand_in_s {
  tdm_idle_t idle;
  tdm_search_t search[WORKERS];
  uv_thread_t thread[WORKERS];
  atomic_int work;              /* "some queue holds an item" */
  atomic_int rested[WORKERS];   /* 1: decided to rest, 2: did not */
  atomic_int returned[WORKERS]; /* came back from tdm_idle_none */
  atomic_int arrived[WORKERS];  /* in the window before parking */
  atomic_int release;           /* lets the held workers park */
  unsigned hold;                /* bit i: hold worker i in the window */
  int cpu;
} stand_in_t;

static stand_in_t *the; /* for the hook, which has no context */

/* Own deques are always empty: the item is in a shared queue. */
static bool fake_has_work(void *ctx, unsigned worker, bool own_only) {
  stand_in_t *si = ctx;

  (void)worker;
  return !own_only && atomic_load(&si->work) != 0;
}

static void hold_in_window(unsigned worker) {
  if ((the->hold & (1u << worker)) == 0)
    return;
  atomic_store(&the->arrived[worker], 1);
  while (atomic_load(&the->release) == 0)
    sched_yield();
}

static void pin(int cpu) {
  cpu_set_t set;

  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* One stand-in worker: one look (decide to rest or not), then
 * tdm_idle_none, as worker_main does when its look found nothing. */
static void worker(void *arg) {
  unsigned i = (unsigned)(uintptr_t)arg;
  bool rest;

  pin(the->cpu);
  rest = tdm_idle_resting(&the->idle, i);
  atomic_store(&the->rested[i], rest ? 1 : 2);
  (void)tdm_idle_none(&the->idle, &the->search[i], i, rest);
  atomic_store(&the->returned[i], 1);
}

static int first_cpu(void) {
  cpu_set_t set;
  int c;

  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return 0;
  for (c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set))
      return c;
  return 0;
}

/* Makes the idle state of a two-worker pool; false (and the test is
 * skipped) where resting is impossible. */
static bool stand_in_init(stand_in_t *si, unsigned hold) {
  memset(si, 0, sizeof(*si));
  the = si;
  si->hold = hold;
  if (tandem__usable_cpus() < 2) {
    fprintf(stderr, "test_idle: skipped: resting needs 2 usable CPUs\n");
    return false;
  }
  ck_assert_int_eq(tdm_idle_init(&si->idle, WORKERS, 0, fake_has_work, si),
                   0);
  ck_assert(si->idle.can_rest);
  si->cpu = first_cpu();
  pin(si->cpu); /* the stand-in loop thread */
  tdm_idle__before_park = hold_in_window;
  return true;
}

static void start(stand_in_t *si, unsigned i) {
  ck_assert_int_eq(
      uv_thread_create(&si->thread[i], worker, (void *)(uintptr_t)i), 0);
}

static void wait_for(atomic_int *flag) {
  while (atomic_load(flag) == 0)
    sched_yield();
}

static void wait_parked(stand_in_t *si, uint32_t n) {
  while ((uint32_t)(tdm_load_64(&si->idle.counts) >> 32) < n)
    sched_yield();
}

/* Waits up to 2 s (times CK_TIMEOUT_MULTIPLIER) for any worker to come
 * back from tdm_idle_none: one that found the work.  Then ends the stream
 * if one is still on (*slot), stops the rest and returns how many had come
 * back by the deadline. */
static int finish(stand_in_t *si, uint32_t *slot) {
  const char *mult = getenv("CK_TIMEOUT_MULTIPLIER");
  uint64_t deadline;
  int back;
  unsigned i;

  deadline = uv_hrtime() +
             2000000000ull * (uint64_t)(mult != NULL && atoi(mult) > 0
                                            ? atoi(mult)
                                            : 1);
  do {
    back = 0;
    for (i = 0; i < WORKERS; i++)
      back += atomic_load(&si->returned[i]);
    if (back != 0)
      break;
    sched_yield();
  } while (uv_hrtime() < deadline);
  if (*slot != UINT32_MAX)
    tdm_idle_stream_end(&si->idle, slot);
  tdm_idle_stop(&si->idle, WORKERS);
  for (i = 0; i < WORKERS; i++)
    ck_assert_int_eq(uv_thread_join(&si->thread[i]), 0);
  tdm_idle__before_park = NULL;
  tdm_idle_destroy(&si->idle);
  return back;
}

/* CI stop 16's hang.  Both workers decide to rest while the loop streams
 * and are held before parking; the loop queues an item (its notify finds
 * nobody parked: everyone is busy), and its stream ends (again nobody
 * parked to wake).  Then both park.  The stream is over, so a worker's
 * re-check after its barrier must look at every queue, not only its own
 * deque -- else both sleep for good with the item queued. */
/* ------------------------------------------------- the cap and the yield */

#define C(searchers, sleepers) \
  ((uint64_t)(searchers) | ((uint64_t)(sleepers) << 32))
#define LOOPS(polling, lone) \
  ((uint64_t)(polling) * TDM_LOOPS_POLLING + (uint64_t)(lone) * TDM_LOOPS_LONE)

static bool no_work(void *ctx, unsigned worker, bool own_only) {
  (void)ctx;
  (void)worker;
  (void)own_only;
  return false;
}

static void policy_open(tdm_idle_t *idle, unsigned workers, unsigned cpus) {
  ck_assert_int_eq(tdm_idle_init(idle, workers, 50000, no_work, NULL),
                   0);
  idle->usable_cpus = cpus; /* the machine's, made up */
}

/* Half of the workers not parked may search; one more if hot -- but not
 * while every polling loop has one job in flight: a lone round trip needs
 * one searcher, and a second only takes turns with it. */
START_TEST(test_search_cap) {
  tdm_idle_t idle;

  policy_open(&idle, 2, 2);
  ck_assert(tdm_idle_may_search(&idle, C(0, 0), LOOPS(0, 0), false));
  ck_assert(!tdm_idle_may_search(&idle, C(1, 0), LOOPS(0, 0), false));
  ck_assert(tdm_idle_may_search(&idle, C(1, 0), LOOPS(0, 0), true));
  ck_assert(!tdm_idle_may_search(&idle, C(2, 0), LOOPS(0, 0), true));
  /* A loop polls with two or more jobs in flight: the hot one searches. */
  ck_assert(tdm_idle_may_search(&idle, C(1, 0), LOOPS(1, 0), true));
  /* Its one job in flight: one searcher does. */
  ck_assert(!tdm_idle_may_search(&idle, C(1, 0), LOOPS(1, 1), true));
  ck_assert(tdm_idle_may_search(&idle, C(0, 0), LOOPS(1, 1), true));
  ck_assert(tdm_idle_may_search(&idle, C(0, 1), LOOPS(1, 1), false));
  /* Two loops polling, one of them with more jobs: the hot one searches. */
  ck_assert(tdm_idle_may_search(&idle, C(1, 0), LOOPS(2, 1), true));
  tdm_idle_destroy(&idle);

  policy_open(&idle, 8, 8);
  ck_assert(tdm_idle_may_search(&idle, C(3, 0), LOOPS(0, 0), false));
  ck_assert(!tdm_idle_may_search(&idle, C(4, 0), LOOPS(0, 0), false));
  ck_assert(tdm_idle_may_search(&idle, C(4, 0), LOOPS(0, 0), true));
  ck_assert(!tdm_idle_may_search(&idle, C(4, 0), LOOPS(1, 1), true));
  ck_assert(!tdm_idle_may_search(&idle, C(2, 4), LOOPS(0, 0), false));
  tdm_idle_destroy(&idle);
}
END_TEST

/* A searcher yields when the workers and a loop thread outnumber the
 * CPUs -- but pauses while every polling loop has one job in flight and
 * the workers not parked plus the polling loops fit the CPUs. */
START_TEST(test_yield_only_when_crowded) {
  tdm_idle_t idle;

  policy_open(&idle, 1, 2); /* a worker and a loop fit: never */
  ck_assert(!tdm_idle_crowded(&idle, C(1, 0), LOOPS(0, 0)));
  ck_assert(!tdm_idle_crowded(&idle, C(1, 0), LOOPS(1, 1)));
  tdm_idle_destroy(&idle);

  policy_open(&idle, 2, 2);
  ck_assert(tdm_idle_crowded(&idle, C(1, 0), LOOPS(0, 0)));
  ck_assert(tdm_idle_crowded(&idle, C(1, 1), LOOPS(1, 0)));
  ck_assert(tdm_idle_crowded(&idle, C(0, 0), LOOPS(2, 1)));
  /* A lone round trip: two awake workers and the loop are one too many;
   * one awake worker and the loop fit. */
  ck_assert(tdm_idle_crowded(&idle, C(1, 0), LOOPS(1, 1)));
  ck_assert(!tdm_idle_crowded(&idle, C(1, 1), LOOPS(1, 1)));
  tdm_idle_destroy(&idle);

  policy_open(&idle, 16, 2); /* more workers than CPUs */
  ck_assert(tdm_idle_crowded(&idle, C(1, 0), LOOPS(0, 0)));
  ck_assert(!tdm_idle_crowded(&idle, C(1, 15), LOOPS(1, 1)));
  ck_assert(tdm_idle_crowded(&idle, C(1, 14), LOOPS(1, 1)));
  tdm_idle_destroy(&idle);
}
END_TEST

START_TEST(test_stream_ends_while_workers_decide_to_rest) {
  stand_in_t *si = malloc(sizeof(*si));
  uint32_t slot = UINT32_MAX;
  unsigned i;

  ck_assert_ptr_nonnull(si);
  if (!stand_in_init(si, 3u)) {
    free(si);
    return;
  }
  tdm_idle_stream_begin(&si->idle, &slot);
  for (i = 0; i < WORKERS; i++)
    start(si, i);
  for (i = 0; i < WORKERS; i++)
    wait_for(&si->arrived[i]);
  for (i = 0; i < WORKERS; i++)
    ck_assert_int_eq(atomic_load(&si->rested[i]), 1);
  atomic_store(&si->work, 1);
  tdm_fence_sc();
  tdm_idle_notify(&si->idle);
  tdm_idle_stream_end(&si->idle, &slot);
  atomic_store(&si->release, 1);
  ck_assert_msg(finish(si, &slot) != 0,
                "both workers slept with an item queued and no stream");
  free(si);
}
END_TEST

/* The stream goes on.  Worker 0 rests and parks (nothing is queued);
 * worker 1 decides to rest and is held before parking; the loop queues an
 * item, and its notify passes over worker 0 (it rests) and finds worker 1
 * not parked.  When worker 1 parks it is the last one awake: its re-check
 * must take the shared queues -- else the item waits with every worker
 * asleep until the stream ends, which it may never do while the loop
 * waits for that very item. */
START_TEST(test_last_worker_to_park_takes_the_work) {
  stand_in_t *si = malloc(sizeof(*si));
  uint32_t slot = UINT32_MAX;

  ck_assert_ptr_nonnull(si);
  if (!stand_in_init(si, 2u)) {
    free(si);
    return;
  }
  tdm_idle_stream_begin(&si->idle, &slot);
  start(si, 0);
  wait_parked(si, 1);
  ck_assert_int_eq(atomic_load(&si->rested[0]), 1);
  start(si, 1);
  wait_for(&si->arrived[1]);
  ck_assert_int_eq(atomic_load(&si->rested[1]), 1);
  atomic_store(&si->work, 1);
  tdm_fence_sc();
  tdm_idle_notify(&si->idle);
  atomic_store(&si->release, 1);
  ck_assert_msg(finish(si, &slot) != 0,
                "every worker slept with an item queued while streaming");
  free(si);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("idle");
  tc = tcase_create("policy");
  tcase_add_test(tc, test_search_cap);
  tcase_add_test(tc, test_yield_only_when_crowded);
  suite_add_tcase(s, tc);
  tc = tcase_create("resting");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_stream_ends_while_workers_decide_to_rest);
  tcase_add_test(tc, test_last_worker_to_park_takes_the_work);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
