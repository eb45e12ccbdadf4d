/* SPDX-License-Identifier: MIT */
/*
 * Cooperative cancel: tandem_cancel() of a running job returns UV_EBUSY and
 * asks it to stop -- tandem_work_cancelled(req) is 1 from then on, and a
 * job whose work_cb returns while it is gets UV_ECANCELED, whether it
 * looked or not; tandem_close() asks every running job of its handle the
 * same.  A job never asked gets 0, and sees 0.  The running job may be a
 * NORMAL job on a worker, a HIGH job on the HIGH lane or a blocking job.
 */
#include <check.h>
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
#include "worker_gate.h"

#define WAIT_MS 5000 /* the longest a test waits for one step */

/* What a coop job does once it started. */
enum {
  COOP_POLL,   /* polls tandem_work_cancelled() until it is 1 */
  COOP_HOLD,   /* waits in its hold, never looking at the flag */
  COOP_RETURN, /* returns at once */
  COOP_POLL_N  /* polls it `polls` times, then returns */
};

typedef struct coop_s {
  job_probe_t probe; /* first; its hold is COOP_HOLD's */
  int mode;
  int polls;                /* COOP_POLL_N */
  atomic_int flag_at_start; /* tandem_work_cancelled() as work_cb began */
  atomic_int saw_cancel;    /* COOP_POLL: it saw 1 */
  atomic_int flag_seen;     /* COOP_POLL_N: times it saw 1 */
  atomic_int timed_out;     /* COOP_POLL: gave up after HOLD_MAX_MS */
} coop_t;

static fixture_t fx; /* each test's pool, loop and handle */

/* Loop thread only. */
static int afters;          /* after callbacks of the test's coop jobs */
static int close_called;    /* times the close callback ran */
static int afters_at_close; /* `afters` when it ran */

static void setup_opts(unsigned workers, unsigned blocking_max) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  opts.blocking_max = blocking_max;
  fixture_open(&fx, &opts);
  afters = 0;
  close_called = 0;
  afters_at_close = -1;
}

static void setup(unsigned workers) {
  setup_opts(workers, 0);
}

static void teardown(void) {
  fixture_close(&fx);
}

/* Worker: what tandem_work_cancelled() said as the job began. */
static void coop_on_start(job_probe_t *p) {
  atomic_store(&((coop_t *)p)->flag_at_start, tandem_work_cancelled(&p->req));
}

/* Worker, once counted (and, COOP_HOLD, past its hold): the mode's work. */
static void coop_on_run(job_probe_t *p) {
  uint64_t deadline;
  coop_t *c;
  int i;

  c = (coop_t *)p;
  switch (c->mode) {
  case COOP_POLL:
    deadline =
        uv_hrtime() + (uint64_t)HOLD_MAX_MS * 1000000u * timeout_multiplier();
    while (!tandem_work_cancelled(&p->req)) {
      if (uv_hrtime() >= deadline) {
        atomic_store(&c->timed_out, 1);
        return;
      }
      uv_sleep(1);
    }
    atomic_store(&c->saw_cancel, 1);
    break;
  case COOP_POLL_N:
    for (i = 0; i < c->polls; i++)
      if (tandem_work_cancelled(&p->req))
        atomic_fetch_add(&c->flag_seen, 1);
    break;
  default: /* COOP_HOLD waited in its hold; COOP_RETURN returns */
    break;
  }
}

/* Loop thread. */
static void coop_on_after(job_probe_t *p) {
  (void)p;
  afters++;
}

static void coop_init(coop_t *c, int mode) {
  memset(c, 0, sizeof(*c));
  job_probe_init(&c->probe, &fx);
  c->probe.on_start = coop_on_start;
  c->probe.on_run = coop_on_run;
  c->probe.on_after = coop_on_after;
  c->mode = mode;
  atomic_init(&c->flag_at_start, -1);
  atomic_init(&c->saw_cancel, 0);
  atomic_init(&c->flag_seen, 0);
  atomic_init(&c->timed_out, 0);
}

static void close_cb(tandem_t *t) {
  ck_assert_ptr_eq(t, &fx.tandem);
  close_called++;
  afters_at_close = afters;
}

/* Where the running job of a test runs (_i of the loop tests). */
enum { ON_WORKER, ON_LANE, ON_BLOCKING, KINDS };

static const char *const kind_names[KINDS] = {
    "a NORMAL job on a worker", "a HIGH job on the lane", "a blocking job"};

/* A pool for `kind`: two workers for ON_WORKER, one held by a gate for
 * ON_LANE (so that a HIGH job starts on the lane), one for ON_BLOCKING. */
static void setup_kind(int kind, worker_gate_t *gate) {
  setup(kind == ON_WORKER ? 2 : 1);
  if (kind == ON_LANE)
    ck_assert_int_eq(worker_gate_block(gate, &fx.tandem), 0);
}

static int coop_queue(coop_t *c, int kind) {
  return job_probe_queue(
      &c->probe, kind == ON_LANE ? TANDEM_PRIO_HIGH : TANDEM_PRIO_NORMAL,
      kind == ON_BLOCKING ? TANDEM_JOB_BLOCKING : 0, 0);
}

/* Queues c as `kind` and waits until it runs. */
static void coop_start(coop_t *c, int kind) {
  ck_assert_int_eq(coop_queue(c, kind), 0);
  ck_assert_msg(wait_atomic_ge(&c->probe.ran, 1, WAIT_MS), "%s did not start",
                kind_names[kind]);
}

static int coop_called(void *arg) {
  return ((coop_t *)arg)->probe.called != 0;
}

static void wait_coop(coop_t *c, const char *what) {
  ck_assert_msg(run_until(&fx.loop, coop_called, c, 20000),
                "%s: not called back", what);
}

static int gate_finished(void *arg) {
  worker_gate_t *g;

  g = arg;
  return g->finished == g->n;
}

/* ON_LANE: opens the gate and waits for its jobs. */
static void finish_kind(int kind, worker_gate_t *gate) {
  if (kind != ON_LANE)
    return;
  worker_gate_open(gate);
  ck_assert_msg(run_until(&fx.loop, gate_finished, gate, 20000),
                "gate jobs not called back");
  worker_gate_destroy(gate);
}

static void assert_stopped_by_cancel(const coop_t *c, const char *what) {
  ck_assert_msg(atomic_load(&c->timed_out) == 0,
                "%s: tandem_work_cancelled() never became 1", what);
  ck_assert_int_eq(atomic_load(&c->flag_at_start), 0);
  ck_assert_int_eq(atomic_load(&c->saw_cancel), 1);
  ck_assert_int_eq(atomic_load(&c->probe.ran), 1);
  ck_assert_msg(c->probe.called == 1, "%s: called back %d times", what,
                c->probe.called);
  ck_assert_msg(
      c->probe.status == UV_ECANCELED, "%s: status %s, not ECANCELED", what,
      c->probe.status == 1 ? "(never called)" : uv_err_name(c->probe.status));
  ck_assert_int_eq(c->probe.off_loop_thread, 0);
}

/* ------------------------------------------------ tandem_work_cancelled */

/* NULL: 0. */
START_TEST(test_work_cancelled_null_is_zero) {
  ck_assert_int_eq(tandem_work_cancelled(NULL), 0);
}
END_TEST

/* Inside a job nobody cancels it is 0, every time it is asked, and the job
 * gets 0 -- as does one that never asks. */
START_TEST(test_work_cancelled_zero_inside_plain_job) {
  coop_t asks;
  coop_t never;

  setup(2);
  coop_init(&asks, COOP_POLL_N);
  asks.polls = 1000;
  coop_init(&never, COOP_RETURN);
  ck_assert_int_eq(coop_queue(&asks, ON_WORKER), 0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &never.probe.req,
                                     job_probe_work_cb, job_probe_after_cb),
                   0);
  wait_coop(&asks, "job asking");
  wait_coop(&never, "job not asking");
  ck_assert_int_eq(atomic_load(&asks.flag_at_start), 0);
  ck_assert_int_eq(atomic_load(&asks.flag_seen), 0);
  ck_assert_int_eq(asks.probe.called, 1);
  ck_assert_int_eq(asks.probe.status, 0);
  ck_assert_int_eq(never.probe.called, 1);
  ck_assert_int_eq(never.probe.status, 0);
  ck_assert_int_eq(atomic_load(&never.probe.ran), 1);
  ck_assert_int_eq(tandem_work_cancelled(&asks.probe.req), 0);
  teardown();
}
END_TEST

/* ------------------------------------------------- tandem_cancel, running */

/* A running job (_i: on a worker, on the lane, blocking) that polls the
 * flag: tandem_cancel() is UV_EBUSY, the flag reads 1 from the loop thread
 * too, the job sees it and returns, and its after callback gets
 * UV_ECANCELED once.  A running job is not "cancelled before it started":
 * stats.cancelled stays 0. */
START_TEST(test_cancel_running_job_asks_it_to_stop) {
  tandem_stats_t stats;
  worker_gate_t gate;
  coop_t c;

  setup_kind(_i, &gate);
  coop_init(&c, COOP_POLL);
  coop_start(&c, _i);
  ck_assert_int_eq(tandem_work_cancelled(&c.probe.req), 0);

  ck_assert_int_eq(tandem_cancel(&c.probe.req), UV_EBUSY);
  ck_assert_int_eq(tandem_work_cancelled(&c.probe.req), 1);
  wait_coop(&c, kind_names[_i]);
  assert_stopped_by_cancel(&c, kind_names[_i]);

  finish_kind(_i, &gate);
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, 0);
  teardown();
}
END_TEST

/* A running job that never looks at the flag, cancelled while it runs and
 * then let go: UV_ECANCELED (the cancel wins, though its work is done). */
START_TEST(test_cancelled_job_ignoring_flag_gets_ecanceled) {
  worker_gate_t gate;
  hold_t hold;
  coop_t c;

  setup_kind(_i, &gate);
  hold_init(&hold);
  coop_init(&c, COOP_HOLD);
  c.probe.hold = &hold;
  coop_start(&c, _i);
  ck_assert_int_eq(tandem_cancel(&c.probe.req), UV_EBUSY);
  hold_open(&hold);
  wait_coop(&c, kind_names[_i]);
  ck_assert_int_eq(c.probe.called, 1);
  ck_assert_int_eq(c.probe.status, UV_ECANCELED);
  ck_assert_int_eq(atomic_load(&c.probe.ran), 1);
  ck_assert_int_eq(atomic_load(&hold.timed_out), 0);
  finish_kind(_i, &gate);
  teardown();
}
END_TEST

/* Cancelled twice while running: UV_EBUSY both times, one after callback
 * with UV_ECANCELED; cancelled again once done: UV_EBUSY, no callback. */
START_TEST(test_cancel_running_job_twice_calls_back_once) {
  coop_t c;

  setup(2);
  coop_init(&c, COOP_POLL);
  coop_start(&c, ON_WORKER);
  ck_assert_int_eq(tandem_cancel(&c.probe.req), UV_EBUSY);
  ck_assert_int_eq(tandem_cancel(&c.probe.req), UV_EBUSY);
  wait_coop(&c, "job cancelled twice");
  assert_stopped_by_cancel(&c, "job cancelled twice");
  ck_assert_int_eq(tandem_cancel(&c.probe.req), UV_EBUSY);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(c.probe.called, 1);
  teardown();
}
END_TEST

typedef struct canceller_s {
  tandem_work_t *req;
  int cancel_rc;
  int flag_after;
} canceller_t;

static void canceller_main(void *arg) {
  canceller_t *k;

  k = arg;
  k->cancel_rc = tandem_cancel(k->req);
  k->flag_after = tandem_work_cancelled(k->req);
}

/* tandem_cancel() of a running job from a thread that is neither the
 * loop's nor a worker: UV_EBUSY, the job sees the flag, UV_ECANCELED on
 * the loop thread. */
START_TEST(test_cancel_running_job_from_other_thread) {
  uv_thread_t thread;
  canceller_t k;
  coop_t c;

  setup(2);
  coop_init(&c, COOP_POLL);
  coop_start(&c, ON_WORKER);
  k.req = &c.probe.req;
  k.cancel_rc = 1;
  k.flag_after = -1;
  ck_assert_int_eq(uv_thread_create(&thread, canceller_main, &k), 0);
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(k.cancel_rc, UV_EBUSY);
  ck_assert_int_eq(k.flag_after, 1);
  wait_coop(&c, "job cancelled from another thread");
  assert_stopped_by_cancel(&c, "job cancelled from another thread");
  teardown();
}
END_TEST

/* The flag belongs to one run: a request cancelled while running, queued
 * again after its UV_ECANCELED callback, sees 0 and gets 0. */
START_TEST(test_cancel_flag_cleared_when_queued_again) {
  coop_t c;

  setup(2);
  coop_init(&c, COOP_POLL);
  coop_start(&c, ON_WORKER);
  ck_assert_int_eq(tandem_cancel(&c.probe.req), UV_EBUSY);
  wait_coop(&c, "cancelled job");
  assert_stopped_by_cancel(&c, "cancelled job");

  c.mode = COOP_POLL_N;
  c.polls = 100;
  c.probe.called = 0;
  c.probe.status = 1;
  atomic_store(&c.probe.ran, 0);
  atomic_store(&c.flag_at_start, -1);
  ck_assert_int_eq(coop_queue(&c, ON_WORKER), 0);
  wait_coop(&c, "job queued again");
  ck_assert_int_eq(atomic_load(&c.flag_at_start), 0);
  ck_assert_int_eq(atomic_load(&c.flag_seen), 0);
  ck_assert_int_eq(c.probe.called, 1);
  ck_assert_int_eq(c.probe.status, 0);
  teardown();
}
END_TEST

/* ------------------------------------------------------- tandem_close */

static int closed(void *arg) {
  (void)arg;
  return close_called != 0;
}

/* Closes the handle (0), runs the loop until the close callback ran, and
 * checks every after callback of the n coop jobs came before it. */
static void close_and_wait(int n) {
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
  ck_assert_msg(run_until(&fx.loop, closed, NULL, 20000),
                "close callback not called");
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters_at_close, n);
}

#define QUEUED 3

/* Two workers each running a polling job, three jobs queued behind them:
 * tandem_close() asks the two to stop (they see the flag, UV_ECANCELED),
 * cancels the three (UV_ECANCELED; any that started in the meantime saw
 * the flag from its start), and calls the close callback after all five. */
START_TEST(test_close_asks_running_jobs_to_stop) {
  coop_t running[2];
  coop_t queued[QUEUED];
  int i;

  setup(2);
  for (i = 0; i < 2; i++) {
    coop_init(&running[i], COOP_POLL);
    ck_assert_int_eq(coop_queue(&running[i], ON_WORKER), 0);
  }
  for (i = 0; i < 2; i++)
    ck_assert_msg(wait_atomic_ge(&running[i].probe.ran, 1, WAIT_MS),
                  "job %d did not start", i);
  for (i = 0; i < QUEUED; i++) {
    coop_init(&queued[i], COOP_RETURN);
    ck_assert_int_eq(coop_queue(&queued[i], ON_WORKER), 0);
  }

  close_and_wait(2 + QUEUED);
  for (i = 0; i < 2; i++)
    assert_stopped_by_cancel(&running[i], "running job");
  for (i = 0; i < QUEUED; i++) {
    ck_assert_int_eq(queued[i].probe.called, 1);
    ck_assert_int_eq(queued[i].probe.status, UV_ECANCELED);
    ck_assert_int_eq(queued[i].probe.off_loop_thread, 0);
    ck_assert_msg(atomic_load(&queued[i].probe.ran) == 0 ||
                      atomic_load(&queued[i].flag_at_start) == 1,
                  "queued job %d ran during the close, not cancelled", i);
  }
  fixture_finish(&fx);
}
END_TEST

/* tandem_close() while a polling job runs (_i: on a worker, on the lane,
 * blocking): the job sees the flag, gets UV_ECANCELED, the close
 * completes. */
START_TEST(test_close_stops_running_job_of_every_kind) {
  worker_gate_t gate;
  coop_t c;

  setup_kind(_i, &gate);
  coop_init(&c, COOP_POLL);
  coop_start(&c, _i);
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
  ck_assert_int_eq(tandem_work_cancelled(&c.probe.req), 1);
  wait_coop(&c, kind_names[_i]);
  assert_stopped_by_cancel(&c, kind_names[_i]);
  if (_i == ON_LANE) /* the gate's jobs run while closing, and finish */
    worker_gate_open(&gate);
  ck_assert_msg(run_until(&fx.loop, closed, NULL, 20000),
                "close callback not called");
  ck_assert_int_eq(close_called, 1);
  if (_i == ON_LANE) {
    ck_assert_uint_eq(gate.finished, gate.n);
    worker_gate_destroy(&gate);
  }
  fixture_finish(&fx);
}
END_TEST

/* A running job that never looks at the flag: tandem_close(), then the
 * job is let go; it returns while the flag is 1, so UV_ECANCELED, and the
 * close completes. */
START_TEST(test_close_job_ignoring_flag_gets_ecanceled) {
  hold_t hold;
  coop_t c;

  setup(1);
  hold_init(&hold);
  coop_init(&c, COOP_HOLD);
  c.probe.hold = &hold;
  coop_start(&c, ON_WORKER);
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
  hold_open(&hold);
  ck_assert_msg(run_until(&fx.loop, closed, NULL, 20000),
                "close callback not called");
  ck_assert_int_eq(c.probe.called, 1);
  ck_assert_int_eq(c.probe.status, UV_ECANCELED);
  ck_assert_int_eq(afters_at_close, 1);
  ck_assert_int_eq(atomic_load(&hold.timed_out), 0);
  fixture_finish(&fx);
}
END_TEST

static void never_work_cb(tandem_work_t *req) {
  (void)req;
  ck_abort_msg("work callback of a refused request called");
}

static void never_after_cb(tandem_work_t *req, int status) {
  (void)req;
  (void)status;
  ck_abort_msg("after callback of a refused request called");
}

/* Once closing, tandem_queue_work_ex() refuses every kind of job with
 * UV_ESHUTDOWN and calls nothing. */
START_TEST(test_queue_ex_after_close_eshutdown) {
  tandem_job_opts_t opts;
  tandem_work_t req;

  setup(1);
  memset(&req, 0, sizeof(req));
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
  memset(&opts, 0, sizeof(opts));
  opts.priority = TANDEM_PRIO_HIGH;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                        never_after_cb, &opts),
                   UV_ESHUTDOWN);
  opts.priority = TANDEM_PRIO_LOW;
  opts.deadline = uv_hrtime() - 1;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                        never_after_cb, &opts),
                   UV_ESHUTDOWN);
  memset(&opts, 0, sizeof(opts));
  opts.flags = TANDEM_JOB_BLOCKING;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                        never_after_cb, &opts),
                   UV_ESHUTDOWN);
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                        never_after_cb, NULL),
                   UV_ESHUTDOWN);
  ck_assert_msg(run_until(&fx.loop, closed, NULL, 20000),
                "close callback not called");
  fixture_finish(&fx);
}
END_TEST

static Suite *coop_cancel_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("coop_cancel");

  tc = tcase_create("flag");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_work_cancelled_null_is_zero);
  tcase_add_test(tc, test_work_cancelled_zero_inside_plain_job);
  suite_add_tcase(s, tc);

  tc = tcase_create("cancel");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_cancel_running_job_asks_it_to_stop, 0, KINDS);
  tcase_add_loop_test(tc, test_cancelled_job_ignoring_flag_gets_ecanceled, 0,
                      KINDS);
  tcase_add_test(tc, test_cancel_running_job_twice_calls_back_once);
  tcase_add_test(tc, test_cancel_running_job_from_other_thread);
  tcase_add_test(tc, test_cancel_flag_cleared_when_queued_again);
  suite_add_tcase(s, tc);

  tc = tcase_create("close");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_close_asks_running_jobs_to_stop);
  tcase_add_loop_test(tc, test_close_stops_running_job_of_every_kind, 0, KINDS);
  tcase_add_test(tc, test_close_job_ignoring_flag_gets_ecanceled);
  tcase_add_test(tc, test_queue_ex_after_close_eshutdown);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(coop_cancel_suite());
}
