/* SPDX-License-Identifier: MIT */
/*
 * A loop that keeps many cheap jobs in flight streams (src/loop.c,
 * "Streams"): a worker on the loop's CPU rests and the others trail the
 * ring.  The guarantees do not change: each job's after callback runs
 * exactly once, on the loop thread; cancel and close work mid-stream; and
 * once the loop's jobs are done the pool is whole again -- no worker stays
 * at rest for a loop that has left uv_run().
 *
 * Empty jobs, WIDTH in flight, on 2 workers.  The suite pins the handle
 * in STREAM (tandem__loop_force_mode, src/loop_mode.h), so each test
 * streams from its first job in every build -- ThreadSanitizer and the
 * chaos build slow a job past the stream's gap, and the policy would not
 * pick it there (tests/test_loop_mode.c tests when it does).
 * stats.streams counts each stream; each test checks it happened.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "loop_mode.h"
#include "probes.h"
#include "suite_run.h"
#include "tandem.h"

#define WORKERS 2
#define WIDTH 1024     /* jobs in flight */
#define TOTAL 400000   /* jobs queued in all, by requeueing */
#define CHECK_EVERY 256 /* after callbacks between looks at the stats */

static probes_t ps;
static probe_t probes[WIDTH];

/* Loop thread only. */
static int saw_stream;
static int close_called;
static probe_t *cancel_victim;
static int victim_status;
static uint64_t streams_before;

/* Counts a failed call in ps.bad_calls: it may run in an after callback
 * (probes.h: no ck_assert there). */
static uint64_t streams_now(unsigned *streaming) {
  tandem_stats_t st;

  if (tandem_pool_stats(ps.f.pool, &st) != 0) {
    ps.bad_calls++;
    return 0;
  }
  if (streaming != NULL)
    *streaming = st.streaming;
  return st.streams;
}

static void empty_work_cb(tandem_work_t *req) {
  atomic_fetch_add_explicit(&((probe_t *)req)->ran, 1, memory_order_relaxed);
}

static void setup(void) {
  probes_open(&ps, WORKERS, probes, WIDTH, TOTAL, empty_work_cb);
  tandem__loop_force_mode(&ps.f.tandem, TDM_MODE_STREAM);
  saw_stream = close_called = 0;
  cancel_victim = NULL;
  victim_status = 1;
  streams_before = streams_now(NULL);
}

static void teardown(void) {
  probes_close(&ps);
}

static void close_cb(tandem_t *t) {
  ck_assert_ptr_eq(t, &ps.f.tandem);
  close_called++;
}

/* Counts one after callback; every test's callback starts with it. */
static void count_after(probe_t *p, int status) {
  unsigned streaming;

  probes_count(&ps, p, status);
  if (!saw_stream && ps.afters % CHECK_EVERY == 0) {
    (void)streams_now(&streaming);
    saw_stream = streaming != 0;
  }
}

/* Mid-run actions wait until the stream is seen, and some jobs more. */
static int mid_run(void) {
  return saw_stream && ps.afters >= TOTAL / 4;
}

/* Did the loop stream during the test (the pool was told)? */
static void check_streamed(void) {
  ck_assert_msg(saw_stream, "a loop pinned in STREAM never streamed");
  ck_assert_uint_gt(streams_now(NULL), streams_before);
}

/* Nothing streams once the loop's jobs are done. */
static void check_pool_whole(void) {
  unsigned streaming;

  (void)streams_now(&streaming);
  ck_assert_uint_eq(streaming, 0);
}

static void plain_after_cb(tandem_work_t *req, int status) {
  count_after((probe_t *)req, status);
  probes_requeue(&ps, (probe_t *)req);
}

START_TEST(test_stream_every_job_once) {
  probes_start(&ps, plain_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(ps.queued_total, TOTAL);
  probes_check_once(&ps);
  ck_assert_int_eq(ps.cancelled, 0);
  ck_assert_int_eq(probes_ran(&ps), TOTAL);
  check_streamed();
  /* uv_run returned in mid-stream (the last completions came in a burst):
   * the loop must have left the stream on its way out. */
  check_pool_whole();
  tandem_close(&ps.f.tandem, close_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
}
END_TEST

/* Two jobs that each wait for the other to start: they finish only if
 * both workers take jobs, i.e. none is left at rest. */
static atomic_int met;

static void meet_work_cb(tandem_work_t *req) {
  struct timespec ts = {0, 100 * 1000};
  int i;

  atomic_fetch_add(&met, 1);
  for (i = 0; atomic_load(&met) < 2 && i < 50000; i++) /* 5 s at most */
    nanosleep(&ts, NULL);
  req->data = (void *)(intptr_t)(atomic_load(&met) >= 2);
}

static int met_ok;

static void meet_after_cb(tandem_work_t *req, int status) {
  met_ok += status == 0 && req->data != NULL;
}

START_TEST(test_every_worker_back_after_stream) {
  tandem_work_t meet[2];

  probes_start(&ps, plain_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  probes_check_once(&ps);
  check_streamed();
  /* Unpinned: the policy would not stream two jobs on two workers, and a
   * pinned stream would rest the worker the second one needs. */
  tandem__loop_force_mode(&ps.f.tandem, -1);
  atomic_store(&met, 0);
  met_ok = 0;
  memset(meet, 0, sizeof(meet));
  ck_assert_int_eq(tandem_queue_work(&ps.f.tandem, &meet[0], meet_work_cb,
                                     meet_after_cb), 0);
  ck_assert_int_eq(tandem_queue_work(&ps.f.tandem, &meet[1], meet_work_cb,
                                     meet_after_cb), 0);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(met_ok == 2, "the two jobs never ran at the same time");
  tandem_close(&ps.f.tandem, close_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
}
END_TEST

static void close_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;

  count_after(p, status);
  if (!ps.stop_requeue && mid_run()) {
    ps.stop_requeue = 1;
    tandem_close(&ps.f.tandem, close_cb);
    /* Refused from now on, and the request stays the caller's. */
    if (probes_queue(&ps, p) != UV_ESHUTDOWN)
      ps.bad_calls++;
  }
  probes_requeue(&ps, p);
}

START_TEST(test_close_while_streaming) {
  probes_start(&ps, close_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  check_streamed();
  ck_assert_int_eq(ps.stop_requeue, 1);
  ck_assert_int_eq(close_called, 1);
  probes_check_once(&ps);
  check_pool_whole();
}
END_TEST

/* Once streaming: cancels a job that has not started; its callback comes
 * with UV_ECANCELED and it is not queued again. */
static void cancel_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;

  count_after(p, status); /* counts a status other than 0 or UV_ECANCELED */
  if (p == cancel_victim) {
    victim_status = status;
    return; /* not queued again */
  }
  probes_requeue(&ps, p);
  if (cancel_victim == NULL && mid_run())
    cancel_victim = probes_cancel_one(&ps, p);
}

START_TEST(test_cancel_while_streaming) {
  probes_start(&ps, cancel_after_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
  check_streamed();
  ck_assert_msg(cancel_victim != NULL, "no queued job could be cancelled");
  probes_check_once(&ps);
  /* The one cancelled callback was the victim's last. */
  ck_assert_int_eq(ps.cancelled, 1);
  ck_assert_int_eq(victim_status, UV_ECANCELED);
  ck_assert_int_eq(atomic_load(&cancel_victim->ran),
                   cancel_victim->queued - 1);
  check_pool_whole();
  tandem_close(&ps.f.tandem, close_cb);
  ck_assert_int_eq(uv_run(&ps.f.loop, UV_RUN_DEFAULT), 0);
}
END_TEST

static Suite *stream_suite(void) {
  Suite *s = suite_create("stream");
  TCase *tc = tcase_create("cheap jobs, many in flight");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_stream_every_job_once);
  tcase_add_test(tc, test_every_worker_back_after_stream);
  tcase_add_test(tc, test_close_while_streaming);
  tcase_add_test(tc, test_cancel_while_streaming);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return suite_run(stream_suite());
}
