/* SPDX-License-Identifier: MIT */
/*
 * tandem_close(): refuses new jobs, cancels the ones that have not started,
 * lets running ones finish -- asked to stop: tandem_work_cancelled() is 1
 * for them and they get UV_ECANCELED (issue #13) -- runs every after
 * callback exactly once, then the close callback; after that the loop
 * closes cleanly and the pool can be freed.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

#define WORKERS 2

typedef struct probe_s {
  tandem_work_t req;
  atomic_int ran;
  atomic_int saw; /* tandem_work_cancelled() as the work callback returned */
  int called;     /* loop thread only */
  int status;
} probe_t;

static fixture_t fx; /* each test's pool, loop and handle */

/* Loop thread only. */
static int afters;            /* after callbacks, every job of a test */
static int afters_off_thread; /* of them, not on the loop thread */
static int close_called;
static int afters_at_close; /* `afters` when the close callback ran */
static tandem_t *close_handle;

static void setup_pool(unsigned workers, unsigned queue_size) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  opts.queue_size = queue_size;
  fixture_open(&fx, &opts);
  afters = 0;
  afters_off_thread = 0;
  close_called = 0;
  afters_at_close = -1;
  close_handle = NULL;
}

static void setup(void) {
  setup_pool(WORKERS, 0);
}

static void probe_init(probe_t *p) {
  memset(p, 0, sizeof(*p));
  atomic_init(&p->ran, 0);
  atomic_init(&p->saw, 0);
  p->status = 1; /* neither 0 nor an error code: "never called" */
}

static void probe_work_cb(tandem_work_t *req) {
  atomic_store(&((probe_t *)req)->saw, tandem_work_cancelled(req));
  atomic_fetch_add(&((probe_t *)req)->ran, 1);
}

/* What a job of a test whose handle closes while jobs run may end as: not
 * run and UV_ECANCELED; run and 0 (it returned before the close); or run
 * and UV_ECANCELED (it returned after) -- but never 0 once its work
 * callback saw tandem_work_cancelled().  1 if `p` ended one of those
 * ways. */
static int probe_ended_well(probe_t *p) {
  if (p->called != 1)
    return 0;
  if (atomic_load(&p->ran) == 0)
    return p->status == UV_ECANCELED;
  if (atomic_load(&p->ran) != 1)
    return 0;
  return p->status == UV_ECANCELED ||
         (p->status == 0 && atomic_load(&p->saw) == 0);
}

static void probe_after_cb(tandem_work_t *req, int status) {
  uv_thread_t self;
  probe_t *p;

  p = (probe_t *)req;
  self = uv_thread_self();
  if (!uv_thread_equal(&self, &fx.loop_thread))
    afters_off_thread++;
  p->called++;
  p->status = status;
  afters++;
}

static void close_cb(tandem_t *t) {
  close_called++;
  close_handle = t;
  afters_at_close = afters;
}

static void unexpected_close_cb(tandem_t *t) {
  (void)t;
  ck_abort_msg("close callback of an ignored tandem_close() called");
}

static void never_work_cb(tandem_work_t *req) {
  (void)req;
}

static void never_after_cb(tandem_work_t *req, int status) {
  (void)req;
  (void)status;
  ck_abort_msg("after callback of a refused request called");
}

static void never_range_cb(size_t lo, size_t hi, void *ctx) {
  (void)lo;
  (void)hi;
  (void)ctx;
}

#define QUEUED 10

typedef struct in_flight_s {
  probe_t queued[QUEUED];
} in_flight_t;

static int all_queued_called(void *arg) {
  in_flight_t *f;
  int i;

  f = arg;
  for (i = 0; i < QUEUED; i++)
    if (f->queued[i].called == 0)
      return 0;
  return 1;
}

/* Close with both workers running jobs and 10 more queued: the queued ones
 * get UV_ECANCELED while the workers are still busy and never run; the
 * running ones (the gate's) see tandem_work_cancelled() and finish with
 * UV_ECANCELED too; each after callback runs once, then the close
 * callback; the handle refuses new jobs from the moment it is closing. */
START_TEST(test_close_with_jobs_in_flight) {
  worker_gate_t gate;
  in_flight_t f;
  probe_t late;
  int i;

  setup();
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  for (i = 0; i < QUEUED; i++) {
    probe_init(&f.queued[i]);
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &f.queued[i].req,
                                       probe_work_cb, probe_after_cb),
                     0);
  }

  ck_assert_int_eq(tandem_pool_free(fx.pool), UV_EBUSY);
  ck_assert_int_eq(tandem_work_cancelled(&gate.reqs[0]), 0);
  gate.expect = UV_ECANCELED; /* running when the handle closes */
  tandem_close(&fx.tandem, close_cb);
  ck_assert_int_eq(close_called, 0);
  ck_assert_int_eq(afters, 0);
  ck_assert_int_eq(tandem_work_cancelled(&gate.reqs[0]), 1);

  probe_init(&late);
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &late.req, never_work_cb, never_after_cb),
      UV_ESHUTDOWN);
  ck_assert_int_eq(tandem_pool_free(fx.pool), UV_EBUSY);

  /* Workers still blocked: the queued jobs must be cancelled anyway. */
  ck_assert_msg(run_until(&fx.loop, all_queued_called, &f, 5000),
                "queued jobs not called back while the workers were busy");
  ck_assert_int_eq(close_called, 0);
  ck_assert_uint_eq(gate.finished, 0);
  for (i = 0; i < QUEUED; i++) {
    ck_assert_int_eq(f.queued[i].called, 1);
    ck_assert_int_eq(f.queued[i].status, UV_ECANCELED);
  }

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(close_called, 1);
  ck_assert_ptr_eq(close_handle, &fx.tandem);
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.cancelled, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0);
  for (i = 0; i < (int)gate.n; i++)
    ck_assert_int_eq(atomic_load(&gate.stopped[i]), 1);
  ck_assert_int_eq(afters, QUEUED);
  ck_assert_int_eq(afters_at_close, QUEUED);
  ck_assert_int_eq(afters_off_thread, 0);
  for (i = 0; i < QUEUED; i++) {
    ck_assert_int_eq(f.queued[i].called, 1);
    ck_assert_int_eq(atomic_load(&f.queued[i].ran), 0);
  }
  worker_gate_destroy(&gate);

  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &late.req, never_work_cb, never_after_cb),
      UV_ESHUTDOWN);
  fixture_finish(&fx);
}
END_TEST

/* Closing a handle with nothing in flight: the close callback runs on the
 * loop (not inside tandem_close()), once; the loop then closes cleanly. */
START_TEST(test_close_idle_handle) {
  setup();
  tandem_close(&fx.tandem, close_cb);
  ck_assert_int_eq(close_called, 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  ck_assert_ptr_eq(close_handle, &fx.tandem);
  fixture_finish(&fx);
}
END_TEST

/* A NULL close callback is allowed. */
START_TEST(test_close_without_callback) {
  setup();
  tandem_close(&fx.tandem, NULL);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  fixture_finish(&fx);
}
END_TEST

/* A second tandem_close() while closing is refused with UV_EALREADY and
 * its callback never runs: one close callback, the first one. */
START_TEST(test_close_twice_is_ealready) {
  setup();
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
  ck_assert_int_eq(tandem_close(&fx.tandem, unexpected_close_cb), UV_EALREADY);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  fixture_finish(&fx);
}
END_TEST

/* tandem_close() on a handle whose close callback already ran is refused
 * too (UV_EALREADY), and leaves nothing on the loop. */
START_TEST(test_close_after_close_callback_is_ignored) {
  setup();
  tandem_close(&fx.tandem, close_cb);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);

  ck_assert_int_eq(tandem_close(&fx.tandem, unexpected_close_cb), UV_EALREADY);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  fixture_finish(&fx);
}
END_TEST

typedef struct refused_s {
  tandem_work_t req;
  int queue_rc;
  int parallel_rc;
} refused_t;

static void refused_main(void *arg) {
  refused_t *r;

  r = arg;
  r->queue_rc =
      tandem_queue_work(&fx.tandem, &r->req, never_work_cb, never_after_cb);
  r->parallel_rc = tandem_parallel_for_async(
      &fx.tandem, &r->req, 0, 10, 1, never_range_cb, NULL, never_after_cb);
}

/* A closing or closed handle refuses jobs with UV_ESHUTDOWN, from the loop
 * thread and from any other thread, and never calls their callbacks. */
START_TEST(test_queue_on_closing_handle_is_eshutdown) {
  uv_thread_t thread;
  tandem_work_t req;
  refused_t r;

  setup();
  tandem_close(&fx.tandem, close_cb);

  memset(&req, 0, sizeof(req));
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &req, never_work_cb, never_after_cb),
      UV_ESHUTDOWN);
  ck_assert_int_eq(tandem_parallel_for_async(&fx.tandem, &req, 0, 10, 1,
                                             never_range_cb, NULL,
                                             never_after_cb),
                   UV_ESHUTDOWN);
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(uv_thread_create(&thread, refused_main, &r), 0);
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(r.queue_rc, UV_ESHUTDOWN);
  ck_assert_int_eq(r.parallel_rc, UV_ESHUTDOWN);

  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);

  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &req, never_work_cb, never_after_cb),
      UV_ESHUTDOWN);
  ck_assert_int_eq(uv_thread_create(&thread, refused_main, &r), 0);
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(r.queue_rc, UV_ESHUTDOWN);
  ck_assert_int_eq(r.parallel_rc, UV_ESHUTDOWN);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  fixture_finish(&fx);
}
END_TEST

/* tandem_pool_free() is UV_EBUSY while a handle is attached (also while it
 * is closing) and 0 once every handle's close callback has run. */
START_TEST(test_pool_free_only_after_every_handle_closed) {
  tandem_t second;

  setup();
  ck_assert_int_eq(tandem_init(&fx.loop, &second, fx.pool), 0);
  ck_assert_int_eq(tandem_pool_free(fx.pool), UV_EBUSY);

  tandem_close(&fx.tandem, close_cb);
  ck_assert_int_eq(tandem_pool_free(fx.pool), UV_EBUSY);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(tandem_pool_free(fx.pool), UV_EBUSY); /* second */

  tandem_close(&second, close_cb);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 2);
  ck_assert_ptr_eq(close_handle, &second);
  fixture_finish(&fx);
}
END_TEST

#define FROM_AFTER 100

typedef struct closer_s {
  probe_t probes[FROM_AFTER];
} closer_t;

static void closing_after_cb(tandem_work_t *req, int status) {
  probe_after_cb(req, status);
  if (afters == 1)
    tandem_close(&fx.tandem, close_cb);
}

/* tandem_close() from an after callback with other jobs in flight: each
 * remaining job is called back once, with 0 if it returned before the close
 * (and never once it saw tandem_work_cancelled()), else UV_ECANCELED,
 * whether it ran or not; the close callback comes last. */
START_TEST(test_close_from_after_callback) {
  closer_t *c;
  int cancelled;
  int i;

  setup();
  c = calloc(1, sizeof(*c));
  ck_assert_ptr_nonnull(c);
  for (i = 0; i < FROM_AFTER; i++) {
    probe_init(&c->probes[i]);
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &c->probes[i].req,
                                       probe_work_cb, closing_after_cb),
                     0);
  }
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters, FROM_AFTER);
  ck_assert_int_eq(afters_at_close, FROM_AFTER);
  cancelled = 0;
  for (i = 0; i < FROM_AFTER; i++) {
    ck_assert_msg(probe_ended_well(&c->probes[i]),
                  "job %d: called %d, ran %d, saw %d, status %d", i,
                  c->probes[i].called, atomic_load(&c->probes[i].ran),
                  atomic_load(&c->probes[i].saw), c->probes[i].status);
    cancelled += c->probes[i].status == UV_ECANCELED;
  }
  /* The first after callback, at least, came before the close. */
  ck_assert_int_lt(cancelled, FROM_AFTER);
  free(c);
  fixture_finish(&fx);
}
END_TEST

/* The only job's after callback closes the handle, then tries to queue
 * again: its job left the count as the callback started, so the close
 * finds nothing in flight and begins at once; the queue is refused, the
 * close callback runs once, after the after callback, and the loop closes
 * cleanly. */
static int last_requeue_rc;

static void close_in_last_after_cb(tandem_work_t *req, int status) {
  probe_after_cb(req, status);
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
  ck_assert_int_eq(close_called, 0); /* a uv_close callback: later */
  last_requeue_rc =
      tandem_queue_work(&fx.tandem, req, probe_work_cb, probe_after_cb);
}

START_TEST(test_close_from_the_only_jobs_after_callback) {
  probe_t p;

  setup();
  probe_init(&p);
  last_requeue_rc = 0;
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &p.req, probe_work_cb,
                                     close_in_last_after_cb),
                   0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(last_requeue_rc, UV_ESHUTDOWN);
  ck_assert_int_eq(afters, 1);
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters_at_close, 1);
  ck_assert(probe_ended_well(&p));
  fixture_finish(&fx);
}
END_TEST

typedef struct running_s {
  probe_t job;
  probe_t child;
  uv_sem_t started;
  uv_sem_t proceed;
  atomic_int child_rc;
} running_t;

static running_t *running;

static void running_work_cb(tandem_work_t *req) {
  uv_sem_post(&running->started);
  uv_sem_wait(&running->proceed);
  atomic_store(&running->child_rc,
               tandem_queue_work(&fx.tandem, &running->child.req, never_work_cb,
                                 never_after_cb));
  probe_work_cb(req);
}

/* A job still running when its handle closes cannot queue more work on it:
 * UV_ESHUTDOWN; the job itself sees tandem_work_cancelled() and finishes
 * with UV_ECANCELED (issue #13) before the close callback. */
START_TEST(test_running_job_cannot_queue_on_closing_handle) {
  running_t r;

  setup();
  memset(&r, 0, sizeof(r));
  probe_init(&r.job);
  probe_init(&r.child);
  atomic_init(&r.child_rc, 1);
  ck_assert_int_eq(uv_sem_init(&r.started, 0), 0);
  ck_assert_int_eq(uv_sem_init(&r.proceed, 0), 0);
  running = &r;

  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &r.job.req, running_work_cb,
                                     probe_after_cb),
                   0);
  uv_sem_wait(&r.started);
  tandem_close(&fx.tandem, close_cb);
  uv_sem_post(&r.proceed);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(atomic_load(&r.child_rc), UV_ESHUTDOWN);
  ck_assert_int_eq(r.job.called, 1);
  ck_assert_int_eq(atomic_load(&r.job.ran), 1);
  ck_assert_int_eq(atomic_load(&r.job.saw), 1);
  ck_assert_int_eq(r.job.status, UV_ECANCELED);
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters_at_close, 1);

  uv_sem_destroy(&r.started);
  uv_sem_destroy(&r.proceed);
  running = NULL;
  fixture_finish(&fx);
}
END_TEST

#define OVERFLOWED 64

/* With an injection queue of 4 slots and both workers blocked, 64 jobs
 * mostly wait on the overflow list.  None has started when the handle
 * closes, so none may start after: every one gets UV_ECANCELED. */
START_TEST(test_close_cancels_overflowed_jobs) {
  worker_gate_t gate;
  probe_t *p;
  int i;

  setup_pool(WORKERS, 4);

  p = calloc(OVERFLOWED, sizeof(*p));
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  for (i = 0; i < OVERFLOWED; i++) {
    probe_init(&p[i]);
    ck_assert_int_eq(
        tandem_queue_work(&fx.tandem, &p[i].req, probe_work_cb, probe_after_cb),
        0);
  }
  gate.expect = UV_ECANCELED; /* the gate's jobs run on the closing handle */
  tandem_close(&fx.tandem, close_cb);
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters_at_close, OVERFLOWED);
  for (i = 0; i < OVERFLOWED; i++) {
    ck_assert_int_eq(p[i].called, 1);
    ck_assert_int_eq(atomic_load(&p[i].ran), 0);
    ck_assert_int_eq(p[i].status, UV_ECANCELED);
  }
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0);
  worker_gate_destroy(&gate);
  free(p);
  fixture_finish(&fx);
}
END_TEST

#define DEQUED 5

typedef struct parent_s {
  probe_t job;
  probe_t children[DEQUED];
  uv_sem_t started;
  uv_sem_t proceed;
  atomic_int queue_errors;
} parent_t;

static parent_t *parent;

static void parent_work_cb(tandem_work_t *req) {
  int i;

  for (i = 0; i < DEQUED; i++)
    if (tandem_queue_work(&fx.tandem, &parent->children[i].req, probe_work_cb,
                          probe_after_cb) != 0)
      atomic_fetch_add(&parent->queue_errors, 1);
  uv_sem_post(&parent->started);
  uv_sem_wait(&parent->proceed);
  probe_work_cb(req);
}

/* The only worker of a pool queues 5 jobs from inside a job (onto its own
 * deque), then the handle closes before the job returns: the 5 have not
 * started, so they get UV_ECANCELED and never run; the job itself was
 * running, so it sees tandem_work_cancelled() and gets UV_ECANCELED too. */
START_TEST(test_close_cancels_jobs_queued_from_worker) {
  parent_t pt;
  int i;

  setup_pool(1, 0);

  memset(&pt, 0, sizeof(pt));
  probe_init(&pt.job);
  for (i = 0; i < DEQUED; i++)
    probe_init(&pt.children[i]);
  atomic_init(&pt.queue_errors, 0);
  ck_assert_int_eq(uv_sem_init(&pt.started, 0), 0);
  ck_assert_int_eq(uv_sem_init(&pt.proceed, 0), 0);
  parent = &pt;

  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &pt.job.req, parent_work_cb,
                                     probe_after_cb),
                   0);
  uv_sem_wait(&pt.started);
  tandem_close(&fx.tandem, close_cb);
  uv_sem_post(&pt.proceed);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(atomic_load(&pt.queue_errors), 0);
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters_at_close, 1 + DEQUED);
  ck_assert_int_eq(pt.job.called, 1);
  ck_assert_int_eq(atomic_load(&pt.job.ran), 1);
  ck_assert_int_eq(atomic_load(&pt.job.saw), 1);
  ck_assert_int_eq(pt.job.status, UV_ECANCELED);
  for (i = 0; i < DEQUED; i++) {
    ck_assert_int_eq(pt.children[i].called, 1);
    ck_assert_int_eq(atomic_load(&pt.children[i].ran), 0);
    ck_assert_int_eq(pt.children[i].status, UV_ECANCELED);
  }
  uv_sem_destroy(&pt.started);
  uv_sem_destroy(&pt.proceed);
  parent = NULL;
  fixture_finish(&fx);
}
END_TEST

/* Once its close callback has run, the handle's memory can be given to
 * tandem_init() again, on the same pool, and works as new. */
START_TEST(test_handle_reinitialised_after_close) {
  probe_t p;
  int round;

  setup();
  for (round = 0; round < 3; round++) {
    if (round > 0)
      ck_assert_int_eq(tandem_init(&fx.loop, &fx.tandem, fx.pool), 0);
    probe_init(&p);
    ck_assert_int_eq(
        tandem_queue_work(&fx.tandem, &p.req, probe_work_cb, probe_after_cb),
        0);
    ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(p.called, 1);
    ck_assert_int_eq(p.status, 0);
    tandem_close(&fx.tandem, close_cb);
    ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(close_called, round + 1);
  }
  fixture_finish(&fx);
}
END_TEST

/* Two handles on one pool, both workers blocked, jobs queued on both:
 * closing one cancels its own jobs only; the other's run with status 0. */
START_TEST(test_close_cancels_only_its_own_jobs) {
  worker_gate_t gate;
  probe_t mine[QUEUED];
  probe_t theirs[QUEUED];
  tandem_t other;
  int i;

  setup();
  ck_assert_int_eq(tandem_init(&fx.loop, &other, fx.pool), 0);
  ck_assert_int_eq(worker_gate_block(&gate, &other), 0);
  for (i = 0; i < QUEUED; i++) {
    probe_init(&mine[i]);
    probe_init(&theirs[i]);
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &mine[i].req, probe_work_cb,
                                       probe_after_cb),
                     0);
    ck_assert_int_eq(tandem_queue_work(&other, &theirs[i].req, probe_work_cb,
                                       probe_after_cb),
                     0);
  }
  tandem_close(&fx.tandem, close_cb);
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(close_called, 1);
  ck_assert_ptr_eq(close_handle, &fx.tandem);
  for (i = 0; i < QUEUED; i++) {
    ck_assert_int_eq(mine[i].called, 1);
    ck_assert_int_eq(mine[i].status, UV_ECANCELED);
    ck_assert_int_eq(atomic_load(&mine[i].ran), 0);
    ck_assert_int_eq(theirs[i].called, 1);
    ck_assert_int_eq(theirs[i].status, 0);
    ck_assert_int_eq(atomic_load(&theirs[i].ran), 1);
  }
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0); /* the other handle stayed open */
  worker_gate_destroy(&gate);

  tandem_close(&other, NULL);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  fixture_finish(&fx);
}
END_TEST

static int pool_free_rc;

static void free_everything_cb(tandem_t *t) {
  close_cb(t);
  free(t);
  pool_free_rc = tandem_pool_free(fx.pool);
}

/* After the close callback the loop holds nothing of tandem's: the handle
 * can be freed, and the pool freed, inside the callback itself. */
START_TEST(test_free_handle_and_pool_in_close_callback) {
  probe_t p[QUEUED];
  tandem_t *t;
  int i;

  setup_pool(WORKERS, 0);
  tandem_close(&fx.tandem, NULL);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  t = malloc(sizeof(*t));
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(tandem_init(&fx.loop, t, fx.pool), 0);
  for (i = 0; i < QUEUED; i++) {
    probe_init(&p[i]);
    ck_assert_int_eq(
        tandem_queue_work(t, &p[i].req, probe_work_cb, probe_after_cb), 0);
  }
  tandem_close(t, free_everything_cb);
  pool_free_rc = 1;
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(afters_at_close, QUEUED);
  ck_assert_int_eq(pool_free_rc, 0);
  ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
}
END_TEST

#define RACE_JOBS 20000

typedef struct racer_s {
  uv_thread_t thread;
  probe_t *probes;
  atomic_int tried;
  int accepted; /* racer thread only; read after join */
  int refused;
  int first_refused; /* index of the first UV_ESHUTDOWN, or -1 */
  int accepted_late; /* accepted after a refusal */
  int other_errors;
} racer_t;

static void racer_main(void *arg) {
  racer_t *r;
  int rc;
  int i;

  r = arg;
  for (i = 0; i < RACE_JOBS; i++) {
    rc = tandem_queue_work(&fx.tandem, &r->probes[i].req, probe_work_cb,
                           probe_after_cb);
    if (rc == 0) {
      r->accepted++;
      if (r->first_refused >= 0)
        r->accepted_late++;
    } else if (rc == UV_ESHUTDOWN) {
      if (r->first_refused < 0)
        r->first_refused = i;
      r->refused++;
    } else {
      r->other_errors++;
    }
    atomic_store(&r->tried, i + 1);
    /* Pace it so the close lands in the middle of the run. */
    if (i % 100 == 99)
      uv_sleep(1);
  }
}

static int racer_warmed_up(void *arg) {
  racer_t *r;

  r = arg;
  return atomic_load(&r->tried) >= RACE_JOBS / 10;
}

/* Close while another thread keeps queueing: every job accepted before the
 * close took effect is called back exactly once before the close callback
 * -- 0 if it ran and returned before the close, else UV_ECANCELED, run or
 * not -- every later one is refused with UV_ESHUTDOWN. */
START_TEST(test_close_while_other_thread_queues) {
  racer_t r;
  int called;
  int i;

  setup();
  memset(&r, 0, sizeof(r));
  atomic_init(&r.tried, 0);
  r.first_refused = -1;
  r.probes = calloc(RACE_JOBS, sizeof(*r.probes));
  ck_assert_ptr_nonnull(r.probes);
  for (i = 0; i < RACE_JOBS; i++)
    probe_init(&r.probes[i]);

  ck_assert_int_eq(uv_thread_create(&r.thread, racer_main, &r), 0);
  run_until(&fx.loop, racer_warmed_up, &r, 10000);
  tandem_close(&fx.tandem, close_cb);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  ck_assert_int_eq(uv_thread_join(&r.thread), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_NOWAIT), 0);

  ck_assert_int_eq(r.other_errors, 0);
  ck_assert_int_eq(r.accepted_late, 0);
  ck_assert_int_eq(r.accepted + r.refused, RACE_JOBS);
  ck_assert_int_eq(afters, r.accepted);
  ck_assert_int_eq(afters_at_close, r.accepted);
  ck_assert_int_eq(afters_off_thread, 0);
  called = 0;
  for (i = 0; i < RACE_JOBS; i++) {
    called += r.probes[i].called;
    if (r.probes[i].called == 0)
      ck_assert_int_eq(atomic_load(&r.probes[i].ran), 0);
    else
      ck_assert_msg(probe_ended_well(&r.probes[i]),
                    "job %d: called %d, ran %d, saw %d, status %d", i,
                    r.probes[i].called, atomic_load(&r.probes[i].ran),
                    atomic_load(&r.probes[i].saw), r.probes[i].status);
  }
  ck_assert_int_eq(called, r.accepted);
  free(r.probes);

  fixture_finish(&fx);
}
END_TEST

/* A handle closed from an after callback, just after that callback
 * queued jobs on it: the drain had held those submits back to push them
 * together (loop.c, "deferred submits"); the close must still find them
 * and cancel them at once, while the workers are blocked, not leave them
 * for a worker to refuse later. */
#define FROM_CB 70

static probe_t from_cb[FROM_CB];

static void queue_then_close_after(tandem_work_t *req, int status) {
  int i;

  probe_after_cb(req, status);
  for (i = 0; i < FROM_CB; i++) {
    probe_init(&from_cb[i]);
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &from_cb[i].req,
                                       probe_work_cb, probe_after_cb),
                     0);
  }
  ck_assert_int_eq(tandem_close(&fx.tandem, close_cb), 0);
}

static int from_cb_all_called(void *arg) {
  (void)arg;
  return afters >= FROM_CB + 1; /* and the trigger's */
}

START_TEST(test_close_in_after_callback_cancels_jobs_it_queued) {
  worker_gate_t gate;
  probe_t trigger;
  int i;

  setup();
  probe_init(&trigger);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(worker_gate_run_in_drain(&fx.tandem, &trigger.req,
                                            queue_then_close_after),
                   0);
  gate.expect = UV_ECANCELED; /* running when the handle closes */
  ck_assert_msg(run_until(&fx.loop, from_cb_all_called, NULL, 5000),
                "jobs queued just before the close were not called back "
                "while the workers were blocked");
  ck_assert_uint_eq(gate.finished, 0);
  for (i = 0; i < FROM_CB; i++) {
    ck_assert_int_eq(from_cb[i].called, 1);
    ck_assert_int_eq(from_cb[i].status, UV_ECANCELED);
  }

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(close_called, 1);
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0);
  worker_gate_destroy(&gate);
  for (i = 0; i < FROM_CB; i++) {
    ck_assert_int_eq(atomic_load(&from_cb[i].ran), 0);
    ck_assert_int_eq(from_cb[i].called, 1);
  }
  ck_assert_int_eq(afters_off_thread, 0);
  fixture_finish(&fx);
}
END_TEST

static Suite *close_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("close");

  tc = tcase_create("in_flight");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_close_with_jobs_in_flight);
  tcase_add_test(tc, test_close_in_after_callback_cancels_jobs_it_queued);
  tcase_add_test(tc, test_close_from_after_callback);
  tcase_add_test(tc, test_close_from_the_only_jobs_after_callback);
  tcase_add_test(tc, test_running_job_cannot_queue_on_closing_handle);
  tcase_add_test(tc, test_close_cancels_overflowed_jobs);
  tcase_add_test(tc, test_close_cancels_jobs_queued_from_worker);
  tcase_add_test(tc, test_close_cancels_only_its_own_jobs);
  tcase_add_test(tc, test_free_handle_and_pool_in_close_callback);
  tcase_add_test(tc, test_close_while_other_thread_queues);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifecycle");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_close_idle_handle);
  tcase_add_test(tc, test_close_without_callback);
  tcase_add_test(tc, test_close_twice_is_ealready);
  tcase_add_test(tc, test_close_after_close_callback_is_ignored);
  tcase_add_test(tc, test_handle_reinitialised_after_close);
  tcase_add_test(tc, test_queue_on_closing_handle_is_eshutdown);
  tcase_add_test(tc, test_pool_free_only_after_every_handle_closed);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(close_suite());
}
