/* SPDX-License-Identifier: MIT */
/*
 * Job classes (tandem_job_opts_t.priority): a HIGH job starts before every
 * NORMAL or LOW job still waiting, a LOW job only when no HIGH or NORMAL
 * job waits, and each class in the order it was queued; while every worker
 * is busy a HIGH job starts at once on the pool's HIGH lane, which runs
 * nothing else; fork-join inside a HIGH or LOW job works; a bad priority
 * or flag is UV_EINVAL and calls nothing; NULL options are
 * tandem_queue_work().
 *
 * The ordering tests hold the workers with a worker_gate and the HIGH lane
 * with a HIGH job of their own (a hold), queue six jobs interleaved, then
 * let them go: each job takes a ticket (an atomic counter) as it starts.
 */
#include <check.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
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

/* A job that records when it started (its ticket) and how it was called
 * back; its hold, if set, it waits in once it has its ticket. */
typedef job_probe_t probe_t;

static fixture_t fx;           /* each test's pool, loop and handle */
static atomic_int next_ticket; /* the next start's place */

static void setup(unsigned workers) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  fixture_open(&fx, &opts);
  atomic_store(&next_ticket, 0);
}

static void teardown(void) {
  fixture_close(&fx);
}

static void probe_init(probe_t *p, const char *name) {
  job_probe_init(p, &fx);
  p->name = name;
  p->tickets = &next_ticket;
}

static int queue_class(probe_t *p, int priority) {
  return job_probe_queue(p, priority, 0, 0);
}

/* ---------------------------------------------- the HIGH lane, held */

/* A HIGH job queued while every worker is held starts at once on the HIGH
 * lane; this one then stays there until the test opens `hold`, so that
 * the HIGH jobs queued after it wait for a worker like the others. */
typedef struct lane_blocker_s {
  tandem_work_t req;
  hold_t hold;
  int called; /* loop thread only */
  int status;
} lane_blocker_t;

static void lane_blocker_work_cb(tandem_work_t *req) {
  hold_wait(&((lane_blocker_t *)req)->hold);
}

static void lane_blocker_after_cb(tandem_work_t *req, int status) {
  lane_blocker_t *b;

  b = (lane_blocker_t *)req;
  b->called++;
  b->status = status;
}

/* Loop thread, every worker held: occupies the HIGH lane. */
static void lane_block(lane_blocker_t *b) {
  tandem_job_opts_t opts;

  memset(b, 0, sizeof(*b));
  b->status = 1;
  hold_init(&b->hold);
  memset(&opts, 0, sizeof(opts));
  opts.priority = TANDEM_PRIO_HIGH;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &b->req,
                                        lane_blocker_work_cb,
                                        lane_blocker_after_cb, &opts),
                   0);
  ck_assert_msg(wait_atomic_ge(&b->hold.entered, 1, WAIT_MS),
                "a HIGH job queued while every worker was busy did not start"
                " on the HIGH lane");
}

/* ------------------------------------------------------ the six jobs */

#define NJOBS 6

/* Queued in this order: NORMAL, LOW, HIGH, NORMAL, LOW, HIGH. */
static const struct {
  const char *name;
  int priority;
} interleaved[NJOBS] = {
    {"n1", TANDEM_PRIO_NORMAL}, {"a1", TANDEM_PRIO_LOW},
    {"h1", TANDEM_PRIO_HIGH},   {"n2", TANDEM_PRIO_NORMAL},
    {"a2", TANDEM_PRIO_LOW},    {"h2", TANDEM_PRIO_HIGH},
};

/* The order they must start in, once a worker is free for each. */
static const char *const by_class[NJOBS] = {"h1", "h2", "n1", "n2", "a1", "a2"};

/* Queues the six jobs of `interleaved` into p[]: n1 with
 * tandem_queue_work() (a NORMAL job), the others with _ex. */
static void queue_interleaved(probe_t *p, hold_t *hold) {
  int i;

  for (i = 0; i < NJOBS; i++) {
    probe_init(&p[i], interleaved[i].name);
    p[i].hold = hold;
    if (i == 0)
      ck_assert_int_eq(tandem_queue_work(&fx.tandem, &p[i].req,
                                         job_probe_work_cb, job_probe_after_cb),
                       0);
    else
      ck_assert_int_eq(queue_class(&p[i], interleaved[i].priority), 0);
  }
}

/* The names of the jobs that started, in start order ("?" for a ticket
 * no job holds), into buf. */
static const char *start_order(const probe_t *p, int n, char *buf,
                               size_t size) {
  const char *name;
  size_t used;
  int t;
  int i;

  buf[0] = '\0';
  used = 0;
  for (t = 0; t < atomic_load(&next_ticket); t++) {
    name = "?";
    for (i = 0; i < n; i++)
      if (atomic_load(&p[i].ticket) == t)
        name = p[i].name;
    used += (size_t)snprintf(buf + used, size - used, "%s%s", t == 0 ? "" : " ",
                             name);
    if (used >= size)
      break;
  }
  return buf;
}

/* The name of the job with ticket t, or "?". */
static const char *started_at(const probe_t *p, int n, int t) {
  int i;

  for (i = 0; i < n; i++)
    if (atomic_load(&p[i].ticket) == t)
      return p[i].name;
  return "?";
}

/* Every job ran once and was called back once, on the loop thread, with
 * status 0. */
static void assert_all_ran_once(const probe_t *p, int n) {
  int i;

  for (i = 0; i < n; i++) {
    ck_assert_msg(atomic_load(&p[i].ran) == 1, "%s ran %d times", p[i].name,
                  atomic_load(&p[i].ran));
    ck_assert_msg(p[i].called == 1, "%s called back %d times", p[i].name,
                  p[i].called);
    ck_assert_msg(p[i].status == 0, "%s called back with %d", p[i].name,
                  p[i].status);
    ck_assert_int_eq(p[i].off_loop_thread, 0);
  }
}

/* What finish() waits for: n probes and a gate. */
typedef struct finish_s {
  probe_t *p;
  int n;
  worker_gate_t *gate;
} finish_t;

static int finished(void *arg) {
  finish_t *f;
  int i;

  f = arg;
  for (i = 0; i < f->n; i++)
    if (f->p[i].called == 0)
      return 0;
  return f->gate->finished == f->gate->n;
}

static int lane_finished(void *arg) {
  return ((lane_blocker_t *)arg)->called != 0;
}

/* Opens the gate, runs the loop until the n probes and the gate were
 * called back, frees the gate; then (only then, so that none of the probes
 * can run on the lane) opens the lane, if held, and runs the loop until
 * its blocker was called back. */
static void finish(probe_t *p, int n, worker_gate_t *gate,
                   lane_blocker_t *lane) {
  finish_t f;

  f.p = p;
  f.n = n;
  f.gate = gate;
  worker_gate_open(gate);
  ck_assert_msg(run_until(&fx.loop, finished, &f, 10000),
                "jobs not all called back once the workers were free");
  ck_assert_uint_eq(gate->bad_status, 0);
  worker_gate_destroy(gate);
  if (lane == NULL)
    return;
  hold_open(&lane->hold);
  ck_assert_msg(run_until(&fx.loop, lane_finished, lane, 10000),
                "the lane blocker not called back once let go");
  ck_assert_int_eq(lane->called, 1);
  ck_assert_int_eq(lane->status, 0);
  ck_assert_int_eq(atomic_load(&lane->hold.timed_out), 0);
}

/* One worker, the lane held: once the worker is free the six start
 * exactly as h1 h2 n1 n2 a1 a2 -- HIGH before NORMAL before LOW, each
 * class in queued order. */
START_TEST(test_classes_start_high_normal_low_on_one_worker) {
  lane_blocker_t lane;
  worker_gate_t gate;
  probe_t p[NJOBS];
  char order[64];

  setup(1);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  lane_block(&lane);
  queue_interleaved(p, NULL);
  ck_assert_int_eq(atomic_load(&next_ticket), 0);

  finish(p, NJOBS, &gate, &lane);
  ck_assert_str_eq(start_order(p, NJOBS, order, sizeof(order)),
                   "h1 h2 n1 n2 a1 a2");
  assert_all_ran_once(p, NJOBS);

  /* Only the blocker ran on the lane: the others waited for the worker. */
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, high_lane_jobs, 1), 1);
  teardown();
}
END_TEST

/* 1 and 2 workers (_i), the lane held, the six jobs let go one at a time:
 * the first _i to start are the first _i of h1 h2 n1 n2 a1 a2, and each
 * job let go frees its worker for exactly the next one in that order. */
START_TEST(test_classes_start_in_order_one_at_a_time) {
  unsigned workers;
  lane_blocker_t lane;
  worker_gate_t gate;
  probe_t p[NJOBS];
  hold_t hold;
  char order[64];
  const char *name;
  int found;
  int t;
  int k;

  workers = (unsigned)_i;
  setup(workers);
  hold_init(&hold);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  lane_block(&lane);
  queue_interleaved(p, &hold);

  worker_gate_open(&gate);
  ck_assert_msg(wait_atomic_ge(&next_ticket, (int)workers, WAIT_MS),
                "%u workers freed, %d jobs started", workers,
                atomic_load(&next_ticket));
  /* The first ones start at once on the free workers: which takes its
   * ticket first is a race, so compare them as a set. */
  for (t = 0; t < (int)workers; t++) {
    name = started_at(p, NJOBS, t);
    found = 0;
    for (k = 0; k < (int)workers; k++)
      found |= strcmp(name, by_class[k]) == 0;
    ck_assert_msg(found, "job %d to start was %s (order so far: %s)", t, name,
                  start_order(p, NJOBS, order, sizeof(order)));
  }
  for (k = (int)workers; k < NJOBS; k++) {
    hold_release(&hold, 1);
    ck_assert_msg(wait_atomic_ge(&next_ticket, k + 1, WAIT_MS),
                  "a job let go, yet job %d did not start (order so far: %s)",
                  k, start_order(p, NJOBS, order, sizeof(order)));
    ck_assert_msg(strcmp(started_at(p, NJOBS, k), by_class[k]) == 0,
                  "job %d to start was %s, not %s (order: %s)", k,
                  started_at(p, NJOBS, k), by_class[k],
                  start_order(p, NJOBS, order, sizeof(order)));
  }
  hold_open(&hold);
  finish(p, NJOBS, &gate, &lane);
  assert_all_ran_once(p, NJOBS);
  ck_assert_int_eq(atomic_load(&hold.timed_out), 0);
  teardown();
}
END_TEST

static int highs_called(void *arg) {
  probe_t *p;
  int i;

  p = arg;
  for (i = 0; i < NJOBS; i++)
    if (interleaved[i].priority == TANDEM_PRIO_HIGH && p[i].called == 0)
      return 0;
  return 1;
}

/* 1 and 2 workers (_i), every one held, the lane free: the two HIGH jobs
 * run on the lane and are called back with 0 while the gate is still
 * closed (stats.high_lane_jobs counts both); the NORMAL and LOW ones do not
 * start until it opens -- the lane runs only HIGH jobs. */
START_TEST(test_high_jobs_run_on_lane_while_workers_busy) {
  unsigned workers;
  worker_gate_t gate;
  probe_t p[NJOBS];
  char order[64];
  int i;

  workers = (unsigned)_i;
  setup(workers);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  queue_interleaved(p, NULL);

  ck_assert_msg(run_until(&fx.loop, highs_called, p, WAIT_MS),
                "HIGH jobs not run while every worker was busy");
  ck_assert_uint_eq(gate.finished, 0); /* the workers are still held */
  for (i = 0; i < NJOBS; i++) {
    if (interleaved[i].priority == TANDEM_PRIO_HIGH) {
      ck_assert_int_eq(p[i].called, 1);
      ck_assert_int_eq(p[i].status, 0);
      ck_assert_int_eq(atomic_load(&p[i].ran), 1);
    } else {
      ck_assert_msg(atomic_load(&p[i].ran) == 0,
                    "%s started on the HIGH lane while the workers were held",
                    p[i].name);
      ck_assert_int_eq(p[i].called, 0);
    }
  }
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, high_lane_jobs, 2), 2);
  /* One lane: h1 before h2, the order they were queued in. */
  ck_assert_str_eq(start_order(p, NJOBS, order, sizeof(order)), "h1 h2");

  finish(p, NJOBS, &gate, NULL);
  assert_all_ran_once(p, NJOBS);
  if (workers == 1)
    ck_assert_str_eq(start_order(p, NJOBS, order, sizeof(order)),
                     "h1 h2 n1 n2 a1 a2");
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, high_lane_jobs, 2), 2);
  teardown();
}
END_TEST

/* ----------------------------------------- the lane's wake-up, stressed */

#define STRESS_THREADS 2
#define STRESS_JOBS 2000 /* per submitting thread */

typedef struct stress_job_s {
  tandem_work_t req;
  atomic_int ran;
  int called; /* loop thread */
  int status;
} stress_job_t;

typedef struct stress_side_s {
  uv_thread_t thread;
  stress_job_t *jobs;
  int refused; /* queue calls that did not return 0 */
  int stuck;   /* jobs that did not start within the deadline */
} stress_side_t;

static void stress_work(tandem_work_t *req) {
  atomic_fetch_add(&((stress_job_t *)req)->ran, 1);
}

static void stress_after(tandem_work_t *req, int status) {
  stress_job_t *j = (stress_job_t *)req;

  j->called++;
  j->status = status;
}

/* Queues one HIGH job and waits for it to start before the next, so that
 * the lane empties its queue and parks between most of them: two such
 * threads race their pushes against its parks. */
static void stress_submitter(void *arg) {
  stress_side_t *side = arg;
  tandem_job_opts_t opts;
  uint64_t deadline;
  int i;

  memset(&opts, 0, sizeof(opts));
  opts.priority = TANDEM_PRIO_HIGH;
  for (i = 0; i < STRESS_JOBS; i++) {
    if (tandem_queue_work_ex(&fx.tandem, &side->jobs[i].req, stress_work,
                             stress_after, &opts) != 0) {
      side->refused++;
      continue;
    }
    deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000 * timeout_multiplier();
    while (atomic_load(&side->jobs[i].ran) == 0) {
      if (uv_hrtime() > deadline) {
        side->stuck++; /* a lost wake-up: the lane sleeps on our job */
        return;
      }
      sched_yield();
    }
  }
}

static int stress_all_called(void *arg) {
  stress_side_t *sides = arg;
  int s;
  int i;

  for (s = 0; s < STRESS_THREADS; s++)
    for (i = 0; i < STRESS_JOBS; i++)
      if (sides[s].jobs[i].called == 0)
        return 0;
  return 1;
}

/* Every worker held: 2 x 2,000 HIGH jobs from two other threads, each
 * waiting for its job to start before queueing the next, are all run by
 * the lane while the gate is closed -- each exactly once, called back once
 * with 0 on the loop thread -- and none waits past the deadline (a lost
 * lane wake-up would leave it waiting until the gate opened). */
START_TEST(test_lane_wakeups_under_racing_submitters) {
  stress_side_t sides[STRESS_THREADS];
  worker_gate_t gate;
  int s;
  int i;

  setup(2);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  memset(sides, 0, sizeof(sides));
  for (s = 0; s < STRESS_THREADS; s++) {
    sides[s].jobs = calloc(STRESS_JOBS, sizeof(stress_job_t));
    ck_assert_ptr_nonnull(sides[s].jobs);
    ck_assert_int_eq(
        uv_thread_create(&sides[s].thread, stress_submitter, &sides[s]), 0);
  }
  for (s = 0; s < STRESS_THREADS; s++)
    ck_assert_int_eq(uv_thread_join(&sides[s].thread), 0);
  ck_assert_msg(run_until(&fx.loop, stress_all_called, sides, WAIT_MS),
                "HIGH jobs not all called back while the workers were held");
  ck_assert_uint_eq(gate.finished, 0); /* the lane ran them all */
  for (s = 0; s < STRESS_THREADS; s++) {
    ck_assert_int_eq(sides[s].refused, 0);
    ck_assert_msg(sides[s].stuck == 0, "thread %d: a HIGH job never started", s);
    for (i = 0; i < STRESS_JOBS; i++) {
      ck_assert_int_eq(atomic_load(&sides[s].jobs[i].ran), 1);
      ck_assert_int_eq(sides[s].jobs[i].called, 1);
      ck_assert_int_eq(sides[s].jobs[i].status, 0);
    }
  }
  ck_assert_uint_eq(
      STATS_SETTLED(fx.pool, high_lane_jobs, STRESS_THREADS * STRESS_JOBS),
      STRESS_THREADS * STRESS_JOBS);
  finish(NULL, 0, &gate, NULL);
  for (s = 0; s < STRESS_THREADS; s++)
    free(sides[s].jobs);
  teardown();
}
END_TEST

/* A job queued with NULL options is a NORMAL one: behind a held worker it
 * starts before a LOW job queued earlier, and it keeps uv_run() alive as
 * tandem_queue_work() does. */
START_TEST(test_null_options_queue_a_normal_job) {
  worker_gate_t gate;
  probe_t p[2];
  char order[64];

  setup(1);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  probe_init(&p[0], "low");
  probe_init(&p[1], "null");
  ck_assert_int_eq(queue_class(&p[0], TANDEM_PRIO_LOW), 0);
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &p[1].req,
                                        job_probe_work_cb, job_probe_after_cb,
                                        NULL),
                   0);
  finish(p, 2, &gate, NULL);
  assert_all_ran_once(p, 2);
  ck_assert_str_eq(start_order(p, 2, order, sizeof(order)), "null low");

  /* Without a gate: runs and is called back once with 0. */
  probe_init(&p[1], "null");
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &p[1].req,
                                        job_probe_work_cb, job_probe_after_cb,
                                        NULL),
                   0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  assert_all_ran_once(&p[1], 1);
  teardown();
}
END_TEST

/* A zeroed tandem_job_opts_t is the same as NULL: a NORMAL job. */
START_TEST(test_zeroed_options_queue_a_normal_job) {
  tandem_job_opts_t opts;
  probe_t p;

  setup(2);
  probe_init(&p, "zeroed");
  memset(&opts, 0, sizeof(opts));
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &p.req, job_probe_work_cb,
                                        job_probe_after_cb, &opts),
                   0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  assert_all_ran_once(&p, 1);
  teardown();
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

/* A priority other than TANDEM_PRIO_*, or an unknown flag: UV_EINVAL,
 * nothing called, nothing left keeping the loop alive, and the request is
 * not in flight (it can be queued again at once). */
START_TEST(test_bad_priority_or_flags_einval_calls_nothing) {
  static const int bad_priorities[] = {2, -2, 100, INT_MAX, INT_MIN};
  static const unsigned bad_flags[] = {2u, 0x80u, TANDEM_JOB_BLOCKING | 2u,
                                       ~0u};
  tandem_job_opts_t opts;
  tandem_work_t req;
  probe_t p;
  size_t i;

  setup(2);
  memset(&req, 0, sizeof(req));
  for (i = 0; i < sizeof(bad_priorities) / sizeof(bad_priorities[0]); i++) {
    memset(&opts, 0, sizeof(opts));
    opts.priority = bad_priorities[i];
    ck_assert_msg(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                       never_after_cb, &opts) == UV_EINVAL,
                  "priority %d not refused with UV_EINVAL", bad_priorities[i]);
  }
  for (i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
    memset(&opts, 0, sizeof(opts));
    opts.flags = bad_flags[i];
    ck_assert_msg(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                       never_after_cb, &opts) == UV_EINVAL,
                  "flags %#x not refused with UV_EINVAL", bad_flags[i]);
  }
  /* A good priority with a bad flag, a bad priority with a good flag. */
  memset(&opts, 0, sizeof(opts));
  opts.priority = TANDEM_PRIO_HIGH;
  opts.flags = 0x80u;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                        never_after_cb, &opts),
                   UV_EINVAL);
  opts.priority = 2;
  opts.flags = TANDEM_JOB_BLOCKING;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &req, never_work_cb,
                                        never_after_cb, &opts),
                   UV_EINVAL);
  /* NULL arguments, with options. */
  memset(&opts, 0, sizeof(opts));
  ck_assert_int_eq(
      tandem_queue_work_ex(NULL, &req, never_work_cb, never_after_cb, &opts),
      UV_EINVAL);
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, NULL, never_work_cb,
                                        never_after_cb, &opts),
                   UV_EINVAL);
  ck_assert_int_eq(
      tandem_queue_work_ex(&fx.tandem, &req, NULL, never_after_cb, &opts),
      UV_EINVAL);

  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_NOWAIT), 0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);

  /* The refused request is not in flight: it queues now. */
  probe_init(&p, "after-refusal");
  memset(&opts, 0, sizeof(opts));
  opts.priority = 2;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &p.req, never_work_cb,
                                        never_after_cb, &opts),
                   UV_EINVAL);
  opts.priority = TANDEM_PRIO_LOW;
  ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &p.req, job_probe_work_cb,
                                        job_probe_after_cb, &opts),
                   0);
  ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  assert_all_ran_once(&p, 1);
  teardown();
}
END_TEST

/* Queuing a request still in flight with _ex: UV_EBUSY, whatever its
 * class, and it is called back once. */
START_TEST(test_in_flight_request_ebusy_with_options) {
  worker_gate_t gate;
  probe_t p;

  setup(1);
  probe_init(&p, "busy");
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  ck_assert_int_eq(queue_class(&p, TANDEM_PRIO_LOW), 0);
  ck_assert_int_eq(queue_class(&p, TANDEM_PRIO_HIGH), UV_EBUSY);
  ck_assert_int_eq(queue_class(&p, TANDEM_PRIO_NORMAL), UV_EBUSY);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &p.req, job_probe_work_cb,
                                     job_probe_after_cb),
                   UV_EBUSY);
  finish(&p, 1, &gate, NULL);
  assert_all_ran_once(&p, 1);
  teardown();
}
END_TEST

/* HIGH and LOW jobs waiting in their own queues are cancelled there: 0,
 * UV_ECANCELED on the next loop iteration while the workers and the lane
 * are still held, never run; the NORMAL job beside them runs. */
START_TEST(test_cancel_waiting_high_and_low_jobs) {
  lane_blocker_t lane;
  worker_gate_t gate;
  probe_t h, a, n;

  setup(1);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  lane_block(&lane);
  probe_init(&h, "h");
  probe_init(&a, "a");
  probe_init(&n, "n");
  ck_assert_int_eq(queue_class(&h, TANDEM_PRIO_HIGH), 0);
  ck_assert_int_eq(queue_class(&a, TANDEM_PRIO_LOW), 0);
  ck_assert_int_eq(queue_class(&n, TANDEM_PRIO_NORMAL), 0);

  ck_assert_int_eq(tandem_cancel(&h.req), 0);
  ck_assert_int_eq(tandem_cancel(&a.req), 0);
  ck_assert_int_eq(h.called + a.called, 0); /* not from inside cancel */
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  ck_assert_msg(h.called == 1 && a.called == 1,
                "cancelled HIGH/LOW jobs not called back on the next loop"
                " iteration (%d, %d)",
                h.called, a.called);
  ck_assert_int_eq(h.status, UV_ECANCELED);
  ck_assert_int_eq(a.status, UV_ECANCELED);
  ck_assert_uint_eq(gate.finished, 0);
  ck_assert_int_eq(lane.called, 0);

  finish(&n, 1, &gate, &lane);
  assert_all_ran_once(&n, 1);
  ck_assert_int_eq(atomic_load(&h.ran), 0);
  ck_assert_int_eq(atomic_load(&a.ran), 0);
  ck_assert_int_eq(h.called, 1);
  ck_assert_int_eq(a.called, 1);
  ck_assert_uint_eq(STATS_SETTLED(fx.pool, cancelled, 2), 2);
  teardown();
}
END_TEST

/* ------------------------------------------------ fork-join by class */

#define FJ_N 20000u
#define FJ_FIB 24u
#define FJ_FIB_VALUE 46368u

typedef struct fj_job_s {
  tandem_work_t req;
  tandem_pool_t *pool;
  atomic_int started;
  unsigned char seen[FJ_N]; /* each index's visits (disjoint pieces) */
  int pf_rc;
  uint64_t fib;
  /* loop thread only */
  int called;
  int status;
  int off_loop_thread;
} fj_job_t;

typedef struct fib_s {
  unsigned n;
  uint64_t r;
} fib_t;

static uint64_t fib_serial(unsigned n) {
  return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static void fib_join(void *arg) {
  fib_t *f;
  fib_t a;
  fib_t b;

  f = arg;
  if (f->n <= 12) {
    f->r = fib_serial(f->n);
    return;
  }
  a.n = f->n - 1;
  b.n = f->n - 2;
  tandem_join(fib_join, &a, fib_join, &b);
  f->r = a.r + b.r;
}

static void fj_body(size_t lo, size_t hi, void *ctx) {
  fj_job_t *j;
  size_t i;

  j = ctx;
  for (i = lo; i < hi; i++)
    j->seen[i]++;
}

static void fj_work_cb(tandem_work_t *req) {
  fj_job_t *j;
  fib_t f;

  j = (fj_job_t *)req;
  atomic_store(&j->started, 1);
  j->pf_rc = tandem_parallel_for(j->pool, 0, FJ_N, 16, fj_body, j);
  f.n = FJ_FIB;
  f.r = 0;
  fib_join(&f);
  j->fib = f.r;
}

static void fj_after_cb(tandem_work_t *req, int status) {
  uv_thread_t self;
  fj_job_t *j;

  j = (fj_job_t *)req;
  self = uv_thread_self();
  if (!uv_thread_equal(&self, &fx.loop_thread))
    j->off_loop_thread++;
  j->called++;
  j->status = status;
}

static fj_job_t *fj_new(void) {
  fj_job_t *j;

  j = calloc(1, sizeof(*j));
  ck_assert_ptr_nonnull(j);
  j->pool = fx.pool;
  atomic_init(&j->started, 0);
  j->status = 1;
  return j;
}

static int fj_queue(fj_job_t *j, int priority) {
  tandem_job_opts_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.priority = priority;
  return tandem_queue_work_ex(&fx.tandem, &j->req, fj_work_cb, fj_after_cb,
                              &opts);
}

static int fj_called(void *arg) {
  return ((fj_job_t *)arg)->called != 0;
}

static void fj_assert_done(const fj_job_t *j) {
  unsigned bad;
  unsigned i;

  ck_assert_int_eq(j->called, 1);
  ck_assert_int_eq(j->status, 0);
  ck_assert_int_eq(j->off_loop_thread, 0);
  ck_assert_int_eq(j->pf_rc, 0);
  bad = 0;
  for (i = 0; i < FJ_N; i++)
    if (j->seen[i] != 1)
      bad++;
  ck_assert_msg(bad == 0, "%u indices not visited exactly once", bad);
  ck_assert_uint_eq(j->fib, FJ_FIB_VALUE);
}

/* A HIGH job and a LOW job on free workers (1 and 2 of them, _i) run
 * tandem_parallel_for and tandem_join to the right results: their
 * children, which take the job's class, run. */
START_TEST(test_fork_join_inside_high_and_low_jobs) {
  fj_job_t *hi;
  fj_job_t *lo;

  setup((unsigned)_i);
  hi = fj_new();
  lo = fj_new();
  ck_assert_int_eq(fj_queue(hi, TANDEM_PRIO_HIGH), 0);
  ck_assert_int_eq(fj_queue(lo, TANDEM_PRIO_LOW), 0);
  ck_assert_msg(run_until(&fx.loop, fj_called, hi, 30000),
                "HIGH fork-join job not called back");
  ck_assert_msg(run_until(&fx.loop, fj_called, lo, 30000),
                "LOW fork-join job not called back");
  fj_assert_done(hi);
  fj_assert_done(lo);
  free(hi);
  free(lo);
  teardown();
}
END_TEST

/* A HIGH job started on the lane (every worker held) forks and joins: once
 * the workers are free it completes with the right results, wherever its
 * children ran (the lane or the workers). */
START_TEST(test_fork_join_inside_high_job_on_lane) {
  worker_gate_t gate;
  fj_job_t *j;

  setup((unsigned)_i);
  ck_assert_int_eq(worker_gate_block(&gate, &fx.tandem), 0);
  j = fj_new();
  ck_assert_int_eq(fj_queue(j, TANDEM_PRIO_HIGH), 0);
  ck_assert_msg(wait_atomic_ge(&j->started, 1, WAIT_MS),
                "HIGH job did not start on the lane while the workers were"
                " held");
  worker_gate_open(&gate);
  ck_assert_msg(run_until(&fx.loop, fj_called, j, 30000),
                "HIGH fork-join job on the lane not called back");
  fj_assert_done(j);
  finish(NULL, 0, &gate, NULL);
  ck_assert_uint_ge(STATS_SETTLED(fx.pool, high_lane_jobs, 1), 1);
  free(j);
  teardown();
}
END_TEST

static Suite *priority_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("priority");

  tc = tcase_create("order");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_classes_start_high_normal_low_on_one_worker);
  tcase_add_loop_test(tc, test_classes_start_in_order_one_at_a_time, 1, 3);
  tcase_add_test(tc, test_null_options_queue_a_normal_job);
  tcase_add_test(tc, test_cancel_waiting_high_and_low_jobs);
  suite_add_tcase(s, tc);

  tc = tcase_create("lane");
  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_high_jobs_run_on_lane_while_workers_busy, 1, 3);
  tcase_add_test(tc, test_lane_wakeups_under_racing_submitters);
  suite_add_tcase(s, tc);

  tc = tcase_create("forkjoin");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_fork_join_inside_high_and_low_jobs, 1, 3);
  tcase_add_loop_test(tc, test_fork_join_inside_high_job_on_lane, 1, 3);
  suite_add_tcase(s, tc);

  tc = tcase_create("input");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_zeroed_options_queue_a_normal_job);
  tcase_add_test(tc, test_bad_priority_or_flags_einval_calls_nothing);
  tcase_add_test(tc, test_in_flight_request_ebusy_with_options);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(priority_suite());
}
