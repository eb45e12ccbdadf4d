/* SPDX-License-Identifier: MIT */
/*
 * Fork-join: tandem_join, task groups, tandem_parallel_for and
 * tandem_parallel_for_async.  Results equal the serial ones and every index
 * is visited exactly once, whoever calls -- the test thread (which blocks),
 * a job on a worker, or a nested call -- on pools of one to four workers.
 *
 * Workers never assert: they record what they saw in atomics (or in fields
 * handed over by the library's own synchronisation, which the sanitizer
 * builds then check), and the test thread asserts.
 */
#include <check.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

/* clang-format off */
#define container_of(ptr, type, member)                                      \
  ((type *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static int on_thread(const uv_thread_t *thread) {
  uv_thread_t self;

  self = uv_thread_self();
  return uv_thread_equal(thread, &self);
}

/* Named loads, so that a failed assertion reads well. */
static unsigned load_u(atomic_uint *p) {
  return atomic_load(p);
}

static int load_i(atomic_int *p) {
  return atomic_load(p);
}

/* fixture_open() on a pool of `workers`, checked as fixture_pool() checks
 * a pool without a loop. */
static void open_workers(fixture_t *f, unsigned workers) {
  tandem_options_t opts;

  opts = fixture_options(workers);
  fixture_open(f, &opts);
  ck_assert_uint_eq(tandem_pool_workers(f->pool), workers);
}

/* ------------------------------------------------ one call in one job */

/* Runs fn(arg) inside a job queued from the loop thread and returns once
 * its after callback has run: such a job keeps uv_run() alive, so uv_run()
 * returning is the proof that it came home. */
typedef struct call_job_s {
  tandem_work_t req;
  void (*fn)(void *arg);
  void *arg;
  uv_thread_t loop_thread;
  unsigned called;     /* after callbacks; loop thread only */
  unsigned off_thread; /* after callbacks not on the loop thread */
  int status;
} call_job_t;

static void call_job_work_cb(tandem_work_t *req) {
  call_job_t *job = container_of(req, call_job_t, req);

  job->fn(job->arg);
}

static void call_job_after_cb(tandem_work_t *req, int status) {
  call_job_t *job = container_of(req, call_job_t, req);

  if (!on_thread(&job->loop_thread))
    job->off_thread++;
  job->called++;
  job->status = status;
}

static void run_in_job(uv_loop_t *loop, tandem_t *t, void (*fn)(void *),
                       void *arg) {
  call_job_t job;

  memset(&job, 0, sizeof(job));
  job.fn = fn;
  job.arg = arg;
  job.loop_thread = uv_thread_self();
  ck_assert_int_eq(
      tandem_queue_work(t, &job.req, call_job_work_cb, call_job_after_cb), 0);
  ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(job.called, 1);
  ck_assert_uint_eq(job.off_thread, 0);
  ck_assert_int_eq(job.status, 0);
}

/* ---------------------------------------------------------- fibonacci */

#define FIB_MAX 30
#define FIB_DEEP 35
#define FIB_DEEP_VALUE 9227465u

typedef struct fib_s {
  unsigned n;
  uint64_t value; /* written by whoever ran it; read after the join */
} fib_t;

/* One tandem_join per call: fib(n - 1) and fib(n - 2) are the halves. */
static void fib_join(void *arg) {
  fib_t *f = arg;
  fib_t a;
  fib_t b;

  if (f->n < 2) {
    f->value = f->n;
    return;
  }
  a.n = f->n - 1;
  a.value = UINT64_MAX;
  b.n = f->n - 2;
  b.value = UINT64_MAX;
  tandem_join(fib_join, &a, fib_join, &b);
  f->value = a.value + b.value;
}

static uint64_t fib_serial(unsigned n) {
  uint64_t a = 0;
  uint64_t b = 1;
  uint64_t c;

  while (n-- > 0) {
    c = a + b;
    a = b;
    b = c;
  }
  return a;
}

typedef struct fib_job_s {
  tandem_work_t req;
  fib_t fib;
  unsigned called; /* loop thread only */
  int status;
} fib_job_t;

static void fib_job_work_cb(tandem_work_t *req) {
  fib_join(&container_of(req, fib_job_t, req)->fib);
}

static void fib_job_after_cb(tandem_work_t *req, int status) {
  fib_job_t *job = container_of(req, fib_job_t, req);

  job->called++;
  job->status = status;
}

/* fib(0) .. fib(FIB_MAX), one job each, all queued at once from the loop
 * thread, so that joins of several jobs share the workers. */
static void check_fib_jobs(unsigned workers) {
  fib_job_t jobs[FIB_MAX + 1];
  fixture_t f;
  unsigned n;

  open_workers(&f, workers);
  memset(jobs, 0, sizeof(jobs));
  for (n = 0; n <= FIB_MAX; n++) {
    jobs[n].fib.n = n;
    jobs[n].fib.value = UINT64_MAX;
    ck_assert_int_eq(tandem_queue_work(&f.tandem, &jobs[n].req, fib_job_work_cb,
                                       fib_job_after_cb),
                     0);
  }
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  for (n = 0; n <= FIB_MAX; n++) {
    ck_assert_uint_eq(jobs[n].called, 1);
    ck_assert_int_eq(jobs[n].status, 0);
    ck_assert_msg(jobs[n].fib.value == fib_serial(n),
                  "fib(%u) on %u workers: %llu, expected %llu", n, workers,
                  (unsigned long long)jobs[n].fib.value,
                  (unsigned long long)fib_serial(n));
  }
  fixture_close(&f);
}

START_TEST(test_join_fib_in_jobs_on_two_workers_equals_serial) {
  check_fib_jobs(2);
}
END_TEST

START_TEST(test_join_fib_in_jobs_on_one_worker_equals_serial) {
  /* The only worker waits for nothing it cannot run itself. */
  check_fib_jobs(1);
}
END_TEST

/* A joiner whose stolen half runs long sleeps instead of spinning: its
 * thread uses far less CPU than the wait lasts.  (Before idle.c's
 * tdm_idle_wait_zero it spun and yielded for the whole 300 ms.) */
#define LONG_HALF_MS 300

typedef struct long_join_s {
  atomic_int b_started;
  struct timespec cpu0, wall0; /* when the joiner's own half ended */
  struct timespec cpu1, wall1; /* when the join returned */
} long_join_t;

static void long_join_a(void *arg) {
  long_join_t *lj = arg;

  while (!load_i(&lj->b_started)) /* b must be stolen, not taken back */
    sched_yield();
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &lj->cpu0);
  clock_gettime(CLOCK_MONOTONIC, &lj->wall0);
}

static void long_join_b(void *arg) {
  long_join_t *lj = arg;
  struct timespec d = {0, LONG_HALF_MS * 1000000L};

  atomic_store(&lj->b_started, 1);
  while (nanosleep(&d, &d) != 0)
    ;
}

static void long_join_run(void *arg) {
  long_join_t *lj = arg;

  tandem_join(long_join_a, lj, long_join_b, lj);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &lj->cpu1);
  clock_gettime(CLOCK_MONOTONIC, &lj->wall1);
}

static double ms_between(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) * 1e3 +
         (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

START_TEST(test_join_waiter_sleeps_while_stolen_half_runs_long) {
  fixture_t f;
  long_join_t lj;
  double cpu, wall;

  open_workers(&f, 2);
  memset(&lj, 0, sizeof(lj));
  run_in_job(&f.loop, &f.tandem, long_join_run, &lj);
  fixture_close(&f);
  cpu = ms_between(&lj.cpu0, &lj.cpu1);
  wall = ms_between(&lj.wall0, &lj.wall1);
  ck_assert_msg(wall >= LONG_HALF_MS / 2,
                "the join returned %.1f ms after its own half", wall);
  ck_assert_msg(cpu < wall / 4,
                "the joiner used %.1f ms of CPU while waiting %.1f ms", cpu,
                wall);
}
END_TEST

START_TEST(test_join_fib_from_test_thread_equals_serial) {
  fib_t f;
  unsigned n;

  /* Not a worker: each top-level join runs on the default pool and blocks
   * this thread; the joins below it run on that pool's workers. */
  for (n = 0; n <= FIB_MAX; n++) {
    f.n = n;
    f.value = UINT64_MAX;
    fib_join(&f);
    ck_assert_msg(f.value == fib_serial(n),
                  "fib(%u) from the test thread: %llu, expected %llu", n,
                  (unsigned long long)f.value,
                  (unsigned long long)fib_serial(n));
  }
}
END_TEST

START_TEST(test_join_deep_recursion_fib35_completes) {
  fixture_t fx;
  fib_t f;

  /* About 30 million joins, 35 deep, each frame on a worker's stack. */
  ck_assert_uint_eq(fib_serial(FIB_DEEP), FIB_DEEP_VALUE);
  open_workers(&fx, 2);
  f.n = FIB_DEEP;
  f.value = UINT64_MAX;
  run_in_job(&fx.loop, &fx.tandem, fib_join, &f);
  ck_assert_uint_eq(f.value, FIB_DEEP_VALUE);
  fixture_close(&fx);
}
END_TEST

/* ------------------------------------------------ parallel_for coverage */

/* One parallel_for over [begin, end): how often each index was visited. */
typedef struct cover_s {
  size_t begin;
  size_t end;
  atomic_uint *hits;   /* per index: body visits */
  unsigned char *seen; /* per index: plain store (TSan checks hand-over) */
  atomic_uint calls;   /* body calls */
  atomic_uint bad;     /* body calls with an empty or foreign piece */
  atomic_int rc;       /* tandem_parallel_for's result, when not ours */
} cover_t;

static void cover_init(cover_t *c, size_t begin, size_t end) {
  size_t n = end - begin;
  size_t i;

  c->begin = begin;
  c->end = end;
  c->hits = malloc((n != 0 ? n : 1) * sizeof(*c->hits));
  c->seen = calloc(n != 0 ? n : 1, 1);
  ck_assert_ptr_nonnull(c->hits);
  ck_assert_ptr_nonnull(c->seen);
  for (i = 0; i < n; i++)
    atomic_init(&c->hits[i], 0);
  atomic_init(&c->calls, 0);
  atomic_init(&c->bad, 0);
  atomic_init(&c->rc, INT32_MIN);
}

static void cover_destroy(cover_t *c) {
  free(c->hits);
  free(c->seen);
}

static void cover_body(size_t lo, size_t hi, void *ctx) {
  cover_t *c = ctx;
  size_t i;

  atomic_fetch_add(&c->calls, 1);
  if (lo >= hi || lo < c->begin || hi > c->end) {
    atomic_fetch_add(&c->bad, 1);
    return;
  }
  for (i = lo; i < hi; i++) {
    atomic_fetch_add_explicit(&c->hits[i - c->begin], 1, memory_order_relaxed);
    c->seen[i - c->begin] = 1;
  }
}

/* Test thread, after the parallel_for has returned (or its job came
 * home): every index once, no bad piece, and a grain at least the range's
 * size means one piece. */
static void cover_check(cover_t *c, size_t grain, const char *where,
                        unsigned workers) {
  size_t n = c->end - c->begin;
  size_t wrong = 0;
  size_t first = 0;
  unsigned calls;
  size_t i;

  for (i = 0; i < n; i++) {
    if (atomic_load_explicit(&c->hits[i], memory_order_relaxed) != 1 ||
        c->seen[i] != 1) {
      if (wrong++ == 0)
        first = i;
    }
  }
  ck_assert_msg(wrong == 0,
                "%s, [%zu, %zu) grain %zu, %u workers: %zu indices not "
                "visited exactly once, the first %zu (%u times)",
                where, c->begin, c->end, grain, workers, wrong,
                c->begin + first, wrong ? atomic_load(&c->hits[first]) : 1u);
  ck_assert_msg(atomic_load(&c->bad) == 0,
                "%s, [%zu, %zu) grain %zu, %u workers: %u empty or foreign "
                "pieces",
                where, c->begin, c->end, grain, workers, atomic_load(&c->bad));
  calls = atomic_load(&c->calls);
  if (n == 0)
    ck_assert_msg(calls == 0, "%s, empty [%zu, %zu): %u body calls", where,
                  c->begin, c->end, calls);
  else if (grain >= n)
    ck_assert_msg(calls == 1,
                  "%s, [%zu, %zu) grain %zu, %u workers: %u pieces, "
                  "expected the whole range in one",
                  where, c->begin, c->end, grain, workers, calls);
  else
    ck_assert_uint_ge(calls, 1);
}

typedef struct range_s {
  size_t begin;
  size_t end;
} range_t;

static const range_t cover_ranges[] = {
    {0, 0}, {5, 5}, {0, 1}, {7, 8}, {0, 1000}, {3, 100003},
};

static const unsigned cover_workers[] = {1, 2, 3, 4};

/* Grains 0 (automatic), 1, 7, 64, and two larger than the range. */
#define N_GRAINS 6

static size_t cover_grain(unsigned i, const range_t *r) {
  static const size_t fixed[] = {0, 1, 7, 64};

  if (i < ARRAY_SIZE(fixed))
    return fixed[i];
  if (i == ARRAY_SIZE(fixed))
    return r->end - r->begin + 1;
  return SIZE_MAX;
}

START_TEST(test_parallel_for_from_test_thread_visits_every_index_once) {
  tandem_pool_t *pool;
  const range_t *r;
  cover_t c;
  size_t grain;
  unsigned w;
  unsigned ri;
  unsigned gi;

  for (w = 0; w < ARRAY_SIZE(cover_workers); w++) {
    pool = fixture_pool(cover_workers[w]);
    for (ri = 0; ri < ARRAY_SIZE(cover_ranges); ri++) {
      r = &cover_ranges[ri];
      for (gi = 0; gi < N_GRAINS; gi++) {
        grain = cover_grain(gi, r);
        cover_init(&c, r->begin, r->end);
        ck_assert_int_eq(
            tandem_parallel_for(pool, r->begin, r->end, grain, cover_body, &c),
            0);
        cover_check(&c, grain, "test thread", cover_workers[w]);
        cover_destroy(&c);
      }
    }
    ck_assert_int_eq(tandem_pool_free(pool), 0);
  }
}
END_TEST

START_TEST(test_parallel_for_default_pool_visits_every_index_once) {
  cover_t c;

  /* NULL pool from a thread outside every pool: the default pool. */
  cover_init(&c, 3, 100003);
  ck_assert_int_eq(tandem_parallel_for(NULL, 3, 100003, 0, cover_body, &c), 0);
  cover_check(&c, 0, "default pool",
              tandem_pool_workers(tandem_pool_default()));
  cover_destroy(&c);
}
END_TEST

typedef struct pfor_call_s {
  tandem_pool_t *pool; /* passed to tandem_parallel_for (may be NULL) */
  size_t grain;
  cover_t *cover;
} pfor_call_t;

static void pfor_call(void *arg) {
  pfor_call_t *call = arg;
  cover_t *c = call->cover;

  atomic_store(&c->rc, tandem_parallel_for(call->pool, c->begin, c->end,
                                           call->grain, cover_body, c));
}

START_TEST(test_parallel_for_inside_job_visits_every_index_once) {
  fixture_t f;
  const range_t *r;
  pfor_call_t call;
  cover_t c;
  unsigned w;
  unsigned ri;
  unsigned gi;

  for (w = 0; w < ARRAY_SIZE(cover_workers); w++) {
    open_workers(&f, cover_workers[w]);
    for (ri = 0; ri < ARRAY_SIZE(cover_ranges); ri++) {
      r = &cover_ranges[ri];
      for (gi = 0; gi < N_GRAINS; gi++) {
        cover_init(&c, r->begin, r->end);
        /* Both ways to name the worker's own pool. */
        call.pool = gi % 2 ? f.pool : NULL;
        call.grain = cover_grain(gi, r);
        call.cover = &c;
        run_in_job(&f.loop, &f.tandem, pfor_call, &call);
        ck_assert_int_eq(load_i(&c.rc), 0);
        cover_check(&c, call.grain, "inside a job", cover_workers[w]);
        cover_destroy(&c);
      }
    }
    fixture_close(&f);
  }
}
END_TEST

/* Nested: an outer parallel_for over NESTED_OUTER indices whose body runs
 * one inner parallel_for per index, each on a cover of its own. */
#define NESTED_OUTER 6

typedef struct nested_s {
  cover_t inner[NESTED_OUTER];
  size_t grain;
  atomic_uint outer_hits[NESTED_OUTER];
  atomic_uint outer_bad;
} nested_t;

static void nested_outer_body(size_t lo, size_t hi, void *ctx) {
  nested_t *n = ctx;
  cover_t *c;
  size_t i;

  if (lo >= hi || hi > NESTED_OUTER) {
    atomic_fetch_add(&n->outer_bad, 1);
    return;
  }
  for (i = lo; i < hi; i++) {
    atomic_fetch_add(&n->outer_hits[i], 1);
    c = &n->inner[i];
    /* NULL pool on a worker: that worker's pool, nested right there. */
    atomic_store(&c->rc, tandem_parallel_for(NULL, c->begin, c->end, n->grain,
                                             cover_body, c));
  }
}

START_TEST(test_parallel_for_nested_visits_every_index_once) {
  tandem_pool_t *pool;
  const range_t *r;
  nested_t *n;
  unsigned w;
  unsigned ri;
  unsigned gi;
  unsigned i;

  n = malloc(sizeof(*n));
  ck_assert_ptr_nonnull(n);
  for (w = 0; w < ARRAY_SIZE(cover_workers); w++) {
    pool = fixture_pool(cover_workers[w]);
    for (ri = 0; ri < ARRAY_SIZE(cover_ranges); ri++) {
      r = &cover_ranges[ri];
      for (gi = 0; gi < N_GRAINS; gi++) {
        n->grain = cover_grain(gi, r);
        atomic_init(&n->outer_bad, 0);
        for (i = 0; i < NESTED_OUTER; i++) {
          atomic_init(&n->outer_hits[i], 0);
          cover_init(&n->inner[i], r->begin, r->end);
        }
        ck_assert_int_eq(
            tandem_parallel_for(pool, 0, NESTED_OUTER, 1, nested_outer_body, n),
            0);
        ck_assert_uint_eq(load_u(&n->outer_bad), 0);
        for (i = 0; i < NESTED_OUTER; i++) {
          ck_assert_uint_eq(load_u(&n->outer_hits[i]), 1);
          ck_assert_int_eq(load_i(&n->inner[i].rc), 0);
          cover_check(&n->inner[i], n->grain, "nested", cover_workers[w]);
          cover_destroy(&n->inner[i]);
        }
      }
    }
    ck_assert_int_eq(tandem_pool_free(pool), 0);
  }
  free(n);
}
END_TEST

/* -------------------------- parallel_for in a join in jobs from a loop */

/* Each job joins two halves; each half runs a parallel_for over the rows
 * of its own grid whose body runs a parallel_for over the columns. */
#define GRID_JOBS 8
#define GRID_ROWS 48
#define GRID_COLS 200

typedef struct grid_job_s grid_job_t;

typedef struct grid_half_s {
  grid_job_t *job;
  atomic_uint hits[GRID_ROWS][GRID_COLS];
  atomic_int rc; /* first non-zero tandem_parallel_for result */
} grid_half_t;

struct grid_job_s {
  tandem_work_t req;
  grid_half_t half[2];
  uv_thread_t loop_thread;
  unsigned called;     /* loop thread only */
  unsigned off_thread; /* loop thread only */
  int status;
};

typedef struct grid_row_s {
  grid_half_t *half;
  size_t row;
} grid_row_t;

static void grid_note_rc(grid_half_t *h, int rc) {
  int zero = 0;

  if (rc != 0)
    atomic_compare_exchange_strong(&h->rc, &zero, rc);
}

static void grid_col_body(size_t lo, size_t hi, void *ctx) {
  grid_row_t *row = ctx;
  size_t i;

  for (i = lo; i < hi && i < GRID_COLS; i++)
    atomic_fetch_add(&row->half->hits[row->row][i], 1);
}

static void grid_row_body(size_t lo, size_t hi, void *ctx) {
  grid_half_t *h = ctx;
  grid_row_t row;

  for (row.half = h, row.row = lo; row.row < hi && row.row < GRID_ROWS;
       row.row++) {
    /* Odd rows split lazily, even ones down to 16 columns. */
    grid_note_rc(h,
                 tandem_parallel_for(NULL, 0, GRID_COLS, row.row % 2 ? 0 : 16,
                                     grid_col_body, &row));
  }
}

static void grid_half_run(void *arg) {
  grid_half_t *h = arg;

  grid_note_rc(h, tandem_parallel_for(NULL, 0, GRID_ROWS, 1, grid_row_body, h));
}

static void grid_work_cb(tandem_work_t *req) {
  grid_job_t *job = container_of(req, grid_job_t, req);

  tandem_join(grid_half_run, &job->half[0], grid_half_run, &job->half[1]);
}

static void grid_after_cb(tandem_work_t *req, int status) {
  grid_job_t *job = container_of(req, grid_job_t, req);

  if (!on_thread(&job->loop_thread))
    job->off_thread++;
  job->called++;
  job->status = status;
}

START_TEST(test_parallel_for_nested_in_join_in_jobs_from_loop) {
  grid_job_t *jobs;
  fixture_t f;
  unsigned workers;
  unsigned j;
  unsigned h;
  unsigned r;
  unsigned c;
  unsigned wrong;

  jobs = malloc(GRID_JOBS * sizeof(*jobs));
  ck_assert_ptr_nonnull(jobs);
  for (workers = 1; workers <= 3; workers++) {
    open_workers(&f, workers);
    memset(jobs, 0, GRID_JOBS * sizeof(*jobs));
    for (j = 0; j < GRID_JOBS; j++) {
      jobs[j].loop_thread = uv_thread_self();
      for (h = 0; h < 2; h++) {
        jobs[j].half[h].job = &jobs[j];
        atomic_init(&jobs[j].half[h].rc, 0);
        for (r = 0; r < GRID_ROWS; r++)
          for (c = 0; c < GRID_COLS; c++)
            atomic_init(&jobs[j].half[h].hits[r][c], 0);
      }
    }
    for (j = 0; j < GRID_JOBS; j++)
      ck_assert_int_eq(tandem_queue_work(&f.tandem, &jobs[j].req, grid_work_cb,
                                         grid_after_cb),
                       0);
    ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    for (j = 0; j < GRID_JOBS; j++) {
      ck_assert_uint_eq(jobs[j].called, 1);
      ck_assert_uint_eq(jobs[j].off_thread, 0);
      ck_assert_int_eq(jobs[j].status, 0);
      for (h = 0; h < 2; h++) {
        ck_assert_int_eq(load_i(&jobs[j].half[h].rc), 0);
        wrong = 0;
        for (r = 0; r < GRID_ROWS; r++)
          for (c = 0; c < GRID_COLS; c++)
            wrong += atomic_load(&jobs[j].half[h].hits[r][c]) != 1;
        ck_assert_msg(wrong == 0,
                      "%u workers, job %u half %u: %u cells not visited "
                      "exactly once",
                      workers, j, h, wrong);
      }
    }
    fixture_close(&f);
  }
  free(jobs);
}
END_TEST

/* ------------------------------------------------------------- groups */

#define GROUP_TASKS 10000

typedef struct flat_group_s {
  tandem_pool_t *pool; /* for tandem_group_init (may be NULL) */
  tandem_task_t *tasks;
  atomic_uint *runs; /* per task */
  atomic_uint count;
  atomic_uint foreign; /* fn called with a task not ours */
  /* Set by the spawning thread (test thread or worker). */
  int init_rc;
  int spawn_errors;
  int wait_rc;
  unsigned count_at_wait; /* count seen right after wait returned */
} flat_group_t;

static void flat_task_cb(tandem_task_t *task) {
  flat_group_t *fg = task->data;
  size_t i;

  if (fg == NULL || task < fg->tasks || task >= fg->tasks + GROUP_TASKS) {
    atomic_fetch_add(&fg->foreign, 1);
    return;
  }
  i = (size_t)(task - fg->tasks);
  atomic_fetch_add(&fg->runs[i], 1);
  atomic_fetch_add(&fg->count, 1);
}

static void flat_group_init(flat_group_t *fg, tandem_pool_t *pool) {
  unsigned i;

  memset(fg, 0, sizeof(*fg));
  fg->pool = pool;
  fg->tasks = calloc(GROUP_TASKS, sizeof(*fg->tasks));
  fg->runs = malloc(GROUP_TASKS * sizeof(*fg->runs));
  ck_assert_ptr_nonnull(fg->tasks);
  ck_assert_ptr_nonnull(fg->runs);
  for (i = 0; i < GROUP_TASKS; i++)
    atomic_init(&fg->runs[i], 0);
  atomic_init(&fg->count, 0);
  atomic_init(&fg->foreign, 0);
  fg->init_rc = INT32_MIN;
  fg->wait_rc = INT32_MIN;
}

/* Spawns GROUP_TASKS tasks on one group and waits: on whatever thread. */
static void flat_group_run(void *arg) {
  flat_group_t *fg = arg;
  tandem_group_t g;
  unsigned i;

  fg->init_rc = tandem_group_init(&g, fg->pool);
  if (fg->init_rc != 0)
    return;
  for (i = 0; i < GROUP_TASKS; i++) {
    fg->tasks[i].data = fg;
    if (tandem_group_spawn(&g, &fg->tasks[i], flat_task_cb) != 0)
      fg->spawn_errors++;
  }
  fg->wait_rc = tandem_group_wait(&g);
  fg->count_at_wait = atomic_load(&fg->count);
}

static void flat_group_check(flat_group_t *fg) {
  unsigned wrong = 0;
  unsigned i;

  ck_assert_int_eq(fg->init_rc, 0);
  ck_assert_int_eq(fg->spawn_errors, 0);
  ck_assert_int_eq(fg->wait_rc, 0);
  ck_assert_uint_eq(load_u(&fg->foreign), 0);
  ck_assert_uint_eq(fg->count_at_wait, GROUP_TASKS);
  for (i = 0; i < GROUP_TASKS; i++)
    wrong += atomic_load(&fg->runs[i]) != 1;
  ck_assert_msg(wrong == 0, "%u tasks not run exactly once", wrong);
  free(fg->tasks);
  free(fg->runs);
}

START_TEST(test_group_of_10000_tasks_from_test_thread_waits_for_all) {
  tandem_pool_t *pool;
  flat_group_t fg;
  unsigned workers;

  for (workers = 1; workers <= 2; workers++) {
    pool = fixture_pool(workers);
    flat_group_init(&fg, pool);
    flat_group_run(&fg);
    flat_group_check(&fg);
    ck_assert_int_eq(tandem_pool_free(pool), 0);
  }
  /* NULL pool outside every pool: the default pool. */
  flat_group_init(&fg, NULL);
  flat_group_run(&fg);
  flat_group_check(&fg);
}
END_TEST

START_TEST(test_group_of_10000_tasks_inside_job_waits_for_all) {
  fixture_t f;
  flat_group_t fg;
  unsigned workers;

  for (workers = 1; workers <= 2; workers++) {
    open_workers(&f, workers);
    /* NULL pool on a worker: its own pool; then the pool by name. */
    flat_group_init(&fg, NULL);
    run_in_job(&f.loop, &f.tandem, flat_group_run, &fg);
    flat_group_check(&fg);
    flat_group_init(&fg, f.pool);
    run_in_job(&f.loop, &f.tandem, flat_group_run, &fg);
    flat_group_check(&fg);
    fixture_close(&f);
  }
}
END_TEST

START_TEST(test_group_spawns_that_overflow_the_ring_all_run) {
  tandem_options_t opts;
  tandem_pool_t *pool;
  flat_group_t fg;

  /* A ring of 4 cells: nearly every spawn from this thread waits on the
   * overflow list, linked through the task itself. */
  opts = fixture_options(2);
  opts.queue_size = 4;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  flat_group_init(&fg, pool);
  flat_group_run(&fg);
  flat_group_check(&fg);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}
END_TEST

/* Recursive groups: every node below TREE_DEPTH spawns TREE_FANOUT
 * children on a group of its own (tasks on its stack) and waits for them. */
#define TREE_FANOUT 4
#define TREE_DEPTH 6 /* 4^0 + ... + 4^6 = 5461 nodes */
#define TREE_NODES 5461u

typedef struct tree_s {
  tandem_pool_t *pool; /* for the root's group; nodes below pass NULL */
  atomic_uint nodes;   /* nodes run */
  atomic_uint early;   /* waits that returned before a child finished */
  atomic_uint errors;  /* init, spawn or wait failures */
} tree_t;

typedef struct tree_node_s {
  tandem_task_t task;
  tree_t *tree;
  unsigned depth;
  atomic_int done; /* set by the node when its subtree is complete */
} tree_node_t;

static void tree_node_cb(tandem_task_t *task);

static void tree_grow(tree_t *tree, tandem_pool_t *pool, unsigned depth) {
  tree_node_t child[TREE_FANOUT];
  tandem_group_t g;
  unsigned i;

  if (tandem_group_init(&g, pool) != 0) {
    atomic_fetch_add(&tree->errors, 1);
    return;
  }
  for (i = 0; i < TREE_FANOUT; i++) {
    child[i].tree = tree;
    child[i].depth = depth;
    atomic_init(&child[i].done, 0);
    if (tandem_group_spawn(&g, &child[i].task, tree_node_cb) != 0)
      atomic_fetch_add(&tree->errors, 1);
  }
  if (tandem_group_wait(&g) != 0)
    atomic_fetch_add(&tree->errors, 1);
  for (i = 0; i < TREE_FANOUT; i++)
    if (!atomic_load(&child[i].done))
      atomic_fetch_add(&tree->early, 1);
}

static void tree_node_cb(tandem_task_t *task) {
  tree_node_t *node = container_of(task, tree_node_t, task);

  atomic_fetch_add(&node->tree->nodes, 1);
  if (node->depth < TREE_DEPTH)
    tree_grow(node->tree, NULL, node->depth + 1);
  atomic_store(&node->done, 1);
}

/* The root: this thread is node 0. */
static void tree_root(void *arg) {
  tree_t *tree = arg;

  atomic_fetch_add(&tree->nodes, 1);
  tree_grow(tree, tree->pool, 1);
}

static void tree_init(tree_t *tree, tandem_pool_t *pool) {
  tree->pool = pool;
  atomic_init(&tree->nodes, 0);
  atomic_init(&tree->early, 0);
  atomic_init(&tree->errors, 0);
}

static void tree_check(tree_t *tree) {
  ck_assert_uint_eq(load_u(&tree->errors), 0);
  ck_assert_uint_eq(load_u(&tree->early), 0);
  ck_assert_uint_eq(load_u(&tree->nodes), TREE_NODES);
}

START_TEST(test_group_recursive_groups_wait_for_their_subtrees) {
  tandem_pool_t *pool;
  fixture_t f;
  tree_t tree;
  unsigned workers;

  for (workers = 1; workers <= 3; workers++) {
    pool = fixture_pool(workers);
    /* Root group on the test thread, which blocks. */
    tree_init(&tree, pool);
    tree_root(&tree);
    tree_check(&tree);
    /* Root group inside a job, on a worker, which helps. */
    ck_assert_msg(fixture_loop_open(&f, pool) == 0, "%s", f.error);
    tree_init(&tree, NULL);
    run_in_job(&f.loop, &f.tandem, tree_root, &tree);
    tree_check(&tree);
    fixture_close(&f);
  }
}
END_TEST

/* ------------------------------------------- several callers at once */

/* Threads outside every pool block on the same pool at once: each waits
 * for its own group and parallel_for (one shared wake-up event count), and
 * its own top-level joins on the default pool. */
#define CALLERS 4
#define CALLER_FIB 22
#define CALLER_RANGE 20000

typedef struct caller_s {
  uv_thread_t thread;
  tandem_pool_t *pool;
  flat_group_t group;
  cover_t cover;
  fib_t fib;
} caller_t;

static void caller_main(void *arg) {
  caller_t *c = arg;
  unsigned round;

  for (round = 0; round < 3; round++) {
    c->fib.n = CALLER_FIB;
    c->fib.value = UINT64_MAX;
    fib_join(&c->fib);
    if (c->fib.value != fib_serial(CALLER_FIB))
      break;
  }
  atomic_store(&c->cover.rc, tandem_parallel_for(c->pool, 0, CALLER_RANGE, 0,
                                                 cover_body, &c->cover));
  flat_group_run(&c->group);
}

START_TEST(test_fork_join_from_several_outside_threads_at_once) {
  caller_t *callers;
  tandem_pool_t *pool;
  unsigned i;

  callers = calloc(CALLERS, sizeof(*callers));
  ck_assert_ptr_nonnull(callers);
  pool = fixture_pool(2);
  for (i = 0; i < CALLERS; i++) {
    callers[i].pool = pool;
    flat_group_init(&callers[i].group, pool);
    cover_init(&callers[i].cover, 0, CALLER_RANGE);
  }
  for (i = 0; i < CALLERS; i++)
    ck_assert_int_eq(
        uv_thread_create(&callers[i].thread, caller_main, &callers[i]), 0);
  for (i = 0; i < CALLERS; i++)
    ck_assert_int_eq(uv_thread_join(&callers[i].thread), 0);
  for (i = 0; i < CALLERS; i++) {
    ck_assert_uint_eq(callers[i].fib.value, fib_serial(CALLER_FIB));
    ck_assert_int_eq(load_i(&callers[i].cover.rc), 0);
    cover_check(&callers[i].cover, 0, "several callers", 2);
    cover_destroy(&callers[i].cover);
    flat_group_check(&callers[i].group);
  }
  ck_assert_int_eq(tandem_pool_free(pool), 0);
  free(callers);
}
END_TEST

/* A job on one pool runs fork-join on another: the worker is outside the
 * other pool, so it blocks while that pool's workers do the work. */
typedef struct cross_s {
  tandem_pool_t *other;
  cover_t cover;
  flat_group_t group;
} cross_t;

static void cross_run(void *arg) {
  cross_t *x = arg;

  atomic_store(&x->cover.rc,
               tandem_parallel_for(x->other, x->cover.begin, x->cover.end, 7,
                                   cover_body, &x->cover));
  flat_group_run(&x->group);
}

START_TEST(test_fork_join_on_another_pool_from_inside_job) {
  tandem_pool_t *pool;
  fixture_t f;
  tandem_pool_t *other;
  cross_t x;

  pool = fixture_pool(1);
  other = fixture_pool(2);
  ck_assert_msg(fixture_loop_open(&f, pool) == 0, "%s", f.error);
  x.other = other;
  cover_init(&x.cover, 3, 100003);
  flat_group_init(&x.group, other);
  run_in_job(&f.loop, &f.tandem, cross_run, &x);
  ck_assert_int_eq(load_i(&x.cover.rc), 0);
  cover_check(&x.cover, 7, "on another pool", 2);
  cover_destroy(&x.cover);
  flat_group_check(&x.group);
  fixture_close(&f);
  ck_assert_int_eq(tandem_pool_free(other), 0);
}
END_TEST

/* ------------------------------------------------ parallel_for_async */

typedef struct async_s {
  tandem_work_t req;
  cover_t cover;
  uv_thread_t loop_thread;
  /* loop thread only */
  unsigned called;
  unsigned off_thread;
  unsigned incomplete; /* indices not yet visited once at the callback */
  int status;
} async_t;

static void async_after_cb(tandem_work_t *req, int status) {
  async_t *a = container_of(req, async_t, req);
  size_t n = a->cover.end - a->cover.begin;
  size_t i;

  if (!on_thread(&a->loop_thread))
    a->off_thread++;
  a->called++;
  a->status = status;
  for (i = 0; i < n; i++)
    if (atomic_load_explicit(&a->cover.hits[i], memory_order_relaxed) != 1 ||
        a->cover.seen[i] != 1)
      a->incomplete++;
}

static void async_init(async_t *a, size_t begin, size_t end) {
  memset(a, 0, sizeof(*a));
  a->loop_thread = uv_thread_self();
  cover_init(&a->cover, begin, end);
}

START_TEST(test_parallel_for_async_calls_back_once_on_loop_after_all) {
  static const size_t grains[] = {0, 1, 7, 64, SIZE_MAX};
  fixture_t f;
  async_t a;
  unsigned gi;

  open_workers(&f, 2);
  for (gi = 0; gi < ARRAY_SIZE(grains); gi++) {
    async_init(&a, 3, 100003);
    ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 3, 100003,
                                               grains[gi], cover_body, &a.cover,
                                               async_after_cb),
                     0);
    /* Nothing else keeps the loop alive: uv_run returns once the after
     * callback has run, and not before. */
    ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    ck_assert_uint_eq(a.called, 1);
    ck_assert_uint_eq(a.off_thread, 0);
    ck_assert_int_eq(a.status, 0);
    ck_assert_uint_eq(a.incomplete, 0);
    ck_assert_ptr_eq(a.req.tandem, &f.tandem);
    cover_check(&a.cover, grains[gi], "async", 2);
    cover_destroy(&a.cover);
  }
  fixture_close(&f);
}
END_TEST

START_TEST(test_parallel_for_async_empty_range_completes) {
  fixture_t f;
  async_t a;

  open_workers(&f, 2);
  async_init(&a, 5, 5);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 5, 5, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(a.called, 1);
  ck_assert_uint_eq(a.off_thread, 0);
  ck_assert_int_eq(a.status, 0);
  ck_assert_uint_eq(load_u(&a.cover.calls), 0);
  cover_destroy(&a.cover);
  fixture_close(&f);
}
END_TEST

/* Re-submitted from its own after callback, with the next range. */
#define CHAIN_ROUNDS 4

typedef struct chain_s {
  tandem_work_t req;
  cover_t cover[CHAIN_ROUNDS];
  uv_thread_t loop_thread;
  /* loop thread only */
  unsigned called;
  unsigned off_thread;
  unsigned bad_status;
  unsigned resubmit_errors;
} chain_t;

static void chain_after_cb(tandem_work_t *req, int status) {
  chain_t *ch = container_of(req, chain_t, req);
  cover_t *next;

  if (!on_thread(&ch->loop_thread))
    ch->off_thread++;
  if (status != 0)
    ch->bad_status++;
  if (++ch->called == CHAIN_ROUNDS)
    return;
  next = &ch->cover[ch->called];
  if (tandem_parallel_for_async(req->tandem, req, next->begin, next->end,
                                ch->called, cover_body, next,
                                chain_after_cb) != 0)
    ch->resubmit_errors++;
}

START_TEST(test_parallel_for_async_resubmitted_from_after_callback) {
  fixture_t f;
  chain_t ch;
  unsigned i;

  open_workers(&f, 2);
  memset(&ch, 0, sizeof(ch));
  ch.loop_thread = uv_thread_self();
  for (i = 0; i < CHAIN_ROUNDS; i++)
    cover_init(&ch.cover[i], 1000 * i, 1000 * i + 777 * (i + 1));
  ck_assert_int_eq(tandem_parallel_for_async(
                       &f.tandem, &ch.req, ch.cover[0].begin, ch.cover[0].end,
                       0, cover_body, &ch.cover[0], chain_after_cb),
                   0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(ch.called, CHAIN_ROUNDS);
  ck_assert_uint_eq(ch.off_thread, 0);
  ck_assert_uint_eq(ch.bad_status, 0);
  ck_assert_uint_eq(ch.resubmit_errors, 0);
  for (i = 0; i < CHAIN_ROUNDS; i++) {
    cover_check(&ch.cover[i], i, "async, re-submitted", 2);
    cover_destroy(&ch.cover[i]);
  }
  fixture_close(&f);
}
END_TEST

START_TEST(test_parallel_for_async_bad_arguments_einval) {
  fixture_t f;
  async_t a;

  open_workers(&f, 2);
  async_init(&a, 0, 100);
  ck_assert_int_eq(tandem_parallel_for_async(NULL, &a.req, 0, 100, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   UV_EINVAL);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, NULL, 0, 100, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   UV_EINVAL);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 0, 100, 0, NULL,
                                             &a.cover, async_after_cb),
                   UV_EINVAL);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 100, 0, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   UV_EINVAL);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 1, 0, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   UV_EINVAL);
  /* The request is still free: a good submit works. */
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 0, 100, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(a.called, 1);
  ck_assert_int_eq(a.status, 0);
  cover_check(&a.cover, 0, "async after refusals", 2);
  cover_destroy(&a.cover);
  /* A closing handle refuses, as tandem_queue_work does. */
  async_init(&a, 0, 100);
  ck_assert_int_eq(tandem_close(&f.tandem, NULL), 0);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 0, 100, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   UV_ESHUTDOWN);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  fixture_finish(&f);
  /* Refused means never called back, never run. */
  ck_assert_uint_eq(a.called, 0);
  ck_assert_uint_eq(load_u(&a.cover.calls), 0);
  cover_destroy(&a.cover);
}
END_TEST

START_TEST(test_parallel_for_async_in_flight_request_ebusy) {
  fixture_t f;
  worker_gate_t gate;
  async_t a;
  cover_t other;

  open_workers(&f, 2);
  /* Every worker held: the request stays queued. */
  ck_assert_int_eq(worker_gate_block(&gate, &f.tandem), 0);
  async_init(&a, 0, 1000);
  cover_init(&other, 0, 10);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 0, 1000, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   0);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 0, 10, 1,
                                             cover_body, &other,
                                             async_after_cb),
                   UV_EBUSY);
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_uint_eq(gate.bad_status, 0);
  worker_gate_destroy(&gate);
  ck_assert_uint_eq(a.called, 1);
  ck_assert_int_eq(a.status, 0);
  ck_assert_uint_eq(a.incomplete, 0);
  /* The refused submit changed nothing of the queued one. */
  cover_check(&a.cover, 0, "async, busy", 2);
  ck_assert_uint_eq(load_u(&other.calls), 0);
  cover_destroy(&a.cover);
  cover_destroy(&other);
  fixture_close(&f);
}
END_TEST

/* Two threads race to submit the same idle request with different
 * arguments.  tandem_queue_work settles such a race (one wins, the other
 * gets UV_EBUSY), and the refused submit must not change what the accepted
 * job runs: its body sees only the winner's range and context. */
#define RACE_ROUNDS 100000

typedef struct race_s race_t;

typedef struct race_ctx_s {
  race_t *race;
  unsigned bit; /* SEEN_LOOP_CTX or SEEN_HELPER_CTX */
} race_ctx_t;

struct race_s {
  tandem_t *t;
  tandem_work_t req;
  uv_thread_t helper;
  race_ctx_t loop_ctx;
  race_ctx_t helper_ctx;
  atomic_uint arrived;  /* both threads count in, then submit at once */
  atomic_int stop;      /* the loop thread gave up: the helper leaves */
  atomic_uint finished; /* rounds the helper has submitted in */
  atomic_int helper_rc;
  atomic_uint seen; /* this round: SEEN_* bits from the body */
  unsigned called;  /* loop thread only */
};

enum {
  SEEN_LOOP_CTX = 1,    /* body called with the loop thread's context */
  SEEN_HELPER_CTX = 2,  /* ... with the helper's */
  SEEN_LOOP_RANGE = 4,  /* a piece of the loop thread's [0, 1) */
  SEEN_HELPER_RANGE = 8 /* a piece of the helper's [10, 12) */
};

static void race_body(size_t lo, size_t hi, void *ctx) {
  race_ctx_t *c = ctx;
  unsigned bits = c->bit;

  if (hi <= 1)
    bits |= SEEN_LOOP_RANGE;
  else if (lo >= 10 && hi <= 12)
    bits |= SEEN_HELPER_RANGE;
  atomic_fetch_or(&c->race->seen, bits);
}

static void race_after_cb(tandem_work_t *req, int status) {
  race_t *r = container_of(req, race_t, req);

  (void)status;
  r->called++;
}

/* Both threads arrive, then go together: a spin, so they start within
 * nanoseconds of each other.  Returns 0 if the race was called off. */
static int race_arrive(race_t *r, unsigned round) {
  unsigned spins = 0;

  atomic_fetch_add(&r->arrived, 1);
  while (atomic_load(&r->arrived) < 2 * (round + 1)) {
    if (atomic_load(&r->stop))
      return 0;
    if (++spins % 4096 == 0)
      sched_yield();
  }
  return 1;
}

static const char *race_seen(unsigned seen, unsigned loop_bit,
                             unsigned helper_bit) {
  if ((seen & loop_bit) && (seen & helper_bit))
    return "both threads'";
  if (seen & loop_bit)
    return "the loop thread's";
  if (seen & helper_bit)
    return "the helper's";
  return "no";
}

static void race_helper(void *arg) {
  race_t *r = arg;
  unsigned round;

  for (round = 0; round < RACE_ROUNDS; round++) {
    if (!race_arrive(r, round))
      break;
    atomic_store(&r->helper_rc,
                 tandem_parallel_for_async(r->t, &r->req, 10, 12, 1, race_body,
                                           &r->helper_ctx, race_after_cb));
    atomic_store(&r->finished, round + 1);
  }
}

static void race_keep_alive_cb(uv_timer_t *timer) {
  (void)timer;
}

START_TEST(test_parallel_for_async_refused_submit_keeps_accepted_arguments) {
  tandem_options_t opts;
  fixture_t f;
  uv_timer_t keep_alive;
  race_t *r;
  unsigned round;
  unsigned both = 0;
  unsigned neither = 0;
  unsigned mixed = 0;
  unsigned first_mixed = 0;
  unsigned seen_mixed = 0;
  unsigned expect;
  unsigned seen;
  int loop_rc;
  int helper_rc;

  /* Workers park at once: the two racing threads keep the cores. */
  opts = fixture_options(2);
  opts.worker_spin_us = -1;
  fixture_open(&f, &opts);
  /* A job the helper wins does not keep uv_run() alive: this timer does. */
  ck_assert_int_eq(uv_timer_init(&f.loop, &keep_alive), 0);
  ck_assert_int_eq(
      uv_timer_start(&keep_alive, race_keep_alive_cb, 1000000, 1000000), 0);
  r = calloc(1, sizeof(*r));
  ck_assert_ptr_nonnull(r);
  r->t = &f.tandem;
  r->loop_ctx.race = r;
  r->loop_ctx.bit = SEEN_LOOP_CTX;
  r->helper_ctx.race = r;
  r->helper_ctx.bit = SEEN_HELPER_CTX;
  atomic_init(&r->arrived, 0);
  atomic_init(&r->stop, 0);
  atomic_init(&r->finished, 0);
  atomic_init(&r->helper_rc, 0);
  atomic_init(&r->seen, 0);
  ck_assert_int_eq(uv_thread_create(&r->helper, race_helper, r), 0);
  for (round = 0; round < RACE_ROUNDS; round++) {
    atomic_store(&r->seen, 0);
    race_arrive(r, round);
    loop_rc = tandem_parallel_for_async(&f.tandem, &r->req, 0, 1, 1, race_body,
                                        &r->loop_ctx, race_after_cb);
    while (atomic_load(&r->finished) != round + 1)
      sched_yield();
    helper_rc = atomic_load(&r->helper_rc);
    if ((loop_rc == 0) == (helper_rc == 0)) {
      /* Both or neither accepted: no after callback to wait for. */
      if (loop_rc == 0)
        both++;
      else
        neither++;
      atomic_store(&r->stop, 1);
      break;
    }
    while (r->called != round + 1)
      uv_run(&f.loop, UV_RUN_ONCE);
    expect = loop_rc == 0 ? SEEN_LOOP_CTX | SEEN_LOOP_RANGE
                          : SEEN_HELPER_CTX | SEEN_HELPER_RANGE;
    seen = atomic_load(&r->seen);
    if (seen != expect) {
      if (mixed++ == 0) {
        first_mixed = round;
        seen_mixed = seen | (loop_rc == 0 ? 0x100 : 0x200);
      }
    }
  }
  uv_thread_join(&r->helper);
  ck_assert_uint_eq(both, 0);
  ck_assert_uint_eq(neither, 0);
  ck_assert_msg(mixed == 0,
                "%u of %u rounds ran the accepted job with arguments of the "
                "refused submit; first in round %u: accepted %s, body saw "
                "%s context, %s range",
                mixed, RACE_ROUNDS, first_mixed,
                seen_mixed & 0x100 ? "the loop thread's" : "the helper's",
                race_seen(seen_mixed, SEEN_LOOP_CTX, SEEN_HELPER_CTX),
                race_seen(seen_mixed, SEEN_LOOP_RANGE, SEEN_HELPER_RANGE));
  ck_assert_uint_eq(r->called, RACE_ROUNDS);
  free(r);
  uv_close((uv_handle_t *)&keep_alive, NULL);
  fixture_close(&f);
}
END_TEST

START_TEST(test_parallel_for_async_cancelled_before_start_ecanceled) {
  fixture_t f;
  worker_gate_t gate;
  async_t a;

  open_workers(&f, 2);
  ck_assert_int_eq(worker_gate_block(&gate, &f.tandem), 0);
  async_init(&a, 0, 1000);
  ck_assert_int_eq(tandem_parallel_for_async(&f.tandem, &a.req, 0, 1000, 0,
                                             cover_body, &a.cover,
                                             async_after_cb),
                   0);
  ck_assert_int_eq(tandem_cancel(&a.req), 0);
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  worker_gate_destroy(&gate);
  ck_assert_uint_eq(a.called, 1);
  ck_assert_uint_eq(a.off_thread, 0);
  ck_assert_int_eq(a.status, UV_ECANCELED);
  ck_assert_uint_eq(load_u(&a.cover.calls), 0);
  cover_destroy(&a.cover);
  fixture_close(&f);
}
END_TEST

/* ---------------------------------------------------------- bad input */

static atomic_uint bad_calls;

static void bad_task_cb(tandem_task_t *task) {
  (void)task;
  atomic_fetch_add(&bad_calls, 1);
}

static void bad_body(size_t lo, size_t hi, void *ctx) {
  (void)lo;
  (void)hi;
  (void)ctx;
  atomic_fetch_add(&bad_calls, 1);
}

static void bad_half(void *arg) {
  atomic_fetch_add((atomic_uint *)arg, 1);
}

typedef struct bad_input_s {
  tandem_pool_t *pool;
  /* Results, written by the calling thread. */
  int group_init_null;
  int group_init;
  int spawn_null_group;
  int spawn_null_task;
  int spawn_null_fn;
  int wait_null;
  int empty_wait;
  int pfor_null_body;
  int pfor_null_body_empty;
  int pfor_backwards;
  atomic_uint a_runs;
  atomic_uint b_runs;
} bad_input_t;

static void bad_input_run(void *arg) {
  bad_input_t *bi = arg;
  tandem_group_t g;
  tandem_task_t task;

  memset(&task, 0, sizeof(task));
  bi->group_init_null = tandem_group_init(NULL, bi->pool);
  bi->group_init = tandem_group_init(&g, bi->pool);
  if (bi->group_init != 0)
    return;
  bi->spawn_null_group = tandem_group_spawn(NULL, &task, bad_task_cb);
  bi->spawn_null_task = tandem_group_spawn(&g, NULL, bad_task_cb);
  bi->spawn_null_fn = tandem_group_spawn(&g, &task, NULL);
  bi->wait_null = tandem_group_wait(NULL);
  /* Nothing was spawned: the wait returns at once. */
  bi->empty_wait = tandem_group_wait(&g);
  bi->pfor_null_body = tandem_parallel_for(bi->pool, 0, 10, 1, NULL, NULL);
  bi->pfor_null_body_empty = tandem_parallel_for(bi->pool, 4, 4, 0, NULL, NULL);
  bi->pfor_backwards = tandem_parallel_for(bi->pool, 10, 9, 1, bad_body, NULL);
  /* NULL halves must not crash; a present half never runs twice. */
  tandem_join(NULL, NULL, NULL, NULL);
  tandem_join(bad_half, &bi->a_runs, NULL, NULL);
  tandem_join(NULL, NULL, bad_half, &bi->b_runs);
}

static void bad_input_check(bad_input_t *bi) {
  ck_assert_int_eq(bi->group_init_null, UV_EINVAL);
  ck_assert_int_eq(bi->group_init, 0);
  ck_assert_int_eq(bi->spawn_null_group, UV_EINVAL);
  ck_assert_int_eq(bi->spawn_null_task, UV_EINVAL);
  ck_assert_int_eq(bi->spawn_null_fn, UV_EINVAL);
  ck_assert_int_eq(bi->wait_null, UV_EINVAL);
  ck_assert_int_eq(bi->empty_wait, 0);
  ck_assert_int_eq(bi->pfor_null_body, UV_EINVAL);
  ck_assert_int_eq(bi->pfor_null_body_empty, UV_EINVAL);
  ck_assert_int_eq(bi->pfor_backwards, UV_EINVAL);
  ck_assert_uint_le(load_u(&bi->a_runs), 1);
  ck_assert_uint_le(load_u(&bi->b_runs), 1);
  ck_assert_uint_eq(load_u(&bad_calls), 0);
}

START_TEST(test_bad_input_einval_from_test_thread) {
  tandem_pool_t *pool;
  bad_input_t bi;

  atomic_init(&bad_calls, 0);
  pool = fixture_pool(2);
  memset(&bi, 0, sizeof(bi));
  bi.pool = pool;
  bad_input_run(&bi);
  bad_input_check(&bi);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}
END_TEST

START_TEST(test_bad_input_einval_inside_job) {
  fixture_t f;
  bad_input_t bi;

  atomic_init(&bad_calls, 0);
  open_workers(&f, 2);
  memset(&bi, 0, sizeof(bi));
  bi.pool = NULL; /* the worker's own pool */
  run_in_job(&f.loop, &f.tandem, bad_input_run, &bi);
  bad_input_check(&bi);
  fixture_close(&f);
}
END_TEST

/* ------------------------------------------------------------- suite */

static Suite *forkjoin_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("forkjoin");

  tc = tcase_create("join");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_join_fib_in_jobs_on_two_workers_equals_serial);
  tcase_add_test(tc, test_join_fib_in_jobs_on_one_worker_equals_serial);
  tcase_add_test(tc, test_join_fib_from_test_thread_equals_serial);
  tcase_add_test(tc, test_join_waiter_sleeps_while_stolen_half_runs_long);
  suite_add_tcase(s, tc);

  tc = tcase_create("deep");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_join_deep_recursion_fib35_completes);
  suite_add_tcase(s, tc);

  tc = tcase_create("parallel_for");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc,
                 test_parallel_for_from_test_thread_visits_every_index_once);
  tcase_add_test(tc, test_parallel_for_default_pool_visits_every_index_once);
  tcase_add_test(tc, test_parallel_for_inside_job_visits_every_index_once);
  tcase_add_test(tc, test_parallel_for_nested_visits_every_index_once);
  tcase_add_test(tc, test_parallel_for_nested_in_join_in_jobs_from_loop);
  suite_add_tcase(s, tc);

  tc = tcase_create("group");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_group_of_10000_tasks_from_test_thread_waits_for_all);
  tcase_add_test(tc, test_group_of_10000_tasks_inside_job_waits_for_all);
  tcase_add_test(tc, test_group_spawns_that_overflow_the_ring_all_run);
  tcase_add_test(tc, test_group_recursive_groups_wait_for_their_subtrees);
  suite_add_tcase(s, tc);

  tc = tcase_create("callers");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_fork_join_from_several_outside_threads_at_once);
  tcase_add_test(tc, test_fork_join_on_another_pool_from_inside_job);
  suite_add_tcase(s, tc);

  tc = tcase_create("async");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_parallel_for_async_calls_back_once_on_loop_after_all);
  tcase_add_test(tc, test_parallel_for_async_empty_range_completes);
  tcase_add_test(tc, test_parallel_for_async_resubmitted_from_after_callback);
  tcase_add_test(tc, test_parallel_for_async_bad_arguments_einval);
  tcase_add_test(tc, test_parallel_for_async_in_flight_request_ebusy);
  tcase_add_test(tc, test_parallel_for_async_cancelled_before_start_ecanceled);
  suite_add_tcase(s, tc);

  tc = tcase_create("async_race");
  tcase_set_timeout(tc, 30);
  tcase_add_test(
      tc, test_parallel_for_async_refused_submit_keeps_accepted_arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("bad_input");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_bad_input_einval_from_test_thread);
  tcase_add_test(tc, test_bad_input_einval_inside_job);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(forkjoin_suite());
}
