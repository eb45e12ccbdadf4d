/*
 * A loop with a deep backlog of its own jobs drains their completions from
 * a timer instead of being woken per batch (src/loop.c, "Batching").  The
 * guarantees do not change: each job's after callback runs exactly once,
 * on the loop thread; uv_run() returns when the last one has run; cancel
 * and close work while the timer drains.
 *
 * The jobs sleep 100 us, so 128 of them on 2 workers are a 6.4 ms backlog,
 * over the 4 ms that starts batching; each test checks that it did start.
 */
#include <check.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "suite_run.h"
#include "tandem.h"

#define WORKERS 2
#define WIDTH 128     /* jobs in flight */
#define JOB_US 100    /* each sleeps this long */
#define TOTAL 3000    /* jobs queued in all, by requeueing */
#define CLOSE_AT 1000 /* close_while_batching: close after this many */

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
static int saw_batching;
static int close_called;
static int afters_at_close;
static int stop_requeue; /* set once the test closed or cancelled */
static probe_t *cancel_victim;
static int cancel_result;

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
  saw_batching = close_called = stop_requeue = 0;
  afters_at_close = -1;
  cancel_victim = NULL;
  cancel_result = 1;
}

static void teardown(void) {
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}

static void close_cb(tandem_t *t) {
  ck_assert_ptr_eq(t, &tandem);
  close_called++;
  afters_at_close = afters;
}

static void sleep_work_cb(tandem_work_t *req) {
  struct timespec ts = {0, JOB_US * 1000};

  atomic_fetch_add(&((probe_t *)req)->ran, 1);
  nanosleep(&ts, NULL);
}

static tandem_after_work_cb test_after; /* each test's after callback */

static int queue(probe_t *p) {
  int err;

  err = tandem_queue_work(&tandem, &p->req, sleep_work_cb, test_after);
  if (err == 0) {
    p->queued++;
    queued_total++;
  }
  return err;
}

/* Counts one after callback; every test's callback starts with it. */
static void count_after(probe_t *p, int status) {
  uv_thread_t self = uv_thread_self();

  if (!uv_thread_equal(&self, &loop_thread))
    afters_off_thread++;
  afters++;
  p->called++;
  if (status == UV_ECANCELED)
    cancelled++;
  else if (status != 0)
    bad_status++;
  /* Private, read for the test's sake: is the timer draining? */
  if (uv_is_active((uv_handle_t *)&tandem.timer_))
    saw_batching = 1;
}

static void requeue(probe_t *p) {
  if (!stop_requeue && queued_total < TOTAL)
    ck_assert_int_eq(queue(p), 0);
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
}

static void plain_after_cb(tandem_work_t *req, int status) {
  count_after((probe_t *)req, status);
  requeue((probe_t *)req);
}

START_TEST(test_deep_backlog_every_job_once) {
  int i;
  int ran;

  start_all(plain_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  /* uv_run returned: every job has been called back, none kept it. */
  ck_assert_int_eq(queued_total, TOTAL);
  check_each_called_once();
  ck_assert_int_eq(cancelled, 0);
  ck_assert_msg(saw_batching, "a %d us x %d backlog never started batching",
                JOB_US, WIDTH);
  for (ran = 0, i = 0; i < WIDTH; i++)
    ran += atomic_load(&probes[i].ran);
  ck_assert_int_eq(ran, TOTAL);
  /* Nothing of batching keeps the loop alive now. */
  ck_assert(!uv_is_active((uv_handle_t *)&tandem.timer_));
  tandem_close(&tandem, close_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
}
END_TEST

static void close_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;

  count_after(p, status);
  if (!stop_requeue && saw_batching && afters >= CLOSE_AT) {
    stop_requeue = 1;
    tandem_close(&tandem, close_cb);
    /* Refused from now on, and the request stays the caller's. */
    ck_assert_int_eq(queue(p), UV_EINVAL);
  }
  requeue(p);
}

START_TEST(test_close_while_batching) {
  start_all(close_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(saw_batching, "never started batching");
  ck_assert_int_eq(stop_requeue, 1);
  ck_assert_int_eq(close_called, 1);
  /* Every job queued was called back, all before the close callback. */
  check_each_called_once();
  ck_assert_int_eq(afters_at_close, afters);
  /* Those still in the injection queue were cancelled, not run. */
  ck_assert_int_gt(cancelled, 0);
}
END_TEST

/* Once batching: cancels one job that has not started.  Its callback must
 * come with UV_ECANCELED, and it is not queued again. */
static void cancel_after_cb(tandem_work_t *req, int status) {
  probe_t *p = (probe_t *)req;
  int i;

  count_after(p, status);
  if (p == cancel_victim) {
    ck_assert_int_eq(status, UV_ECANCELED);
    return;
  }
  ck_assert_int_eq(status, 0);
  requeue(p);
  if (cancel_victim != NULL || !saw_batching)
    return;
  /* Queued and not started: a worker may still take it before we cancel,
   * then cancel says UV_EBUSY and we try the next. */
  for (i = WIDTH - 1; i >= 0; i--) {
    if (probes[i].called == probes[i].queued ||
        atomic_load(&probes[i].ran) == probes[i].queued)
      continue;
    cancel_result = tandem_cancel(&probes[i].req);
    if (cancel_result == 0) {
      cancel_victim = &probes[i];
      return;
    }
    ck_assert_int_eq(cancel_result, UV_EBUSY);
  }
}

START_TEST(test_cancel_while_batching) {
  start_all(cancel_after_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(cancel_victim != NULL, "no queued job could be cancelled");
  check_each_called_once();
  ck_assert_int_eq(cancelled, 1);
  /* Cancelled before it started: the pool never ran it that time. */
  ck_assert_int_eq(atomic_load(&cancel_victim->ran), cancel_victim->queued - 1);
  tandem_close(&tandem, close_cb);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
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
