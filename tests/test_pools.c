/* SPDX-License-Identifier: MIT */
/*
 * Pools: several loops on one pool, one loop on several pools, pool sizes
 * and options, and the counters of tandem_pool_stats().
 */
#define _GNU_SOURCE /* syscall(), SYS_gettid */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixture.h"
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"
#include "threads_named.h"
#include "worker_gate.h"

/* clang-format off */
#define container_of(ptr, type, member)                                      \
  ((type *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

static int on_thread(const uv_thread_t *thread) {
  uv_thread_t self;

  self = uv_thread_self();
  return uv_thread_equal(thread, &self);
}

/* ------------------------------------------------------ a stream of jobs */

/* A loop thread that keeps STREAM_INFLIGHT requests in flight, re-queueing
 * each from its after callback until `total` jobs have run.  Every field
 * but `ran` belongs to the loop thread. */
#define STREAM_INFLIGHT 256

typedef struct stream_s stream_t;

typedef struct stream_job_s {
  tandem_work_t req;
  stream_t *stream;
} stream_job_t;

struct stream_s {
  uv_loop_t *loop;
  tandem_t *tandem;
  uv_thread_t thread;
  stream_job_t jobs[STREAM_INFLIGHT];
  unsigned total;
  unsigned queued;
  unsigned called;
  atomic_uint ran;
  unsigned off_thread; /* after callbacks not on `thread` */
  unsigned foreign;    /* after callbacks for a request of someone else */
  unsigned bad_status;
  unsigned queue_errors;
};

static void stream_work_cb(tandem_work_t *req) {
  stream_job_t *job;

  job = container_of(req, stream_job_t, req);
  atomic_fetch_add_explicit(&job->stream->ran, 1, memory_order_relaxed);
}

static void stream_after_cb(tandem_work_t *req, int status);

static void stream_queue(stream_t *s, stream_job_t *job) {
  if (tandem_queue_work(s->tandem, &job->req, stream_work_cb,
                        stream_after_cb) != 0)
    s->queue_errors++;
  else
    s->queued++;
}

static void stream_after_cb(tandem_work_t *req, int status) {
  stream_job_t *job;
  stream_t *s;

  job = container_of(req, stream_job_t, req);
  s = job->stream;
  if (!on_thread(&s->thread))
    s->off_thread++;
  if (req->tandem != s->tandem || job < s->jobs ||
      job >= s->jobs + STREAM_INFLIGHT)
    s->foreign++;
  if (status != 0)
    s->bad_status++;
  s->called++;
  if (s->queued < s->total)
    stream_queue(s, job);
}

/* Starts the stream on the calling thread, which must be t's loop thread. */
static void stream_start(stream_t *s, uv_loop_t *loop, tandem_t *t,
                         unsigned total) {
  unsigned i;

  memset(s, 0, sizeof(*s));
  atomic_init(&s->ran, 0);
  s->loop = loop;
  s->tandem = t;
  s->thread = uv_thread_self();
  s->total = total;
  for (i = 0; i < STREAM_INFLIGHT && s->queued < total; i++) {
    s->jobs[i].stream = s;
    stream_queue(s, &s->jobs[i]);
  }
}

static void assert_stream_done(stream_t *s) {
  ck_assert_uint_eq(s->queue_errors, 0);
  ck_assert_uint_eq(s->called, s->total);
  ck_assert_uint_eq(atomic_load(&s->ran), s->total);
  ck_assert_uint_eq(s->off_thread, 0);
  ck_assert_uint_eq(s->foreign, 0);
  ck_assert_uint_eq(s->bad_status, 0);
}

/* ----------------------------------------- two loops sharing one pool */

#define LOOP_JOBS 20000u

typedef struct loop_thread_s {
  uv_thread_t thread;
  fixture_t f; /* f.pool: the shared pool */
  stream_t stream;
  int open_rc;
  int run_rc;
  int close_rc;
} loop_thread_t;

static void loop_thread_main(void *arg) {
  loop_thread_t *lt;

  lt = arg;
  lt->open_rc = fixture_loop_open(&lt->f, lt->f.pool);
  if (lt->open_rc != 0)
    return;
  stream_start(&lt->stream, &lt->f.loop, &lt->f.tandem, LOOP_JOBS);
  lt->run_rc = uv_run(&lt->f.loop, UV_RUN_DEFAULT);
  lt->close_rc = fixture_loop_close(&lt->f);
}

/* Two loops, each on its own thread, share one pool: each gets the after
 * callbacks of its own jobs only, on its own thread. */
START_TEST(test_two_loops_share_one_pool) {
  loop_thread_t *lt;
  tandem_pool_t *pool;
  int i;

  lt = calloc(2, sizeof(*lt));
  ck_assert_ptr_nonnull(lt);
  ck_assert_int_eq(tandem_pool_new(&pool, NULL), 0);
  for (i = 0; i < 2; i++) {
    lt[i].f.pool = pool;
    ck_assert_int_eq(uv_thread_create(&lt[i].thread, loop_thread_main, &lt[i]),
                     0);
  }
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(uv_thread_join(&lt[i].thread), 0);
    ck_assert_msg(lt[i].open_rc == 0, "%s", lt[i].f.error);
    ck_assert_int_eq(lt[i].run_rc, 0);
    ck_assert(uv_thread_equal(&lt[i].stream.thread, &lt[i].thread));
    assert_stream_done(&lt[i].stream);
    ck_assert_msg(lt[i].close_rc == 0, "%s", lt[i].f.error);
  }
  ck_assert_int_eq(tandem_pool_free(pool), 0);
  free(lt);
}
END_TEST

/* ------------------------------------ one loop, two handles, two pools */

typedef struct stats_wait_s {
  tandem_pool_t *pool;
  uint64_t jobs;
} stats_wait_t;

static int stats_reached(void *arg) {
  tandem_stats_t stats;
  stats_wait_t *w;

  w = arg;
  if (tandem_pool_stats(w->pool, &stats) != 0)
    return 0;
  return stats.total.jobs >= w->jobs;
}

static int stream_done(void *arg) {
  stream_t *s;

  s = arg;
  return s->called == s->total;
}

/* One loop with a handle on each of two pools: while every worker of the
 * first pool is blocked, jobs on the second one still complete, and jobs
 * on the first one wait for its workers. */
START_TEST(test_one_loop_two_handles_on_two_pools) {
  tandem_options_t opts;
  stats_wait_t w;
  tandem_pool_t *pool_b;
  fixture_t f; /* pool A, the loop, and the handle on A */
  worker_gate_t gate;
  stream_t *on_a;
  stream_t *on_b;
  tandem_t tb;

  on_a = malloc(sizeof(*on_a));
  on_b = malloc(sizeof(*on_b));
  ck_assert_ptr_nonnull(on_a);
  ck_assert_ptr_nonnull(on_b);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  fixture_open(&f, &opts);
  opts.workers = 1;
  ck_assert_int_eq(tandem_pool_new(&pool_b, &opts), 0);
  ck_assert_int_eq(tandem_init(&f.loop, &tb, pool_b), 0);
  ck_assert_ptr_eq(f.tandem.pool, f.pool);
  ck_assert_ptr_eq(tb.pool, pool_b);

  ck_assert_int_eq(worker_gate_block(&gate, &f.tandem), 0);
  stream_start(on_a, &f.loop, &f.tandem, 10);
  stream_start(on_b, &f.loop, &tb, 1000);
  ck_assert_msg(run_until(&f.loop, stream_done, on_b, 10000),
                "jobs on pool B stalled while pool A was blocked");
  assert_stream_done(on_b);
  ck_assert_uint_eq(atomic_load(&on_a->ran), 0);
  ck_assert_uint_eq(on_a->called, 0);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(gate.finished, gate.n);
  worker_gate_destroy(&gate);
  assert_stream_done(on_a);

  w.pool = f.pool;
  w.jobs = 2 + 10;
  ck_assert(run_until(&f.loop, stats_reached, &w, 5000));
  w.pool = pool_b;
  w.jobs = 1000;
  ck_assert(run_until(&f.loop, stats_reached, &w, 5000));

  ck_assert_int_eq(tandem_close(&tb, NULL), 0);
  fixture_close(&f); /* runs the loop until both handles closed */
  ck_assert_int_eq(tandem_pool_free(pool_b), 0);
  free(on_a);
  free(on_b);
}
END_TEST

/* ------------------------------------ a request that changes handles */

#define HOPS 2000u

typedef struct hopper_s {
  tandem_work_t req;
  tandem_t *handles[2];
  atomic_uint ran;
  unsigned called; /* loop thread only */
  unsigned wrong_handle;
  unsigned bad_status;
  int queue_rc;
} hopper_t;

static void hopper_work_cb(tandem_work_t *req) {
  hopper_t *h;

  h = req->data;
  atomic_fetch_add(&h->ran, 1);
}

static void hopper_after_cb(tandem_work_t *req, int status) {
  hopper_t *h;

  h = req->data;
  if (req->tandem != h->handles[h->called % 2])
    h->wrong_handle++;
  if (status != 0)
    h->bad_status++;
  h->called++;
  if (h->called < HOPS && h->queue_rc == 0)
    h->queue_rc = tandem_queue_work(h->handles[h->called % 2], req,
                                    hopper_work_cb, hopper_after_cb);
}

/* A request re-queued from its after callback on the other of two handles
 * (each on its own pool), 2,000 times: each trip is called back once, by
 * the handle it was queued on. */
START_TEST(test_request_requeued_on_another_handle) {
  tandem_pool_t *pools[2];
  tandem_t handles[2];
  uv_loop_t loop;
  hopper_t h;
  int i;

  ck_assert_int_eq(uv_loop_init(&loop), 0);
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(tandem_pool_new(&pools[i], NULL), 0);
    ck_assert_int_eq(tandem_init(&loop, &handles[i], pools[i]), 0);
  }
  memset(&h, 0, sizeof(h));
  atomic_init(&h.ran, 0);
  h.req.data = &h;
  h.handles[0] = &handles[0];
  h.handles[1] = &handles[1];
  ck_assert_int_eq(
      tandem_queue_work(&handles[0], &h.req, hopper_work_cb, hopper_after_cb),
      0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(h.queue_rc, 0);
  ck_assert_uint_eq(h.called, HOPS);
  ck_assert_uint_eq(atomic_load(&h.ran), HOPS);
  ck_assert_uint_eq(h.wrong_handle, 0);
  ck_assert_uint_eq(h.bad_status, 0);

  for (i = 0; i < 2; i++)
    tandem_close(&handles[i], NULL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  for (i = 0; i < 2; i++)
    ck_assert_int_eq(tandem_pool_free(pools[i]), 0);
}
END_TEST

/* --------------------------------------------------- one worker only */

#define SOLO_JOBS 10000

typedef struct solo_s {
  tandem_work_t reqs[64];
  tandem_work_t child;
  uv_mutex_t mutex;
  uv_thread_t worker; /* under mutex */
  int have_worker;    /* under mutex */
  int other_threads;  /* under mutex */
  atomic_int active;
  atomic_int overlaps;
  atomic_int child_rc;
  atomic_int child_ran;
  unsigned queued; /* loop thread only */
  unsigned called;
  unsigned child_called;
  unsigned bad_status;
  uv_thread_t loop_thread;
  tandem_t *tandem;
} solo_t;

static void solo_note_thread(solo_t *s) {
  uv_thread_t self;

  self = uv_thread_self();
  uv_mutex_lock(&s->mutex);
  if (!s->have_worker) {
    s->worker = self;
    s->have_worker = 1;
  } else if (!uv_thread_equal(&s->worker, &self)) {
    s->other_threads++;
  }
  uv_mutex_unlock(&s->mutex);
}

static void solo_child_work_cb(tandem_work_t *req) {
  solo_t *s;

  s = req->data;
  solo_note_thread(s);
  atomic_fetch_add(&s->child_ran, 1);
}

static void solo_child_after_cb(tandem_work_t *req, int status) {
  solo_t *s;

  s = req->data;
  if (status != 0)
    s->bad_status++;
  s->child_called++;
}

static void solo_work_cb(tandem_work_t *req) {
  solo_t *s;

  s = req->data;
  if (atomic_fetch_add(&s->active, 1) != 0)
    atomic_fetch_add(&s->overlaps, 1);
  solo_note_thread(s);
  /* The first job queues a child from the only worker. */
  if (req == &s->reqs[0] && atomic_load(&s->child_rc) == 1)
    atomic_store(&s->child_rc,
                 tandem_queue_work(s->tandem, &s->child, solo_child_work_cb,
                                   solo_child_after_cb));
  atomic_fetch_sub(&s->active, 1);
}

static void solo_after_cb(tandem_work_t *req, int status) {
  solo_t *s;

  s = req->data;
  if (status != 0)
    s->bad_status++;
  s->called++;
  if (s->queued < SOLO_JOBS) {
    if (tandem_queue_work(s->tandem, req, solo_work_cb, solo_after_cb) == 0)
      s->queued++;
  }
}

static int solo_done(void *arg) {
  solo_t *s;

  s = arg;
  return s->called == SOLO_JOBS && s->child_called == 1;
}

/* A pool of one worker runs every job on that one thread, one at a time,
 * including one queued from inside a job. */
START_TEST(test_pool_with_one_worker) {
  tandem_options_t opts;
  fixture_t f;
  solo_t *s;
  unsigned i;

  s = calloc(1, sizeof(*s));
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(uv_mutex_init(&s->mutex), 0);
  atomic_init(&s->child_rc, 1);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  fixture_open(&f, &opts);
  ck_assert_uint_eq(tandem_pool_workers(f.pool), 1);
  s->tandem = &f.tandem;
  s->loop_thread = uv_thread_self();
  s->child.data = s;

  for (i = 0; i < 64; i++) {
    s->reqs[i].data = s;
    ck_assert_int_eq(
        tandem_queue_work(&f.tandem, &s->reqs[i], solo_work_cb, solo_after_cb),
        0);
    s->queued++;
  }
  ck_assert(run_until(&f.loop, solo_done, s, 20000));

  ck_assert_int_eq(atomic_load(&s->child_rc), 0);
  ck_assert_int_eq(atomic_load(&s->child_ran), 1);
  ck_assert_uint_eq(s->called, SOLO_JOBS);
  ck_assert_uint_eq(s->bad_status, 0);
  ck_assert_int_eq(atomic_load(&s->overlaps), 0);
  ck_assert(s->have_worker);
  ck_assert_int_eq(s->other_threads, 0);
  ck_assert(!uv_thread_equal(&s->worker, &s->loop_thread));

  fixture_close(&f);
  uv_mutex_destroy(&s->mutex);
  free(s);
}
END_TEST

/* ------------------------------------------------- worker priority */

static int nice_seen;

static int thread_nice(void) {
  /* On Linux, PRIO_PROCESS with a thread id reads that thread only. */
  return getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
}

static void nice_work_cb(tandem_work_t *req) {
  (void)req;
  nice_seen = thread_nice();
}

/* worker_nice lowers each worker's priority by that much, and leaves the
 * loop thread's alone; out of range is UV_EINVAL. */
START_TEST(test_worker_nice_lowers_workers_priority) {
  tandem_options_t opts;
  tandem_pool_t *pool;
  fixture_t f;
  tandem_work_t req;
  unsigned before;

  before = thread_nice();
  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  opts.worker_nice = 40;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), UV_EINVAL);
  opts.worker_nice = 3;
  fixture_open(&f, &opts);
  memset(&req, 0, sizeof(req));
  nice_seen = -100;
  ck_assert_int_eq(tandem_queue_work(&f.tandem, &req, nice_work_cb, NULL), 0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(nice_seen, before + 3 > 19 ? 19 : before + 3);
  ck_assert_int_eq(thread_nice(), before);
  fixture_close(&f);
}
END_TEST

/* ---------------------------------------------------- pool sizes */

static unsigned online_cpus(void) {
  long n;

  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

/* workers = 0, a zeroed options struct or NULL options: one worker per
 * online CPU; the default pool too. */
START_TEST(test_zero_workers_means_one_per_online_cpu) {
  tandem_options_t opts;
  tandem_stats_t stats;
  tandem_pool_t *pool;

  memset(&opts, 0, sizeof(opts));
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  ck_assert_uint_eq(tandem_pool_workers(pool), online_cpus());
  ck_assert_int_eq(tandem_pool_stats(pool, &stats), 0);
  ck_assert_uint_eq(stats.workers, online_cpus());
  ck_assert_int_eq(tandem_pool_free(pool), 0);

  ck_assert_int_eq(tandem_pool_new(&pool, NULL), 0);
  ck_assert_uint_eq(tandem_pool_workers(pool), online_cpus());
  ck_assert_int_eq(tandem_pool_free(pool), 0);

  ck_assert_ptr_nonnull(tandem_pool_default());
  ck_assert_ptr_eq(tandem_pool_default(), tandem_pool_default());
  ck_assert_uint_eq(tandem_pool_workers(tandem_pool_default()), online_cpus());
}
END_TEST

#define RACERS 4

typedef struct default_racer_s {
  uv_thread_t thread;
  uv_barrier_t *barrier;
  tandem_pool_t *pool;
} default_racer_t;

static void default_racer_main(void *arg) {
  default_racer_t *r;

  r = arg;
  uv_barrier_wait(r->barrier);
  r->pool = tandem_pool_default();
}

/* Threads asking for the default pool at the same moment, the first time,
 * all get the same one. */
START_TEST(test_default_pool_made_once_under_race) {
  default_racer_t racers[RACERS];
  uv_barrier_t barrier;
  int i;

  ck_assert_int_eq(uv_barrier_init(&barrier, RACERS), 0);
  for (i = 0; i < RACERS; i++) {
    racers[i].barrier = &barrier;
    racers[i].pool = NULL;
    ck_assert_int_eq(
        uv_thread_create(&racers[i].thread, default_racer_main, &racers[i]), 0);
  }
  for (i = 0; i < RACERS; i++)
    ck_assert_int_eq(uv_thread_join(&racers[i].thread), 0);
  uv_barrier_destroy(&barrier);

  ck_assert_ptr_nonnull(racers[0].pool);
  for (i = 1; i < RACERS; i++)
    ck_assert_ptr_eq(racers[i].pool, racers[0].pool);
  ck_assert_ptr_eq(tandem_pool_default(), racers[0].pool);
}
END_TEST

/* tandem_pool_new returns once every worker runs, as libuv's pool does: a
 * fork() right after it then never copies a thread caught in its start-up
 * (under GCC 12's ASan that start-up holds allocator locks, and a child
 * forked then deadlocked at its first malloc: a 30 s hang in CI).  Each
 * worker names itself first thing, so all of them carry their name. */
START_TEST(test_pool_new_returns_with_every_worker_started) {
  tandem_options_t opts;
  tandem_pool_t *pool;
  int round;
  unsigned before;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 8;
  /* Other pools' workers (the default pool's, under CK_FORK=no) count too. */
  before = threads_named("tandem-w");
  for (round = 0; round < 20; round++) {
    ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
    ck_assert_uint_eq(threads_named("tandem-w"), before + 8);
    ck_assert_int_eq(tandem_pool_free(pool), 0);
  }
}
END_TEST

/* A pool with more workers than the stats struct has room for: it works,
 * stats.workers tells the real count, only the first 64 are itemised. */
START_TEST(test_pool_with_more_workers_than_stats_slots) {
  tandem_options_t opts;
  tandem_stats_t stats;
  fixture_t f;
  uint64_t sum;
  stream_t *s;
  unsigned i;

  s = malloc(sizeof(*s));
  ck_assert_ptr_nonnull(s);
  memset(&opts, 0, sizeof(opts));
  opts.workers = TANDEM_STATS_MAX_WORKERS + 6;
  fixture_open(&f, &opts);
  ck_assert_uint_eq(tandem_pool_workers(f.pool), TANDEM_STATS_MAX_WORKERS + 6);

  stream_start(s, &f.loop, &f.tandem, 2000);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  assert_stream_done(s);

  ck_assert_int_eq(tandem_pool_stats(f.pool, &stats), 0);
  ck_assert_uint_eq(stats.workers, TANDEM_STATS_MAX_WORKERS + 6);
  sum = 0;
  for (i = 0; i < TANDEM_STATS_MAX_WORKERS; i++)
    sum += stats.worker[i].jobs;
  ck_assert_uint_le(sum, stats.total.jobs);

  fixture_close(&f);
  free(s);
}
END_TEST

/* ------------------------------------------------------------- stats */

#define STATS_JOBS 5000u

/* After N jobs the pool counts at least N (the counters may trail the
 * after callbacks a little, so wait for them), and each total is the sum
 * of its per-worker counters. */
START_TEST(test_pool_stats_count_jobs) {
  tandem_options_t opts;
  tandem_stats_t stats;
  fixture_t f;
  stats_wait_t w;
  uint64_t jobs;
  uint64_t steals;
  uint64_t injected;
  uint64_t depth;
  stream_t *s;
  unsigned i;

  s = malloc(sizeof(*s));
  ck_assert_ptr_nonnull(s);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  fixture_open(&f, &opts);
  ck_assert_int_eq(tandem_pool_stats(f.pool, &stats), 0);
  ck_assert_uint_eq(stats.workers, 2);
  ck_assert_uint_eq(stats.total.jobs, 0);
  ck_assert_uint_eq(stats.cancelled, 0);

  stream_start(s, &f.loop, &f.tandem, STATS_JOBS);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  assert_stream_done(s);

  w.pool = f.pool;
  w.jobs = STATS_JOBS;
  ck_assert_msg(run_until(&f.loop, stats_reached, &w, 5000),
                "stats count fewer jobs than ran");

  ck_assert_int_eq(tandem_pool_stats(f.pool, &stats), 0);
  ck_assert_uint_eq(stats.workers, 2);
  ck_assert_uint_ge(stats.total.jobs, STATS_JOBS);
  ck_assert_uint_eq(stats.cancelled, 0);
  ck_assert_uint_eq(stats.inject_depth, 0);
  jobs = steals = injected = depth = 0;
  for (i = 0; i < stats.workers; i++) {
    jobs += stats.worker[i].jobs;
    steals += stats.worker[i].steals;
    injected += stats.worker[i].injected;
    depth += stats.worker[i].depth;
  }
  ck_assert_uint_eq(jobs, stats.total.jobs);
  ck_assert_uint_eq(steals, stats.total.steals);
  ck_assert_uint_eq(injected, stats.total.injected);
  ck_assert_uint_eq(depth, stats.total.depth);
  ck_assert_uint_eq(depth, 0);
  /* Jobs from the loop thread enter through the injection queue. */
  ck_assert_uint_ge(stats.total.injected + stats.total.steals, 1);

  fixture_close(&f);
  free(s);
}
END_TEST

#define DEPTH_JOBS 100

static void depth_work_cb(tandem_work_t *req) {
  (void)req;
}

static void depth_after_cb(tandem_work_t *req, int status) {
  int *called;

  (void)status;
  called = req->data;
  (*called)++;
}

/* With every worker blocked, 100 jobs wait in the injection queue:
 * inject_depth says 100; cancel 50 and 50 are waiting; the cancelled
 * counter says 50. */
START_TEST(test_pool_stats_inject_depth_and_cancelled) {
  tandem_options_t opts;
  tandem_stats_t stats;
  tandem_work_t *reqs;
  fixture_t f;
  worker_gate_t gate;
  int cancel_errors;
  int called;
  int i;

  reqs = calloc(DEPTH_JOBS, sizeof(*reqs));
  ck_assert_ptr_nonnull(reqs);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  fixture_open(&f, &opts);
  ck_assert_int_eq(worker_gate_block(&gate, &f.tandem), 0);

  called = 0;
  for (i = 0; i < DEPTH_JOBS; i++) {
    reqs[i].data = &called;
    ck_assert_int_eq(
        tandem_queue_work(&f.tandem, &reqs[i], depth_work_cb, depth_after_cb),
        0);
  }
  ck_assert_int_eq(tandem_pool_stats(f.pool, &stats), 0);
  ck_assert_uint_eq(stats.inject_depth, DEPTH_JOBS);
  ck_assert_uint_eq(stats.cancelled, 0);

  cancel_errors = 0;
  for (i = 0; i < DEPTH_JOBS; i += 2)
    if (tandem_cancel(&reqs[i]) != 0)
      cancel_errors++;
  ck_assert_int_eq(cancel_errors, 0);
  ck_assert_int_eq(tandem_pool_stats(f.pool, &stats), 0);
  ck_assert_uint_eq(stats.cancelled, DEPTH_JOBS / 2);
  ck_assert_msg(stats.inject_depth == DEPTH_JOBS / 2,
                "inject_depth %llu with %d jobs waiting: cancelled jobs "
                "still counted",
                (unsigned long long)stats.inject_depth, DEPTH_JOBS / 2);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  ck_assert_int_eq(called, DEPTH_JOBS);
  ck_assert_int_eq(tandem_pool_stats(f.pool, &stats), 0);
  ck_assert_uint_eq(stats.inject_depth, 0);

  fixture_close(&f);
  free(reqs);
}
END_TEST

/* -------------------------------------------------------- options */

typedef struct watchdog_s {
  uv_thread_t thread;
  uv_mutex_t mutex;
  uv_cond_t cond;
  int done;  /* under mutex */
  int fired; /* under mutex */
  worker_gate_t *gate;
  uint64_t timeout_ns;
} watchdog_t;

static void watchdog_main(void *arg) {
  watchdog_t *w;
  uint64_t deadline;
  uint64_t now;

  w = arg;
  deadline = uv_hrtime() + w->timeout_ns;
  uv_mutex_lock(&w->mutex);
  while (!w->done) {
    now = uv_hrtime();
    if (now >= deadline) {
      w->fired = 1;
      worker_gate_open(w->gate);
      break;
    }
    uv_cond_timedwait(&w->cond, &w->mutex, deadline - now);
  }
  uv_mutex_unlock(&w->mutex);
}

#define OVERFLOW_JOBS 64u

/* An injection queue of 4 slots, both workers blocked, 64 jobs queued from
 * the loop thread: tandem_queue_work() neither fails nor blocks (it has no
 * "full" error, and blocking the loop thread would deadlock), and all 64
 * run once the workers are free. */
START_TEST(test_more_jobs_than_injection_slots) {
  tandem_options_t opts;
  fixture_t f;
  worker_gate_t gate;
  watchdog_t wd;
  stream_t *s;

  s = malloc(sizeof(*s));
  ck_assert_ptr_nonnull(s);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  opts.queue_size = 4;
  fixture_open(&f, &opts);
  ck_assert_int_eq(worker_gate_block(&gate, &f.tandem), 0);

  /* If queueing blocks, a watchdog frees the workers so the test fails
   * with a message instead of timing out. */
  memset(&wd, 0, sizeof(wd));
  wd.gate = &gate;
  wd.timeout_ns = (uint64_t)3000000000u * timeout_multiplier();
  ck_assert_int_eq(uv_mutex_init(&wd.mutex), 0);
  ck_assert_int_eq(uv_cond_init(&wd.cond), 0);
  ck_assert_int_eq(uv_thread_create(&wd.thread, watchdog_main, &wd), 0);

  stream_start(s, &f.loop, &f.tandem, OVERFLOW_JOBS);

  uv_mutex_lock(&wd.mutex);
  wd.done = 1;
  uv_cond_signal(&wd.cond);
  uv_mutex_unlock(&wd.mutex);
  ck_assert_int_eq(uv_thread_join(&wd.thread), 0);
  ck_assert_msg(!wd.fired, "tandem_queue_work() blocked on a full queue");
  ck_assert_uint_eq(s->queue_errors, 0);
  ck_assert_uint_eq(s->queued, OVERFLOW_JOBS);

  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  assert_stream_done(s);
  worker_gate_destroy(&gate);
  uv_cond_destroy(&wd.cond);
  uv_mutex_destroy(&wd.mutex);

  /* Then a long stream through the 4 slots. */
  stream_start(s, &f.loop, &f.tandem, 20000);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  assert_stream_done(s);

  fixture_close(&f);
  free(s);
}
END_TEST

typedef struct feeder_s {
  uv_thread_t thread;
  tandem_t *tandem;
  tandem_work_t reqs[500];
  atomic_uint ran;
  int queue_errors;
} feeder_t;

static void feeder_work_cb(tandem_work_t *req) {
  feeder_t *f;

  f = req->data;
  atomic_fetch_add(&f->ran, 1);
}

static void feeder_main(void *arg) {
  feeder_t *f;
  unsigned i;

  f = arg;
  for (i = 0; i < 500; i++) {
    f->reqs[i].data = f;
    if (tandem_queue_work(f->tandem, &f->reqs[i], feeder_work_cb, NULL) != 0)
      f->queue_errors++;
    if (i % 50 == 49)
      uv_sleep(1); /* let the workers park in between */
  }
}

static int feeder_done(void *arg) {
  feeder_t *f;

  f = arg;
  return atomic_load(&f->ran) == 500;
}

/* Workers that park at once and a loop that never polls: no wake-up is
 * lost, from the loop thread or from another thread. */
START_TEST(test_no_spinning_loses_no_wakeup) {
  tandem_options_t opts;
  tandem_stats_t stats;
  fixture_t fx;
  feeder_t *f;
  stream_t *s;
  int i;

  s = malloc(sizeof(*s));
  f = calloc(1, sizeof(*f));
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_nonnull(f);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  opts.worker_spin_us = -1;
  opts.loop_spin_us = -1;
  fixture_open(&fx, &opts);

  /* One job at a time, so every job finds the workers asleep. */
  for (i = 0; i < 200; i++) {
    stream_start(s, &fx.loop, &fx.tandem, 1);
    ck_assert_int_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
    assert_stream_done(s);
  }

  f->tandem = &fx.tandem;
  atomic_init(&f->ran, 0);
  ck_assert_int_eq(uv_thread_create(&f->thread, feeder_main, f), 0);
  ck_assert(run_until(&fx.loop, feeder_done, f, 10000));
  ck_assert_int_eq(uv_thread_join(&f->thread), 0);
  ck_assert_int_eq(f->queue_errors, 0);

  ck_assert_int_eq(tandem_pool_stats(fx.pool, &stats), 0);
  ck_assert_uint_ge(stats.total.parks, 1);

  fixture_close(&fx);
  free(f);
  free(s);
}
END_TEST

static Suite *pools_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("pools");

  tc = tcase_create("sharing");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_two_loops_share_one_pool);
  tcase_add_test(tc, test_one_loop_two_handles_on_two_pools);
  tcase_add_test(tc, test_request_requeued_on_another_handle);
  suite_add_tcase(s, tc);

  tc = tcase_create("sizes");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_pool_with_one_worker);
  tcase_add_test(tc, test_worker_nice_lowers_workers_priority);
  tcase_add_test(tc, test_zero_workers_means_one_per_online_cpu);
  tcase_add_test(tc, test_default_pool_made_once_under_race);
  tcase_add_test(tc, test_pool_new_returns_with_every_worker_started);
  tcase_add_test(tc, test_pool_with_more_workers_than_stats_slots);
  suite_add_tcase(s, tc);

  tc = tcase_create("stats");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_pool_stats_count_jobs);
  tcase_add_test(tc, test_pool_stats_inject_depth_and_cancelled);
  suite_add_tcase(s, tc);

  tc = tcase_create("options");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_more_jobs_than_injection_slots);
  tcase_add_test(tc, test_no_spinning_loses_no_wakeup);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(pools_suite());
}
