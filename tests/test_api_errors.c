/* SPDX-License-Identifier: MIT */
/*
 * Every public function given bad input: NULL arguments, a request already
 * in flight, the default pool, a pool still in use.  Each error is a libuv
 * code that uv_strerror() and uv_err_name() explain, and a callback passed
 * to a call that fails is never called.
 */
#include <check.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

/* rc is `code`, and libuv knows the code by `name`. */
#define ck_assert_uv_err(rc, code, name)                                       \
  do {                                                                         \
    int rc_ = (rc);                                                            \
    ck_assert_int_eq(rc_, (code));                                             \
    ck_assert_str_eq(uv_err_name(rc_), (name));                                \
    ck_assert_ptr_nonnull(uv_strerror(rc_));                                   \
    ck_assert_str_ne(uv_strerror(rc_), "");                                    \
    ck_assert_ptr_null(strstr(uv_strerror(rc_), "Unknown"));                   \
  } while (0)

#define ck_assert_einval(rc) ck_assert_uv_err(rc, UV_EINVAL, "EINVAL")
#define ck_assert_ebusy(rc) ck_assert_uv_err(rc, UV_EBUSY, "EBUSY")

static fixture_t fx; /* each test's pool, loop and handle */

static void setup(void) {
  tandem_options_t opts;

  opts = fixture_options(2);
  fixture_open(&fx, &opts);
}

static void teardown(void) {
  fixture_close(&fx);
}

static atomic_int unexpected_calls;

static void never_work_cb(tandem_work_t *req) {
  (void)req;
  atomic_fetch_add(&unexpected_calls, 1);
}

static atomic_int work_calls;

static void count_work_cb(tandem_work_t *req) {
  (void)req;
  atomic_fetch_add(&work_calls, 1);
}

static void never_after_cb(tandem_work_t *req, int status) {
  (void)req;
  (void)status;
  ck_abort_msg("after callback of a refused request called");
}

static void never_close_cb(tandem_t *t) {
  (void)t;
  ck_abort_msg("close callback of a refused call called");
}

static void never_task_cb(tandem_task_t *task) {
  (void)task;
  atomic_fetch_add(&unexpected_calls, 1);
}

static void never_range_cb(size_t lo, size_t hi, void *ctx) {
  (void)lo;
  (void)hi;
  (void)ctx;
  atomic_fetch_add(&unexpected_calls, 1);
}

/* ----------------------------------------------------------- pools */

START_TEST(test_pool_new_null_is_einval) {
  tandem_options_t opts;

  memset(&opts, 0, sizeof(opts));
  ck_assert_einval(tandem_pool_new(NULL, NULL));
  ck_assert_einval(tandem_pool_new(NULL, &opts));
}
END_TEST

/* Options no pool can honour are out of range. */
START_TEST(test_pool_new_option_out_of_range_is_einval) {
  tandem_options_t opts;
  tandem_pool_t *p;

  memset(&opts, 0, sizeof(opts));
  opts.workers = UINT_MAX;
  ck_assert_einval(tandem_pool_new(&p, &opts));

  memset(&opts, 0, sizeof(opts));
  opts.queue_size = UINT_MAX; /* no power of two >= it fits an unsigned */
  ck_assert_einval(tandem_pool_new(&p, &opts));
}
END_TEST

START_TEST(test_pool_free_null_is_einval) {
  ck_assert_einval(tandem_pool_free(NULL));
}
END_TEST

/* The default pool lives until the process exits: freeing it is UV_EINVAL
 * and leaves it working. */
START_TEST(test_pool_free_default_pool_is_einval) {
  tandem_pool_t *def;
  tandem_work_t req;

  def = tandem_pool_default();
  ck_assert_ptr_nonnull(def);
  ck_assert_einval(tandem_pool_free(def));
  ck_assert_ptr_eq(tandem_pool_default(), def);

  ck_assert_int_eq(uv_loop_init(&fx.loop), 0);
  ck_assert_int_eq(tandem_init(&fx.loop, &fx.tandem, def), 0);
  memset(&req, 0, sizeof(req));
  atomic_store(&work_calls, 0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &req, count_work_cb, NULL), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(atomic_load(&work_calls), 1);
  tandem_close(&fx.tandem, NULL);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
  ck_assert_einval(tandem_pool_free(def));
}
END_TEST

START_TEST(test_pool_free_with_attached_handle_is_ebusy) {
  setup();
  ck_assert_ebusy(tandem_pool_free(fx.pool));
  ck_assert_ebusy(tandem_pool_free(fx.pool));
  teardown();
}
END_TEST

typedef struct self_free_s {
  tandem_task_t task;
  tandem_pool_t *pool;
  atomic_int rc;
} self_free_t;

static void self_free_task_cb(tandem_task_t *task) {
  self_free_t *s;

  s = task->data;
  atomic_store(&s->rc, tandem_pool_free(s->pool));
}

/* A worker cannot free its own pool (it would join itself): UV_EINVAL.
 * No handle is attached, so UV_EBUSY does not apply. */
START_TEST(test_pool_free_from_own_worker_is_einval) {
  tandem_group_t g;
  self_free_t s;
  tandem_pool_t *p;

  ck_assert_int_eq(tandem_pool_new(&p, NULL), 0);
  memset(&s, 0, sizeof(s));
  s.pool = p;
  s.task.data = &s;
  atomic_init(&s.rc, 1);
  ck_assert_int_eq(tandem_group_init(&g, p), 0);
  ck_assert_int_eq(tandem_group_spawn(&g, &s.task, self_free_task_cb), 0);
  ck_assert_int_eq(tandem_group_wait(&g), 0);
  ck_assert_einval(atomic_load(&s.rc));
  ck_assert_int_eq(tandem_pool_free(p), 0);
}
END_TEST

START_TEST(test_pool_workers_null_is_zero) {
  ck_assert_uint_eq(tandem_pool_workers(NULL), 0);
}
END_TEST

START_TEST(test_pool_stats_null_is_einval) {
  tandem_stats_t stats;
  tandem_pool_t *p;

  ck_assert_einval(tandem_pool_stats(NULL, &stats));
  ck_assert_int_eq(tandem_pool_new(&p, NULL), 0);
  ck_assert_einval(tandem_pool_stats(p, NULL));
  ck_assert_int_eq(tandem_pool_free(p), 0);
}
END_TEST

/* ----------------------------------------------------------- handles */

/* A failed tandem_init() leaves nothing on the loop. */
START_TEST(test_init_null_is_einval) {
  tandem_pool_t *p;
  tandem_t t;

  ck_assert_int_eq(tandem_pool_new(&p, NULL), 0);
  ck_assert_int_eq(uv_loop_init(&fx.loop), 0);
  ck_assert_einval(tandem_init(NULL, &t, p));
  ck_assert_einval(tandem_init(&fx.loop, NULL, p));
  ck_assert_einval(tandem_init(NULL, NULL, NULL));
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
  ck_assert_int_eq(tandem_pool_free(p), 0); /* nothing got attached */
}
END_TEST

/* tandem_close(NULL, cb) is UV_EINVAL and never calls cb. */
START_TEST(test_close_null_is_ignored) {
  ck_assert_einval(tandem_close(NULL, never_close_cb));
  ck_assert_einval(tandem_close(NULL, NULL));
}
END_TEST

/* ---------------------------------------------------------- requests */

/* NULL handle, request or work callback: UV_EINVAL, no callback, the loop
 * is not kept alive, and the request is not left in flight. */
START_TEST(test_queue_work_null_is_einval) {
  tandem_work_t req;

  setup();
  atomic_store(&unexpected_calls, 0);
  memset(&req, 0, sizeof(req));
  ck_assert_einval(
      tandem_queue_work(NULL, &req, never_work_cb, never_after_cb));
  ck_assert_einval(
      tandem_queue_work(&fx.tandem, NULL, never_work_cb, never_after_cb));
  ck_assert_einval(tandem_queue_work(&fx.tandem, &req, NULL, never_after_cb));
  ck_assert_einval(tandem_queue_work(NULL, NULL, NULL, NULL));
  ck_assert(!uv_loop_alive(&fx.loop));
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(atomic_load(&unexpected_calls), 0);

  /* Not in flight: it can be queued, and cancel does not treat it as
   * queued before that. */
  ck_assert_einval(tandem_cancel(&req));
  atomic_store(&work_calls, 0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &req, count_work_cb, NULL), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(atomic_load(&work_calls), 1);
  ck_assert_int_eq(atomic_load(&unexpected_calls), 0);
  teardown();
}
END_TEST

typedef struct busy_s {
  tandem_work_t req;
  uv_sem_t started;
  uv_sem_t proceed;
  uv_sem_t finished;
  int block;  /* wait on `proceed`; set before queueing */
  int called; /* loop thread only */
  int status;
} busy_t;

static void busy_work_cb(tandem_work_t *req) {
  busy_t *b;

  b = (busy_t *)req;
  uv_sem_post(&b->started);
  if (b->block)
    uv_sem_wait(&b->proceed);
  uv_sem_post(&b->finished);
}

static void busy_after_cb(tandem_work_t *req, int status) {
  busy_t *b;

  b = (busy_t *)req;
  b->called++;
  b->status = status;
}

static void busy_init(busy_t *b, int block) {
  memset(b, 0, sizeof(*b));
  b->block = block;
  ck_assert_int_eq(uv_sem_init(&b->started, 0), 0);
  ck_assert_int_eq(uv_sem_init(&b->proceed, 0), 0);
  ck_assert_int_eq(uv_sem_init(&b->finished, 0), 0);
}

static void busy_destroy(busy_t *b) {
  uv_sem_destroy(&b->started);
  uv_sem_destroy(&b->proceed);
  uv_sem_destroy(&b->finished);
}

/* A request in flight (queued, running, or awaiting its after callback)
 * cannot be queued again: UV_EBUSY, on the same handle or another, and the
 * first submission completes once with its own callbacks. */
START_TEST(test_double_submit_is_ebusy) {
  worker_gate_t gate;
  tandem_t other;
  busy_t b;

  setup();
  ck_assert_int_eq(tandem_init(&fx.loop, &other, fx.pool), 0);

  /* Queued. */
  busy_init(&b, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &b.req, busy_work_cb, busy_after_cb), 0);
  ck_assert_ebusy(
      tandem_queue_work(&fx.tandem, &b.req, never_work_cb, never_after_cb));
  ck_assert_ebusy(
      tandem_queue_work(&other, &b.req, never_work_cb, never_after_cb));
  ck_assert_ebusy(tandem_parallel_for_async(
      &fx.tandem, &b.req, 0, 10, 1, never_range_cb, NULL, never_after_cb));
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  ck_assert_int_eq(b.called, 1);
  ck_assert_int_eq(b.status, 0);
  ck_assert_ptr_eq(b.req.tandem, &fx.tandem);
  busy_destroy(&b);

  /* Running. */
  busy_init(&b, 1);
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &b.req, busy_work_cb, busy_after_cb), 0);
  uv_sem_wait(&b.started);
  ck_assert_ebusy(
      tandem_queue_work(&fx.tandem, &b.req, never_work_cb, never_after_cb));
  uv_sem_post(&b.proceed);

  /* Done, its after callback not yet run. */
  uv_sem_wait(&b.finished);
  ck_assert_ebusy(
      tandem_queue_work(&fx.tandem, &b.req, never_work_cb, never_after_cb));
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(b.called, 1);
  ck_assert_int_eq(b.status, 0);

  /* Called back: free again. */
  b.block = 0;
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &b.req, busy_work_cb, busy_after_cb), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(b.called, 2);
  busy_destroy(&b);

  ck_assert_int_eq(atomic_load(&unexpected_calls), 0);
  tandem_close(&other, NULL);
  teardown();
}
END_TEST

START_TEST(test_cancel_null_or_never_queued_is_einval) {
  tandem_work_t req;

  memset(&req, 0, sizeof(req));
  ck_assert_einval(tandem_cancel(NULL));
  ck_assert_einval(tandem_cancel(&req));
}
END_TEST

/* --------------------------------------------------------- fork-join */

START_TEST(test_group_null_is_einval) {
  tandem_group_t g;
  tandem_task_t task;

  atomic_store(&unexpected_calls, 0);
  memset(&task, 0, sizeof(task));
  ck_assert_einval(tandem_group_init(NULL, NULL));
  ck_assert_int_eq(tandem_group_init(&g, NULL), 0);
  ck_assert_einval(tandem_group_spawn(NULL, &task, never_task_cb));
  ck_assert_einval(tandem_group_spawn(&g, NULL, never_task_cb));
  ck_assert_einval(tandem_group_spawn(&g, &task, NULL));
  ck_assert_einval(tandem_group_wait(NULL));
  ck_assert_int_eq(tandem_group_wait(&g), 0); /* nothing was spawned */
  ck_assert_int_eq(atomic_load(&unexpected_calls), 0);
}
END_TEST

START_TEST(test_parallel_for_null_body_is_einval) {
  tandem_pool_t *p;
  int ctx;

  atomic_store(&unexpected_calls, 0);
  ck_assert_int_eq(tandem_pool_new(&p, NULL), 0);
  ck_assert_einval(tandem_parallel_for(p, 0, 100, 1, NULL, &ctx));
  ck_assert_einval(tandem_parallel_for(NULL, 0, 100, 1, NULL, &ctx));
  ck_assert_einval(tandem_parallel_for(p, 0, 0, 1, NULL, &ctx));

  /* An empty range is fine and calls nothing. */
  ck_assert_int_eq(tandem_parallel_for(p, 5, 5, 1, never_range_cb, &ctx), 0);
  ck_assert_int_eq(tandem_parallel_for(p, 0, 0, 0, never_range_cb, &ctx), 0);
  ck_assert_int_eq(atomic_load(&unexpected_calls), 0);
  ck_assert_int_eq(tandem_pool_free(p), 0);
}
END_TEST

START_TEST(test_parallel_for_async_null_is_einval) {
  tandem_work_t req;
  int ctx;

  setup();
  atomic_store(&unexpected_calls, 0);
  memset(&req, 0, sizeof(req));
  ck_assert_einval(tandem_parallel_for_async(
      NULL, &req, 0, 10, 1, never_range_cb, &ctx, never_after_cb));
  ck_assert_einval(tandem_parallel_for_async(
      &fx.tandem, NULL, 0, 10, 1, never_range_cb, &ctx, never_after_cb));
  ck_assert_einval(tandem_parallel_for_async(&fx.tandem, &req, 0, 10, 1, NULL,
                                             &ctx, never_after_cb));
  ck_assert(!uv_loop_alive(&fx.loop));
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(atomic_load(&unexpected_calls), 0);
  ck_assert_einval(tandem_cancel(&req)); /* it was never queued */
  teardown();
}
END_TEST

static Suite *api_errors_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("api_errors");

  tc = tcase_create("pools");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_pool_new_null_is_einval);
  tcase_add_test(tc, test_pool_new_option_out_of_range_is_einval);
  tcase_add_test(tc, test_pool_free_null_is_einval);
  tcase_add_test(tc, test_pool_free_default_pool_is_einval);
  tcase_add_test(tc, test_pool_free_with_attached_handle_is_ebusy);
  tcase_add_test(tc, test_pool_free_from_own_worker_is_einval);
  tcase_add_test(tc, test_pool_workers_null_is_zero);
  tcase_add_test(tc, test_pool_stats_null_is_einval);
  suite_add_tcase(s, tc);

  tc = tcase_create("handles");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_init_null_is_einval);
  tcase_add_test(tc, test_close_null_is_ignored);
  suite_add_tcase(s, tc);

  tc = tcase_create("requests");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_queue_work_null_is_einval);
  tcase_add_test(tc, test_double_submit_is_ebusy);
  tcase_add_test(tc, test_cancel_null_or_never_queued_is_einval);
  suite_add_tcase(s, tc);

  tc = tcase_create("forkjoin");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_group_null_is_einval);
  tcase_add_test(tc, test_parallel_for_null_body_is_einval);
  tcase_add_test(tc, test_parallel_for_async_null_is_einval);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(api_errors_suite());
}
