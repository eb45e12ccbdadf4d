/* SPDX-License-Identifier: MIT */
/*
 * A loop with a deep backlog of its own jobs drains their completions from
 * a timer instead of being woken per batch (src/loop.c, "Batching").  The
 * guarantees do not change: each job's after callback runs exactly once,
 * on the loop thread; uv_run() returns when the last one has run; cancel
 * and close work while the timer drains.
 *
 * The jobs sleep 100 us, so 128 of them on 2 workers are a 6.4 ms backlog,
 * over the 4 ms that makes the policy batch.  The suite does not wait for
 * the policy's votes (tests/test_loop_mode.c tests those): it pins the
 * handle in BATCH (tandem__loop_force_mode, src/loop_mode.h), so the
 * timer drains from the first job on; each test checks that it did.
 */
#include <check.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "loop_mode.h"
#include "probes.h"
#include "suite_run.h"
#include "tandem.h"

#define WORKERS 2
#define WIDTH 128     /* jobs in flight */
#define JOB_US 100    /* each sleeps this long */
#define TOTAL 3000    /* jobs queued in all, by requeueing */
#define CLOSE_AT 1000 /* close_while_batching: close after this many */

static probes_t ps;
static probe_t probes[WIDTH];

/* Loop thread only. */
static int saw_batching;
static int close_called;
static int afters_at_close;
static probe_t *cancel_victim;

static void sleep_work_cb(tandem_work_t *req) {
  struct timespec ts = {0, JOB_US * 1000};

  atomic_fetch_add(&((probe_t *)req)->ran, 1);
  nanosleep(&ts, NULL);
}

static void setup(void) {
  probes_open(&ps, WORKERS, probes, WIDTH, TOTAL, sleep_work_cb);
  tandem__loop_force_mode(&ps.f.tandem, TDM_MODE_BATCH);
  saw_batching = close_called = 0;
  afters_at_close = -1;
  cancel_victim = NULL;
}

static void teardown(void) {
  probes_close(&ps);
}

static void close_cb(tandem_t *t) {
  ck_assert_ptr_eq(t, &ps.f.tandem);
  close_called++;
  afters_at_close = ps.afters;
}

/* Counts one after callback; every test's callback starts with it. */
static void count_after(probe_t *p, int status) {
  probes_count(&ps, p, status);
  /* Private, read for the test's sake: is the timer draining? */
  if (uv_is_active((uv_handle_t *)&ps.f.tandem.timer_) &&
      ps.f.tandem.mode_ == TDM_MODE_BATCH)
    saw_batching = 1;
}

static void plain_after_cb(tandem_work_t *req, int status) {
  count_after((probe_t *)req, status);
  probes_requeue(&ps, (probe_t *)req);
}

START_TEST(test_deep_backlog_every_job_once) {
  probes_start(&ps, plain_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  /* uv_run returned: every job has been called back, none kept it. */
  ck_assert_int_eq(ps.queued_total, TOTAL);
  probes_check_once(&ps);
  ck_assert_int_eq(ps.cancelled, 0);
  ck_assert_msg(saw_batching, "a loop pinned in BATCH never batched");
  ck_assert_int_eq(probes_ran(&ps), TOTAL);
  /* Nothing of batching is left once the loop's jobs are done. */
  ck_assert(!uv_is_active((uv_handle_t *)&ps.f.tandem.timer_));
  ck_assert_uint_eq(ps.f.tandem.mode_, TDM_MODE_SLEEP);
  tandem_close(&ps.f.tandem, close_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
}
END_TEST

static void close_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;

  count_after(p, status);
  if (!ps.stop_requeue && saw_batching && ps.afters >= CLOSE_AT) {
    ps.stop_requeue = 1;
    tandem_close(&ps.f.tandem, close_cb);
    /* Refused from now on, and the request stays the caller's. */
    ck_assert_int_eq(probes_queue(&ps, p), UV_ESHUTDOWN);
  }
  probes_requeue(&ps, p);
}

START_TEST(test_close_while_batching) {
  probes_start(&ps, close_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(saw_batching, "never started batching");
  ck_assert_int_eq(ps.stop_requeue, 1);
  ck_assert_int_eq(close_called, 1);
  /* Every job queued was called back, all before the close callback. */
  probes_check_once(&ps);
  ck_assert_int_eq(afters_at_close, ps.afters);
  /* Those still in the injection queue were cancelled, not run. */
  ck_assert_int_gt(ps.cancelled, 0);
}
END_TEST

/* Once batching: cancels one job that has not started.  Its callback must
 * come with UV_ECANCELED, and it is not queued again. */
static void cancel_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;

  count_after(p, status);
  if (p == cancel_victim) {
    ck_assert_int_eq(status, UV_ECANCELED);
    return;
  }
  ck_assert_int_eq(status, 0);
  probes_requeue(&ps, p);
  if (cancel_victim == NULL && saw_batching)
    cancel_victim = probes_cancel_one(&ps, p);
}

START_TEST(test_cancel_while_batching) {
  probes_start(&ps, cancel_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(cancel_victim != NULL, "no queued job could be cancelled");
  probes_check_once(&ps);
  ck_assert_int_eq(ps.cancelled, 1);
  /* Cancelled before it started: the pool never ran it that time. */
  ck_assert_int_eq(atomic_load(&cancel_victim->ran), cancel_victim->queued - 1);
  tandem_close(&ps.f.tandem, close_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
}
END_TEST

static Suite *batching_suite(void) {
  Suite *s = suite_create("batching");
  TCase *tc = tcase_create("deep backlog");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_deep_backlog_every_job_once);
  tcase_add_test(tc, test_close_while_batching);
  tcase_add_test(tc, test_cancel_while_batching);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return suite_run(batching_suite());
}
