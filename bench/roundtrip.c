/* SPDX-License-Identifier: MIT */
/*
 * roundtrip: how fast jobs go from a loop thread to a pool and back.
 *
 * The loop thread keeps W jobs in flight (W = 1, 64, 1024): each after
 * callback queues the next job on the same request until N jobs have
 * completed.  Jobs are empty, or spin about 10 us (a busy loop calibrated
 * once at start).  Five peers run the same loads, interleaved over several
 * repetitions:
 *
 *   uv(4)       uv_queue_work on libuv's pool at its default size;
 *   uv(K)       uv_queue_work with UV_THREADPOOL_SIZE = K, tandem's workers,
 *               in a copy of this program re-executed with --uv-only (libuv
 *               reads the variable once per process), whose figures come back
 *               over a pipe;
 *   tandem(K)   tandem_queue_work on a pool of K = --workers workers;
 *   textbook(K) the textbook pool of peers/textbook_pool.c: one mutex and
 *               condition variable around a FIFO, K threads, results back
 *               through a mutex-protected list and a uv_async_t;
 *   gil(K)      tandem(K)'s pool, but every work callback holds one global
 *               mutex while it runs, as Python threads hold the GIL: jobs
 *               cannot run in parallel, so on the 10 us jobs the parallel
 *               efficiency falls to about 1/K.
 *
 * and, only when --peers names it, a sixth for the price of time recording
 * (tandem_options_t.metrics):
 *
 *   tandem_off(K) a second pool of K workers made with metrics off, on a
 *               loop of its own.  tandem(K)'s pool records time (metrics
 *               on, set explicitly).  In each repetition the two run each
 *               (kind, window) back to back, the first of the two
 *               alternating from case to case and from rep to rep, so a
 *               drift of the machine hits both alike; bench/tandem-bench
 *               --only metrics prints their per-rep ratios.
 *
 * The wait of a job (queued until its work callback starts), per (kind,
 * window) over every rep: tandem(K)'s from its pool's own histogram
 * (tandem_pool_metrics() before and after each measurement, outside the
 * timed part, the difference bucket by bucket; not when tandem_off(K) is
 * measured, see records_wait()); uv(4)'s and uv(K)'s measured from outside,
 * on every WAIT_SAMPLE_EVERY-th job: uv_hrtime() just before uv_queue_work
 * on the loop thread, again when the work callback starts, both kept in
 * the request and recorded in a tandem_histogram_t by the after callback,
 * on the loop thread (no shared counter in libuv's hot path, and two clock
 * reads per eight jobs, not per job, so uv's jobs/s hardly moves).
 *
 * For each (kind, W) its JSON report (cli.h: on stdout, or --json FILE)
 * holds every repetition's elapsed time, jobs/s and us per job (elapsed /
 * N, which at W = 1 is the latency of one job), the ratios tandem / each
 * peer, and for the 10 us jobs the parallel efficiency, jobs/s x job time /
 * threads, where the job time is the single-thread time of one job
 * measured around each repetition.  bench/tandem-bench prints the tables
 * and the targets.
 *
 * --breakdown runs none of that: tandem(K) alone, empty jobs, W = 1, and
 * splits the round trip into the pool's and the loop's own histograms
 * (wait, run, lag) and the rest (see "breakdown" below).
 *
 * Run:   build/bench/roundtrip [--workers N] [--reps R] [--quick | --tiny]
 *                              [--json FILE] [--peers LIST | --breakdown]
 * --workers defaults to the online CPUs, --reps to 5 (3 with --quick);
 * --quick runs fewer jobs per measurement (about 15 s on a 2-core VM, the
 * default run about 5 times that); --tiny runs 1/TINY_DIV of the jobs once,
 * a smoke test of the program rather than a measurement; --peers runs only
 * some peers (uv, uv_n, tandem, textbook, gil: a comma-separated list).
 * Every measurement is bounded by its job count and by a watchdog of
 * WATCHDOG_MS.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "tandem.h"

#include "cli.h"
#include "hist.h"
#include "json_write.h"
#include "peers/textbook_pool.h"
#include "reexec.h"
#include "spin.h"
#include "stats.h"

#define MAX_REPS BENCH_MAX_REPS
#define JOB_TARGET_NS 10000     /* a compute job spins this long */
#define WATCHDOG_MS 30000       /* one measurement gives up after this */
#define CHILD_TIMEOUT_MS 180000 /* one uv(K) child gives up after this */
#define UV_DEFAULT_THREADS 4    /* libuv 1.44 without UV_THREADPOOL_SIZE */
#define WAIT_SAMPLE_EVERY 8     /* uv peers: time the wait of every 8th job */
#define CHILD_OUT_MAX 65536     /* what the uv(K) child prints */

#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr)-offsetof(type, member)))

enum { KIND_EMPTY, KIND_SPIN, NKINDS };
enum {
  PEER_UV,
  PEER_UVN,
  PEER_TANDEM,
  PEER_TEXTBOOK,
  PEER_GIL,
  PEER_TANDEM_OFF, /* only when --peers names it */
  NPEERS
};
/* How a runner hands jobs to its pool. */
enum { VIA_UV, VIA_TANDEM, VIA_TEXTBOOK };
#define NWINDOWS 3

static const unsigned windows[NWINDOWS] = {1, 64, 1024};
static const char *const kind_names[NKINDS] = {"empty", "spin10us"};
static const char *const peer_keys[NPEERS] = {"uv",       "uv_n", "tandem",
                                              "textbook", "gil",  "tandem_off"};
static const char *const peer_names[NPEERS] = {"uv",       "uv",  "tandem",
                                               "textbook", "gil", "tandem_off"};

/* Jobs per measurement, per kind and window: about 0.1-0.5 s each for
 * libuv's pool on a 2-core VM.  --quick divides them by QUICK_DIV. */
static const uint64_t jobs_default[NKINDS][NWINDOWS] = {
    {20000, 300000, 300000},
    {8000, 60000, 60000},
};
#define QUICK_DIV 3
#define TINY_DIV 50
/* Round trips of --breakdown: at most 0.3 s or so on the 2-core VM;
 * --quick divides them by QUICK_BREAKDOWN_DIV, --tiny by TINY_DIV. */
#define BREAKDOWN_JOBS 200000
#define QUICK_BREAKDOWN_DIV 10

typedef struct bench_s {
  bench_cli_t cli;
  unsigned workers;
  unsigned reps;
  unsigned selected; /* a bit per peer: --peers, or all */
  int uv_only;       /* the re-executed child */
  int breakdown;     /* --breakdown: tandem alone, W = 1, its parts */
  const char *argv0;
  uint64_t spin_iters;         /* rounds of spin_run() in one job */
  stats_summary_t job_ns;      /* single-thread time of one job, at start */
  double rep_job_ns[MAX_REPS]; /* the same, measured around each rep */
  unsigned threads[NPEERS];
  uint64_t jobs[NKINDS][NWINDOWS];
  double elapsed_ns[NPEERS][NKINDS][NWINDOWS][MAX_REPS];
  /* Every measured job's wait (uv peers: every WAIT_SAMPLE_EVERY-th),
   * over the reps; empty for the peers that do not record it. */
  tandem_histogram_t wait[NPEERS][NKINDS][NWINDOWS];
} bench_t;

/* A uv_queue_work request with the times of its wait.  They sit right
 * after the request's last member, work_req, which libuv's pool thread
 * reads and writes for every job anyway. */
typedef struct uv_job_s {
  uv_work_t req;
  int stamp;           /* time this one: set on the loop thread */
  uint64_t queued_ns;  /* uv_hrtime() before uv_queue_work, loop thread */
  uint64_t started_ns; /* uv_hrtime() as its work began, pool thread */
} uv_job_t;

/* One measurement: `jobs` jobs through one loop, `window` at a time. */
typedef struct run_s {
  uv_loop_t *loop;
  int via;
  tandem_t *tandem;
  textbook_pool_t *textbook;
  uv_work_cb uv_work;
  tandem_work_cb tandem_work;
  textbook_work_cb textbook_work;
  const char *what; /* for the watchdog's message */
  uint64_t jobs;
  uint64_t queued;
  uint64_t done;
  uint64_t t_end;
  tandem_histogram_t *wait; /* uv peers: record waits here (loop thread) */
  int err;
} run_t;

/* A loop with a watchdog timer, and a tandem_t or a textbook pool when it
 * measures one of those. */
typedef struct runner_s {
  uv_loop_t loop;
  uv_timer_t watchdog;
  int via;
  int gil;             /* work callbacks take the_gil */
  tandem_pool_t *pool; /* its tandem pool, if any */
  tandem_t tandem;
  textbook_pool_t *textbook;
  const char *name;
} runner_t;

static bench_t bench;
/* Written once before any job is queued, read by the workers. */
static uint64_t spin_iters;
/* gil(K)'s global interpreter lock. */
static uv_mutex_t the_gil;

/* ------------------------------------------------------------- the jobs */

/* The first thing a uv peer's job does: note when it started, if it is
 * one of those timed. */
static void uv_job_started(uv_work_t *req) {
  uv_job_t *j = container_of(req, uv_job_t, req);

  if (j->stamp)
    j->started_ns = uv_hrtime();
}

static void uv_empty_cb(uv_work_t *req) {
  uv_job_started(req);
}

static void uv_spin_cb(uv_work_t *req) {
  uv_job_started(req);
  spin_run(spin_iters);
}

static void tandem_empty_cb(tandem_work_t *req) {
  (void)req;
}

static void tandem_spin_cb(tandem_work_t *req) {
  (void)req;
  spin_run(spin_iters);
}

static void gil_empty_cb(tandem_work_t *req) {
  (void)req;
  uv_mutex_lock(&the_gil);
  uv_mutex_unlock(&the_gil);
}

static void gil_spin_cb(tandem_work_t *req) {
  (void)req;
  uv_mutex_lock(&the_gil);
  spin_run(spin_iters);
  uv_mutex_unlock(&the_gil);
}

static void textbook_empty_cb(textbook_work_t *req) {
  (void)req;
}

static void textbook_spin_cb(textbook_work_t *req) {
  (void)req;
  spin_run(spin_iters);
}

/* Counts a finished job; returns 1 when the caller should queue the next one
 * on the same request. */
static int run_job_done(run_t *r, int status) {
  r->done++;
  if (status != 0 && r->err == 0)
    r->err = status;
  if (r->done == r->jobs)
    r->t_end = stats_now_ns();
  if (r->err != 0 || r->queued >= r->jobs)
    return 0;
  r->queued++;
  return 1;
}

static void run_queue_failed(run_t *r, int err) {
  r->queued--;
  if (r->err == 0)
    r->err = err;
}

static void uv_after_cb(uv_work_t *req, int status);

/* Queues job j of a uv peer's run (r->queued counts it already), timing
 * every WAIT_SAMPLE_EVERY-th when the run records waits. */
static int uv_job_queue(run_t *r, uv_job_t *j) {
  j->stamp = r->wait != NULL && r->queued % WAIT_SAMPLE_EVERY == 0;
  if (j->stamp)
    j->queued_ns = uv_hrtime();
  return uv_queue_work(r->loop, &j->req, r->uv_work, uv_after_cb);
}

static void uv_after_cb(uv_work_t *req, int status) {
  uv_job_t *j = container_of(req, uv_job_t, req);
  run_t *r = req->data;
  int err;

  if (j->stamp && status == 0)
    tandem_histogram_record(r->wait, j->started_ns - j->queued_ns);
  if (!run_job_done(r, status))
    return;
  err = uv_job_queue(r, j);
  if (err != 0)
    run_queue_failed(r, err);
}

static void tandem_after_cb(tandem_work_t *req, int status) {
  run_t *r = req->data;
  int err;

  if (!run_job_done(r, status))
    return;
  err = tandem_queue_work(r->tandem, req, r->tandem_work, tandem_after_cb);
  if (err != 0)
    run_queue_failed(r, err);
}

static void textbook_after_cb(textbook_work_t *req, int status) {
  run_t *r = req->data;
  int err;

  if (!run_job_done(r, status))
    return;
  err = textbook_queue_work(r->textbook, req, r->textbook_work,
                            textbook_after_cb);
  if (err != 0)
    run_queue_failed(r, err);
}

static void watchdog_cb(uv_timer_t *timer) {
  run_t *r = timer->data;

  fprintf(stderr,
          "roundtrip: %s: %" PRIu64 " of %" PRIu64 " jobs done after %d s, "
          "giving up\n",
          r->what, r->done, r->jobs, WATCHDOG_MS / 1000);
  /* _exit: exit() would join libuv's threads, which may be stuck too. */
  fflush(stdout);
  _exit(EXIT_FAILURE);
}

/* ---------------------------------------------------------- the runners */

static int report_err(const char *what, int err) {
  return bench_cli_error(&bench.cli, what, err);
}

static int runner_close(runner_t *rn) {
  int err;

  if (rn->via == VIA_TANDEM)
    tandem_close(&rn->tandem, NULL);
  if (rn->via == VIA_TEXTBOOK) {
    err = textbook_pool_close(rn->textbook);
    if (err != 0)
      report_err("textbook_pool_close", err);
  }
  uv_close((uv_handle_t *)&rn->watchdog, NULL);
  uv_run(&rn->loop, UV_RUN_DEFAULT);
  return uv_loop_close(&rn->loop);
}

/* Prepares a runner for jobs `via` libuv's pool, tandem's `pool` (with or
 * without the GIL) or a textbook pool of `workers` threads. */
static int runner_init(runner_t *rn, const char *name, int via,
                       tandem_pool_t *pool, unsigned workers) {
  int err;

  memset(rn, 0, sizeof(*rn));
  rn->name = name;
  rn->via = VIA_UV;
  err = uv_loop_init(&rn->loop);
  if (err != 0)
    return err;
  err = uv_timer_init(&rn->loop, &rn->watchdog);
  if (err != 0) {
    uv_loop_close(&rn->loop);
    return err;
  }
  /* The watchdog must not keep uv_run() alive once the jobs are done. */
  uv_unref((uv_handle_t *)&rn->watchdog);
  rn->pool = pool;
  if (via == VIA_TANDEM)
    err = tandem_init(&rn->loop, &rn->tandem, pool);
  else if (via == VIA_TEXTBOOK)
    err = textbook_pool_new(&rn->textbook, &rn->loop, workers);
  if (err != 0) {
    runner_close(rn);
    return err;
  }
  rn->via = via;
  return 0;
}

/* Queues the first jobs of a run, up to `window` of them; a failure ends
 * the run with r->err set. */
static void run_start(run_t *r, void *reqs, unsigned window) {
  textbook_work_t *breq;
  tandem_work_t *treq;
  uv_job_t *ujob;
  unsigned i;
  int err;

  for (i = 0; i < window && r->queued < r->jobs; i++) {
    r->queued++;
    if (r->via == VIA_TANDEM) {
      treq = (tandem_work_t *)reqs + i;
      treq->data = r;
      err = tandem_queue_work(r->tandem, treq, r->tandem_work, tandem_after_cb);
    } else if (r->via == VIA_TEXTBOOK) {
      breq = (textbook_work_t *)reqs + i;
      breq->data = r;
      err = textbook_queue_work(r->textbook, breq, r->textbook_work,
                                textbook_after_cb);
    } else {
      ujob = (uv_job_t *)reqs + i;
      ujob->req.data = r;
      err = uv_job_queue(r, ujob);
    }
    if (err != 0) {
      run_queue_failed(r, err);
      return;
    }
  }
}

static void run_setup(run_t *r, runner_t *rn, int kind, uint64_t jobs) {
  int spin = kind == KIND_SPIN;

  memset(r, 0, sizeof(*r));
  r->loop = &rn->loop;
  r->via = rn->via;
  r->tandem = &rn->tandem;
  r->textbook = rn->textbook;
  r->uv_work = spin ? uv_spin_cb : uv_empty_cb;
  if (rn->gil)
    r->tandem_work = spin ? gil_spin_cb : gil_empty_cb;
  else
    r->tandem_work = spin ? tandem_spin_cb : tandem_empty_cb;
  r->textbook_work = spin ? textbook_spin_cb : textbook_empty_cb;
  r->what = rn->name;
  r->jobs = jobs;
}

/* Snapshots of the pool's time around one measurement (file scope: some
 * 10 KB each; one measurement at a time). */
static tandem_metrics_t metrics_before;
static tandem_metrics_t metrics_after;

/* Runs `jobs` jobs of `kind`, `window` in flight, on the runner's loop and
 * sets *elapsed_ns; with `wait` non-NULL, adds the jobs' waits to it: a
 * tandem runner's from its pool's histogram (the difference around the
 * run, outside the timed part), a uv runner's timed from outside.
 * Returns 0 or a libuv error code. */
static int runner_measure(runner_t *rn, int kind, unsigned window,
                          uint64_t jobs, double *elapsed_ns,
                          tandem_histogram_t *wait) {
  size_t reqsize;
  uint64_t t0;
  void *reqs;
  run_t r;
  int err;

  run_setup(&r, rn, kind, jobs);
  if (rn->via == VIA_UV)
    r.wait = wait;
  else if (rn->via != VIA_TANDEM)
    wait = NULL;
  reqsize = rn->via == VIA_TANDEM     ? sizeof(tandem_work_t)
            : rn->via == VIA_TEXTBOOK ? sizeof(textbook_work_t)
                                      : sizeof(uv_job_t);
  reqs = calloc(window, reqsize);
  if (reqs == NULL)
    return UV_ENOMEM;
  rn->watchdog.data = &r;
  err = uv_timer_start(&rn->watchdog, watchdog_cb, WATCHDOG_MS, 0);
  if (err == 0 && wait != NULL && rn->via == VIA_TANDEM)
    err = tandem_pool_metrics(rn->pool, &metrics_before);
  if (err == 0) {
    t0 = stats_now_ns();
    run_start(&r, reqs, window);
    uv_run(&rn->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&rn->watchdog);
    err = r.err;
  }
  /* Every job's wait is in the pool's histogram by now: each was recorded
   * as its work began, before its after callback could run. */
  if (err == 0 && wait != NULL && rn->via == VIA_TANDEM) {
    err = tandem_pool_metrics(rn->pool, &metrics_after);
    if (err == 0)
      hist_add_delta(wait, &metrics_after.wait, &metrics_before.wait);
  }
  free(reqs);
  if (err == 0 && r.done != jobs) {
    fprintf(stderr,
            "roundtrip: %s: uv_run returned with %" PRIu64 " of %" PRIu64
            " jobs done\n",
            rn->name, r.done, jobs);
    err = UV_EPROTO;
  }
  if (err == 0)
    *elapsed_ns = (double)(r.t_end - t0);
  return err;
}

/* Starts the pool's threads and faults everything in. */
static int runner_warm_up(runner_t *rn) {
  double ns;
  int err;

  err = runner_measure(rn, KIND_EMPTY, 64, 20000, &ns, NULL);
  if (err == 0)
    err = runner_measure(rn, KIND_SPIN, 64, 2000, &ns, NULL);
  if (err != 0)
    return report_err(rn->name, err);
  return 0;
}

static int selected(int peer);

/* Does this peer's report hold waits?  uv(4) and uv(K) (timed from
 * outside), and tandem(K) (its pool records time) unless it is measured
 * against tandem_off(K): then nothing but the recording itself may differ
 * between the two, not even the snapshots around each run. */
static int records_wait(int peer) {
  if (peer == PEER_TANDEM)
    return !selected(PEER_TANDEM_OFF);
  return peer == PEER_UV || peer == PEER_UVN;
}

/* Runs (kind, window w) once as repetition `rep` of `peer`. */
static int runner_one_case(runner_t *rn, int peer, unsigned rep, int kind,
                           int w) {
  int err;

  err = runner_measure(rn, kind, windows[w], bench.jobs[kind][w],
                       &bench.elapsed_ns[peer][kind][w][rep],
                       records_wait(peer) ? &bench.wait[peer][kind][w] : NULL);
  return err != 0 ? report_err(rn->name, err) : 0;
}

/* Runs every (kind, window) once and stores the times as repetition `rep`
 * of `peer`. */
static int runner_one_rep(runner_t *rn, int peer, unsigned rep) {
  int kind;
  int w;
  int err;

  for (kind = 0; kind < NKINDS; kind++)
    for (w = 0; w < NWINDOWS; w++)
      if ((err = runner_one_case(rn, peer, rep, kind, w)) != 0)
        return err;
  return 0;
}

/* Repetition `rep` of tandem(K), metrics on, and tandem_off(K): each
 * (kind, window) on both back to back, the first of the two alternating
 * from case to case and from rep to rep, so that on and off see the same
 * machine and neither always runs first. */
static int pair_one_rep(runner_t *on, runner_t *off, unsigned rep) {
  unsigned c = 0;
  int first;
  int kind;
  int w;
  int err;

  for (kind = 0; kind < NKINDS; kind++)
    for (w = 0; w < NWINDOWS; w++, c++) {
      first = (rep + c) % 2 == 0 ? PEER_TANDEM : PEER_TANDEM_OFF;
      err =
          runner_one_case(first == PEER_TANDEM ? on : off, first, rep, kind, w);
      if (err == 0)
        err = runner_one_case(
            first == PEER_TANDEM ? off : on,
            first == PEER_TANDEM ? PEER_TANDEM_OFF : PEER_TANDEM, rep, kind, w);
      if (err != 0)
        return err;
    }
  return 0;
}

/* ------------------------------------------- libuv's pool of size K, child */

/* Prints the waits of (kind, w) as one line for child_parse():
 * "h kind w sum_ns max_ns bucket:count bucket:count ...". */
static void child_print_wait(int kind, int w) {
  const tandem_histogram_t *h = &bench.wait[PEER_UVN][kind][w];
  unsigned i;

  printf("h %d %d %" PRIu64 " %" PRIu64, kind, w, h->sum_ns, h->max_ns);
  for (i = 0; i < TANDEM_HISTOGRAM_BUCKETS; i++)
    if (h->bucket[i] != 0)
      printf(" %u:%" PRIu64, i, h->bucket[i]);
  printf("\n");
}

/* The child: warm up, run one repetition of every (kind, window) on libuv's
 * pool and print "kind window jobs elapsed_ns" lines on stdout, then the
 * waits (child_print_wait). */
static int child_main(void) {
  runner_t rn;
  int kind;
  int w;
  int err;

  err = runner_init(&rn, "uv(K) child", VIA_UV, NULL, 0);
  if (err != 0)
    return report_err("uv_loop_init", err);
  err = runner_warm_up(&rn);
  if (err == 0)
    err = runner_one_rep(&rn, PEER_UVN, 0);
  for (kind = 0; err == 0 && kind < NKINDS; kind++)
    for (w = 0; w < NWINDOWS; w++)
      printf("%d %d %" PRIu64 " %.0f\n", kind, w, bench.jobs[kind][w],
             bench.elapsed_ns[PEER_UVN][kind][w][0]);
  for (kind = 0; err == 0 && kind < NKINDS; kind++)
    for (w = 0; w < NWINDOWS; w++)
      child_print_wait(kind, w);
  if (runner_close(&rn) != 0 && err == 0)
    err = report_err("uv_loop_close", UV_EBUSY);
  if (fflush(stdout) != 0 && err == 0)
    err = report_err("writing to the parent", UV_EPIPE);
  return err == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Adds one "h ..." line of child_print_wait() to uv(K)'s waits. */
static int child_parse_wait(const char *line) {
  tandem_histogram_t h;
  uint64_t count;
  unsigned i;
  int kind;
  int w;
  int used;

  memset(&h, 0, sizeof(h));
  if (sscanf(line, "h %d %d %" SCNu64 " %" SCNu64 "%n", &kind, &w, &h.sum_ns,
             &h.max_ns, &used) != 4 ||
      kind < 0 || kind >= NKINDS || w < 0 || w >= NWINDOWS)
    return UV_EPROTO;
  for (line += used; *line == ' '; line += used) {
    if (sscanf(line, " %u:%" SCNu64 "%n", &i, &count, &used) != 2 ||
        i >= TANDEM_HISTOGRAM_BUCKETS)
      return UV_EPROTO;
    h.bucket[i] += count;
    h.count += count;
  }
  tandem_histogram_merge(&bench.wait[PEER_UVN][kind][w], &h);
  return 0;
}

/* Stores the child's lines as repetition `rep` of uv(K). */
static int child_parse(char *buf, unsigned rep) {
  char *line;
  char *save;
  uint64_t jobs;
  double ns;
  int kind;
  int w;
  int seen;

  seen = 0;
  for (line = strtok_r(buf, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == 'h') {
      if (child_parse_wait(line) != 0)
        return UV_EPROTO;
      continue;
    }
    if (sscanf(line, "%d %d %" SCNu64 " %lf", &kind, &w, &jobs, &ns) != 4 ||
        kind < 0 || kind >= NKINDS || w < 0 || w >= NWINDOWS ||
        jobs != bench.jobs[kind][w] || !(ns > 0))
      return UV_EPROTO;
    bench.elapsed_ns[PEER_UVN][kind][w][rep] = ns;
    seen++;
  }
  return seen == NKINDS * NWINDOWS ? 0 : UV_EPROTO;
}

/* One repetition of uv(K): re-executes this program with --uv-only and
 * UV_THREADPOOL_SIZE = workers, and reads its figures back over a pipe. */
static int child_one_rep(unsigned rep) {
  static char buf[CHILD_OUT_MAX];
  char *argv[6];
  char iters[32];
  char size[16];
  int code;
  int argc;
  int err;

  snprintf(iters, sizeof(iters), "%" PRIu64, bench.spin_iters);
  snprintf(size, sizeof(size), "%u", bench.workers);
  argc = 0;
  argv[argc++] = (char *)bench.argv0;
  argv[argc++] = "--uv-only";
  argv[argc++] = "--spin-iters";
  argv[argc++] = iters;
  if (bench.cli.tiny)
    argv[argc++] = "--tiny";
  else if (bench.cli.quick)
    argv[argc++] = "--quick";
  argv[argc] = NULL;
  err = reexec_capture(argv, "UV_THREADPOOL_SIZE", size, buf, sizeof(buf),
                       CHILD_TIMEOUT_MS, &code);
  if (err == 0)
    err = child_parse(buf, rep);
  if (err != 0 && code > 0)
    fprintf(stderr, "roundtrip: uv(K) child exited with code %d\n", code);
  if (err != 0)
    return report_err("uv(K) child", err);
  return 0;
}

/* --------------------------------------------------------------- figures */

/* Jobs per second of every repetition. */
static void rates(int peer, int kind, int w, double *out) {
  unsigned rep;

  for (rep = 0; rep < bench.reps; rep++)
    out[rep] = (double)bench.jobs[kind][w] * 1e9 /
               bench.elapsed_ns[peer][kind][w][rep];
}

/* Microseconds per job (elapsed / N) of every repetition. */
static void us_per_job(int peer, int kind, int w, double *out) {
  unsigned rep;

  for (rep = 0; rep < bench.reps; rep++)
    out[rep] = bench.elapsed_ns[peer][kind][w][rep] / 1e3 /
               (double)bench.jobs[kind][w];
}

static double median_rate(int peer, int kind, int w) {
  double v[MAX_REPS];

  rates(peer, kind, w, v);
  return stats_median(v, bench.reps);
}

static double median_us(int peer, int kind, int w) {
  double v[MAX_REPS];

  us_per_job(peer, kind, w, v);
  return stats_median(v, bench.reps);
}

/* Parallel efficiency: jobs/s x single-thread job time / threads, per rep
 * with the job time measured around that rep (this VM's CPU speed drifts
 * by tens of percent over a run), median over the reps. */
static double efficiency(int peer, int w) {
  double v[MAX_REPS];
  unsigned rep;

  rates(peer, KIND_SPIN, w, v);
  for (rep = 0; rep < bench.reps; rep++)
    v[rep] *= bench.rep_job_ns[rep] / 1e9 / (double)bench.threads[peer];
  return stats_median(v, bench.reps);
}

static void peer_label(int peer, char *buf, size_t len) {
  snprintf(buf, len, "%s(%u)", peer_names[peer], bench.threads[peer]);
}

/* ----------------------------------------------------------- JSON report */

static int selected(int peer) {
  return (bench.selected & (1u << peer)) != 0;
}

/* The rest of "parameters", after the shared ones of cli.h. */
static void json_params(FILE *f) {
  const char *sep;
  int peer;
  int kind;
  int w;
  unsigned rep;

  fprintf(f,
          ", \"windows\": [%u, %u, %u],\n  \"job_target_ns\": %d, "
          "\"spin_iters\": %" PRIu64 ", \"wait_sample_every\": %d, ",
          windows[0], windows[1], windows[2], JOB_TARGET_NS, bench.spin_iters,
          WAIT_SAMPLE_EVERY);
  fprintf(f, "\"job_ns\": {\"median\": %.1f, \"min\": %.1f, \"max\": %.1f},\n",
          bench.job_ns.median, bench.job_ns.min, bench.job_ns.max);
  fprintf(f, "  \"rep_job_ns\": [");
  for (rep = 0; rep < bench.reps; rep++) {
    fprintf(f, "%s", rep == 0 ? "" : ", ");
    json_write_number(f, bench.rep_job_ns[rep]);
  }
  fprintf(f, "],\n  \"jobs_per_run\": {");
  for (kind = 0; kind < NKINDS; kind++) {
    fprintf(f, "%s\"%s\": [", kind == 0 ? "" : ", ", kind_names[kind]);
    for (w = 0; w < NWINDOWS; w++)
      fprintf(f, "%s%" PRIu64, w == 0 ? "" : ", ", bench.jobs[kind][w]);
    fprintf(f, "]");
  }
  fprintf(f, "},\n  \"peers\": {");
  sep = "";
  for (peer = 0; peer < NPEERS; peer++) {
    if (!selected(peer))
      continue;
    fprintf(f, "%s\"%s\": %u", sep, peer_keys[peer], bench.threads[peer]);
    sep = ", ";
  }
  fprintf(f, "}}");
}

static void json_result(FILE *f, int peer, int kind, int w) {
  double v[MAX_REPS];
  char label[32];

  peer_label(peer, label, sizeof(label));
  fprintf(f,
          "    {\"peer\": \"%s\", \"label\": \"%s\", \"threads\": %u, "
          "\"kind\": \"%s\", \"window\": %u, \"jobs\": %" PRIu64 ",\n     ",
          peer_keys[peer], label, bench.threads[peer], kind_names[kind],
          windows[w], bench.jobs[kind][w]);
  json_write_sample(f, "elapsed_ns", bench.elapsed_ns[peer][kind][w],
                    bench.reps);
  fprintf(f, ",\n     ");
  rates(peer, kind, w, v);
  json_write_sample(f, "jobs_per_s", v, bench.reps);
  fprintf(f, ",\n     ");
  us_per_job(peer, kind, w, v);
  json_write_sample(f, "us_per_job", v, bench.reps);
  fprintf(f, ",\n     \"efficiency\": ");
  if (kind == KIND_SPIN)
    json_write_number(f, efficiency(peer, w));
  else
    fprintf(f, "null");
  if (peer == PEER_TANDEM || peer == PEER_GIL || peer == PEER_TANDEM_OFF)
    fprintf(f, ", \"metrics\": \"%s\"", peer == PEER_TANDEM_OFF ? "off" : "on");
  if (records_wait(peer) && bench.wait[peer][kind][w].count > 0) {
    if (peer == PEER_TANDEM)
      fprintf(f, ",\n     \"wait_timed\": \"tandem_pool_metrics, every "
                 "job\", \"wait\": ");
    else
      fprintf(f,
              ",\n     \"wait_timed\": \"from outside, one job in %d\", "
              "\"wait\": ",
              WAIT_SAMPLE_EVERY);
    hist_write_json(f, &bench.wait[peer][kind][w]);
  }
  if (peer != PEER_TANDEM && selected(PEER_TANDEM)) {
    fprintf(f, ", \"tandem_over_this_jobs_per_s\": ");
    json_write_number(f, median_rate(PEER_TANDEM, kind, w) /
                             median_rate(peer, kind, w));
    fprintf(f, ", \"tandem_over_this_us_per_job\": ");
    json_write_number(f, median_us(PEER_TANDEM, kind, w) /
                             median_us(peer, kind, w));
  }
  fprintf(f, "}");
}

static int write_json(void) {
  const char *sep;
  int peer;
  int kind;
  int w;
  FILE *f;

  f = bench_report_open(&bench.cli, TANDEM_VERSION_STRING, bench.workers,
                        bench.reps);
  if (f == NULL)
    return UV_EIO;
  json_params(f);
  fprintf(f, ",\n \"results\": [\n");
  sep = "";
  for (kind = 0; kind < NKINDS; kind++)
    for (w = 0; w < NWINDOWS; w++)
      for (peer = 0; peer < NPEERS; peer++) {
        if (!selected(peer))
          continue;
        fprintf(f, "%s", sep);
        json_result(f, peer, kind, w);
        sep = ",\n";
      }
  fprintf(f, "\n ]");
  return bench_report_close(&bench.cli, f);
}

/* --------------------------------------------------------------- options */

static const char usage[] =
    "usage: roundtrip [--workers N] [--reps R] [--quick | --tiny]\n"
    "                 [--json FILE] [--peers LIST | --breakdown]\n"
    "  --workers N   threads of tandem, textbook and gil, and\n"
    "                UV_THREADPOOL_SIZE of uv_n (default: the online CPUs)\n"
    "  --reps R      repetitions (default 5, --quick 3, --tiny 1)\n"
    "  --quick       fewer jobs per measurement, for a quick look\n"
    "  --tiny        1/50 of the jobs: a smoke test, not a measurement\n"
    "  --json FILE   write the JSON report to FILE (default: stdout)\n"
    "  --peers LIST  only these peers, of uv uv_n tandem textbook gil\n"
    "                tandem_off (default: all but tandem_off, a pool with\n"
    "                metrics off, measured against tandem's)\n"
    "  --breakdown   instead: where an empty round trip at W = 1 goes,\n"
    "                tandem alone (wait, run, loop lag, the rest), over\n"
    "                200000 round trips (--quick 20000, --tiny 4000)\n";

/* roundtrip's own options, as bench_cli_option_fn. */
static int own_option(void *ctx, const char *a, const char *val) {
  uint64_t v;

  (void)ctx;
  if (strcmp(a, "--uv-only") == 0)
    return bench.uv_only = 1;
  if (strcmp(a, "--breakdown") == 0)
    return bench.breakdown = 1;
  if (strcmp(a, "--peers") == 0)
    return bench_cli_pick(val, peer_keys, NPEERS, &bench.selected) == 0 ? 2
                                                                        : -1;
  if (strcmp(a, "--spin-iters") == 0) {
    if (bench_cli_count(val, 1, UINT64_MAX, &v) != 0)
      return -1;
    bench.spin_iters = v;
    return 2;
  }
  return 0;
}

static void set_parameters(void) {
  unsigned div;
  int kind;
  int w;

  bench.workers = bench_cli_workers(&bench.cli);
  bench.reps = bench_cli_reps(&bench.cli, 1, 3, 5);
  if (bench.selected == 0)
    bench.selected = ((1u << NPEERS) - 1) & ~(1u << PEER_TANDEM_OFF);
  bench.threads[PEER_UV] = UV_DEFAULT_THREADS;
  bench.threads[PEER_UVN] = bench.workers;
  bench.threads[PEER_TANDEM] = bench.workers;
  bench.threads[PEER_TEXTBOOK] = bench.workers;
  bench.threads[PEER_GIL] = bench.workers;
  bench.threads[PEER_TANDEM_OFF] = bench.workers;
  div = bench.cli.tiny ? TINY_DIV : bench.cli.quick ? QUICK_DIV : 1;
  for (kind = 0; kind < NKINDS; kind++)
    for (w = 0; w < NWINDOWS; w++)
      bench.jobs[kind][w] = jobs_default[kind][w] / div;
}

/* ------------------------------------------------------------ the parent */
/* The in-process peers, each on a loop of its own; uv(K) is the child. */
static runner_t runners[NPEERS];
static int runner_open[NPEERS];

static int measure_all(void) {
  stats_summary_t before;
  stats_summary_t after;
  unsigned rep;
  int peer;
  int err;

  err = 0;
  for (peer = 0; err == 0 && peer < NPEERS; peer++)
    if (runner_open[peer])
      err = runner_warm_up(&runners[peer]);
  for (rep = 0; err == 0 && rep < bench.reps; rep++) {
    fprintf(stderr, "roundtrip: rep %u of %u\n", rep + 1, bench.reps);
    spin_measure(bench.spin_iters, 7, 50, &before);
    if (selected(PEER_UVN))
      err = child_one_rep(rep);
    for (peer = 0; err == 0 && peer < NPEERS; peer++) {
      if (!runner_open[peer])
        continue;
      if (peer == PEER_TANDEM && runner_open[PEER_TANDEM_OFF])
        err =
            pair_one_rep(&runners[PEER_TANDEM], &runners[PEER_TANDEM_OFF], rep);
      else if (peer == PEER_TANDEM_OFF && runner_open[PEER_TANDEM])
        continue; /* measured with tandem, in pair_one_rep() */
      else
        err = runner_one_rep(&runners[peer], peer, rep);
    }
    spin_measure(bench.spin_iters, 7, 50, &after);
    bench.rep_job_ns[rep] = (before.median + after.median) / 2;
  }
  return err;
}

static int close_all(tandem_pool_t *pool, tandem_pool_t *pool_off) {
  char what[64];
  int peer;
  int err;
  int rc;

  err = 0;
  for (peer = NPEERS - 1; peer >= 0; peer--) {
    if (!runner_open[peer])
      continue;
    runner_open[peer] = 0;
    if ((rc = runner_close(&runners[peer])) != 0) {
      snprintf(what, sizeof(what), "uv_loop_close (%s)", runners[peer].name);
      err = report_err(what, rc);
    }
  }
  if ((rc = tandem_pool_free(pool)) != 0)
    err = report_err("tandem_pool_free", rc);
  if (pool_off != NULL && (rc = tandem_pool_free(pool_off)) != 0)
    err = report_err("tandem_pool_free (metrics off)", rc);
  return err;
}

/* Opens the runner of every in-process peer; 0 or the first error. */
static int open_all(tandem_pool_t *pool, tandem_pool_t *pool_off) {
  static const int via[NPEERS] = {VIA_UV,       -1,         VIA_TANDEM,
                                  VIA_TEXTBOOK, VIA_TANDEM, VIA_TANDEM};
  static char names[NPEERS][32];
  int peer;
  int err;

  for (peer = 0; peer < NPEERS; peer++) {
    if (via[peer] < 0 || !selected(peer))
      continue;
    peer_label(peer, names[peer], sizeof(names[peer]));
    err = runner_init(&runners[peer], names[peer], via[peer],
                      peer == PEER_TANDEM_OFF ? pool_off : pool,
                      bench.threads[peer]);
    if (err != 0)
      return report_err(names[peer], err);
    runners[peer].gil = peer == PEER_GIL;
    runner_open[peer] = 1;
  }
  return 0;
}

/* A pool of bench.workers with time recording on (metrics 1, whatever
 * TANDEM_METRICS says) or off (-1). */
static int new_pool(tandem_pool_t **pool, int metrics) {
  tandem_options_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.workers = bench.workers;
  opts.metrics = metrics;
  return tandem_pool_new(pool, &opts);
}

static int parent_main(void) {
  tandem_pool_t *pool;
  tandem_pool_t *pool_off = NULL;
  int err;

  /* Recording on: tandem(K)'s waits come from it, and tandem_off(K) is
   * measured against it. */
  err = new_pool(&pool, 1);
  if (err != 0)
    return report_err("tandem_pool_new", err);
  bench.threads[PEER_TANDEM] = tandem_pool_workers(pool);
  bench.threads[PEER_GIL] = bench.threads[PEER_TANDEM];
  if (selected(PEER_TANDEM_OFF)) {
    err = new_pool(&pool_off, -1);
    if (err != 0)
      report_err("tandem_pool_new (metrics off)", err);
    else
      bench.threads[PEER_TANDEM_OFF] = tandem_pool_workers(pool_off);
  }
  if (err == 0)
    err = open_all(pool, pool_off);
  if (err == 0)
    err = measure_all();
  if (close_all(pool, pool_off) != 0 && err == 0)
    err = UV_EBUSY;
  if (err == 0)
    err = write_json();
  return err;
}

/* ------------------------------------------------------------ breakdown */

/* --breakdown: where one empty round trip at W = 1 goes, from tandem's own
 * histograms (include/tandem.h, "metrics"), each job's
 *
 *   wait  from the start of the after callback that queued it (the reading
 *         a job queued from an after callback is stamped with) until its
 *         work starts: the rest of that callback, the submit, and the
 *         wake-up or hand-off to a worker;
 *   run   its work callback;
 *   lag   its work's end until its after callback starts: the completion
 *         push and the loop's wake-up and pick-up.
 *
 * At W = 1 they follow one another with no gap, each boundary one
 * reading: a job's lag ends where the next one's wait starts.  So their
 * means add up to the round trip, and the rest (wall time / N minus the
 * three) is what the wall clock sees beyond them: the first submit, the
 * ends of the timed interval, each value's rounding down to whole ns, the
 * clock's calibration against CLOCK_MONOTONIC.  The
 * loop reads the clock only before every 8th of a run of short after
 * callbacks, but the first of each drain always reads, and at W = 1 each
 * drain runs one: every reading here is a real one. */

enum { PART_WAIT, PART_RUN, PART_LAG, NPARTS };
static const char *const part_names[NPARTS] = {"wait", "run", "lag"};
static const char *const part_what[NPARTS] = {
    "queued (the after callback that queued it starts) -> work starts: "
    "the rest of that callback, submit, wake-up or hand-off",
    "the work callback (empty)",
    "work done -> its after callback starts: completion push, loop "
    "wake-up and pick-up"};
static const char rest_what[] =
    "total - (wait + run + lag): the first submit, the ends of the timed "
    "interval, rounding, the clock's calibration (the three tile the "
    "round trip)";
static const char clock_note[] =
    "exact at W = 1: the loop reads the clock before only every 8th short "
    "after callback, but always before a drain's first, and at W = 1 "
    "each drain has one";

typedef struct breakdown_s {
  uint64_t jobs;
  double elapsed_ns;
  tandem_histogram_t part[NPARTS];
} breakdown_t;

static breakdown_t breakdown;
/* The loop's time around the measurement (file scope: some 2.5 KB each). */
static tandem_loop_metrics_t loop_before;
static tandem_loop_metrics_t loop_after;

static double hist_mean_ns(const tandem_histogram_t *h) {
  return h->count > 0 ? (double)h->sum_ns / (double)h->count : 0;
}

static double breakdown_total_ns(void) {
  return breakdown.elapsed_ns / (double)breakdown.jobs;
}

static double breakdown_rest_ns(void) {
  double rest = breakdown_total_ns();
  int i;

  for (i = 0; i < NPARTS; i++)
    rest -= hist_mean_ns(&breakdown.part[i]);
  return rest;
}

/* Runs breakdown.jobs empty jobs one at a time on the runner, with the
 * pool's and the loop's histograms read before and after (outside the
 * timed part), and keeps the differences.  0 or a libuv error code. */
static int breakdown_measure(runner_t *rn) {
  int err;
  int i;

  err = tandem_pool_metrics(rn->pool, &metrics_before);
  if (err == 0)
    err = tandem_loop_metrics(&rn->tandem, &loop_before);
  if (err == 0)
    err = runner_measure(rn, KIND_EMPTY, 1, breakdown.jobs,
                         &breakdown.elapsed_ns, NULL);
  /* Every job's times are recorded by now: wait and run before its
   * completion was pushed, lag before its after callback ran. */
  if (err == 0)
    err = tandem_pool_metrics(rn->pool, &metrics_after);
  if (err == 0)
    err = tandem_loop_metrics(&rn->tandem, &loop_after);
  if (err != 0)
    return err;
  if (!metrics_after.enabled || !loop_after.enabled)
    return UV_ENOTSUP;
  hist_add_delta(&breakdown.part[PART_WAIT], &metrics_after.wait,
                 &metrics_before.wait);
  hist_add_delta(&breakdown.part[PART_RUN], &metrics_after.run,
                 &metrics_before.run);
  hist_add_delta(&breakdown.part[PART_LAG], &loop_after.lag, &loop_before.lag);
  for (i = 0; i < NPARTS; i++)
    if (breakdown.part[i].count != breakdown.jobs) {
      fprintf(stderr,
              "roundtrip: --breakdown: %" PRIu64 " %s values for %" PRIu64
              " jobs\n",
              breakdown.part[i].count, part_names[i], breakdown.jobs);
      return UV_EPROTO;
    }
  return 0;
}

/* The breakdown as a table: on stdout with --json FILE, else on stderr
 * (stdout is the JSON's). */
static void breakdown_print(void) {
  FILE *out = bench.cli.json_path != NULL ? stdout : stderr;
  double total = breakdown_total_ns();
  double mean;
  int i;

  fprintf(out,
          "roundtrip --breakdown: tandem(%u), empty jobs, W = 1, %" PRIu64
          " round trips\n"
          "  %-6s %10s %8s %10s\n",
          bench.threads[PEER_TANDEM], breakdown.jobs, "part", "mean ns",
          "share", "p50 ns");
  for (i = 0; i < NPARTS; i++) {
    mean = hist_mean_ns(&breakdown.part[i]);
    fprintf(out, "  %-6s %10.1f %7.1f%% %10" PRIu64 "\n", part_names[i], mean,
            100 * mean / total,
            tandem_histogram_quantile(&breakdown.part[i], 0.5));
  }
  fprintf(out, "  %-6s %10.1f %7.1f%%\n  %-6s %10.1f %7.1f%%\n", "rest",
          breakdown_rest_ns(), 100 * breakdown_rest_ns() / total, "total",
          total, 100.0);
  for (i = 0; i < NPARTS; i++)
    fprintf(out, "  %s: %s\n", part_names[i], part_what[i]);
  fprintf(out,
          "  rest: %s\n  total: wall time / round trips\n"
          "  p50: within one histogram bucket (12.5 %%)\n  %s\n",
          rest_what, clock_note);
}

static void breakdown_write_part(FILE *f, const char *name, const char *what,
                                 double mean, const tandem_histogram_t *h) {
  fprintf(f, "    {\"part\": \"%s\", \"what\": ", name);
  json_write_string(f, what);
  fprintf(f, ", \"mean_ns\": ");
  json_write_number(f, mean);
  fprintf(f, ", \"share\": ");
  json_write_number(f, mean / breakdown_total_ns());
  if (h != NULL) {
    fprintf(f, ", \"p50_ns\": %" PRIu64 ",\n     \"hist\": ",
            tandem_histogram_quantile(h, 0.5));
    hist_write_json(f, h);
  }
  fprintf(f, "}");
}

/* The report: the shared header, then
 *   "breakdown": {"peer", "threads", "kind", "window", "jobs",
 *                 "elapsed_ns", "total_ns", "parts": [{"part", "what",
 *                 "mean_ns", "share", "p50_ns", "hist"}, ...], "clock"}
 * with the parts wait, run, lag and rest (no p50 or hist), in that order;
 * share = mean / total. */
static int breakdown_write_json(void) {
  FILE *f;
  int i;

  f = bench_report_open(&bench.cli, TANDEM_VERSION_STRING, bench.workers, 1);
  if (f == NULL)
    return UV_EIO;
  fprintf(f, ", \"breakdown_jobs\": %" PRIu64 "},\n \"breakdown\": {",
          breakdown.jobs);
  fprintf(f,
          "\"peer\": \"tandem\", \"threads\": %u, \"kind\": \"empty\", "
          "\"window\": 1, \"jobs\": %" PRIu64 ",\n  \"elapsed_ns\": ",
          bench.threads[PEER_TANDEM], breakdown.jobs);
  json_write_number(f, breakdown.elapsed_ns);
  fprintf(f, ", \"total_ns\": ");
  json_write_number(f, breakdown_total_ns());
  fprintf(f, ",\n  \"parts\": [\n");
  for (i = 0; i < NPARTS; i++) {
    breakdown_write_part(f, part_names[i], part_what[i],
                         hist_mean_ns(&breakdown.part[i]), &breakdown.part[i]);
    fprintf(f, ",\n");
  }
  breakdown_write_part(f, "rest", rest_what, breakdown_rest_ns(), NULL);
  fprintf(f, "],\n  \"clock\": ");
  json_write_string(f, clock_note);
  fprintf(f, "}");
  return bench_report_close(&bench.cli, f);
}

/* --breakdown: tandem alone, on a pool that records time. */
static int breakdown_main(void) {
  tandem_pool_t *pool;
  runner_t *rn = &runners[PEER_TANDEM];
  double ns;
  int err;
  int rc;

  breakdown.jobs = BREAKDOWN_JOBS / (bench.cli.tiny    ? TINY_DIV
                                     : bench.cli.quick ? QUICK_BREAKDOWN_DIV
                                                       : 1);
  err = new_pool(&pool, 1);
  if (err != 0)
    return report_err("tandem_pool_new", err);
  bench.threads[PEER_TANDEM] = tandem_pool_workers(pool);
  err = runner_init(rn, "tandem", VIA_TANDEM, pool, 0);
  if (err != 0) {
    report_err("tandem", err);
  } else {
    /* Start the threads and fault everything in, then the measurement. */
    err = runner_measure(rn, KIND_EMPTY, 64, 20000, &ns, NULL);
    if (err == 0)
      err = runner_measure(rn, KIND_EMPTY, 1, 2000, &ns, NULL);
    if (err == 0)
      err = breakdown_measure(rn);
    if (err != 0)
      report_err("tandem --breakdown", err);
    if ((rc = runner_close(rn)) != 0)
      err = report_err("uv_loop_close (tandem)", rc);
  }
  if ((rc = tandem_pool_free(pool)) != 0)
    err = report_err("tandem_pool_free", rc);
  if (err == 0) {
    breakdown_print();
    err = breakdown_write_json();
  }
  return err;
}

int main(int argc, char **argv) {
  const char *env;

  bench.argv0 = argc > 0 ? argv[0] : "roundtrip";
  bench.cli.name = "roundtrip";
  bench.cli.usage = usage;
  if (bench_cli_parse(&bench.cli, argc, argv, own_option, NULL) != 0)
    return 2;
  set_parameters();
  if (bench.uv_only) {
    if (bench.spin_iters == 0) {
      fprintf(stderr, "roundtrip: --uv-only needs --spin-iters\n");
      return 2;
    }
    spin_iters = bench.spin_iters;
    return child_main();
  }
  if (bench.breakdown)
    return breakdown_main() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  /* uv(4) is libuv's default pool: libuv reads this at its first job. */
  env = getenv("UV_THREADPOOL_SIZE");
  if (env != NULL) {
    fprintf(stderr, "roundtrip: unsetting UV_THREADPOOL_SIZE=%s for uv(4)\n",
            env);
    unsetenv("UV_THREADPOOL_SIZE");
  }
  bench.spin_iters = spin_calibrate(JOB_TARGET_NS);
  spin_measure(bench.spin_iters, 21, 100, &bench.job_ns);
  spin_iters = bench.spin_iters;
  if (uv_mutex_init(&the_gil) != 0) {
    fprintf(stderr, "roundtrip: cannot make the GIL's mutex\n");
    return EXIT_FAILURE;
  }
  return parent_main() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
