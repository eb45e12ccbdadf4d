/* SPDX-License-Identifier: MIT */
/*
 * Blocking jobs (TANDEM_JOB_BLOCKING), through the public API: they run on
 * the pool's blocking side -- threads named "tandem-b...", never a compute
 * worker -- at most blocking_max at once, in the order they were queued
 * whatever their priority; compute jobs keep running while every blocking
 * thread sleeps; idle blocking threads end after blocking_idle_ms; a
 * waiting blocking job can be cancelled and expires at its deadline; every
 * after callback runs once, on the loop thread.
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "hold.h"
#include "job_probe.h"
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"

#define WAIT_MS 5000 /* the longest a test waits for one step */
#define MS 1000000u  /* nanoseconds, for uv_hrtime() arithmetic */

/* A job that records what happened to it (jp, its hold, if set, it waits
 * in) and where it ran. */
typedef struct probe_s {
  job_probe_t jp;   /* first: a probe_t * is its tandem_work_t * */
  pthread_t thread; /* the thread that ran it */
  char name[16];    /* that thread's name */
} probe_t;

static fixture_t fx;           /* each test's pool, loop and handle */
static atomic_int next_ticket; /* the next start's place */
static atomic_int running;     /* blocking jobs inside work_cb now */
static atomic_int peak;        /* the most at once */

static void setup(unsigned workers, unsigned blocking_max,
                  unsigned blocking_idle_ms) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  opts.blocking_max = blocking_max;
  opts.blocking_idle_ms = blocking_idle_ms;
  fixture_open(&fx, &opts);
  atomic_store(&next_ticket, 0);
  atomic_store(&running, 0);
  atomic_store(&peak, 0);
}

static void teardown(void) {
  fixture_close(&fx);
}

/* Worker: counts the job running and records its thread, before it takes
 * its ticket. */
static void probe_on_start(job_probe_t *jp) {
  probe_t *p;
  int now;
  int seen;

  p = (probe_t *)jp;
  now = atomic_fetch_add(&running, 1) + 1;
  seen = atomic_load(&peak);
  while (now > seen && !atomic_compare_exchange_weak(&peak, &seen, now))
    ;
  p->thread = pthread_self();
  if (pthread_getname_np(p->thread, p->name, sizeof(p->name)) != 0)
    strcpy(p->name, "?");
}

/* Worker: the job, past its hold, stops counting as running. */
static void probe_on_run(job_probe_t *jp) {
  (void)jp;
  atomic_fetch_sub(&running, 1);
}

static void probe_init(probe_t *p) {
  memset(p, 0, sizeof(*p));
  job_probe_init(&p->jp, &fx);
  p->jp.tickets = &next_ticket;
  p->jp.on_start = probe_on_start;
  p->jp.on_run = probe_on_run;
}

static int queue_blocking(probe_t *p, int priority, uint64_t deadline) {
  return job_probe_queue(&p->jp, priority, TANDEM_JOB_BLOCKING, deadline);
}

static tandem_stats_t stats_now(void) {
  tandem_stats_t stats;

  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  return stats;
}

typedef struct called_s {
  probe_t *p;
  int n;
} called_t;

static int all_called(void *arg) {
  called_t *c;
  int i;

  c = arg;
  for (i = 0; i < c->n; i++)
    if (c->p[i].jp.called == 0)
      return 0;
  return 1;
}

/* Runs the loop until each of the n probes was called back, or fails
 * naming `what`. */
static void wait_called(probe_t *p, int n, const char *what) {
  called_t c;

  c.p = p;
  c.n = n;
  ck_assert_msg(run_until(&fx.loop, all_called, &c, 20000),
                "%s: not every job was called back", what);
}

static void assert_ran_ok(const probe_t *p, int n, const char *what) {
  int i;

  for (i = 0; i < n; i++) {
    ck_assert_msg(atomic_load(&p[i].jp.ran) == 1, "%s %d: ran %d times", what,
                  i, atomic_load(&p[i].jp.ran));
    ck_assert_msg(p[i].jp.called == 1, "%s %d: called back %d times", what, i,
                  p[i].jp.called);
    ck_assert_msg(p[i].jp.status == 0, "%s %d: status %s", what, i,
                  p[i].jp.status == 1 ? "(never called)"
                                      : uv_err_name(p[i].jp.status));
    ck_assert_msg(p[i].jp.off_loop_thread == 0,
                  "%s %d: called back off the loop thread", what, i);
  }
}

static int is_blocking_name(const char *name) {
  return strncmp(name, "tandem-b", 8) == 0;
}

/* ------------------------------------------------- where they run */

#define WORKERS 2

/* Every compute worker held by a job that records its thread: a blocking
 * job still runs (it needs no worker), on a thread named "tandem-b...",
 * none of the workers, and is called back once on the loop thread. */
START_TEST(test_blocking_job_runs_on_blocking_thread) {
  probe_t workers[WORKERS];
  hold_t hold;
  probe_t b;
  int i;

  setup(WORKERS, 4, 0);
  hold_init(&hold);
  for (i = 0; i < WORKERS; i++) {
    probe_init(&workers[i]);
    workers[i].jp.hold = &hold;
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &workers[i].jp.req,
                                       job_probe_work_cb, job_probe_after_cb),
                     0);
  }
  /* A worker runs one held job at a time: WORKERS inside means all. */
  ck_assert_msg(wait_atomic_ge(&hold.entered, WORKERS, WAIT_MS),
                "%d of %d workers started a job", atomic_load(&hold.entered),
                WORKERS);

  probe_init(&b);
  ck_assert_int_eq(queue_blocking(&b, TANDEM_PRIO_NORMAL, 0), 0);
  wait_called(&b, 1, "blocking job while every worker was held");
  assert_ran_ok(&b, 1, "blocking job");
  ck_assert_msg(is_blocking_name(b.name),
                "blocking job ran on a thread named \"%s\"", b.name);
  for (i = 0; i < WORKERS; i++) {
    ck_assert_msg(!pthread_equal(b.thread, workers[i].thread),
                  "blocking job ran on compute worker \"%s\"", workers[i].name);
    ck_assert_msg(!is_blocking_name(workers[i].name),
                  "a compute worker is named \"%s\"", workers[i].name);
  }
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, blocking_jobs, 1), 1);

  hold_open(&hold);
  wait_called(workers, WORKERS, "held compute jobs");
  assert_ran_ok(workers, WORKERS, "held compute job");
  teardown();
}
END_TEST

#define SLEEPERS 4
#define COMPUTE 100

/* Compute keeps running while every blocking thread sleeps: blocking_max
 * 4, four blocking jobs held, then 100 NORMAL jobs all run and are called
 * back while the four are still held. */
START_TEST(test_compute_runs_while_blocking_threads_sleep) {
  probe_t b[SLEEPERS];
  probe_t *c;
  hold_t hold;
  int i;

  setup(WORKERS, SLEEPERS, 0);
  hold_init(&hold);
  c = calloc(COMPUTE, sizeof(*c));
  ck_assert_ptr_nonnull(c);
  for (i = 0; i < SLEEPERS; i++) {
    probe_init(&b[i]);
    b[i].jp.hold = &hold;
    ck_assert_int_eq(queue_blocking(&b[i], TANDEM_PRIO_NORMAL, 0), 0);
  }
  ck_assert_msg(wait_atomic_ge(&hold.entered, SLEEPERS, WAIT_MS),
                "%d of %d blocking jobs started (blocking_max %d)",
                atomic_load(&hold.entered), SLEEPERS, SLEEPERS);
  ck_assert_uint_eq(stats_now().blocking_threads, SLEEPERS);
  ck_assert_uint_eq(stats_now().blocking_idle, 0);

  for (i = 0; i < COMPUTE; i++) {
    probe_init(&c[i]);
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &c[i].jp.req,
                                       job_probe_work_cb, job_probe_after_cb),
                     0);
  }
  wait_called(c, COMPUTE, "compute jobs while every blocking thread slept");
  assert_ran_ok(c, COMPUTE, "compute job");
  for (i = 0; i < COMPUTE; i++)
    ck_assert_msg(!is_blocking_name(c[i].name),
                  "compute job %d ran on blocking thread \"%s\"", i, c[i].name);
  for (i = 0; i < SLEEPERS; i++)
    ck_assert_int_eq(b[i].jp.called, 0);
  ck_assert_int_eq(atomic_load(&hold.passed), 0);

  hold_open(&hold);
  wait_called(b, SLEEPERS, "blocking jobs once let go");
  assert_ran_ok(b, SLEEPERS, "blocking job");
  ck_assert_int_eq(atomic_load(&hold.timed_out), 0);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, blocking_jobs, SLEEPERS), SLEEPERS);
  free(c);
  teardown();
}
END_TEST

#define BOUNDED 6

/* blocking_max 2: six held blocking jobs, let go one at a time -- exactly
 * two run at once, never three (peak 2), and each one let go lets exactly
 * one more start. */
START_TEST(test_blocking_max_bounds_concurrency) {
  probe_t b[BOUNDED];
  hold_t hold;
  int k;
  int i;

  setup(WORKERS, 2, 0);
  hold_init(&hold);
  for (i = 0; i < BOUNDED; i++) {
    probe_init(&b[i]);
    b[i].jp.hold = &hold;
    ck_assert_int_eq(queue_blocking(&b[i], TANDEM_PRIO_NORMAL, 0), 0);
  }
  for (k = 2; k <= BOUNDED; k++) {
    ck_assert_msg(wait_atomic_ge(&hold.entered, k, WAIT_MS),
                  "%d blocking jobs started, expected %d",
                  atomic_load(&hold.entered), k);
    /* A third running now would show within a few milliseconds; waiting
     * can only miss one, never fail a pool that keeps the bound. */
    uv_sleep(20);
    ck_assert_msg(atomic_load(&hold.entered) == k && atomic_load(&peak) <= 2,
                  "%d blocking jobs started, %d at once, with blocking_max 2",
                  atomic_load(&hold.entered), atomic_load(&peak));
    ck_assert_uint_le(stats_now().blocking_threads, 2);
    hold_release(&hold, 1);
  }
  hold_open(&hold);
  wait_called(b, BOUNDED, "blocking jobs");
  assert_ran_ok(b, BOUNDED, "blocking job");
  ck_assert_int_eq(atomic_load(&peak), 2);
  ck_assert_int_eq(atomic_load(&hold.timed_out), 0);
  teardown();
}
END_TEST

static int no_blocking_threads(void *arg) {
  tandem_stats_t stats;

  (void)arg;
  if (tandem_pool_stats(fx.pool, &stats) != 0)
    return 0;
  return stats.blocking_threads == 0;
}

/* blocking_idle_ms 100: four blocking threads, made for four held jobs,
 * end once idle (stats.blocking_threads reaches 0); a later blocking job
 * makes one again and runs. */
START_TEST(test_idle_blocking_threads_end) {
  tandem_stats_t stats;
  probe_t b[SLEEPERS];
  probe_t again;
  hold_t hold;
  int i;

  setup(WORKERS, SLEEPERS, 100);
  hold_init(&hold);
  for (i = 0; i < SLEEPERS; i++) {
    probe_init(&b[i]);
    b[i].jp.hold = &hold;
    ck_assert_int_eq(queue_blocking(&b[i], TANDEM_PRIO_NORMAL, 0), 0);
  }
  ck_assert_msg(wait_atomic_ge(&hold.entered, SLEEPERS, WAIT_MS),
                "%d of %d blocking jobs started", atomic_load(&hold.entered),
                SLEEPERS);
  stats = stats_now();
  ck_assert_uint_eq(stats.blocking_threads, SLEEPERS);
  ck_assert_uint_eq(stats.blocking_idle, 0);
  hold_open(&hold);
  wait_called(b, SLEEPERS, "blocking jobs");
  assert_ran_ok(b, SLEEPERS, "blocking job");

  ck_assert_msg(run_until(&fx.loop, no_blocking_threads, NULL, 10000),
                "blocking threads still alive 10 s after they went idle"
                " (blocking_idle_ms 100): %u",
                stats_now().blocking_threads);
  stats = stats_now();
  ck_assert_uint_eq(stats.blocking_idle, 0);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, blocking_jobs, SLEEPERS), SLEEPERS);

  probe_init(&again);
  ck_assert_int_eq(queue_blocking(&again, TANDEM_PRIO_NORMAL, 0), 0);
  wait_called(&again, 1, "blocking job after the threads ended");
  assert_ran_ok(&again, 1, "blocking job after the threads ended");
  ck_assert_msg(is_blocking_name(again.name),
                "blocking job ran on a thread named \"%s\"", again.name);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, blocking_jobs, SLEEPERS + 1),
                    SLEEPERS + 1);
  teardown();
}
END_TEST

/* ------------------------------------------------- order, cancel, deadlines */

/* Holds the only blocking thread (blocking_max 1) with b, so that the
 * blocking jobs queued after it wait. */
static void hold_blocking_side(probe_t *b, hold_t *hold) {
  probe_init(b);
  b->jp.hold = hold;
  ck_assert_int_eq(queue_blocking(b, TANDEM_PRIO_NORMAL, 0), 0);
  ck_assert_msg(wait_atomic_ge(&hold->entered, 1, WAIT_MS),
                "the first blocking job did not start");
}

/* Blocking jobs start in the order they were queued, their priority not
 * used: LOW, HIGH, NORMAL, HIGH behind a held blocking thread start in
 * that order, none of them on the HIGH lane. */
START_TEST(test_blocking_jobs_start_in_queued_order) {
  static const int classes[4] = {TANDEM_PRIO_LOW, TANDEM_PRIO_HIGH,
                                 TANDEM_PRIO_NORMAL, TANDEM_PRIO_HIGH};
  probe_t first;
  probe_t b[4];
  hold_t hold;
  int i;

  setup(WORKERS, 1, 0);
  hold_init(&hold);
  hold_blocking_side(&first, &hold);
  for (i = 0; i < 4; i++) {
    probe_init(&b[i]);
    ck_assert_int_eq(queue_blocking(&b[i], classes[i], 0), 0);
  }
  uv_sleep(20);
  for (i = 0; i < 4; i++)
    ck_assert_msg(atomic_load(&b[i].jp.ran) == 0,
                  "blocking job %d started beyond blocking_max 1", i);
  hold_open(&hold);
  wait_called(b, 4, "blocking jobs");
  wait_called(&first, 1, "first blocking job");
  assert_ran_ok(b, 4, "blocking job");
  assert_ran_ok(&first, 1, "first blocking job");
  ck_assert_int_eq(atomic_load(&first.jp.ticket), 0);
  for (i = 0; i < 4; i++)
    ck_assert_msg(atomic_load(&b[i].jp.ticket) == i + 1,
                  "blocking job %d (priority %d) started %d-th", i, classes[i],
                  atomic_load(&b[i].jp.ticket));
  ck_assert_uint_eq(stats_now().high_lane_jobs, 0);
  teardown();
}
END_TEST

/* A blocking job waiting behind a held blocking thread is cancelled: 0,
 * UV_ECANCELED on the next loop iteration while the thread is still held,
 * never run; stats.cancelled 1. */
START_TEST(test_cancel_waiting_blocking_job) {
  probe_t first;
  probe_t b;
  hold_t hold;

  setup(WORKERS, 1, 0);
  hold_init(&hold);
  hold_blocking_side(&first, &hold);
  probe_init(&b);
  ck_assert_int_eq(queue_blocking(&b, TANDEM_PRIO_NORMAL, 0), 0);
  ck_assert_int_eq(tandem_cancel(&b.jp.req), 0);
  ck_assert_int_eq(b.jp.called, 0); /* not from inside tandem_cancel() */
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_msg(b.jp.called == 1,
                "cancelled blocking job not called back on the next loop"
                " iteration");
  ck_assert_int_eq(b.jp.status, UV_ECANCELED);
  ck_assert_int_eq(b.jp.off_loop_thread, 0);
  ck_assert_int_eq(first.jp.called, 0);
  ck_assert_int_eq(tandem_cancel(&b.jp.req), UV_EBUSY);

  hold_open(&hold);
  wait_called(&first, 1, "first blocking job");
  assert_ran_ok(&first, 1, "first blocking job");
  ck_assert_int_eq(atomic_load(&b.jp.ran), 0);
  ck_assert_int_eq(b.jp.called, 1);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, cancelled, 1), 1);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, blocking_jobs, 1), 1);
  teardown();
}
END_TEST

/* A blocking job whose deadline (20 ms away) passes while it waits behind
 * a held blocking thread: UV_ETIMEDOUT once let go, never run,
 * stats.expired 1; the one queued after it without a deadline runs. */
START_TEST(test_blocking_deadline_passed_while_waiting_expires) {
  uint64_t deadline;
  probe_t first;
  probe_t late;
  probe_t plain;
  hold_t hold;

  setup(WORKERS, 1, 0);
  hold_init(&hold);
  hold_blocking_side(&first, &hold);
  probe_init(&late);
  probe_init(&plain);
  deadline = uv_hrtime() + 20 * MS;
  ck_assert_int_eq(queue_blocking(&late, TANDEM_PRIO_NORMAL, deadline), 0);
  ck_assert_int_eq(queue_blocking(&plain, TANDEM_PRIO_NORMAL, 0), 0);
  uv_sleep(50);
  sleep_past(deadline);
  hold_open(&hold);
  wait_called(&late, 1, "expired blocking job");
  wait_called(&plain, 1, "blocking job without a deadline");
  wait_called(&first, 1, "first blocking job");
  ck_assert_int_eq(atomic_load(&late.jp.ran), 0);
  ck_assert_int_eq(late.jp.called, 1);
  ck_assert_msg(late.jp.status == UV_ETIMEDOUT, "status %s, not ETIMEDOUT",
                late.jp.status == 1 ? "(never called)"
                                    : uv_err_name(late.jp.status));
  ck_assert_int_eq(late.jp.off_loop_thread, 0);
  assert_ran_ok(&plain, 1, "blocking job without a deadline");
  assert_ran_ok(&first, 1, "first blocking job");
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, expired, 1), 1);
  teardown();
}
END_TEST

/* A blocking job whose deadline is already past: accepted (0), called back
 * with UV_ETIMEDOUT without running, at once (the blocking thread still
 * held). */
START_TEST(test_blocking_deadline_already_past_expires) {
  probe_t first;
  probe_t late;
  hold_t hold;

  setup(WORKERS, 1, 0);
  hold_init(&hold);
  hold_blocking_side(&first, &hold);
  probe_init(&late);
  ck_assert_int_eq(queue_blocking(&late, TANDEM_PRIO_NORMAL, uv_hrtime() - 1),
                   0);
  wait_called(&late, 1, "blocking job with a deadline already past");
  ck_assert_int_eq(first.jp.called, 0);
  ck_assert_int_eq(atomic_load(&late.jp.ran), 0);
  ck_assert_int_eq(late.jp.status, UV_ETIMEDOUT);
  ck_assert_int_eq(late.jp.off_loop_thread, 0);
  hold_open(&hold);
  wait_called(&first, 1, "first blocking job");
  assert_ran_ok(&first, 1, "first blocking job");
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, expired, 1), 1);
  teardown();
}
END_TEST

/* ------------------------------------------------------ after callbacks */

#define MANY 200

typedef struct producer_s {
  probe_t *p;
  int n;
  int errors;
} producer_t;

static void producer_main(void *arg) {
  producer_t *pr;
  int i;

  pr = arg;
  for (i = 0; i < pr->n; i++)
    if (queue_blocking(&pr->p[i], TANDEM_PRIO_NORMAL, 0) != 0)
      pr->errors++;
}

/* 200 blocking jobs from the loop thread and 200 from another thread,
 * blocking_max 8: each runs once on a blocking thread and is called back
 * once, on the loop thread, with 0; stats.blocking_jobs 400. */
START_TEST(test_blocking_after_callbacks_once_on_loop_thread) {
  uv_thread_t thread;
  producer_t pr;
  probe_t *p;
  int bad_name;
  int errors;
  int i;

  setup(WORKERS, 8, 0);
  p = calloc(2 * MANY, sizeof(*p));
  ck_assert_ptr_nonnull(p);
  for (i = 0; i < 2 * MANY; i++)
    probe_init(&p[i]);
  pr.p = p + MANY;
  pr.n = MANY;
  pr.errors = 0;
  ck_assert_int_eq(uv_thread_create(&thread, producer_main, &pr), 0);
  errors = 0;
  for (i = 0; i < MANY; i++)
    if (queue_blocking(&p[i], TANDEM_PRIO_NORMAL, 0) != 0)
      errors++;
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(errors, 0);
  ck_assert_int_eq(pr.errors, 0);

  wait_called(p, 2 * MANY, "blocking jobs");
  uv_run(&fx.loop, UV_RUN_NOWAIT); /* a second call would show now */
  assert_ran_ok(p, 2 * MANY, "blocking job");
  bad_name = 0;
  for (i = 0; i < 2 * MANY; i++)
    if (!is_blocking_name(p[i].name))
      bad_name++;
  ck_assert_int_eq(bad_name, 0);
  ck_assert_int_le(atomic_load(&peak), 8);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, blocking_jobs, 2 * MANY), 2 * MANY);
  free(p);
  teardown();
}
END_TEST

static Suite *blocking_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("blocking");

  tc = tcase_create("threads");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_blocking_job_runs_on_blocking_thread);
  tcase_add_test(tc, test_compute_runs_while_blocking_threads_sleep);
  tcase_add_test(tc, test_blocking_max_bounds_concurrency);
  tcase_add_test(tc, test_idle_blocking_threads_end);
  tcase_add_test(tc, test_blocking_after_callbacks_once_on_loop_thread);
  suite_add_tcase(s, tc);

  tc = tcase_create("queue");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_blocking_jobs_start_in_queued_order);
  tcase_add_test(tc, test_cancel_waiting_blocking_job);
  tcase_add_test(tc, test_blocking_deadline_passed_while_waiting_expires);
  tcase_add_test(tc, test_blocking_deadline_already_past_expires);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(blocking_suite());
}
