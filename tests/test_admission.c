/* SPDX-License-Identifier: MIT */
/*
 * Admission and deadlines.  tandem_options_t.max_queued = N: at most N jobs
 * wait to start (compute jobs of every class; blocking jobs counted apart
 * against the same N); one more is refused with UV_EAGAIN at once, calls
 * nothing, is counted in stats.rejected and may be queued again later; a
 * job stops waiting when it starts, expires or is cancelled; fork-join
 * tasks are not counted; 0 means no limit.  tandem_job_opts_t.deadline: a
 * job not started by then is called back with UV_ETIMEDOUT without
 * running (stats.expired), at once if the deadline was already past; a
 * running job is not stopped.
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
#define MAXQ 4       /* max_queued of most tests */
#define MS 1000000u  /* nanoseconds, for uv_hrtime() arithmetic */

/* A job that records what happened to it; its hold, if set, it waits in. */
typedef job_probe_t probe_t;

static fixture_t fx; /* each test's pool, loop and handle */

static void setup(unsigned workers, unsigned max_queued,
                  unsigned blocking_max) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  opts.max_queued = max_queued;
  opts.blocking_max = blocking_max;
  fixture_open(&fx, &opts);
}

static void teardown(void) {
  fixture_close(&fx);
}

static void probe_init(probe_t *p) {
  job_probe_init(p, &fx);
}

static int queue_class(probe_t *p, int priority) {
  return job_probe_queue(p, priority, 0, 0);
}

static tandem_stats_t stats_now(void) {
  tandem_stats_t stats;

  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  return stats;
}

/* What wait_called() waits for: n probes, and maybe a gate. */
typedef struct called_s {
  probe_t **p;
  int n;
  worker_gate_t *gate;
} called_t;

static int all_called(void *arg) {
  called_t *c;
  int i;

  c = arg;
  for (i = 0; i < c->n; i++)
    if (c->p[i]->called == 0)
      return 0;
  return c->gate == NULL || c->gate->finished == c->gate->n;
}

/* Runs the loop until each of the n probes (and the gate, if any) was
 * called back, or fails naming `what`. */
static void wait_called(probe_t **p, int n, worker_gate_t *gate,
                        const char *what) {
  called_t c;

  c.p = p;
  c.n = n;
  c.gate = gate;
  ck_assert_msg(run_until(&fx.loop, all_called, &c, 20000),
                "%s: not every job was called back", what);
}

static void wait_one(probe_t *p, const char *what) {
  wait_called(&p, 1, NULL, what);
}

/* Opens the gate, runs the loop until the n probes and the gate were
 * called back, frees the gate. */
static void open_and_finish(worker_gate_t *gate, probe_t **p, int n) {
  worker_gate_open(gate);
  wait_called(p, n, gate, "once the workers were free");
  ck_assert_uint_eq(gate->bad_status, 0);
  worker_gate_destroy(gate);
}

static void assert_ran_ok(const probe_t *p, const char *what) {
  ck_assert_msg(atomic_load(&p->ran) == 1, "%s: ran %d times", what,
                atomic_load(&p->ran));
  ck_assert_msg(p->called == 1, "%s: called back %d times", what, p->called);
  ck_assert_msg(p->status == 0, "%s: status %s", what,
                p->status == 1 ? "(never called)" : uv_err_name(p->status));
  ck_assert_int_eq(p->off_loop_thread, 0);
}

static void assert_never_called(const probe_t *p, const char *what) {
  ck_assert_msg(atomic_load(&p->ran) == 0 && p->called == 0,
                "%s: refused, yet ran %d times and was called back %d times",
                what, atomic_load(&p->ran), p->called);
}

static void assert_expired(const probe_t *p, const char *what) {
  ck_assert_msg(atomic_load(&p->ran) == 0, "%s: ran after its deadline", what);
  ck_assert_msg(p->called == 1, "%s: called back %d times", what, p->called);
  ck_assert_msg(p->status == UV_ETIMEDOUT, "%s: status %s, not ETIMEDOUT", what,
                p->status == 1 ? "(never called)" : uv_err_name(p->status));
  ck_assert_int_eq(p->off_loop_thread, 0);
}

/* ---------------------------------------------- the HIGH lane, held */

/* While every worker is held, a HIGH job starts at once on the HIGH lane
 * (and so stops waiting); this one stays there until `hold` opens, so that
 * the HIGH jobs queued after it wait and count. */
static void lane_block(probe_t *blocker, hold_t *hold) {
  probe_init(blocker);
  blocker->hold = hold;
  ck_assert_int_eq(queue_class(blocker, TANDEM_PRIO_HIGH), 0);
  ck_assert_msg(wait_atomic_ge(&hold->entered, 1, WAIT_MS),
                "a HIGH job queued while every worker was busy did not start"
                " on the HIGH lane");
}

/* -------------------------------------------------------- max_queued */

/* max_queued 4, the worker held: four jobs are accepted, the fifth
 * (tandem_queue_work) and sixth (_ex) are refused with UV_EAGAIN, never
 * called, counted in stats.rejected; stats.queued is 4.  Once the worker
 * is free the four run. */
START_TEST(test_max_queued_refuses_beyond_limit) {
  probe_t *all[MAXQ];
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t p[MAXQ + 2];
  int i;

  setup(1, MAXQ, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  for (i = 0; i < MAXQ + 2; i++)
    probe_init(&p[i]);
  for (i = 0; i < MAXQ; i++) {
    ck_assert_msg(queue_class(&p[i], TANDEM_PRIO_NORMAL) == 0,
                  "job %d of max_queued %d refused", i + 1, MAXQ);
    all[i] = &p[i];
  }
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &p[MAXQ].req,
                                     job_probe_work_cb, job_probe_after_cb),
                   UV_EAGAIN);
  ck_assert_int_eq(queue_class(&p[MAXQ + 1], TANDEM_PRIO_NORMAL), UV_EAGAIN);

  stats = stats_now();
  ck_assert_uint_eq(stats.rejected, 2);
  ck_assert_uint_eq(stats.queued, MAXQ);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  assert_never_called(&p[MAXQ], "5th");
  assert_never_called(&p[MAXQ + 1], "6th");

  open_and_finish(&gate, all, MAXQ);
  for (i = 0; i < MAXQ; i++)
    assert_ran_ok(&p[i], "accepted job");
  assert_never_called(&p[MAXQ], "5th");
  assert_never_called(&p[MAXQ + 1], "6th");
  stats = stats_now();
  ck_assert_uint_eq(stats.rejected, 2);
  ck_assert_uint_eq(stats.queued, 0);
  teardown();
}
END_TEST

/* A job stops waiting when it starts: the first of four holds the worker,
 * so one more is accepted, and the one after is refused. */
START_TEST(test_max_queued_frees_a_place_when_a_job_starts) {
  probe_t *all[MAXQ + 1];
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t p[MAXQ + 2];
  hold_t hold;
  int i;

  setup(1, MAXQ, 0);
  hold_init(&hold);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  for (i = 0; i < MAXQ + 2; i++)
    probe_init(&p[i]);
  p[0].hold = &hold;
  for (i = 0; i < MAXQ; i++)
    ck_assert_int_eq(queue_class(&p[i], TANDEM_PRIO_NORMAL), 0);
  ck_assert_int_eq(queue_class(&p[MAXQ], TANDEM_PRIO_NORMAL), UV_EAGAIN);

  worker_gate_open(&gate); /* the worker takes p[0], which holds it */
  ck_assert_msg(wait_atomic_ge(&hold.entered, 1, WAIT_MS),
                "the first job did not start once the worker was free");
  ck_assert_int_eq(queue_class(&p[MAXQ], TANDEM_PRIO_NORMAL), 0);
  ck_assert_int_eq(queue_class(&p[MAXQ + 1], TANDEM_PRIO_NORMAL), UV_EAGAIN);
  stats = stats_now();
  ck_assert_uint_eq(stats.queued, MAXQ);
  ck_assert_uint_eq(stats.rejected, 2);

  hold_open(&hold);
  for (i = 0; i <= MAXQ; i++)
    all[i] = &p[i];
  wait_called(all, MAXQ + 1, &gate, "once the holder was let go");
  worker_gate_destroy(&gate);
  for (i = 0; i <= MAXQ; i++)
    assert_ran_ok(&p[i], "accepted job");
  assert_never_called(&p[MAXQ + 1], "refused job");
  ck_assert_int_eq(atomic_load(&hold.timed_out), 0);
  teardown();
}
END_TEST

/* A job stops waiting when it is cancelled; a refused request is not in
 * flight: queued again while the pool is still full it is UV_EAGAIN again
 * (not UV_EBUSY), and once a place is free it is accepted and runs. */
START_TEST(test_refused_request_can_be_queued_again) {
  probe_t *all[MAXQ + 1];
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t p[MAXQ + 1];
  int i;

  setup(1, MAXQ, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  for (i = 0; i <= MAXQ; i++)
    probe_init(&p[i]);
  for (i = 0; i < MAXQ; i++)
    ck_assert_int_eq(queue_class(&p[i], TANDEM_PRIO_NORMAL), 0);
  ck_assert_int_eq(queue_class(&p[MAXQ], TANDEM_PRIO_NORMAL), UV_EAGAIN);
  ck_assert_int_eq(queue_class(&p[MAXQ], TANDEM_PRIO_NORMAL), UV_EAGAIN);

  ck_assert_int_eq(tandem_cancel(&p[1].req), 0);
  wait_one(&p[1], "cancelled job");
  ck_assert_int_eq(p[1].status, UV_ECANCELED);
  stats = stats_now();
  ck_assert_uint_eq(stats.queued, MAXQ - 1);

  ck_assert_int_eq(queue_class(&p[MAXQ], TANDEM_PRIO_NORMAL), 0);
  stats = stats_now();
  ck_assert_uint_eq(stats.queued, MAXQ);
  ck_assert_uint_eq(stats.rejected, 2);

  for (i = 0; i <= MAXQ; i++)
    all[i] = &p[i];
  open_and_finish(&gate, all, MAXQ + 1);
  for (i = 0; i <= MAXQ; i++)
    if (i != 1)
      assert_ran_ok(&p[i], "accepted job");
  ck_assert_int_eq(atomic_load(&p[1].ran), 0);
  ck_assert_int_eq(p[1].called, 1);
  teardown();
}
END_TEST

/* Every class counts against max_queued.  The worker and the HIGH lane
 * held: HIGH, NORMAL, LOW, HIGH are accepted (stats.queued 4), then one
 * more of each class is refused. */
START_TEST(test_max_queued_counts_every_class) {
  static const int classes[MAXQ] = {TANDEM_PRIO_HIGH, TANDEM_PRIO_NORMAL,
                                    TANDEM_PRIO_LOW, TANDEM_PRIO_HIGH};
  static const int extra[3] = {TANDEM_PRIO_LOW, TANDEM_PRIO_NORMAL,
                               TANDEM_PRIO_HIGH};
  probe_t *all[MAXQ + 1];
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t blocker;
  probe_t p[MAXQ];
  probe_t refused[3];
  hold_t lane;
  int i;

  setup(1, MAXQ, 0);
  hold_init(&lane);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  lane_block(&blocker, &lane);
  for (i = 0; i < MAXQ; i++) {
    probe_init(&p[i]);
    ck_assert_msg(queue_class(&p[i], classes[i]) == 0,
                  "job %d (priority %d) refused", i + 1, classes[i]);
  }
  stats = stats_now();
  ck_assert_uint_eq(stats.queued, MAXQ);
  for (i = 0; i < 3; i++) {
    probe_init(&refused[i]);
    ck_assert_msg(queue_class(&refused[i], extra[i]) == UV_EAGAIN,
                  "a job of priority %d beyond max_queued not refused",
                  extra[i]);
  }
  stats = stats_now();
  ck_assert_uint_eq(stats.rejected, 3);

  /* The workers first: the four must not need the lane. */
  for (i = 0; i < MAXQ; i++)
    all[i] = &p[i];
  open_and_finish(&gate, all, MAXQ);
  hold_open(&lane);
  all[0] = &blocker;
  wait_called(all, 1, NULL, "lane blocker");
  for (i = 0; i < MAXQ; i++)
    assert_ran_ok(&p[i], "accepted job");
  assert_ran_ok(&blocker, "lane blocker");
  for (i = 0; i < 3; i++)
    assert_never_called(&refused[i], "refused job");
  ck_assert_uint_eq(stats_now().queued, 0);
  teardown();
}
END_TEST

/* A HIGH job that the lane starts at once (the worker held) stops waiting
 * at once: with max_queued 1 a NORMAL job is still accepted after it, and
 * the next one refused. */
START_TEST(test_high_job_started_on_lane_is_not_waiting) {
  probe_t *all[2];
  worker_gate_t gate;
  probe_t h, n, refused;

  setup(1, 1, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&h);
  probe_init(&n);
  probe_init(&refused);
  ck_assert_int_eq(queue_class(&h, TANDEM_PRIO_HIGH), 0);
  wait_one(&h, "HIGH job on the lane while the worker was held");
  assert_ran_ok(&h, "HIGH job");
  ck_assert_int_eq(queue_class(&n, TANDEM_PRIO_NORMAL), 0);
  ck_assert_int_eq(queue_class(&refused, TANDEM_PRIO_NORMAL), UV_EAGAIN);
  all[0] = &n;
  open_and_finish(&gate, all, 1);
  assert_ran_ok(&n, "NORMAL job");
  assert_never_called(&refused, "refused job");
  teardown();
}
END_TEST

/* Blocking jobs count apart against the same limit.  max_queued 2,
 * blocking_max 1: the blocking thread held by a blocking job, the worker
 * by the gate; two blocking and two compute jobs wait (stats.queued 4),
 * the third of each kind is refused. */
START_TEST(test_blocking_jobs_count_apart) {
  probe_t *all[5];
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t holder;
  probe_t b[3];
  probe_t c[3];
  hold_t hold;
  int i;

  setup(1, 2, 1);
  hold_init(&hold);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&holder);
  holder.hold = &hold;
  ck_assert_int_eq(job_probe_queue(&holder, 0, TANDEM_JOB_BLOCKING, 0), 0);
  ck_assert_msg(wait_atomic_ge(&hold.entered, 1, WAIT_MS),
                "a blocking job did not start while the workers were held");

  for (i = 0; i < 3; i++) {
    probe_init(&b[i]);
    probe_init(&c[i]);
  }
  for (i = 0; i < 2; i++) {
    ck_assert_msg(job_probe_queue(&b[i], 0, TANDEM_JOB_BLOCKING, 0) == 0,
                  "blocking job %d of max_queued 2 refused", i + 1);
    ck_assert_msg(queue_class(&c[i], TANDEM_PRIO_NORMAL) == 0,
                  "compute job %d of max_queued 2 refused", i + 1);
  }
  ck_assert_int_eq(job_probe_queue(&b[2], 0, TANDEM_JOB_BLOCKING, 0),
                   UV_EAGAIN);
  ck_assert_int_eq(queue_class(&c[2], TANDEM_PRIO_NORMAL), UV_EAGAIN);
  stats = stats_now();
  ck_assert_uint_eq(stats.rejected, 2);
  ck_assert_uint_eq(stats.queued, 4);

  hold_open(&hold);
  all[0] = &holder;
  all[1] = &b[0];
  all[2] = &b[1];
  all[3] = &c[0];
  all[4] = &c[1];
  open_and_finish(&gate, all, 5);
  for (i = 0; i < 5; i++)
    assert_ran_ok(all[i], "accepted job");
  assert_never_called(&b[2], "refused blocking job");
  assert_never_called(&c[2], "refused compute job");
  teardown();
}
END_TEST

#define UNLIMITED 10000

/* max_queued 0: no limit -- 10,000 jobs behind a held worker are all
 * accepted, stats.queued stays 0, and all run. */
START_TEST(test_max_queued_zero_means_no_limit) {
  tandem_stats_t stats;
  worker_gate_t gate;
  probe_t **all;
  probe_t *p;
  int refused;
  int bad;
  int i;

  setup(1, 0, 0);
  p = calloc(UNLIMITED, sizeof(*p));
  all = calloc(UNLIMITED, sizeof(*all));
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_nonnull(all);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  refused = 0;
  for (i = 0; i < UNLIMITED; i++) {
    probe_init(&p[i]);
    all[i] = &p[i];
    if (queue_class(&p[i], i % 3 - 1) != 0)
      refused++;
  }
  ck_assert_int_eq(refused, 0);
  stats = stats_now();
  ck_assert_uint_eq(stats.rejected, 0);
  ck_assert_uint_eq(stats.queued, 0);

  open_and_finish(&gate, all, UNLIMITED);
  bad = 0;
  for (i = 0; i < UNLIMITED; i++)
    if (atomic_load(&p[i].ran) != 1 || p[i].called != 1 || p[i].status != 0 ||
        p[i].off_loop_thread != 0)
      bad++;
  ck_assert_int_eq(bad, 0);
  free(all);
  free(p);
  teardown();
}
END_TEST

#define FJ_N 4096

typedef struct fj_job_s {
  probe_t p;
  tandem_pool_t *pool;
  atomic_uchar seen[FJ_N];
  int rc;
} fj_job_t;

static void fj_body(size_t lo, size_t hi, void *ctx) {
  fj_job_t *j;
  size_t i;

  j = ctx;
  for (i = lo; i < hi; i++)
    atomic_fetch_add(&j->seen[i], 1);
}

static void fj_work_cb(tandem_work_t *req) {
  fj_job_t *j;

  j = (fj_job_t *)req;
  atomic_fetch_add(&j->p.ran, 1);
  j->rc = tandem_parallel_for(j->pool, 0, FJ_N, 1, fj_body, j);
}

/* Fork-join tasks are not counted: with max_queued 1 a job splits a range
 * into 4,096 tasks on two workers and all of them run; nothing refused. */
START_TEST(test_fork_join_tasks_not_counted) {
  fj_job_t *j;
  int bad;
  int i;

  setup(2, 1, 0);
  j = calloc(1, sizeof(*j));
  ck_assert_ptr_nonnull(j);
  probe_init(&j->p);
  j->pool = fx.pool;
  for (i = 0; i < FJ_N; i++)
    atomic_init(&j->seen[i], 0);
  ck_assert_int_eq(
      tandem_queue_work(&fx.tandem, &j->p.req, fj_work_cb, job_probe_after_cb),
      0);
  wait_one(&j->p, "fork-join job");
  assert_ran_ok(&j->p, "fork-join job");
  ck_assert_int_eq(j->rc, 0);
  bad = 0;
  for (i = 0; i < FJ_N; i++)
    if (atomic_load(&j->seen[i]) != 1)
      bad++;
  ck_assert_int_eq(bad, 0);
  ck_assert_uint_eq(stats_now().rejected, 0);
  free(j);
  teardown();
}
END_TEST

/* A job stops waiting when it expires: with max_queued 1 and the worker
 * held, a job whose deadline is already past is accepted and called back
 * with UV_ETIMEDOUT; then a NORMAL job is accepted and the next refused. */
START_TEST(test_expired_job_is_not_waiting) {
  probe_t *all[1];
  worker_gate_t gate;
  probe_t late, n, refused;

  setup(1, 1, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&late);
  probe_init(&n);
  probe_init(&refused);
  ck_assert_int_eq(job_probe_queue(&late, 0, 0, uv_hrtime() - 1), 0);
  wait_one(&late, "job queued with a deadline already past");
  assert_expired(&late, "past deadline");
  ck_assert_int_eq(queue_class(&n, TANDEM_PRIO_NORMAL), 0);
  ck_assert_int_eq(queue_class(&refused, TANDEM_PRIO_NORMAL), UV_EAGAIN);
  all[0] = &n;
  open_and_finish(&gate, all, 1);
  assert_ran_ok(&n, "NORMAL job");
  assert_never_called(&refused, "refused job");
  teardown();
}
END_TEST

/* ---------------------------------------------------------- deadlines */

/* The worker held: a job with a deadline 20 ms away waits past it and,
 * once the worker is free, is called back with UV_ETIMEDOUT without
 * running (stats.expired 1); a job queued after it without a deadline
 * runs. */
START_TEST(test_deadline_passed_while_waiting_expires) {
  probe_t *all[2];
  worker_gate_t gate;
  uint64_t deadline;
  probe_t late, plain;

  setup(1, 0, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&late);
  probe_init(&plain);
  deadline = uv_hrtime() + 20 * MS;
  ck_assert_int_eq(job_probe_queue(&late, 0, 0, deadline), 0);
  ck_assert_int_eq(queue_class(&plain, TANDEM_PRIO_NORMAL), 0);
  uv_sleep(50);
  sleep_past(deadline);

  all[0] = &late;
  all[1] = &plain;
  open_and_finish(&gate, all, 2);
  assert_expired(&late, "deadline passed while waiting");
  assert_ran_ok(&plain, "job without a deadline");
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, expired, 1), 1);
  teardown();
}
END_TEST

/* A deadline already past when queued: accepted (0), called back with
 * UV_ETIMEDOUT without running. */
START_TEST(test_deadline_already_past_expires) {
  probe_t p;

  setup(2, 0, 0);
  probe_init(&p);
  ck_assert_int_eq(job_probe_queue(&p, 0, 0, uv_hrtime() - 1), 0);
  wait_one(&p, "job with a deadline already past");
  assert_expired(&p, "past deadline");
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, expired, 1), 1);
  teardown();
}
END_TEST

/* "A deadline already past when queued expires at once": called back
 * while every worker is still held, not when one is free. */
START_TEST(test_deadline_already_past_expires_while_workers_busy) {
  worker_gate_t gate;
  probe_t p;

  setup(1, 0, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&p);
  ck_assert_int_eq(job_probe_queue(&p, TANDEM_PRIO_LOW, 0, uv_hrtime() - 1), 0);
  wait_one(&p, "job whose deadline was already past, the workers busy");
  ck_assert_uint_eq(gate.finished, 0);
  assert_expired(&p, "past deadline");
  open_and_finish(&gate, NULL, 0);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, expired, 1), 1);
  teardown();
}
END_TEST

/* A deadline an hour away: the job runs, status 0, nothing expired. */
START_TEST(test_far_deadline_runs) {
  probe_t p;

  setup(2, 0, 0);
  probe_init(&p);
  ck_assert_int_eq(
      job_probe_queue(&p, 0, 0, uv_hrtime() + (uint64_t)3600 * 1000 * MS), 0);
  wait_one(&p, "job with a far deadline");
  assert_ran_ok(&p, "far deadline");
  ck_assert_uint_eq(stats_now().expired, 0);
  teardown();
}
END_TEST

typedef struct overrun_s {
  probe_t p;
  uint64_t deadline;
  atomic_int started_in_time; /* 1 if work_cb began before the deadline */
  atomic_int ran_past;        /* 1 if it was still running after it */
} overrun_t;

static void overrun_work_cb(tandem_work_t *req) {
  overrun_t *o;

  o = (overrun_t *)req;
  atomic_store(&o->started_in_time, uv_hrtime() < o->deadline);
  atomic_fetch_add(&o->p.ran, 1);
  sleep_past(o->deadline + MS);
  atomic_store(&o->ran_past, 1);
}

/* A running job is not stopped by its deadline: it starts well before
 * (500 ms; a pool that started it later expired it, which fails with its
 * own message), runs past it, and is called back with 0. */
START_TEST(test_running_job_not_stopped_by_deadline) {
  overrun_t o;

  setup(2, 0, 0);
  memset(&o, 0, sizeof(o));
  probe_init(&o.p);
  atomic_init(&o.started_in_time, 0);
  atomic_init(&o.ran_past, 0);
  o.deadline = uv_hrtime() + (uint64_t)500 * MS * timeout_multiplier();
  {
    tandem_job_opts_t opts;

    memset(&opts, 0, sizeof(opts));
    opts.deadline = o.deadline;
    ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &o.p.req, overrun_work_cb,
                                          job_probe_after_cb, &opts),
                     0);
  }
  wait_one(&o.p, "job running past its deadline");
  ck_assert_msg(atomic_load(&o.p.ran) == 1,
                "the job did not start within 500 ms (status %s)",
                uv_err_name(o.p.status));
  ck_assert_int_eq(atomic_load(&o.started_in_time), 1);
  ck_assert_int_eq(atomic_load(&o.ran_past), 1);
  assert_ran_ok(&o.p, "job running past its deadline");
  ck_assert_uint_eq(stats_now().expired, 0);
  teardown();
}
END_TEST

/* Deadlines hold for every class: the worker and the lane held, a HIGH, a
 * NORMAL and a LOW job with a deadline 20 ms away all expire
 * (stats.expired 3). */
START_TEST(test_deadline_applies_to_every_class) {
  static const int classes[3] = {TANDEM_PRIO_HIGH, TANDEM_PRIO_NORMAL,
                                 TANDEM_PRIO_LOW};
  probe_t *all[3];
  worker_gate_t gate;
  uint64_t deadline;
  probe_t blocker;
  probe_t p[3];
  hold_t lane;
  int i;

  setup(1, 0, 0);
  hold_init(&lane);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  lane_block(&blocker, &lane);
  deadline = uv_hrtime() + 20 * MS;
  for (i = 0; i < 3; i++) {
    probe_init(&p[i]);
    all[i] = &p[i];
    ck_assert_int_eq(job_probe_queue(&p[i], classes[i], 0, deadline), 0);
  }
  uv_sleep(50);
  sleep_past(deadline);
  hold_open(&lane);
  open_and_finish(&gate, all, 3);
  all[0] = &blocker;
  wait_called(all, 1, NULL, "lane blocker");
  assert_ran_ok(&blocker, "lane blocker");
  for (i = 0; i < 3; i++)
    assert_expired(&p[i], classes[i] == TANDEM_PRIO_HIGH     ? "HIGH"
                          : classes[i] == TANDEM_PRIO_NORMAL ? "NORMAL"
                                                             : "LOW");
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, expired, 3), 3);
  teardown();
}
END_TEST

/* Cancelled before its deadline: UV_ECANCELED, not UV_ETIMEDOUT, and not
 * counted as expired. */
START_TEST(test_cancel_before_deadline_is_ecanceled) {
  worker_gate_t gate;
  probe_t p;

  setup(1, 0, 0);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&p);
  ck_assert_int_eq(job_probe_queue(&p, 0, 0, uv_hrtime() + 20 * MS), 0);
  ck_assert_int_eq(tandem_cancel(&p.req), 0);
  wait_one(&p, "cancelled job");
  ck_assert_int_eq(p.status, UV_ECANCELED);
  uv_sleep(30);
  open_and_finish(&gate, NULL, 0);
  ck_assert_int_eq(p.called, 1);
  ck_assert_int_eq(atomic_load(&p.ran), 0);
  ck_assert_uint_eq(stats_now().expired, 0);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, cancelled, 1), 1);
  teardown();
}
END_TEST

static Suite *admission_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("admission");

  tc = tcase_create("max_queued");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_max_queued_refuses_beyond_limit);
  tcase_add_test(tc, test_max_queued_frees_a_place_when_a_job_starts);
  tcase_add_test(tc, test_refused_request_can_be_queued_again);
  tcase_add_test(tc, test_max_queued_counts_every_class);
  tcase_add_test(tc, test_high_job_started_on_lane_is_not_waiting);
  tcase_add_test(tc, test_blocking_jobs_count_apart);
  tcase_add_test(tc, test_max_queued_zero_means_no_limit);
  tcase_add_test(tc, test_fork_join_tasks_not_counted);
  tcase_add_test(tc, test_expired_job_is_not_waiting);
  suite_add_tcase(s, tc);

  tc = tcase_create("deadline");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_deadline_passed_while_waiting_expires);
  tcase_add_test(tc, test_deadline_already_past_expires);
  tcase_add_test(tc, test_deadline_already_past_expires_while_workers_busy);
  tcase_add_test(tc, test_far_deadline_runs);
  tcase_add_test(tc, test_running_job_not_stopped_by_deadline);
  tcase_add_test(tc, test_deadline_applies_to_every_class);
  tcase_add_test(tc, test_cancel_before_deadline_is_ecanceled);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(admission_suite());
}
