/* SPDX-License-Identifier: MIT */
/*
 * priority: what job classes, admission and the blocking side buy.
 *
 * Three parts, each a loop thread feeding a pool.  A job's "wait" is the
 * time from its queue call to the start of its work callback, uv_hrtime()
 * in both, the queue time kept in the job's own request struct.  Jobs
 * spin (spin.h) for a fixed time, derived from one calibration of a 1 ms
 * job whose single-thread time is measured again around each repetition.
 *
 *   saturated  Every worker runs 10 ms jobs: 3 x workers of them in flight
 *              (one running on each worker and a backlog of 2 per worker),
 *              each queued again from its after callback.  Every 5 ms a
 *              uv_timer queues a 10 us probe job.  Five cases, interleaved
 *              in each repetition: uv_queue_work (UV_THREADPOOL_SIZE =
 *              workers) without probes and with them; tandem without probes,
 *              with NORMAL probes and with HIGH probes.  Reported: the
 *              probes' wait (p50, p99, p99.9 over every probe of every
 *              repetition) and the 10 ms jobs finished per second, with and
 *              without probes.
 *   overload   1 ms jobs offered at twice what the pool can run (2 x workers
 *              / job time), open loop: a 1 ms timer queues as many as the
 *              rate says are due by now, whatever happened to the earlier
 *              ones.  Once on a pool with max_queued = 4 x workers, once on
 *              one without a limit, 2 x --seconds each.  Each job carries a
 *              payload (--payload bytes, as a request carries its input), so
 *              a queue that grows shows in RSS.  Reported each second: RSS
 *              (/proc/self/statm), jobs waiting, accepted, rejected,
 *              completed, the accepted jobs' wait p99; over the run: goodput
 *              (jobs completed per second against workers / job time) and
 *              the accepted jobs' wait.  At the end the jobs still waiting
 *              are let through without spinning.
 *   blocking   100 us compute jobs, 32 per worker in flight, for --seconds,
 *              without and with 100 TANDEM_JOB_BLOCKING jobs that sleep the
 *              whole run (uv_sleep in 50 ms slices until released, so the
 *              run ends cleanly); the pool's blocking_max is 128.
 *
 * The JSON report (cli.h: stdout or --json FILE) names every number with
 * its unit; bench/tandem-bench prints the tables and the bars.
 *
 * Run:   build/bench/priority [--workers N] [--reps R] [--quick | --tiny]
 *                             [--json FILE] [--seconds S] [--parts LIST]
 *                             [--payload BYTES]
 * --reps defaults to 3 (1 with --quick or --tiny), --seconds to 5 (2 with
 * --quick, 0.3 with --tiny); --parts runs some parts only (saturated,
 * overload, blocking).  A quick run takes about 25 s.  Every phase is
 * bounded by a watchdog.
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "tandem.h"

#include "cli.h"
#include "json_write.h"
#include "spin.h"
#include "stats.h"

#define MAX_REPS BENCH_MAX_REPS
#define CONTAINER_OF(ptr, type, field)                                         \
  ((type *)((char *)(ptr)-offsetof(type, field)))

/* saturated */
#define A_JOB_NS 10000000u     /* a load job spins 10 ms */
#define A_PROBE_NS 10000u      /* a probe spins 10 us */
#define A_PROBE_EVERY_MS 5     /* a probe is queued this often */
#define A_BACKLOG_PER_WORKER 2 /* load jobs waiting, beyond one per worker */
/* Probe requests; with none free, a probe is dropped (and counted). */
#define A_PROBES_MAX 1024
/* After the window, how long the load keeps running for probes that still
 * wait. */
#define A_SETTLE_MS 2000
/* overload */
#define B_JOB_NS 1000000u    /* a job spins 1 ms */
#define B_OFFER_FACTOR 2     /* offered = this x the pool's capacity */
#define B_QUEUE_PER_WORKER 4 /* max_queued = this x workers */
#define B_TICK_MS 1          /* the open loop's timer */
#define B_PAYLOAD_DEFAULT 1024
#define B_PAYLOAD_MAX (1u << 20)
/* blocking */
#define C_JOB_NS 100000u /* a compute job spins 100 us */
#define C_INFLIGHT_PER_WORKER 32
#define C_SLEEPERS 100
#define C_BLOCKING_MAX 128   /* the pool's blocking_max (>= C_SLEEPERS) */
#define C_SLICE_MS 50        /* a sleeper checks its release this often */
#define C_START_WAIT_MS 3000 /* the longest to wait for every sleeper */
/* every phase */
#define WARMUP_MS 250           /* before a window opens (tiny: 50) */
#define WATCHDOG_EXTRA_MS 30000 /* a phase gives up this long after its end */

enum { PART_SATURATED, PART_OVERLOAD, PART_BLOCKING, NPARTS };
static const char *const part_keys[NPARTS] = {"saturated", "overload",
                                              "blocking"};

enum {
  A_UV_ALONE,
  A_UV_NORMAL,
  A_TANDEM_ALONE,
  A_TANDEM_NORMAL,
  A_TANDEM_HIGH,
  NCASES_A
};
static const struct {
  int via_uv;
  int probes;
  int priority; /* of the probes */
  const char *peer;
  const char *probes_key;
} a_cases[NCASES_A] = {
    {1, 0, TANDEM_PRIO_NORMAL, "uv_n", "none"},
    {1, 1, TANDEM_PRIO_NORMAL, "uv_n", "normal"},
    {0, 0, TANDEM_PRIO_NORMAL, "tandem", "none"},
    {0, 1, TANDEM_PRIO_NORMAL, "tandem", "normal"},
    {0, 1, TANDEM_PRIO_HIGH, "tandem", "high"},
};

enum { B_LIMITED, B_UNLIMITED, NCASES_B };
enum { C_ALONE, C_SLEEPING, NCASES_C };

/* A growable sample of doubles. */
typedef struct sample_s {
  double *v;
  size_t n;
  size_t cap;
} sample_t;

/* One second of an overload run. */
typedef struct b_second_s {
  double t_s;
  uint64_t rss_bytes;
  uint64_t waiting;     /* accepted and not started */
  uint64_t pool_queued; /* tandem_stats_t.queued */
  uint64_t accepted;    /* so far */
  uint64_t rejected;
  uint64_t completed;
  double wait_p99_us; /* of the jobs that started in the second before */
} b_second_t;

typedef struct b_result_s {
  uint64_t offered;
  uint64_t accepted;
  uint64_t rejected;
  uint64_t completed; /* ran to the end inside the run */
  uint64_t waiting_at_end;
  uint64_t jobs_allocated; /* request structs made: the backlog's high mark */
  double seconds;
  double goodput_per_s;
  double capacity_per_s;
  double wait_p50_us;
  double wait_p99_us;
  double wait_max_us;
  size_t nwaits;
  b_second_t *per_second;
  unsigned nseconds;
} b_result_t;

typedef struct c_result_s {
  double jobs_per_s;
  double capacity_fraction;
  unsigned sleepers_started; /* when the window opened */
  unsigned blocking_threads; /* tandem_stats_t, at the window's end */
} c_result_t;

typedef struct bench_s {
  bench_cli_t cli;
  unsigned workers;
  unsigned reps;
  double seconds;
  unsigned warmup_ms;
  unsigned parts; /* a bit per part */
  unsigned payload;
  uint64_t iters_per_ms;  /* spin_run() rounds in 1 ms */
  stats_summary_t ms_job; /* the 1 ms job on one thread, at start (ns) */
  double rep_ms_job_ns[MAX_REPS]; /* the same around each repetition */
  uv_loop_t loop;
  uv_timer_t tick;             /* a phase's repeating timer */
  uv_timer_t stop;             /* closes a phase's window */
  uv_timer_t settle;           /* a phase's backstop after the window */
  uv_timer_t watchdog;         /* gives up on a stuck phase */
  tandem_pool_t *pool;         /* blocking_max 128, no admission limit */
  tandem_pool_t *pool_limited; /* max_queued = 4 x workers */
  tandem_t t;
  tandem_t t_limited;
  unsigned threads;  /* workers of tandem's pools */
  const char *phase; /* for the watchdog's message */
  /* results */
  double a_jobs_per_s[NCASES_A][MAX_REPS];
  sample_t a_waits[NCASES_A]; /* us, every rep */
  double a_rep_p99_us[NCASES_A][MAX_REPS];
  uint64_t a_dropped[NCASES_A];
  b_result_t b[NCASES_B][MAX_REPS];
  c_result_t c[NCASES_C][MAX_REPS];
} bench_t;

static bench_t bench;

/* Read by the workers: written before any job of a phase is queued. */
static uint64_t iters_a_job;
static uint64_t iters_a_probe;
static uint64_t iters_b_job;
static uint64_t iters_c_job;
/* Set at a phase's end: jobs that start afterwards return at once. */
static atomic_int draining;
/* Set to end the blocking sleepers' sleep. */
static atomic_int release_sleepers;

/* ------------------------------------------------------------- helpers */

static int report_err(const char *what, int err) {
  return bench_cli_error(&bench.cli, what, err);
}

static int selected(int part) {
  return (bench.parts & (1u << part)) != 0;
}

static uint64_t ms_to_ns(double ms) {
  return (uint64_t)(ms * 1e6);
}

/* The resident set of this process in bytes, from /proc/self/statm; 0 if
 * it cannot be read. */
static uint64_t rss_bytes(void) {
  unsigned long size;
  unsigned long resident;
  FILE *f;
  int n;

  f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    return 0;
  n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  if (n != 2)
    return 0;
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int sample_push(sample_t *s, double v) {
  double *nv;
  size_t cap;

  if (s->n == s->cap) {
    cap = s->cap != 0 ? 2 * s->cap : 1024;
    nv = realloc(s->v, cap * sizeof(*nv));
    if (nv == NULL)
      return UV_ENOMEM;
    s->v = nv;
    s->cap = cap;
  }
  s->v[s->n++] = v;
  return 0;
}

/* Allocates n bytes and writes every page now, so that memory the
 * benchmark itself needs does not show as RSS growth during a run.  (Not
 * zeroes: a compiler may turn malloc + memset 0 into calloc, which writes
 * nothing.) */
static void *alloc_touched(size_t n) {
  void *p = malloc(n > 0 ? n : 1);

  if (p != NULL)
    memset(p, 0xa5, n);
  return p;
}

static void watchdog_cb(uv_timer_t *timer) {
  (void)timer;
  fprintf(stderr,
          "priority: %s: still running %d s after its end, giving "
          "up\n",
          bench.phase, WATCHDOG_EXTRA_MS / 1000);
  /* _exit: exit() would join threads that may be stuck too. */
  fflush(stdout);
  _exit(EXIT_FAILURE);
}

/* Runs the loop until the phase's jobs and timers are done, under a
 * watchdog that fires WATCHDOG_EXTRA_MS after `expected_ms`. */
static int run_phase(const char *phase, double expected_ms) {
  int err;

  bench.phase = phase;
  err = uv_timer_start(&bench.watchdog, watchdog_cb,
                       (uint64_t)expected_ms + WATCHDOG_EXTRA_MS, 0);
  if (err != 0)
    return err;
  uv_run(&bench.loop, UV_RUN_DEFAULT);
  uv_timer_stop(&bench.watchdog);
  return 0;
}

/* ------------------------------------------------- part a: saturated */

typedef struct a_run_s a_run_t;

/* A load job or a probe. */
typedef struct a_job_s {
  uv_work_t uv;
  tandem_work_t tw;
  a_run_t *run;
  uint64_t queued_ns;
  uint64_t start_ns;
  uint64_t end_ns;
  int probe;
  struct a_job_s *next_free;
} a_job_t;

struct a_run_s {
  int via_uv;
  int probe_priority;
  uint64_t t0; /* the window */
  uint64_t t1;
  uint64_t load_done; /* load jobs that ended inside the window */
  a_job_t *load;
  a_job_t *probes;
  a_job_t *free_probes;
  unsigned probes_out; /* queued and not called back */
  unsigned pending;    /* every job queued and not called back */
  int window_closed;
  int stopping;
  uint64_t dropped;
  sample_t *waits;
  size_t waits_before; /* waits->n when this run began */
  int err;
};

static void a_work(a_job_t *job) {
  job->start_ns = uv_hrtime();
  if (!atomic_load_explicit(&draining, memory_order_relaxed))
    spin_run(job->probe ? iters_a_probe : iters_a_job);
  job->end_ns = uv_hrtime();
}

static void a_uv_work(uv_work_t *req) {
  a_work(CONTAINER_OF(req, a_job_t, uv));
}

static void a_tandem_work(tandem_work_t *req) {
  a_work(CONTAINER_OF(req, a_job_t, tw));
}

static void a_uv_after(uv_work_t *req, int status);
static void a_tandem_after(tandem_work_t *req, int status);

static int a_queue(a_run_t *r, a_job_t *job, int priority) {
  tandem_job_opts_t opts;
  int err;

  memset(&opts, 0, sizeof(opts));
  opts.priority = priority;
  job->queued_ns = uv_hrtime();
  if (r->via_uv)
    err = uv_queue_work(&bench.loop, &job->uv, a_uv_work, a_uv_after);
  else
    err = tandem_queue_work_ex(&bench.t, &job->tw, a_tandem_work,
                               a_tandem_after, &opts);
  if (err == 0)
    r->pending++;
  return err;
}

/* Ends the run: no more probes or new load; what is queued returns at
 * once. */
static void a_stop(a_run_t *r) {
  if (r->stopping)
    return;
  r->stopping = 1;
  atomic_store(&draining, 1);
  uv_timer_stop(&bench.tick);
  uv_timer_stop(&bench.stop);
  uv_timer_stop(&bench.settle);
}

static void a_fail(a_run_t *r, int err) {
  if (r->err == 0)
    r->err = err;
  a_stop(r);
}

static void a_after(a_job_t *job, int status) {
  a_run_t *r = job->run;
  int err;

  r->pending--;
  if (status != 0)
    a_fail(r, status);
  if (job->probe) {
    if (status == 0 && job->queued_ns >= r->t0 && job->queued_ns < r->t1 &&
        (err = sample_push(r->waits, (double)(job->start_ns - job->queued_ns) /
                                         1e3)) != 0)
      a_fail(r, err);
    job->next_free = r->free_probes;
    r->free_probes = job;
    r->probes_out--;
    /* Every probe of the window has started: the load may stop. */
    if (r->window_closed && r->probes_out == 0)
      a_stop(r);
    return;
  }
  if (status == 0 && job->end_ns >= r->t0 && job->end_ns <= r->t1)
    r->load_done++;
  if (r->stopping)
    return;
  err = a_queue(r, job, TANDEM_PRIO_NORMAL);
  if (err != 0)
    a_fail(r, err);
}

static void a_uv_after(uv_work_t *req, int status) {
  a_after(CONTAINER_OF(req, a_job_t, uv), status);
}

static void a_tandem_after(tandem_work_t *req, int status) {
  a_after(CONTAINER_OF(req, a_job_t, tw), status);
}

static void a_probe_cb(uv_timer_t *timer) {
  a_run_t *r = timer->data;
  a_job_t *job = r->free_probes;
  int err;

  if (job == NULL) {
    r->dropped++;
    return;
  }
  r->free_probes = job->next_free;
  err = a_queue(r, job, r->probe_priority);
  if (err != 0) {
    job->next_free = r->free_probes;
    r->free_probes = job;
    a_fail(r, err);
    return;
  }
  r->probes_out++;
}

static void a_settle_cb(uv_timer_t *timer) {
  a_stop(timer->data);
}

/* The window is over: no more probes; the load keeps running until the
 * probes still waiting have started (at most A_SETTLE_MS), so that their
 * wait is the wait behind a full load. */
static void a_window_cb(uv_timer_t *timer) {
  a_run_t *r = timer->data;
  int err;

  uv_timer_stop(&bench.tick);
  r->window_closed = 1;
  if (r->probes_out == 0) {
    a_stop(r);
    return;
  }
  bench.settle.data = r;
  err = uv_timer_start(&bench.settle, a_settle_cb, A_SETTLE_MS, 0);
  if (err != 0)
    a_fail(r, err);
}

static int a_measure(int c, unsigned rep) {
  static char phase[64];
  unsigned nload = bench.workers * (1 + A_BACKLOG_PER_WORKER);
  uint64_t window_ns = ms_to_ns(bench.seconds * 1e3);
  double p99;
  a_run_t r;
  unsigned i;
  int err;

  memset(&r, 0, sizeof(r));
  r.via_uv = a_cases[c].via_uv;
  r.probe_priority = a_cases[c].priority;
  r.waits = &bench.a_waits[c];
  r.waits_before = r.waits->n;
  r.load = calloc(nload, sizeof(*r.load));
  r.probes = calloc(A_PROBES_MAX, sizeof(*r.probes));
  if (r.load == NULL || r.probes == NULL) {
    free(r.load);
    free(r.probes);
    return report_err("saturated", UV_ENOMEM);
  }
  for (i = 0; i < A_PROBES_MAX; i++) {
    r.probes[i].run = &r;
    r.probes[i].probe = 1;
    r.probes[i].next_free = i + 1 < A_PROBES_MAX ? &r.probes[i + 1] : NULL;
  }
  r.free_probes = &r.probes[0];
  atomic_store(&draining, 0);
  r.t0 = uv_hrtime() + ms_to_ns(bench.warmup_ms);
  r.t1 = r.t0 + window_ns;
  for (i = 0; i < nload && r.err == 0; i++) {
    r.load[i].run = &r;
    err = a_queue(&r, &r.load[i], TANDEM_PRIO_NORMAL);
    if (err != 0)
      a_fail(&r, err);
  }
  bench.tick.data = &r;
  bench.stop.data = &r;
  err = 0;
  if (r.err == 0 && a_cases[c].probes)
    err = uv_timer_start(&bench.tick, a_probe_cb, A_PROBE_EVERY_MS,
                         A_PROBE_EVERY_MS);
  if (r.err == 0 && err == 0)
    err = uv_timer_start(&bench.stop, a_window_cb,
                         bench.warmup_ms + (uint64_t)(bench.seconds * 1e3) + 1,
                         0);
  if (err != 0)
    a_fail(&r, err);
  snprintf(phase, sizeof(phase), "saturated, %s, %s probes", a_cases[c].peer,
           a_cases[c].probes_key);
  err = run_phase(phase, bench.warmup_ms + bench.seconds * 1e3 + A_SETTLE_MS);
  if (err == 0)
    err = r.err;
  if (err == 0 && r.pending != 0)
    err = UV_EPROTO;
  free(r.load);
  free(r.probes);
  if (err != 0)
    return report_err(phase, err);
  bench.a_jobs_per_s[c][rep] = (double)r.load_done * 1e9 / (double)window_ns;
  bench.a_dropped[c] += r.dropped;
  p99 = NAN;
  if (r.waits->n > r.waits_before)
    p99 = stats_percentile(r.waits->v + r.waits_before,
                           r.waits->n - r.waits_before, 99);
  bench.a_rep_p99_us[c][rep] = p99;
  return 0;
}

/* -------------------------------------------------- part b: overload */

typedef struct b_run_s b_run_t;

typedef struct b_job_s {
  tandem_work_t req;
  b_run_t *run;
  uint64_t queued_ns;
  uint64_t start_ns;
  uint64_t end_ns;
  int ran; /* spun its whole time (not let through at the end) */
  struct b_job_s *next_free;
  struct b_job_s *next_all;
  unsigned char payload[]; /* bench.payload bytes */
} b_job_t;

struct b_run_s {
  tandem_t *t;
  tandem_pool_t *pool;
  double rate_per_ns;
  uint64_t t_start;
  uint64_t t_end;
  uint64_t next_second_ns;
  atomic_uint_fast64_t started; /* work callbacks begun; workers add */
  uint64_t pending;             /* accepted and not called back */
  b_job_t *free;
  b_job_t *all;
  double *wait_us; /* accepted jobs that started inside the run */
  uint32_t *wait_second;
  size_t nwaits;
  size_t cap_waits;
  b_result_t *res;
  unsigned cap_seconds;
  int ended;
  int err;
};

static void b_work(tandem_work_t *req) {
  b_job_t *job = CONTAINER_OF(req, b_job_t, req);

  atomic_fetch_add_explicit(&job->run->started, 1, memory_order_relaxed);
  job->start_ns = uv_hrtime();
  if (!atomic_load_explicit(&draining, memory_order_relaxed)) {
    spin_run(iters_b_job);
    job->ran = 1;
  }
  job->end_ns = uv_hrtime();
}

static void b_free(b_run_t *r, b_job_t *job) {
  job->next_free = r->free;
  r->free = job;
}

static b_job_t *b_alloc(b_run_t *r) {
  b_job_t *job = r->free;

  if (job != NULL) {
    r->free = job->next_free;
    return job;
  }
  job = malloc(sizeof(*job) + bench.payload);
  if (job == NULL)
    return NULL;
  memset(job, 0, sizeof(*job));
  memset(job->payload, 0x5a, bench.payload);
  job->run = r;
  job->next_all = r->all;
  r->all = job;
  r->res->jobs_allocated++;
  return job;
}

static void b_after(tandem_work_t *req, int status) {
  b_job_t *job = CONTAINER_OF(req, b_job_t, req);
  b_run_t *r = job->run;
  uint64_t sec;

  r->pending--;
  if (status != 0 && r->err == 0)
    r->err = status;
  if (status == 0 && job->start_ns <= r->t_end && r->nwaits < r->cap_waits) {
    sec = (job->start_ns - r->t_start) / 1000000000u;
    r->wait_us[r->nwaits] = (double)(job->start_ns - job->queued_ns) / 1e3;
    r->wait_second[r->nwaits] = (uint32_t)sec;
    r->nwaits++;
  }
  if (status == 0 && job->ran && job->end_ns <= r->t_end)
    r->res->completed++;
  b_free(r, job);
}

static void b_offer(b_run_t *r) {
  tandem_job_opts_t opts;
  b_job_t *job;
  int err;

  job = b_alloc(r);
  if (job == NULL) {
    r->err = UV_ENOMEM;
    return;
  }
  r->res->offered++;
  job->ran = 0;
  memset(&opts, 0, sizeof(opts));
  job->queued_ns = uv_hrtime();
  err = tandem_queue_work_ex(r->t, &job->req, b_work, b_after, &opts);
  if (err == 0) {
    r->res->accepted++;
    r->pending++;
    return;
  }
  b_free(r, job);
  if (err == UV_EAGAIN)
    r->res->rejected++;
  else
    r->err = err;
}

static void b_second(b_run_t *r, uint64_t now) {
  tandem_stats_t st;
  b_second_t *s;

  if (r->res->nseconds >= r->cap_seconds)
    return;
  s = &r->res->per_second[r->res->nseconds++];
  s->t_s = (double)(now - r->t_start) / 1e9;
  s->rss_bytes = rss_bytes();
  s->waiting = r->res->accepted -
               atomic_load_explicit(&r->started, memory_order_relaxed);
  s->pool_queued = 0;
  if (tandem_pool_stats(r->pool, &st) == 0)
    s->pool_queued = st.queued;
  s->accepted = r->res->accepted;
  s->rejected = r->res->rejected;
  s->completed = r->res->completed;
  s->wait_p99_us = NAN;
}

static void b_end(b_run_t *r, uint64_t now) {
  if (r->ended)
    return;
  r->ended = 1;
  uv_timer_stop(&bench.tick);
  b_second(r, now);
  r->res->waiting_at_end =
      r->res->accepted -
      atomic_load_explicit(&r->started, memory_order_relaxed);
  /* Let the backlog through: the run is over. */
  atomic_store(&draining, 1);
}

static void b_tick_cb(uv_timer_t *timer) {
  b_run_t *r = timer->data;
  uint64_t now = uv_hrtime();
  uint64_t due;

  while (now >= r->next_second_ns && r->next_second_ns < r->t_end) {
    b_second(r, r->next_second_ns);
    r->next_second_ns += 1000000000u;
  }
  if (now >= r->t_end || r->err != 0) {
    b_end(r, now);
    return;
  }
  due = (uint64_t)((double)(now - r->t_start) * r->rate_per_ns);
  while (r->res->offered < due && r->err == 0)
    b_offer(r);
}

/* The p99 wait of the jobs that started in each second. */
static void b_wait_by_second(b_run_t *r) {
  b_result_t *res = r->res;
  double *v;
  unsigned k;
  size_t n;
  size_t i;

  v = malloc((r->nwaits > 0 ? r->nwaits : 1) * sizeof(*v));
  if (v == NULL)
    return;
  /* per_second[k] is taken at k seconds (the last one at the end): it
   * gets the jobs that started in the second before it. */
  for (k = 1; k < res->nseconds; k++) {
    n = 0;
    for (i = 0; i < r->nwaits; i++)
      if (r->wait_second[i] == k - 1)
        v[n++] = r->wait_us[i];
    res->per_second[k].wait_p99_us = stats_percentile(v, n, 99);
  }
  free(v);
}

static int b_measure(int c, unsigned rep) {
  static const char *const phases[NCASES_B] = {"overload, max_queued",
                                               "overload, no limit"};
  double seconds = 2 * bench.seconds;
  double job_ns = bench.ms_job.median * B_JOB_NS / 1e6;
  b_result_t *res = &bench.b[c][rep];
  b_job_t *job;
  b_run_t r;
  int err;

  memset(&r, 0, sizeof(r));
  memset(res, 0, sizeof(*res));
  r.res = res;
  r.t = c == B_LIMITED ? &bench.t_limited : &bench.t;
  r.pool = c == B_LIMITED ? bench.pool_limited : bench.pool;
  r.rate_per_ns = B_OFFER_FACTOR * bench.workers / job_ns;
  atomic_init(&r.started, 0);
  r.cap_waits = (size_t)(r.rate_per_ns * seconds * 1e9 * 1.25) + 1024;
  r.cap_seconds = (unsigned)seconds + 3;
  r.wait_us = alloc_touched(r.cap_waits * sizeof(*r.wait_us));
  r.wait_second = alloc_touched(r.cap_waits * sizeof(*r.wait_second));
  res->per_second = alloc_touched(r.cap_seconds * sizeof(*res->per_second));
  if (r.wait_us == NULL || r.wait_second == NULL || res->per_second == NULL) {
    free(r.wait_us);
    free(r.wait_second);
    return report_err(phases[c], UV_ENOMEM);
  }
  atomic_store(&draining, 0);
  r.t_start = uv_hrtime();
  r.t_end = r.t_start + ms_to_ns(seconds * 1e3);
  r.next_second_ns = r.t_start + 1000000000u;
  b_second(&r, r.t_start);
  bench.tick.data = &r;
  err = uv_timer_start(&bench.tick, b_tick_cb, 0, B_TICK_MS);
  if (err == 0)
    err = run_phase(phases[c], seconds * 1e3);
  if (err == 0)
    err = r.err;
  if (err == 0 && r.pending != 0)
    err = UV_EPROTO;
  if (err == 0) {
    res->seconds = (double)(r.t_end - r.t_start) / 1e9;
    res->capacity_per_s =
        bench.workers * 1e9 / (bench.rep_ms_job_ns[rep] * B_JOB_NS / 1e6);
    res->goodput_per_s = (double)res->completed / res->seconds;
    res->nwaits = r.nwaits;
    res->wait_p50_us = stats_percentile(r.wait_us, r.nwaits, 50);
    res->wait_p99_us = stats_percentile(r.wait_us, r.nwaits, 99);
    res->wait_max_us = stats_max(r.wait_us, r.nwaits);
    b_wait_by_second(&r);
  }
  while ((job = r.all) != NULL) {
    r.all = job->next_all;
    free(job);
  }
  free(r.wait_us);
  free(r.wait_second);
  if (err != 0)
    return report_err(phases[c], err);
  return 0;
}

/* -------------------------------------------------- part c: blocking */

typedef struct c_run_s c_run_t;

typedef struct c_job_s {
  tandem_work_t req;
  c_run_t *run;
  uint64_t end_ns;
  int ran;
} c_job_t;

typedef struct c_sleeper_s {
  tandem_work_t req;
  c_run_t *run;
} c_sleeper_t;

struct c_run_s {
  c_job_t *jobs;
  unsigned window;
  c_sleeper_t *sleepers;
  unsigned nsleepers;
  atomic_uint sleeping; /* sleepers whose work callback has begun */
  uint64_t t_wait;      /* when the sleepers were queued */
  uint64_t t0;          /* the window */
  uint64_t t1;
  uint64_t done; /* compute jobs that ended inside the window */
  unsigned pending;
  int stopping;
  c_result_t *res;
  int err;
};

static void c_work(tandem_work_t *req) {
  c_job_t *job = CONTAINER_OF(req, c_job_t, req);

  if (!atomic_load_explicit(&draining, memory_order_relaxed)) {
    spin_run(iters_c_job);
    job->ran = 1;
  }
  job->end_ns = uv_hrtime();
}

static void c_sleep_work(tandem_work_t *req) {
  c_sleeper_t *s = CONTAINER_OF(req, c_sleeper_t, req);

  atomic_fetch_add(&s->run->sleeping, 1);
  while (!atomic_load(&release_sleepers))
    uv_sleep(C_SLICE_MS);
}

static void c_stop(c_run_t *r) {
  if (r->stopping)
    return;
  r->stopping = 1;
  atomic_store(&draining, 1);
  atomic_store(&release_sleepers, 1);
  uv_timer_stop(&bench.tick);
  uv_timer_stop(&bench.stop);
}

static void c_fail(c_run_t *r, int err) {
  if (r->err == 0)
    r->err = err;
  c_stop(r);
}

static void c_after(tandem_work_t *req, int status) {
  c_job_t *job = CONTAINER_OF(req, c_job_t, req);
  c_run_t *r = job->run;
  int err;

  r->pending--;
  if (status != 0)
    c_fail(r, status);
  if (status == 0 && job->ran && job->end_ns >= r->t0 && job->end_ns <= r->t1)
    r->done++;
  if (r->stopping)
    return;
  job->ran = 0;
  err = tandem_queue_work(&bench.t, &job->req, c_work, c_after);
  if (err != 0)
    c_fail(r, err);
  else
    r->pending++;
}

static void c_sleep_after(tandem_work_t *req, int status) {
  c_sleeper_t *s = CONTAINER_OF(req, c_sleeper_t, req);

  s->run->pending--;
  if (status != 0)
    c_fail(s->run, status);
}

static void c_window_cb(uv_timer_t *timer) {
  c_run_t *r = timer->data;
  tandem_stats_t st;

  if (tandem_pool_stats(bench.pool, &st) == 0)
    r->res->blocking_threads = st.blocking_threads;
  c_stop(r);
}

/* Every sleeper sleeps (or C_START_WAIT_MS passed): the compute starts. */
static void c_start_cb(uv_timer_t *timer) {
  c_run_t *r = timer->data;
  unsigned sleeping = atomic_load(&r->sleeping);
  unsigned i;
  int err;

  if (sleeping < r->nsleepers &&
      uv_hrtime() - r->t_wait < ms_to_ns(C_START_WAIT_MS))
    return;
  uv_timer_stop(&bench.tick);
  r->res->sleepers_started = sleeping;
  if (sleeping < r->nsleepers)
    fprintf(stderr, "priority: blocking: only %u of %u sleepers started\n",
            sleeping, r->nsleepers);
  r->t0 = uv_hrtime() + ms_to_ns(bench.warmup_ms);
  r->t1 = r->t0 + ms_to_ns(bench.seconds * 1e3);
  for (i = 0; i < r->window; i++) {
    r->jobs[i].run = r;
    err = tandem_queue_work(&bench.t, &r->jobs[i].req, c_work, c_after);
    if (err != 0) {
      c_fail(r, err);
      return;
    }
    r->pending++;
  }
  bench.stop.data = r;
  err =
      uv_timer_start(&bench.stop, c_window_cb,
                     bench.warmup_ms + (uint64_t)(bench.seconds * 1e3) + 1, 0);
  if (err != 0)
    c_fail(r, err);
}

static int c_measure(int c, unsigned rep) {
  static const char *const phases[NCASES_C] = {"blocking, alone",
                                               "blocking, 100 sleepers"};
  tandem_job_opts_t opts;
  c_result_t *res = &bench.c[c][rep];
  c_run_t r;
  unsigned i;
  int err;

  memset(&r, 0, sizeof(r));
  memset(res, 0, sizeof(*res));
  r.res = res;
  r.window = bench.workers * C_INFLIGHT_PER_WORKER;
  r.nsleepers = c == C_SLEEPING ? C_SLEEPERS : 0;
  atomic_init(&r.sleeping, 0);
  r.jobs = calloc(r.window, sizeof(*r.jobs));
  r.sleepers = calloc(C_SLEEPERS, sizeof(*r.sleepers));
  if (r.jobs == NULL || r.sleepers == NULL) {
    free(r.jobs);
    free(r.sleepers);
    return report_err(phases[c], UV_ENOMEM);
  }
  atomic_store(&draining, 0);
  atomic_store(&release_sleepers, 0);
  memset(&opts, 0, sizeof(opts));
  opts.flags = TANDEM_JOB_BLOCKING;
  r.t_wait = uv_hrtime();
  for (i = 0; i < r.nsleepers && r.err == 0; i++) {
    r.sleepers[i].run = &r;
    err = tandem_queue_work_ex(&bench.t, &r.sleepers[i].req, c_sleep_work,
                               c_sleep_after, &opts);
    if (err != 0)
      c_fail(&r, err);
    else
      r.pending++;
  }
  bench.tick.data = &r;
  err = 0;
  if (r.err == 0)
    err = uv_timer_start(&bench.tick, c_start_cb, 0, 2);
  if (err != 0)
    c_fail(&r, err);
  err = run_phase(phases[c],
                  C_START_WAIT_MS + bench.warmup_ms + bench.seconds * 1e3);
  if (err == 0)
    err = r.err;
  if (err == 0 && r.pending != 0)
    err = UV_EPROTO;
  free(r.jobs);
  free(r.sleepers);
  if (err != 0)
    return report_err(phases[c], err);
  res->jobs_per_s = (double)r.done / bench.seconds;
  res->capacity_fraction = res->jobs_per_s *
                           (bench.rep_ms_job_ns[rep] * C_JOB_NS / 1e6) / 1e9 /
                           bench.workers;
  return 0;
}

/* ----------------------------------------------------------- the runs */

static int measure_all(void) {
  stats_summary_t before;
  stats_summary_t after;
  unsigned rep;
  int c;
  int err;

  err = 0;
  for (rep = 0; err == 0 && rep < bench.reps; rep++) {
    spin_measure(bench.iters_per_ms, 7, 10, &before);
    /* The job time of this rep, for capacities: updated after it. */
    bench.rep_ms_job_ns[rep] = before.median;
    if (selected(PART_SATURATED))
      for (c = 0; err == 0 && c < NCASES_A; c++) {
        fprintf(stderr, "priority: rep %u of %u: saturated, %s, %s probes\n",
                rep + 1, bench.reps, a_cases[c].peer, a_cases[c].probes_key);
        err = a_measure(c, rep);
      }
    if (selected(PART_OVERLOAD))
      for (c = 0; err == 0 && c < NCASES_B; c++) {
        fprintf(stderr, "priority: rep %u of %u: overload, %s\n", rep + 1,
                bench.reps, c == B_LIMITED ? "max_queued" : "no limit");
        err = b_measure(c, rep);
      }
    if (selected(PART_BLOCKING))
      for (c = 0; err == 0 && c < NCASES_C; c++) {
        fprintf(stderr, "priority: rep %u of %u: blocking, %s\n", rep + 1,
                bench.reps, c == C_ALONE ? "alone" : "100 sleepers");
        err = c_measure(c, rep);
      }
    spin_measure(bench.iters_per_ms, 7, 10, &after);
    bench.rep_ms_job_ns[rep] = (before.median + after.median) / 2;
  }
  return err;
}

/* Capacity-relative figures use the job time measured around each rep;
 * (b) and (c) set theirs during the rep, from the time before it.  Redo
 * them with the rep's final job time. */
static void fix_capacities(void) {
  unsigned rep;
  double ms;
  int c;

  for (rep = 0; rep < bench.reps; rep++) {
    ms = bench.rep_ms_job_ns[rep];
    for (c = 0; c < NCASES_B; c++)
      bench.b[c][rep].capacity_per_s = bench.workers * 1e9 / ms;
    for (c = 0; c < NCASES_C; c++)
      bench.c[c][rep].capacity_fraction = bench.c[c][rep].jobs_per_s *
                                          (ms * C_JOB_NS / 1e6) / 1e9 /
                                          bench.workers;
  }
}

/* ----------------------------------------------------------- JSON report */

static void json_num(FILE *f, const char *key, double v) {
  fprintf(f, "\"%s\": ", key);
  json_write_number(f, v);
}

static void json_params(FILE *f) {
  unsigned rep;
  int p;

  fprintf(f, ", \"seconds\": ");
  json_write_number(f, bench.seconds);
  fprintf(f, ", \"warmup_ms\": %u, \"parts\": [", bench.warmup_ms);
  for (p = 0; p < NPARTS; p++)
    if (selected(p))
      fprintf(f, "%s\"%s\"", (bench.parts & ((1u << p) - 1)) ? ", " : "",
              part_keys[p]);
  fprintf(f, "],\n  \"threads\": %u, \"spin_iters_per_ms\": %" PRIu64 ", ",
          bench.threads, bench.iters_per_ms);
  fprintf(f,
          "\"ms_job_ns\": {\"median\": %.1f, \"min\": %.1f, "
          "\"max\": %.1f},\n  \"rep_ms_job_ns\": [",
          bench.ms_job.median, bench.ms_job.min, bench.ms_job.max);
  for (rep = 0; rep < bench.reps; rep++) {
    fprintf(f, "%s", rep == 0 ? "" : ", ");
    json_write_number(f, bench.rep_ms_job_ns[rep]);
  }
  fprintf(f, "]}");
}

static void json_saturated(FILE *f) {
  double v[MAX_REPS];
  const sample_t *w;
  unsigned rep;
  double job_ns;
  int c;

  fprintf(f,
          ",\n \"saturated\": {\"load_job_ns\": %u, \"probe_job_ns\": %u, "
          "\"load_in_flight\": %u, \"probe_every_ms\": %d,\n  \"cases\": [",
          A_JOB_NS, A_PROBE_NS, bench.workers * (1 + A_BACKLOG_PER_WORKER),
          A_PROBE_EVERY_MS);
  for (c = 0; c < NCASES_A; c++) {
    w = &bench.a_waits[c];
    fprintf(f,
            "%s\n   {\"peer\": \"%s\", \"label\": \"%s(%u)\", \"threads\": %u, "
            "\"probes\": \"%s\",\n    ",
            c == 0 ? "" : ",", a_cases[c].peer,
            a_cases[c].via_uv ? "uv" : "tandem", bench.workers, bench.workers,
            a_cases[c].probes_key);
    json_write_sample(f, "load_jobs_per_s", bench.a_jobs_per_s[c], bench.reps);
    for (rep = 0; rep < bench.reps; rep++) {
      job_ns = bench.rep_ms_job_ns[rep] * A_JOB_NS / 1e6;
      v[rep] = bench.a_jobs_per_s[c][rep] * job_ns / 1e9 / bench.workers;
    }
    fprintf(f, ",\n    ");
    json_write_sample(f, "load_capacity_fraction", v, bench.reps);
    if (!a_cases[c].probes) {
      fprintf(f, "}");
      continue;
    }
    fprintf(f, ",\n    \"probe_count\": %zu, \"probes_dropped\": %" PRIu64 ", ",
            w->n, bench.a_dropped[c]);
    json_num(f, "probe_wait_p50_us", stats_percentile(w->v, w->n, 50));
    fprintf(f, ", ");
    json_num(f, "probe_wait_p99_us", stats_percentile(w->v, w->n, 99));
    fprintf(f, ", ");
    json_num(f, "probe_wait_p999_us", stats_percentile(w->v, w->n, 99.9));
    fprintf(f, ", ");
    json_num(f, "probe_wait_max_us", stats_max(w->v, w->n));
    fprintf(f, ",\n    ");
    json_write_sample(f, "rep_probe_wait_p99_us", bench.a_rep_p99_us[c],
                      bench.reps);
    fprintf(f, "}");
  }
  fprintf(f, "]}");
}

static void json_b_run(FILE *f, int c, unsigned rep) {
  const b_result_t *res = &bench.b[c][rep];
  const b_second_t *s;
  unsigned max_queued = c == B_LIMITED ? B_QUEUE_PER_WORKER * bench.workers : 0;
  double growth;
  unsigned k;

  fprintf(f,
          "\n   {\"max_queued\": %u, \"rep\": %u, \"offered\": %" PRIu64
          ", \"accepted\": %" PRIu64 ", \"rejected\": %" PRIu64
          ", \"completed\": %" PRIu64 ",\n    \"waiting_at_end\": %" PRIu64
          ", \"jobs_allocated\": %" PRIu64 ", \"accepted_waits\": %zu, ",
          max_queued, rep, res->offered, res->accepted, res->rejected,
          res->completed, res->waiting_at_end, res->jobs_allocated,
          res->nwaits);
  json_num(f, "run_s", res->seconds);
  fprintf(f, ",\n    ");
  json_num(f, "offered_per_s", (double)res->offered / res->seconds);
  fprintf(f, ", ");
  json_num(f, "goodput_per_s", res->goodput_per_s);
  fprintf(f, ", ");
  json_num(f, "capacity_per_s", res->capacity_per_s);
  fprintf(f, ", ");
  json_num(f, "goodput_fraction", res->goodput_per_s / res->capacity_per_s);
  fprintf(f, ",\n    ");
  json_num(f, "accepted_wait_p50_us", res->wait_p50_us);
  fprintf(f, ", ");
  json_num(f, "accepted_wait_p99_us", res->wait_p99_us);
  fprintf(f, ", ");
  json_num(f, "accepted_wait_max_us", res->wait_max_us);
  fprintf(f, ", ");
  /* The bar: max_queued / workers jobs ahead, x 1.5. */
  json_num(f, "wait_bound_us",
           max_queued
               ? (double)max_queued / bench.workers *
                     (bench.rep_ms_job_ns[rep] * B_JOB_NS / 1e6) * 1.5 / 1e3
               : NAN);
  fprintf(f, ",\n    ");
  growth = NAN;
  if (res->nseconds >= 3)
    growth = (double)res->per_second[res->nseconds - 1].rss_bytes -
             (double)res->per_second[1].rss_bytes;
  json_num(f, "rss_growth_after_1s_bytes", growth);
  fprintf(f, ", \"per_second\": [");
  for (k = 0; k < res->nseconds; k++) {
    s = &res->per_second[k];
    fprintf(f, "%s\n     {", k == 0 ? "" : ",");
    json_num(f, "t_s", s->t_s);
    fprintf(f,
            ", \"rss_bytes\": %" PRIu64 ", \"waiting\": %" PRIu64
            ", \"pool_queued\": %" PRIu64 ", \"accepted\": %" PRIu64
            ", \"rejected\": %" PRIu64 ", \"completed\": %" PRIu64 ", ",
            s->rss_bytes, s->waiting, s->pool_queued, s->accepted, s->rejected,
            s->completed);
    json_num(f, "wait_p99_us", s->wait_p99_us);
    fprintf(f, "}");
  }
  fprintf(f, "]}");
}

static void json_overload(FILE *f) {
  unsigned rep;
  int c;

  fprintf(f,
          ",\n \"overload\": {\"job_ns\": %u, \"offer_factor\": %d, "
          "\"max_queued_per_worker\": %d, \"tick_ms\": %d, "
          "\"payload_bytes\": %u, ",
          B_JOB_NS, B_OFFER_FACTOR, B_QUEUE_PER_WORKER, B_TICK_MS,
          bench.payload);
  json_num(f, "offered_per_s",
           B_OFFER_FACTOR * bench.workers * 1e9 /
               (bench.ms_job.median * B_JOB_NS / 1e6));
  fprintf(f, ",\n  \"runs\": [");
  for (rep = 0; rep < bench.reps; rep++)
    for (c = 0; c < NCASES_B; c++) {
      if (rep + c > 0)
        fprintf(f, ",");
      json_b_run(f, c, rep);
    }
  fprintf(f, "]}");
}

static void json_blocking(FILE *f) {
  double v[MAX_REPS];
  unsigned rep;
  int c;

  fprintf(f,
          ",\n \"blocking\": {\"job_ns\": %u, \"in_flight\": %u, "
          "\"sleepers\": %d, \"sleep_slice_ms\": %d, \"blocking_max\": %d,"
          "\n  \"cases\": [",
          C_JOB_NS, bench.workers * C_INFLIGHT_PER_WORKER, C_SLEEPERS,
          C_SLICE_MS, C_BLOCKING_MAX);
  for (c = 0; c < NCASES_C; c++) {
    fprintf(f, "%s\n   {\"sleepers\": %d, ", c == 0 ? "" : ",",
            c == C_SLEEPING ? C_SLEEPERS : 0);
    for (rep = 0; rep < bench.reps; rep++)
      v[rep] = bench.c[c][rep].jobs_per_s;
    json_write_sample(f, "jobs_per_s", v, bench.reps);
    fprintf(f, ",\n    ");
    for (rep = 0; rep < bench.reps; rep++)
      v[rep] = bench.c[c][rep].capacity_fraction;
    json_write_sample(f, "capacity_fraction", v, bench.reps);
    if (c == C_SLEEPING) {
      fprintf(f, ",\n    \"sleepers_started\": [");
      for (rep = 0; rep < bench.reps; rep++)
        fprintf(f, "%s%u", rep ? ", " : "", bench.c[c][rep].sleepers_started);
      fprintf(f, "], \"blocking_threads\": [");
      for (rep = 0; rep < bench.reps; rep++)
        fprintf(f, "%s%u", rep ? ", " : "", bench.c[c][rep].blocking_threads);
      fprintf(f, "]");
    }
    fprintf(f, "}");
  }
  /* with / without, per rep (the two runs of a rep are back to back) */
  for (rep = 0; rep < bench.reps; rep++)
    v[rep] =
        bench.c[C_SLEEPING][rep].jobs_per_s / bench.c[C_ALONE][rep].jobs_per_s;
  fprintf(f, "],\n  ");
  json_write_sample(f, "sleeping_over_alone", v, bench.reps);
  fprintf(f, "}");
}

static int write_json(void) {
  FILE *f;

  f = bench_report_open(&bench.cli, TANDEM_VERSION_STRING, bench.workers,
                        bench.reps);
  if (f == NULL)
    return UV_EIO;
  json_params(f);
  if (selected(PART_SATURATED))
    json_saturated(f);
  if (selected(PART_OVERLOAD))
    json_overload(f);
  if (selected(PART_BLOCKING))
    json_blocking(f);
  return bench_report_close(&bench.cli, f);
}

/* ----------------------------------------------------- setting up */

static const char usage[] =
    "usage: priority [--workers N] [--reps R] [--quick | --tiny]\n"
    "                [--json FILE] [--seconds S] [--parts LIST]\n"
    "                [--payload BYTES]\n"
    "  --workers N      threads of tandem's pools and UV_THREADPOOL_SIZE\n"
    "                   (default: the online CPUs)\n"
    "  --reps R         repetitions (default 3, --quick and --tiny 1)\n"
    "  --quick          shorter phases (2 s), one repetition: about 25 s\n"
    "  --tiny           0.3 s phases: a smoke test, not a measurement\n"
    "  --json FILE      write the JSON report to FILE (default: stdout)\n"
    "  --seconds S      each measured window of saturated and blocking;\n"
    "                   overload runs 2 x S (default 5, --quick 2)\n"
    "  --parts LIST     only these parts, of saturated overload blocking\n"
    "  --payload BYTES  each overload job's payload (default 1024)\n";

static int own_option(void *ctx, const char *a, const char *val) {
  uint64_t v;
  char *end;
  double s;

  (void)ctx;
  if (strcmp(a, "--parts") == 0)
    return bench_cli_pick(val, part_keys, NPARTS, &bench.parts) == 0 ? 2 : -1;
  if (strcmp(a, "--payload") == 0) {
    if (bench_cli_count(val, 0, B_PAYLOAD_MAX, &v) != 0)
      return -1;
    bench.payload = (unsigned)v;
    return 2;
  }
  if (strcmp(a, "--seconds") == 0) {
    if (val == NULL)
      return -1;
    s = strtod(val, &end);
    if (end == val || *end != '\0' || !(s >= 0.1 && s <= 600))
      return -1;
    bench.seconds = s;
    return 2;
  }
  return 0;
}

static void set_parameters(void) {
  bench.workers = bench_cli_workers(&bench.cli);
  bench.reps = bench_cli_reps(&bench.cli, 1, 1, 3);
  if (bench.parts == 0)
    bench.parts = (1u << NPARTS) - 1;
  if (bench.seconds == 0)
    bench.seconds = bench.cli.tiny ? 0.3 : bench.cli.quick ? 2 : 5;
  bench.warmup_ms = bench.cli.tiny ? 50 : WARMUP_MS;
}

static int open_all(void) {
  tandem_options_t opts;
  int err;

  err = uv_loop_init(&bench.loop);
  if (err != 0)
    return report_err("uv_loop_init", err);
  uv_timer_init(&bench.loop, &bench.tick);
  uv_timer_init(&bench.loop, &bench.stop);
  uv_timer_init(&bench.loop, &bench.settle);
  uv_timer_init(&bench.loop, &bench.watchdog);
  /* The watchdog must not keep uv_run() alive once a phase is done. */
  uv_unref((uv_handle_t *)&bench.watchdog);
  memset(&opts, 0, sizeof(opts));
  opts.workers = bench.workers;
  opts.blocking_max = C_BLOCKING_MAX;
  err = tandem_pool_new(&bench.pool, &opts);
  if (err != 0)
    return report_err("tandem_pool_new", err);
  bench.threads = tandem_pool_workers(bench.pool);
  err = tandem_init(&bench.loop, &bench.t, bench.pool);
  if (err != 0) {
    tandem_pool_free(bench.pool);
    bench.pool = NULL;
    return report_err("tandem_init", err);
  }
  if (!selected(PART_OVERLOAD))
    return 0;
  memset(&opts, 0, sizeof(opts));
  opts.workers = bench.workers;
  opts.max_queued = B_QUEUE_PER_WORKER * bench.workers;
  err = tandem_pool_new(&bench.pool_limited, &opts);
  if (err != 0)
    return report_err("tandem_pool_new (max_queued)", err);
  err = tandem_init(&bench.loop, &bench.t_limited, bench.pool_limited);
  if (err != 0) {
    tandem_pool_free(bench.pool_limited);
    bench.pool_limited = NULL;
    return report_err("tandem_init (max_queued)", err);
  }
  return 0;
}

static int close_all(void) {
  int err = 0;
  int rc;

  if (bench.pool != NULL)
    tandem_close(&bench.t, NULL);
  if (bench.pool_limited != NULL)
    tandem_close(&bench.t_limited, NULL);
  uv_close((uv_handle_t *)&bench.tick, NULL);
  uv_close((uv_handle_t *)&bench.stop, NULL);
  uv_close((uv_handle_t *)&bench.settle, NULL);
  uv_close((uv_handle_t *)&bench.watchdog, NULL);
  uv_run(&bench.loop, UV_RUN_DEFAULT);
  if ((rc = uv_loop_close(&bench.loop)) != 0)
    err = report_err("uv_loop_close", rc);
  if (bench.pool != NULL && (rc = tandem_pool_free(bench.pool)) != 0)
    err = report_err("tandem_pool_free", rc);
  if (bench.pool_limited != NULL &&
      (rc = tandem_pool_free(bench.pool_limited)) != 0)
    err = report_err("tandem_pool_free (max_queued)", rc);
  return err;
}

int main(int argc, char **argv) {
  char size[16];
  const char *env;
  unsigned rep;
  int err;
  int c;

  bench.cli.name = "priority";
  bench.cli.usage = usage;
  bench.payload = B_PAYLOAD_DEFAULT;
  if (bench_cli_parse(&bench.cli, argc, argv, own_option, NULL) != 0)
    return 2;
  set_parameters();
  /* uv(K): libuv sizes its pool at the first uv_queue_work, from this. */
  snprintf(size, sizeof(size), "%u", bench.workers);
  env = getenv("UV_THREADPOOL_SIZE");
  if (env != NULL && strcmp(env, size) != 0)
    fprintf(stderr, "priority: UV_THREADPOOL_SIZE=%s replaced by %s\n", env,
            size);
  setenv("UV_THREADPOOL_SIZE", size, 1);

  bench.iters_per_ms = spin_calibrate(1000000);
  spin_measure(bench.iters_per_ms, 9, 10, &bench.ms_job);
  iters_a_job = bench.iters_per_ms * (A_JOB_NS / 1000000u);
  iters_a_probe = bench.iters_per_ms * A_PROBE_NS / 1000000u;
  iters_b_job = bench.iters_per_ms * B_JOB_NS / 1000000u;
  iters_c_job = bench.iters_per_ms * C_JOB_NS / 1000000u;
  if (iters_a_probe == 0)
    iters_a_probe = 1;

  err = open_all();
  if (err == 0)
    err = measure_all();
  if (close_all() != 0 && err == 0)
    err = UV_EBUSY;
  if (err == 0) {
    fix_capacities();
    err = write_json();
  }
  for (c = 0; c < NCASES_A; c++)
    free(bench.a_waits[c].v);
  for (c = 0; c < NCASES_B; c++)
    for (rep = 0; rep < bench.reps; rep++)
      free(bench.b[c][rep].per_second);
  return err == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
