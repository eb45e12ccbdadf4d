/*
 * A loop that keeps many cheap jobs in flight streams (src/loop.c,
 * "Streams"): a worker on the loop's CPU rests and the others trail the
 * ring.  The guarantees do not change: each job's after callback runs
 * exactly once, on the loop thread; cancel and close work mid-stream; and
 * once the loop's jobs are done the pool is whole again -- no worker stays
 * at rest for a loop that has left uv_run().
 *
 * Empty jobs, WIDTH in flight, on 2 workers: completions come tens of
 * nanoseconds apart, so the loop streams within the first few thousand
 * (stats.streams counts it; each test checks it happened, except under
 * ThreadSanitizer, which slows a job past the stream's 300 ns).
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "suite_run.h"
#include "tandem.h"

#define WORKERS 2
#define WIDTH 1024     /* jobs in flight */
#define TOTAL 400000   /* jobs queued in all, by requeueing */
#define CHECK_EVERY 256 /* after callbacks between looks at the stats */

typedef struct probe_s {
  tandem_work_t req;
  atomic_int ran;
  int queued; /* loop thread only */
  int called; /* loop thread only */
} probe_t;

static uv_loop_t loop;
static tandem_t tandem;
static tandem_pool_t *pool;
static uv_thread_t loop_thread;
static probe_t probes[WIDTH];

/* Loop thread only. */
static int queued_total;
static int afters;
static int afters_off_thread;
static int bad_status;
static int cancelled;
static int saw_stream;
static int close_called;
static int stop_requeue;
static probe_t *cancel_victim;
static uint64_t streams_before;

/* No ck_assert in the after callbacks: Check logs every passed assertion
 * with a write(), which alone would slow the loop below a stream.  They
 * count what went wrong, and each test asserts the counts at the end. */
static int bad_calls;

static uint64_t streams_now(unsigned *streaming) {
  tandem_stats_t st;

  if (tandem_pool_stats(pool, &st) != 0) {
    bad_calls++;
    return 0;
  }
  if (streaming != NULL)
    *streaming = st.streaming;
  return st.streams;
}

static void setup(void) {
  tandem_options_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.workers = WORKERS;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  ck_assert_int_eq(tandem_init(&loop, &tandem, pool), 0);
  loop_thread = uv_thread_self();
  memset(probes, 0, sizeof(probes));
  queued_total = afters = afters_off_thread = bad_status = cancelled = 0;
  saw_stream = close_called = stop_requeue = bad_calls = 0;
  cancel_victim = NULL;
  streams_before = streams_now(NULL);
}

static void teardown(void) {
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}

static void close_cb(tandem_t *t) {
  ck_assert_ptr_eq(t, &tandem);
  close_called++;
}

static void empty_work_cb(tandem_work_t *req) {
  atomic_fetch_add_explicit(&((probe_t *)req)->ran, 1, memory_order_relaxed);
}

static tandem_after_work_cb test_after; /* each test's after callback */

static int queue(probe_t *p) {
  int err;

  err = tandem_queue_work(&tandem, &p->req, empty_work_cb, test_after);
  if (err == 0) {
    p->queued++;
    queued_total++;
  }
  return err;
}

/* Counts one after callback; every test's callback starts with it. */
static void count_after(probe_t *p, int status) {
  uv_thread_t self = uv_thread_self();
  unsigned streaming;

  if (!uv_thread_equal(&self, &loop_thread))
    afters_off_thread++;
  afters++;
  p->called++;
  if (status == UV_ECANCELED)
    cancelled++;
  else if (status != 0)
    bad_status++;
  if (!saw_stream && afters % CHECK_EVERY == 0) {
    (void)streams_now(&streaming);
    saw_stream = streaming != 0;
  }
}

static void requeue(probe_t *p) {
  if (!stop_requeue && queued_total < TOTAL && queue(p) != 0)
    bad_calls++;
}

static void start_all(tandem_after_work_cb after) {
  int i;

  test_after = after;
  for (i = 0; i < WIDTH; i++)
    ck_assert_int_eq(queue(&probes[i]), 0);
}

static void check_each_called_once(void) {
  int i;

  for (i = 0; i < WIDTH; i++)
    ck_assert_int_eq(probes[i].called, probes[i].queued);
  ck_assert_int_eq(afters, queued_total);
  ck_assert_int_eq(afters_off_thread, 0);
  ck_assert_int_eq(bad_status, 0);
  ck_assert_int_eq(bad_calls, 0);
}

/* Did the loop stream during the test?  ThreadSanitizer makes every job
 * too slow for it: there only the other checks apply. */
static void check_streamed(void) {
#ifndef TANDEM_TSAN
  ck_assert_msg(saw_stream, "%d empty jobs in flight never streamed", WIDTH);
  ck_assert_uint_gt(streams_now(NULL), streams_before);
#endif
}

/* Nothing streams once the loop's jobs are done. */
static void check_pool_whole(void) {
  unsigned streaming;

  (void)streams_now(&streaming);
  ck_assert_uint_eq(streaming, 0);
}

static void plain_after_cb(tandem_work_t *req, int status) {
  count_after((probe_t *)req, status);
  requeue((probe_t *)req);
}

START_TEST(test_stream_every_job_once) {
  int ran;
  int i;

  start_all(plain_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(queued_total, TOTAL);
  check_each_called_once();
  ck_assert_int_eq(cancelled, 0);
  for (ran = 0, i = 0; i < WIDTH; i++)
    ran += atomic_load(&probes[i].ran);
  ck_assert_int_eq(ran, TOTAL);
  check_streamed();
  /* uv_run returned in mid-stream (the last completions came in a burst):
   * the loop must have left the stream on its way out. */
  check_pool_whole();
  tandem_close(&tandem, close_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
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

  start_all(plain_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  check_each_called_once();
  check_streamed();
  atomic_store(&met, 0);
  met_ok = 0;
  memset(meet, 0, sizeof(meet));
  ck_assert_int_eq(tandem_queue_work(&tandem, &meet[0], meet_work_cb,
                                     meet_after_cb), 0);
  ck_assert_int_eq(tandem_queue_work(&tandem, &meet[1], meet_work_cb,
                                     meet_after_cb), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(met_ok == 2, "the two jobs never ran at the same time");
  tandem_close(&tandem, close_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}
END_TEST

static void close_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;

  count_after(p, status);
  if (!stop_requeue && (saw_stream || afters >= TOTAL / 2)) {
    stop_requeue = 1;
    tandem_close(&tandem, close_cb);
    /* Refused from now on, and the request stays the caller's. */
    if (queue(p) != UV_EINVAL)
      bad_calls++;
  }
  requeue(p);
}

START_TEST(test_close_while_streaming) {
  start_all(close_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  check_streamed();
  ck_assert_int_eq(stop_requeue, 1);
  ck_assert_int_eq(close_called, 1);
  check_each_called_once();
  check_pool_whole();
}
END_TEST

static int victim_status = 1;

/* Once streaming: cancels a job that has not started; its callback comes
 * with UV_ECANCELED and it is not queued again. */
static void cancel_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;
  int err;
  int i;

  count_after(p, status); /* counts a status other than 0 or UV_ECANCELED */
  if (p == cancel_victim) {
    victim_status = status;
    return; /* not queued again */
  }
  requeue(p);
  if (cancel_victim != NULL || !(saw_stream || afters >= TOTAL / 2))
    return;
  /* The newest first: they are the likeliest still in the ring.  A worker
   * may take one before we cancel: UV_EBUSY, try the next. */
  for (i = WIDTH - 1; i >= 0; i--) {
    if (probes[i].called == probes[i].queued ||
        atomic_load(&probes[i].ran) == probes[i].queued)
      continue;
    err = tandem_cancel(&probes[i].req);
    if (err == 0) {
      cancel_victim = &probes[i];
      return;
    }
    if (err != UV_EBUSY)
      bad_calls++;
  }
}

START_TEST(test_cancel_while_streaming) {
  start_all(cancel_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  check_streamed();
  ck_assert_msg(cancel_victim != NULL, "no queued job could be cancelled");
  check_each_called_once();
  /* The one cancelled callback was the victim's last. */
  ck_assert_int_eq(cancelled, 1);
  ck_assert_int_eq(victim_status, UV_ECANCELED);
  ck_assert_int_eq(atomic_load(&cancel_victim->ran),
                   cancel_victim->queued - 1);
  check_pool_whole();
  tandem_close(&tandem, close_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
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
