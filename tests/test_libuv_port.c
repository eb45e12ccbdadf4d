/* SPDX-License-Identifier: MIT */
/*
 * libuv's own uv_queue_work()/uv_cancel() cases, ported to tandem's API:
 * tandem promises the semantics of uv_queue_work, so it should pass the
 * tests libuv holds itself to.  Each test names the libuv case it ports,
 * from libuv's test/test-threadpool.c and test/test-threadpool-cancel.c;
 * the code is ours.  libuv's MAKE_VALGRIND_HAPPY() becomes: close the
 * handle, run the loop, uv_loop_close() == 0, tandem_pool_free() == 0.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

static fixture_t fx; /* each test's pool, loop and handle */

/* workers = 0: one per online CPU, like a default pool. */
static void setup(unsigned workers) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  fixture_open(&fx, &opts);
}

static void make_valgrind_happy(void) {
  fixture_close(&fx);
}

/* Workers only count; the test thread asserts. */
static atomic_int work_cb_count;
static atomic_int work_cb_bad_args;
static atomic_int work2_cb_called; /* must stay 0 */
static int after_work_cb_count;
static int done_cb_called;
static int done2_cb_called;
static int timer_cb_called;

static tandem_work_t work_req;
static char data;

static void reset_counts(void) {
  atomic_store(&work_cb_count, 0);
  atomic_store(&work_cb_bad_args, 0);
  atomic_store(&work2_cb_called, 0);
  after_work_cb_count = 0;
  done_cb_called = 0;
  done2_cb_called = 0;
  timer_cb_called = 0;
}

/* ------------------------------------------------- test-threadpool.c */

static void work_cb(tandem_work_t *req) {
  if (req != &work_req || req->data != &data)
    atomic_fetch_add(&work_cb_bad_args, 1);
  atomic_fetch_add(&work_cb_count, 1);
}

static void after_work_cb(tandem_work_t *req, int status) {
  ck_assert_ptr_eq(req, &work_req);
  ck_assert_ptr_eq(req->data, &data);
  ck_assert_int_eq(status, 0);
  after_work_cb_count++;
}

/* Ports libuv's threadpool_queue_work_simple. */
START_TEST(test_threadpool_queue_work_simple) {
  setup(0);
  reset_counts();
  memset(&work_req, 0, sizeof(work_req));
  work_req.data = &data;
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &work_req, work_cb, after_work_cb), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(atomic_load(&work_cb_count), 1);
  ck_assert_int_eq(atomic_load(&work_cb_bad_args), 0);
  ck_assert_int_eq(after_work_cb_count, 1);
  make_valgrind_happy();
}
END_TEST

/* Ports libuv's threadpool_queue_work_einval: no work callback. */
START_TEST(test_threadpool_queue_work_einval) {
  setup(0);
  reset_counts();
  memset(&work_req, 0, sizeof(work_req));
  work_req.data = &data;
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &work_req, NULL, after_work_cb), UV_EINVAL);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(atomic_load(&work_cb_count), 0);
  ck_assert_int_eq(after_work_cb_count, 0);
  make_valgrind_happy();
}
END_TEST

/* ------------------------------------------ test-threadpool-cancel.c */

/* libuv saturates its pool with one blocking request per thread; ours is
 * the worker gate (worker_gate.h): one blocking job per worker. */
static worker_gate_t gate;

static void work2_cb(tandem_work_t *req) {
  (void)req;
  atomic_fetch_add(&work2_cb_called, 1);
}

static void done2_cb(tandem_work_t *req, int status) {
  (void)req;
  ck_assert_int_eq(status, UV_ECANCELED);
  done2_cb_called++;
}

static void nop_done_cb(tandem_work_t *req, int status) {
  (void)req;
  ck_assert_int_eq(status, UV_ECANCELED);
  done_cb_called++;
}

typedef struct cancel_info_s {
  tandem_work_t *reqs;
  unsigned nreqs;
  uv_timer_t timer_handle;
} cancel_info_t;

static void timer_cb(uv_timer_t *handle) {
  cancel_info_t *ci;
  unsigned i;

  ci = handle->data;
  for (i = 0; i < ci->nreqs; i++)
    ck_assert_int_eq(tandem_cancel(&ci->reqs[i]), 0);

  uv_close((uv_handle_t *)&ci->timer_handle, NULL);
  worker_gate_open(&gate);
  timer_cb_called++;
}

/* Ports libuv's threadpool_cancel_work: with the pool saturated, 16 more
 * jobs are queued and then cancelled from a timer; each after callback
 * gets UV_ECANCELED and no work callback runs. */
START_TEST(test_threadpool_cancel_work) {
  tandem_work_t reqs[16];
  cancel_info_t ci;
  unsigned i;

  setup(0);
  reset_counts();
  memset(reqs, 0, sizeof(reqs));
  ci.reqs = reqs;
  ci.nreqs = 16;
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);

  for (i = 0; i < ci.nreqs; i++)
    ck_assert_int_eq(
        tandem_queue_work(&fx.tandem, &reqs[i], work2_cb, done2_cb), 0);

  ck_assert_int_eq(uv_timer_init(&fx.loop, &ci.timer_handle), 0);
  ci.timer_handle.data = &ci;
  ck_assert_int_eq(uv_timer_start(&ci.timer_handle, timer_cb, 10, 0), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(timer_cb_called, 1);
  ck_assert_int_eq(done2_cb_called, 16);
  ck_assert_int_eq(atomic_load(&work2_cb_called), 0);

  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0);
  worker_gate_destroy(&gate);
  make_valgrind_happy();
}
END_TEST

typedef struct suspend_req_s {
  tandem_work_t req;
  uv_sem_t started;
  uv_sem_t sem;
} suspend_req_t;

static void suspend(tandem_work_t *req) {
  suspend_req_t *s;

  s = (suspend_req_t *)req;
  uv_sem_post(&s->started);
  uv_sem_wait(&s->sem);
}

/* Ports libuv's threadpool_cancel_single: a pool of one thread, suspended;
 * a job queued behind it is cancelled and its work callback (abort() in
 * libuv) never runs; the after callback waits for the loop. */
START_TEST(test_threadpool_cancel_single) {
  suspend_req_t s;
  tandem_work_t req;

  setup(1);
  reset_counts();
  memset(&s, 0, sizeof(s));
  memset(&req, 0, sizeof(req));
  ck_assert_int_eq(uv_sem_init(&s.started, 0), 0);
  ck_assert_int_eq(uv_sem_init(&s.sem, 0), 0);

  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &s.req, suspend, NULL), 0);
  /* libuv's queue is FIFO, so its test need not wait here; tandem does not
   * promise an order, so make sure the only worker is the suspended one. */
  uv_sem_wait(&s.started);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &req, work2_cb, nop_done_cb),
                   0);
  ck_assert_int_eq(tandem_cancel(&req), 0);

  uv_sem_post(&s.sem);
  ck_assert_int_eq(done_cb_called, 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(done_cb_called, 1);
  ck_assert_int_eq(atomic_load(&work2_cb_called), 0);
  uv_sem_destroy(&s.started);
  uv_sem_destroy(&s.sem);
  make_valgrind_happy();
}
END_TEST

/* Ports the older form of libuv's threadpool_cancel_single: every thread
 * of the pool suspended, one job cancelled before the pool is unblocked. */
START_TEST(test_threadpool_cancel_single_saturated) {
  tandem_work_t req;

  setup(0);
  reset_counts();
  memset(&req, 0, sizeof(req));
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &req, work2_cb, nop_done_cb),
                   0);
  ck_assert_int_eq(tandem_cancel(&req), 0);
  ck_assert_int_eq(done_cb_called, 0);
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(done_cb_called, 1);
  ck_assert_int_eq(atomic_load(&work2_cb_called), 0);
  worker_gate_destroy(&gate);
  make_valgrind_happy();
}
END_TEST

typedef struct busy_req_s {
  tandem_work_t req;
  uv_sem_t started;
  uv_sem_t cancelled;
  atomic_int saw; /* tandem_work_cancelled() once the cancel was made */
} busy_req_t;

static void busy_cb(tandem_work_t *req) {
  busy_req_t *b;

  b = (busy_req_t *)req;
  uv_sem_post(&b->started);
  /* libuv sleeps 10 ms, assuming uv_cancel() is quicker; we wait for it. */
  uv_sem_wait(&b->cancelled);
  atomic_store(&b->saw, tandem_work_cancelled(req));
}

static void after_busy_cb(tandem_work_t *req, int status) {
  (void)req;
  ck_assert_int_eq(status, UV_ECANCELED);
  done_cb_called++;
}

/* Ports libuv's threadpool_cancel_when_busy: cancelling a job that is
 * running fails with UV_EBUSY.  Here tandem differs from libuv on purpose
 * (issue #13): libuv's job then completes with status 0, tandem's is asked
 * to stop -- its work callback sees tandem_work_cancelled() == 1 -- and,
 * returning while it is, completes with UV_ECANCELED. */
START_TEST(test_threadpool_cancel_when_busy) {
  busy_req_t b;

  setup(0);
  reset_counts();
  memset(&b, 0, sizeof(b));
  atomic_init(&b.saw, 0);
  ck_assert_int_eq(uv_sem_init(&b.started, 0), 0);
  ck_assert_int_eq(uv_sem_init(&b.cancelled, 0), 0);

  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &b.req, busy_cb, after_busy_cb), 0);
  uv_sem_wait(&b.started);
  ck_assert_int_eq(tandem_cancel(&b.req), UV_EBUSY);
  uv_sem_post(&b.cancelled);

  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(done_cb_called, 1);
  ck_assert_int_eq(atomic_load(&b.saw), 1); /* it ran, and was told */
  uv_sem_destroy(&b.started);
  uv_sem_destroy(&b.cancelled);
  make_valgrind_happy();
}
END_TEST

static Suite *libuv_port_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("libuv_port");

  tc = tcase_create("threadpool");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_threadpool_queue_work_simple);
  tcase_add_test(tc, test_threadpool_queue_work_einval);
  suite_add_tcase(s, tc);

  tc = tcase_create("threadpool_cancel");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_threadpool_cancel_work);
  tcase_add_test(tc, test_threadpool_cancel_single);
  tcase_add_test(tc, test_threadpool_cancel_single_saturated);
  tcase_add_test(tc, test_threadpool_cancel_when_busy);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(libuv_port_suite());
}
