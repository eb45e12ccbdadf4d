/* SPDX-License-Identifier: MIT */
/*
 * tandem_cancel(): a job that has not started is cancelled at once, even
 * while every worker is busy, its after callback gets UV_ECANCELED on the
 * loop's next iteration and its work callback never runs; anything else is
 * UV_EBUSY or UV_EINVAL.  A job that is running, or queued where it cannot
 * be taken back, answers UV_EBUSY and is asked to stop (issue #13): its
 * work callback sees tandem_work_cancelled() == 1 and, returning while it
 * is, gets UV_ECANCELED though it ran.  A finished job is left alone.
 */
#include <check.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pool.h" /* TDM_REQ_DONE: a finished job, awaiting its callback */
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

#define WORKERS 2

/* A job that records what happened to it. */
typedef struct probe_s {
  tandem_work_t req;
  atomic_int ran;     /* work callbacks run */
  atomic_int saw;     /* tandem_work_cancelled() as the last one returned */
  uv_sem_t *started;  /* if set, posted when the work callback starts */
  uv_sem_t *proceed;  /* if set, the work callback waits on it */
  uv_sem_t *finished; /* if set, posted when the work callback ends */
  unsigned spin;      /* busy-loop iterations in the work callback */
  /* loop thread only */
  int called; /* after callbacks run */
  int status; /* status of the last one */
  int off_loop_thread;
  int cancel_rc; /* the test's tandem_cancel, where it keeps one */
} probe_t;

static fixture_t fx; /* each test's pool, loop and handle */

static void setup_pool(unsigned workers, unsigned queue_size) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  opts.queue_size = queue_size;
  fixture_open(&fx, &opts);
}

static void setup(void) {
  setup_pool(WORKERS, 0);
}

static void teardown(void) {
  fixture_close(&fx);
}

static void probe_init(probe_t *p) {
  memset(p, 0, sizeof(*p));
  atomic_init(&p->ran, 0);
  atomic_init(&p->saw, 0);
  p->status = 1; /* neither 0 nor an error code: "never called" */
  p->cancel_rc = 1;
}

static void probe_work_cb(tandem_work_t *req) {
  volatile unsigned spin;
  probe_t *p;

  p = (probe_t *)req;
  for (spin = 0; spin < p->spin; spin++)
    ;
  if (p->started != NULL)
    uv_sem_post(p->started);
  if (p->proceed != NULL)
    uv_sem_wait(p->proceed);
  atomic_store(&p->saw, tandem_work_cancelled(req));
  atomic_fetch_add(&p->ran, 1);
  if (p->finished != NULL)
    uv_sem_post(p->finished);
}

static void probe_after_cb(tandem_work_t *req, int status) {
  uv_thread_t self;
  probe_t *p;

  p = (probe_t *)req;
  self = uv_thread_self();
  if (!uv_thread_equal(&self, &fx.loop_thread))
    p->off_loop_thread++;
  p->called++;
  p->status = status;
}

static int queue_probe(probe_t *p) {
  return tandem_queue_work(&fx.tandem, &p->req, probe_work_cb, probe_after_cb);
}

/* While every worker is blocked, a queued job is cancelled: 0, its after
 * callback runs with UV_ECANCELED on the next loop iteration (the workers
 * still blocked), and its work callback never runs. */
START_TEST(test_cancel_while_workers_busy) {
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t p;

  setup();
  probe_init(&p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(queue_probe(&p), 0);

  ck_assert_int_eq(tandem_cancel(&p.req), 0);
  ck_assert_int_eq(p.called, 0); /* not from inside tandem_cancel() */

  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_msg(p.called == 1,
                "after callback not run on the next loop iteration");
  ck_assert_int_eq(p.status, UV_ECANCELED);
  ck_assert_int_eq(p.off_loop_thread, 0);
  ck_assert_uint_eq(gate.finished, 0); /* the workers are still blocked */

  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, 1);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0);
  worker_gate_destroy(&gate);

  ck_assert_int_eq(atomic_load(&p.ran), 0);
  ck_assert_int_eq(p.called, 1);
  teardown();
}
END_TEST

#define MANY 1000

/* 1,000 jobs queued behind blocked workers, all cancelled: each cancel
 * returns 0, all 1,000 after callbacks run with UV_ECANCELED on the next
 * iteration, none of the work callbacks runs. */
START_TEST(test_cancel_many_while_workers_busy) {
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t *p;
  int cancel_errors;
  int called;
  int bad_status;
  int ran;
  int i;

  setup();
  p = calloc(MANY, sizeof(*p));
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);

  cancel_errors = 0;
  for (i = 0; i < MANY; i++) {
    probe_init(&p[i]);
    if (queue_probe(&p[i]) != 0)
      cancel_errors++;
  }
  ck_assert_int_eq(cancel_errors, 0);
  for (i = 0; i < MANY; i++)
    if (tandem_cancel(&p[i].req) != 0)
      cancel_errors++;
  ck_assert_int_eq(cancel_errors, 0);

  uv_run(&fx.loop, UV_RUN_NOWAIT);
  called = 0;
  bad_status = 0;
  for (i = 0; i < MANY; i++) {
    called += p[i].called;
    if (p[i].status != UV_ECANCELED)
      bad_status++;
  }
  ck_assert_int_eq(called, MANY);
  ck_assert_int_eq(bad_status, 0);
  ck_assert_uint_eq(gate.finished, 0);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(gate.finished, gate.n);
  worker_gate_destroy(&gate);

  ran = 0;
  called = 0;
  for (i = 0; i < MANY; i++) {
    ran += atomic_load(&p[i].ran);
    called += p[i].called;
  }
  ck_assert_int_eq(ran, 0);
  ck_assert_int_eq(called, MANY);

  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, MANY);
  free(p);
  teardown();
}
END_TEST

#define BEYOND 64

/* An injection queue of 4 slots, both workers blocked, 64 jobs queued: the
 * first ones sit in the ring and cancel (0, then UV_ECANCELED on the next
 * iteration, never run); the rest wait on the overflow list, which counts as
 * taken (UV_EBUSY) but are asked to stop: they run once the workers are
 * free, see tandem_work_cancelled() and get UV_ECANCELED.  Either way every
 * job is called back exactly once. */
START_TEST(test_cancel_jobs_beyond_injection_slots) {
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t *p;
  int queue_errors;
  int cancelled;
  int busy;
  int other;
  int rc;
  int i;

  setup_pool(WORKERS, 4);
  p = calloc(BEYOND, sizeof(*p));
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  queue_errors = 0;
  for (i = 0; i < BEYOND; i++) {
    probe_init(&p[i]);
    if (queue_probe(&p[i]) != 0)
      queue_errors++;
  }
  ck_assert_int_eq(queue_errors, 0);

  cancelled = busy = other = 0;
  for (i = 0; i < BEYOND; i++) {
    rc = tandem_cancel(&p[i].req);
    if (rc == 0)
      cancelled++;
    else if (rc == UV_EBUSY)
      busy++;
    else
      other++;
    p[i].cancel_rc = rc;
  }
  ck_assert_int_eq(other, 0);
  ck_assert_int_ge(cancelled, 1); /* the ring had room for the first */
  ck_assert_int_ge(busy, 1);      /* and for 4 at most */

  /* Only the ones taken back are called back now; the others wait. */
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  for (i = 0; i < BEYOND; i++)
    ck_assert_msg(p[i].called == (p[i].cancel_rc == 0) &&
                      p[i].status == (p[i].cancel_rc == 0 ? UV_ECANCELED : 1),
                  "job %d: cancel returned %s, then called back %d times"
                  " with status %d",
                  i, p[i].cancel_rc == 0 ? "0" : "EBUSY", p[i].called,
                  p[i].status);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(gate.bad_status, 0);
  worker_gate_destroy(&gate);
  for (i = 0; i < BEYOND; i++) {
    ck_assert_int_eq(p[i].called, 1);
    ck_assert_int_eq(p[i].status, UV_ECANCELED);
    if (p[i].cancel_rc == 0) {
      ck_assert_int_eq(atomic_load(&p[i].ran), 0);
    } else {
      /* Taken, so it ran -- told to stop, and reported stopped. */
      ck_assert_int_eq(atomic_load(&p[i].ran), 1);
      ck_assert_int_eq(atomic_load(&p[i].saw), 1);
    }
  }
  /* Only the cancels that won count as cancelled before they started. */
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, (uint64_t)cancelled);
  free(p);
  teardown();
}
END_TEST

/* A running job cannot be taken back: UV_EBUSY.  It is asked to stop
 * instead: tandem_work_cancelled() turns 1, its work callback sees it, and
 * its after callback gets UV_ECANCELED though the work callback ran (issue
 * #13). */
START_TEST(test_cancel_running_job_is_busy) {
  tandem_stats_t stats;
  uv_sem_t started;
  uv_sem_t proceed;
  probe_t p;

  setup();
  ck_assert_int_eq(uv_sem_init(&started, 0), 0);
  ck_assert_int_eq(uv_sem_init(&proceed, 0), 0);
  probe_init(&p);
  p.started = &started;
  p.proceed = &proceed;
  ck_assert_int_eq(queue_probe(&p), 0);

  uv_sem_wait(&started);
  ck_assert_int_eq(tandem_work_cancelled(&p.req), 0);
  ck_assert_int_eq(tandem_cancel(&p.req), UV_EBUSY);
  ck_assert_int_eq(tandem_work_cancelled(&p.req), 1);
  uv_sem_post(&proceed);

  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(p.status, UV_ECANCELED);
  ck_assert_int_eq(atomic_load(&p.ran), 1);
  ck_assert_int_eq(atomic_load(&p.saw), 1);
  ck_assert_int_eq(p.off_loop_thread, 0);
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, 0); /* it had started */

  uv_sem_destroy(&started);
  uv_sem_destroy(&proceed);
  teardown();
}
END_TEST

/* Test thread: waits until `req`'s work callback has returned and its
 * status is set (DONE, on the completion stack), with the loop not run. */
static void wait_until_done(tandem_work_t *req) {
  while (__atomic_load_n(&req->state_, __ATOMIC_ACQUIRE) != TDM_REQ_DONE)
    sched_yield();
}

/* A finished job cannot be cancelled, neither while its after callback is
 * pending nor after it ran: UV_EBUSY both times, nothing asked of it
 * (tandem_work_cancelled() stays 0), status 0. */
START_TEST(test_cancel_finished_job_is_busy) {
  uv_sem_t finished;
  probe_t p;

  setup();
  ck_assert_int_eq(uv_sem_init(&finished, 0), 0);
  probe_init(&p);
  p.finished = &finished;
  ck_assert_int_eq(queue_probe(&p), 0);

  /* The work is done; the loop has not run yet.  (A cancel before the work
   * callback has returned would ask it to stop: wait until it is DONE.) */
  uv_sem_wait(&finished);
  wait_until_done(&p.req);
  ck_assert_int_eq(tandem_cancel(&p.req), UV_EBUSY);
  ck_assert_int_eq(tandem_work_cancelled(&p.req), 0);

  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(atomic_load(&p.saw), 0);

  ck_assert_int_eq(tandem_cancel(&p.req), UV_EBUSY);
  ck_assert_int_eq(tandem_work_cancelled(&p.req), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(atomic_load(&p.ran), 1);

  uv_sem_destroy(&finished);
  teardown();
}
END_TEST

/* Cancelling twice: 0 then UV_EBUSY, and one after callback. */
START_TEST(test_cancel_twice_is_busy) {
  worker_gate_t gate;
  probe_t p;

  setup();
  probe_init(&p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(queue_probe(&p), 0);

  ck_assert_int_eq(tandem_cancel(&p.req), 0);
  ck_assert_int_eq(tandem_cancel(&p.req), UV_EBUSY);
  ck_assert_int_eq(tandem_work_cancelled(&p.req), 0); /* DONE: left alone */
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(p.status, UV_ECANCELED);
  ck_assert_int_eq(tandem_cancel(&p.req), UV_EBUSY);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(atomic_load(&p.ran), 0);
  teardown();
}
END_TEST

/* A request that was never queued (zeroed), or NULL: UV_EINVAL. */
START_TEST(test_cancel_never_queued_request_is_einval) {
  tandem_work_t req;

  setup();
  memset(&req, 0, sizeof(req));
  ck_assert_int_eq(tandem_cancel(&req), UV_EINVAL);
  ck_assert_int_eq(tandem_cancel(NULL), UV_EINVAL);
  ck_assert_str_eq(uv_err_name(tandem_cancel(NULL)), "EINVAL");
  teardown();
}
END_TEST

/* After its UV_ECANCELED callback a request can be queued again, and then
 * runs normally. */
START_TEST(test_cancelled_request_can_be_queued_again) {
  worker_gate_t gate;
  probe_t p;

  setup();
  probe_init(&p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(queue_probe(&p), 0);
  ck_assert_int_eq(tandem_cancel(&p.req), 0);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(p.status, UV_ECANCELED);

  ck_assert_int_eq(queue_probe(&p), 0);
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);

  ck_assert_int_eq(p.called, 2);
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(atomic_load(&p.ran), 1);
  teardown();
}
END_TEST

typedef struct canceller_s {
  tandem_work_t *req;
  probe_t *probe; /* to queue first, if set */
  int queue_rc;
  int cancel_rc;
} canceller_t;

static void canceller_main(void *arg) {
  canceller_t *c;

  c = arg;
  if (c->probe != NULL)
    c->queue_rc = queue_probe(c->probe);
  c->cancel_rc = tandem_cancel(c->req);
}

/* tandem_cancel() from a thread that is neither the loop's nor a worker:
 * 0, and the after callback runs on the loop thread with UV_ECANCELED. */
START_TEST(test_cancel_from_other_thread) {
  worker_gate_t gate;
  uv_thread_t thread;
  canceller_t c;
  probe_t p;

  setup();
  probe_init(&p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(queue_probe(&p), 0);

  memset(&c, 0, sizeof(c));
  c.req = &p.req;
  ck_assert_int_eq(uv_thread_create(&thread, canceller_main, &c), 0);
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(c.cancel_rc, 0);

  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_msg(p.called == 1,
                "after callback not run on the next loop iteration");
  ck_assert_int_eq(p.status, UV_ECANCELED);
  ck_assert_int_eq(p.off_loop_thread, 0);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  ck_assert_int_eq(atomic_load(&p.ran), 0);
  ck_assert_int_eq(p.called, 1);
  teardown();
}
END_TEST

/* A job queued and cancelled by another application thread: 0, and its
 * after callback runs on the loop thread with UV_ECANCELED. */
START_TEST(test_cancel_job_queued_from_other_thread) {
  worker_gate_t gate;
  uv_thread_t thread;
  canceller_t c;
  probe_t p;

  setup();
  probe_init(&p);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);

  memset(&c, 0, sizeof(c));
  c.req = &p.req;
  c.probe = &p;
  ck_assert_int_eq(uv_thread_create(&thread, canceller_main, &c), 0);
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(c.queue_rc, 0);
  ck_assert_int_eq(c.cancel_rc, 0);

  /* The gate's jobs keep the loop alive; this one does not need to. */
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_msg(p.called == 1,
                "after callback not run on the next loop iteration");
  ck_assert_int_eq(p.status, UV_ECANCELED);
  ck_assert_int_eq(p.off_loop_thread, 0);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  ck_assert_int_eq(atomic_load(&p.ran), 0);
  teardown();
}
END_TEST

/* A job queued from inside a worker goes onto that worker's deque and
 * counts as taken: cancelling it is UV_EBUSY, but asks it to stop.  The
 * child waits for the cancel (another worker may have stolen it by then),
 * so it cannot have finished before: it runs, sees tandem_work_cancelled()
 * and completes with UV_ECANCELED. */
typedef struct nested_cancel_s {
  probe_t parent;
  probe_t child;
  uv_sem_t child_proceed;
  atomic_int queue_rc;
  atomic_int cancel_rc;
} nested_cancel_t;

static nested_cancel_t *nested;

static void nested_parent_work_cb(tandem_work_t *req) {
  (void)req;
  atomic_store(&nested->queue_rc, queue_probe(&nested->child));
  atomic_store(&nested->cancel_rc, tandem_cancel(&nested->child.req));
  uv_sem_post(&nested->child_proceed);
}

static int nested_both_called(void *arg) {
  nested_cancel_t *n;

  n = arg;
  return n->parent.called != 0 && n->child.called != 0;
}

START_TEST(test_cancel_job_queued_from_worker_is_busy) {
  nested_cancel_t n;

  setup();
  memset(&n, 0, sizeof(n));
  probe_init(&n.parent);
  probe_init(&n.child);
  ck_assert_int_eq(uv_sem_init(&n.child_proceed, 0), 0);
  n.child.proceed = &n.child_proceed;
  atomic_init(&n.queue_rc, 1);
  atomic_init(&n.cancel_rc, 1);
  nested = &n;

  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &n.parent.req,
                                     nested_parent_work_cb, probe_after_cb),
                   0);
  /* The child was queued from a worker: it does not keep the loop alive. */
  ck_assert(run_until(&fx.loop, nested_both_called, &n, 10000));
  ck_assert_int_eq(n.parent.called, 1);

  ck_assert_int_eq(atomic_load(&n.queue_rc), 0);
  ck_assert_int_eq(atomic_load(&n.cancel_rc), UV_EBUSY);
  ck_assert_int_eq(n.child.called, 1);
  ck_assert_int_eq(n.child.status, UV_ECANCELED);
  ck_assert_int_eq(atomic_load(&n.child.ran), 1);
  ck_assert_int_eq(atomic_load(&n.child.saw), 1);
  ck_assert_int_eq(n.child.off_loop_thread, 0);
  ck_assert_int_eq(n.parent.status, 0); /* nobody cancelled the parent */
  uv_sem_destroy(&n.child_proceed);
  nested = NULL;
  teardown();
}
END_TEST

#define RACED 20000

typedef struct race_s {
  probe_t *p;
  int *rc; /* canceller thread only; read after join */
} race_t;

static void race_canceller_main(void *arg) {
  race_t *r;
  int i;

  r = arg;
  /* Newest first: the workers take the oldest, so the two meet midway. */
  for (i = RACED - 1; i >= 0; i--)
    r->rc[i] = tandem_cancel(&r->p[i].req);
}

/* Another thread cancels 20,000 jobs while the workers take them: every
 * job ends one of three ways -- cancel 0, UV_ECANCELED, never ran; or
 * cancel UV_EBUSY and ran once, with UV_ECANCELED if the cancel came while
 * it was in flight (always if its work callback saw tandem_work_cancelled)
 * or 0 if it came once the job was done. */
START_TEST(test_cancel_races_with_workers) {
  tandem_stats_t stats;
  uv_thread_t thread;
  int mismatches;
  int queue_errors;
  int won;
  race_t r;
  int i;

  setup();
  r.p = calloc(RACED, sizeof(*r.p));
  r.rc = calloc(RACED, sizeof(*r.rc));
  ck_assert_ptr_nonnull(r.p);
  ck_assert_ptr_nonnull(r.rc);
  queue_errors = 0;
  for (i = 0; i < RACED; i++) {
    probe_init(&r.p[i]);
    r.p[i].spin = 2000; /* a few microseconds: let the canceller catch up */
    if (queue_probe(&r.p[i]) != 0)
      queue_errors++;
  }
  ck_assert_int_eq(queue_errors, 0);
  ck_assert_int_eq(uv_thread_create(&thread, race_canceller_main, &r), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_thread_join(&thread), 0);

  mismatches = 0;
  won = 0;
  for (i = 0; i < RACED; i++) {
    if (r.p[i].called != 1 || r.p[i].off_loop_thread != 0)
      mismatches++;
    else if (r.rc[i] == 0)
      mismatches +=
          r.p[i].status != UV_ECANCELED || atomic_load(&r.p[i].ran) != 0;
    else if (r.rc[i] == UV_EBUSY)
      mismatches += atomic_load(&r.p[i].ran) != 1 ||
                    (r.p[i].status != 0 && r.p[i].status != UV_ECANCELED) ||
                    (r.p[i].status == 0 && atomic_load(&r.p[i].saw) != 0);
    else
      mismatches++;
    won += r.rc[i] == 0;
  }
  ck_assert_int_eq(mismatches, 0);
  /* Cancelled before they started: exactly the cancels that won. */
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, (uint64_t)won);
  free(r.p);
  free(r.rc);
  teardown();
}
END_TEST

typedef struct from_worker_s {
  probe_t canceller;
  probe_t victim;
  uv_sem_t victim_queued;
  uv_mutex_t mutex;
  uv_cond_t cond;
  int victim_called; /* under mutex */
  atomic_int cancel_rc;
  atomic_int timed_out;
} from_worker_t;

static from_worker_t *from_worker;

static void from_worker_victim_after_cb(tandem_work_t *req, int status) {
  probe_after_cb(req, status);
  uv_mutex_lock(&from_worker->mutex);
  from_worker->victim_called = 1;
  uv_cond_signal(&from_worker->cond);
  uv_mutex_unlock(&from_worker->mutex);
}

static void from_worker_canceller_work_cb(tandem_work_t *req) {
  from_worker_t *f;
  uint64_t deadline;
  uint64_t now;

  (void)req;
  f = from_worker;
  uv_sem_wait(&f->victim_queued);
  atomic_store(&f->cancel_rc, tandem_cancel(&f->victim.req));
  /* Keep this worker busy until the loop has called the victim back. */
  deadline = uv_hrtime() + (uint64_t)2000000000u * timeout_multiplier();
  uv_mutex_lock(&f->mutex);
  while (!f->victim_called) {
    now = uv_hrtime();
    if (now >= deadline) {
      atomic_store(&f->timed_out, 1);
      break;
    }
    uv_cond_timedwait(&f->cond, &f->mutex, deadline - now);
  }
  uv_mutex_unlock(&f->mutex);
}

/* The only worker cancels a queued job and stays busy: the cancel returns
 * 0 and the loop calls the job back with UV_ECANCELED meanwhile ("even
 * while every worker is busy"), not once the worker is free. */
START_TEST(test_cancel_from_busy_worker_wakes_loop) {
  from_worker_t f;

  setup_pool(1, 0);
  memset(&f, 0, sizeof(f));
  probe_init(&f.canceller);
  probe_init(&f.victim);
  atomic_init(&f.cancel_rc, 1);
  atomic_init(&f.timed_out, 0);
  ck_assert_int_eq(uv_sem_init(&f.victim_queued, 0), 0);
  ck_assert_int_eq(uv_mutex_init(&f.mutex), 0);
  ck_assert_int_eq(uv_cond_init(&f.cond), 0);
  from_worker = &f;

  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &f.canceller.req,
                                     from_worker_canceller_work_cb,
                                     probe_after_cb),
                   0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &f.victim.req, probe_work_cb,
                                     from_worker_victim_after_cb),
                   0);
  uv_sem_post(&f.victim_queued);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(atomic_load(&f.cancel_rc), 0);
  ck_assert_msg(!atomic_load(&f.timed_out),
                "cancelled job not called back while the worker was busy");
  ck_assert_int_eq(f.victim.called, 1);
  ck_assert_int_eq(f.victim.status, UV_ECANCELED);
  ck_assert_int_eq(atomic_load(&f.victim.ran), 0);
  ck_assert_int_eq(f.canceller.called, 1);
  ck_assert_int_eq(f.canceller.status, 0);

  from_worker = NULL;
  uv_sem_destroy(&f.victim_queued);
  uv_cond_destroy(&f.cond);
  uv_mutex_destroy(&f.mutex);
  teardown();
}
END_TEST

/* Jobs queued by an after callback and cancelled in that same callback:
 * a drain holds its callbacks' submits back and pushes them to the ring
 * together (loop.c, "deferred submits"), so tandem_cancel must find them
 * there.  More than one batch's worth (TDM_KICK_EVERY = 64), behind
 * blocked workers: every cancel returns 0, every after callback gets
 * UV_ECANCELED while the workers are still blocked, no work runs. */
#define IN_CALLBACK 70

static probe_t in_cb[IN_CALLBACK];

static void queue_and_cancel_after(tandem_work_t *req, int status) {
  int i;

  probe_after_cb(req, status);
  for (i = 0; i < IN_CALLBACK; i++) {
    probe_init(&in_cb[i]);
    ck_assert_int_eq(queue_probe(&in_cb[i]), 0);
  }
  for (i = 0; i < IN_CALLBACK; i++)
    in_cb[i].cancel_rc = tandem_cancel(&in_cb[i].req);
}

static int in_cb_all_called(void *arg) {
  (void)arg;
  return in_cb[IN_CALLBACK - 1].called != 0; /* the last one queued */
}

START_TEST(test_cancel_in_after_callback_of_jobs_it_queued) {
  worker_gate_t gate;
  probe_t trigger;
  int i;

  setup();
  probe_init(&trigger);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(worker_gate_run_in_drain(&fx.tandem, &trigger.req,
                                            queue_and_cancel_after),
                   0);
  ck_assert_msg(run_until(&fx.loop, in_cb_all_called, NULL, 5000),
                "jobs cancelled in an after callback were not called back "
                "while the workers were blocked");
  ck_assert_int_eq(trigger.status, UV_ECANCELED);
  for (i = 0; i < IN_CALLBACK; i++) {
    ck_assert_msg(in_cb[i].cancel_rc == 0, "job %d: tandem_cancel gave %d", i,
                  in_cb[i].cancel_rc);
    ck_assert_int_eq(in_cb[i].called, 1);
    ck_assert_int_eq(in_cb[i].status, UV_ECANCELED);
  }
  ck_assert_uint_eq(gate.finished, 0);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  for (i = 0; i < IN_CALLBACK; i++) {
    ck_assert_int_eq(atomic_load(&in_cb[i].ran), 0);
    ck_assert_int_eq(in_cb[i].called, 1);
  }
  teardown();
}
END_TEST

static Suite *cancel_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("cancel");

  tc = tcase_create("queued");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_cancel_while_workers_busy);
  tcase_add_test(tc, test_cancel_many_while_workers_busy);
  tcase_add_test(tc, test_cancel_jobs_beyond_injection_slots);
  tcase_add_test(tc, test_cancel_twice_is_busy);
  tcase_add_test(tc, test_cancelled_request_can_be_queued_again);
  tcase_add_test(tc, test_cancel_from_other_thread);
  tcase_add_test(tc, test_cancel_job_queued_from_other_thread);
  tcase_add_test(tc, test_cancel_races_with_workers);
  tcase_add_test(tc, test_cancel_from_busy_worker_wakes_loop);
  tcase_add_test(tc, test_cancel_in_after_callback_of_jobs_it_queued);
  suite_add_tcase(s, tc);

  tc = tcase_create("busy");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_cancel_running_job_is_busy);
  tcase_add_test(tc, test_cancel_finished_job_is_busy);
  tcase_add_test(tc, test_cancel_job_queued_from_worker_is_busy);
  tcase_add_test(tc, test_cancel_never_queued_request_is_einval);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(cancel_suite());
}
