/* SPDX-License-Identifier: MIT */
/*
 * test_blocking_side.c: the blocking side of a pool (src/blocking.c) on its
 * own, with fake requests: every job runs exactly once, in FIFO order on
 * one thread, on at most max_threads threads named tandem-b*; idle threads
 * are reaped and busy ones reused; cancel and cancel_owned take exactly the
 * queued jobs; destroy joins idle and busy threads.  Every wait has a
 * deadline (scaled by CK_TIMEOUT_MULTIPLIER), so a hang fails the test.
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "blocking.h"
#include "suite_run.h"
#include "threads_named.h"

#define MAX_JOBS 2000
#define WAIT_MS 5000 /* a generous deadline for anything to happen */

/* Fake handles: only their addresses matter. */
static char owner_x;
static char owner_y;
#define OWNER_X ((tandem_t *)(void *)&owner_x)
#define OWNER_Y ((tandem_t *)(void *)&owner_y)

/* What the run function saw.  Under mu, but for reqs. */
typedef struct rec_s {
  uv_mutex_t mu;
  uv_cond_t cond;
  tdm_blocking_t side;
  tandem_work_t reqs[MAX_JOBS];
  unsigned runs[MAX_JOBS];  /* times each job ran */
  unsigned order[MAX_JOBS]; /* job indices in the order they started */
  char name[MAX_JOBS][16];  /* the thread each ran on */
  unsigned started;
  unsigned done;
  unsigned cur;       /* running now */
  unsigned peak;      /* most running at once */
  bool not_on_thread; /* tdm_blocking_on_thread() was false in run() */
  bool gated;         /* jobs wait for `open` before they finish */
  bool open;
  bool gate_timed_out;
  unsigned sleep_ms; /* each job sleeps this long */
} rec_t;

static unsigned multiplier(void) {
  const char *s;
  long m;

  s = getenv("CK_TIMEOUT_MULTIPLIER");
  if (s == NULL)
    return 1;
  m = strtol(s, NULL, 10);
  return m > 0 ? (unsigned)m : 1;
}

static uint64_t deadline_after(unsigned ms) {
  return uv_hrtime() + (uint64_t)ms * multiplier() * 1000000;
}

static unsigned job_index(rec_t *r, tandem_work_t *req) {
  return (unsigned)(req - r->reqs);
}

/* Blocking thread: waits for the gate to open (never forever). */
static void wait_gate(rec_t *r) {
  uint64_t deadline = deadline_after(10000);
  uint64_t now;

  while (r->gated && !r->open) {
    now = uv_hrtime();
    if (now >= deadline) {
      r->gate_timed_out = true;
      return;
    }
    uv_cond_timedwait(&r->cond, &r->mu, deadline - now);
  }
}

static void run_cb(tandem_work_t *req, void *ctx) {
  rec_t *r = ctx;
  unsigned i = job_index(r, req);
  char name[16];

  pthread_getname_np(pthread_self(), name, sizeof(name));
  uv_mutex_lock(&r->mu);
  r->runs[i]++;
  r->order[r->started++] = i;
  memcpy(r->name[i], name, sizeof(name));
  if (!tdm_blocking_on_thread())
    r->not_on_thread = true;
  if (++r->cur > r->peak)
    r->peak = r->cur;
  uv_cond_broadcast(&r->cond);
  wait_gate(r);
  uv_mutex_unlock(&r->mu);
  if (r->sleep_ms != 0)
    uv_sleep(r->sleep_ms);
  uv_mutex_lock(&r->mu);
  r->cur--;
  r->done++;
  uv_cond_broadcast(&r->cond);
  uv_mutex_unlock(&r->mu);
}

static rec_t *rec_new(unsigned max_threads, unsigned idle_ms) {
  rec_t *r;

  r = calloc(1, sizeof(*r));
  ck_assert_ptr_nonnull(r);
  ck_assert_int_eq(uv_mutex_init(&r->mu), 0);
  ck_assert_int_eq(uv_cond_init(&r->cond), 0);
  ck_assert_int_eq(tdm_blocking_init(&r->side, max_threads, idle_ms, run_cb, r),
                   0);
  return r;
}

static void rec_free(rec_t *r) {
  uv_cond_destroy(&r->cond);
  uv_mutex_destroy(&r->mu);
  free(r);
}

static void submit(rec_t *r, unsigned i, tandem_t *owner) {
  r->reqs[i].tandem = owner;
  ck_assert_int_eq(tdm_blocking_submit(&r->side, &r->reqs[i]), 0);
}

/* Test thread: waits until *field (under mu) reaches `want`. */
static bool wait_field(rec_t *r, const unsigned *field, unsigned want) {
  uint64_t deadline = deadline_after(WAIT_MS);
  uint64_t now;
  bool ok;

  uv_mutex_lock(&r->mu);
  while (*field < want && (now = uv_hrtime()) < deadline)
    uv_cond_timedwait(&r->cond, &r->mu, deadline - now);
  ok = *field >= want;
  uv_mutex_unlock(&r->mu);
  return ok;
}

static void open_gate(rec_t *r) {
  uv_mutex_lock(&r->mu);
  r->open = true;
  uv_cond_broadcast(&r->cond);
  uv_mutex_unlock(&r->mu);
}

static unsigned side_threads(rec_t *r) {
  unsigned n;

  tdm_blocking_counts(&r->side, &n, NULL, NULL, NULL);
  return n;
}

/* Test thread: waits until the side's counts show `threads` threads, all
 * idle, and `jobs` jobs run. */
static bool wait_settled(rec_t *r, unsigned threads, uint64_t jobs) {
  uint64_t deadline = deadline_after(WAIT_MS);
  unsigned n;
  unsigned idle;
  uint64_t run;

  for (;;) {
    tdm_blocking_counts(&r->side, &n, &idle, &run, NULL);
    if (n == threads && idle == threads && run == jobs)
      return true;
    if (uv_hrtime() >= deadline)
      return false;
    uv_sleep(1);
  }
}

/* Threads of this process whose name starts with tandem-b. */
static unsigned named_threads(void) {
  return threads_named("tandem-b");
}

/* Waits until named_threads() is n: a joined thread may linger in
 * /proc/self/task for a moment after its join returned. */
static bool wait_named_threads(unsigned n) {
  uint64_t deadline = deadline_after(WAIT_MS);

  while (named_threads() != n) {
    if (uv_hrtime() >= deadline)
      return false;
    uv_sleep(1);
  }
  return true;
}

/* ------------------------------------------------------------- running */

#define SUBMITTERS 4
#define PER_SUBMITTER 250

typedef struct submitter_s {
  rec_t *r;
  unsigned first;
  int errors;
  uv_thread_t thread;
} submitter_t;

static void submitter_main(void *arg) {
  submitter_t *s = arg;
  unsigned i;

  for (i = s->first; i < s->first + PER_SUBMITTER; i++) {
    s->r->reqs[i].tandem = OWNER_X;
    if (tdm_blocking_submit(&s->r->side, &s->r->reqs[i]) != 0)
      s->errors++;
  }
}

/* Four threads submit 250 jobs each to 4 blocking threads: each of the
 * 1000 runs exactly once, and the counts agree. */
START_TEST(test_every_job_runs_exactly_once) {
  submitter_t subs[SUBMITTERS];
  uint64_t run;
  uint64_t queued;
  unsigned i;
  rec_t *r;

  r = rec_new(4, 0);
  for (i = 0; i < SUBMITTERS; i++) {
    subs[i] = (submitter_t){.r = r, .first = i * PER_SUBMITTER};
    ck_assert_int_eq(
        uv_thread_create(&subs[i].thread, submitter_main, &subs[i]), 0);
  }
  for (i = 0; i < SUBMITTERS; i++) {
    uv_thread_join(&subs[i].thread);
    ck_assert_int_eq(subs[i].errors, 0);
  }
  ck_assert(wait_field(r, &r->done, SUBMITTERS * PER_SUBMITTER));
  ck_assert(wait_settled(r, side_threads(r), SUBMITTERS * PER_SUBMITTER));
  for (i = 0; i < SUBMITTERS * PER_SUBMITTER; i++)
    ck_assert_uint_eq(r->runs[i], 1);
  tdm_blocking_counts(&r->side, NULL, NULL, &run, &queued);
  ck_assert_uint_eq(run, SUBMITTERS * PER_SUBMITTER);
  ck_assert_uint_eq(queued, 0);
  ck_assert_uint_le(r->peak, 4);
  ck_assert(!r->not_on_thread);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

/* One thread: 50 jobs start in the order they were queued. */
START_TEST(test_fifo_with_one_thread) {
  unsigned i;
  rec_t *r;

  r = rec_new(1, 0);
  for (i = 0; i < 50; i++)
    submit(r, i, OWNER_X);
  ck_assert(wait_field(r, &r->done, 50));
  for (i = 0; i < 50; i++) {
    ck_assert_uint_eq(r->order[i], i);
    ck_assert_uint_eq(r->runs[i], 1);
  }
  ck_assert_uint_eq(r->peak, 1);
  ck_assert_uint_eq(side_threads(r), 1);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

/* max_threads 3, 10 jobs that sleep 50 ms: exactly 3 run at once, never
 * more threads than 3. */
START_TEST(test_at_most_max_threads) {
  unsigned i;
  rec_t *r;

  r = rec_new(3, 0);
  r->gated = true;
  r->sleep_ms = 50;
  for (i = 0; i < 10; i++) {
    submit(r, i, OWNER_X);
    ck_assert_uint_le(side_threads(r), 3);
  }
  /* The first three hold their threads until the gate opens. */
  ck_assert(wait_field(r, &r->cur, 3));
  ck_assert_uint_eq(side_threads(r), 3);
  open_gate(r);
  ck_assert(wait_field(r, &r->done, 10));
  ck_assert_uint_eq(r->peak, 3);
  ck_assert_uint_eq(side_threads(r), 3);
  for (i = 0; i < 10; i++)
    ck_assert_uint_eq(r->runs[i], 1);
  ck_assert(!r->gate_timed_out);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

/* run() is called on a thread named tandem-b<n>, where
 * tdm_blocking_on_thread() is true; the test's own thread is not one. */
START_TEST(test_runs_on_named_blocking_thread) {
  rec_t *r;

  ck_assert(!tdm_blocking_on_thread());
  r = rec_new(2, 0);
  submit(r, 0, OWNER_X);
  ck_assert(wait_field(r, &r->done, 1));
  ck_assert_str_eq(r->name[0], "tandem-b0");
  ck_assert(!r->not_on_thread);
  ck_assert(!tdm_blocking_on_thread());
  ck_assert(wait_named_threads(1));
  tdm_blocking_destroy(&r->side);
  ck_assert(wait_named_threads(0));
  rec_free(r);
}
END_TEST

/* ------------------------------------------------- making and reaping */

/* idle_ms 100: four threads made for four concurrent jobs all end once
 * idle, and the next job gets a new thread, numbered on. */
START_TEST(test_idle_threads_reaped) {
  unsigned i;
  rec_t *r;

  r = rec_new(8, 100);
  r->gated = true;
  for (i = 0; i < 4; i++)
    submit(r, i, OWNER_X);
  ck_assert(wait_field(r, &r->cur, 4));
  ck_assert_uint_eq(side_threads(r), 4);
  open_gate(r);
  ck_assert(wait_field(r, &r->done, 4));
  ck_assert(wait_settled(r, 0, 4));
  /* Ended, and joined by the next submit. */
  submit(r, 4, OWNER_X);
  ck_assert(wait_field(r, &r->done, 5));
  ck_assert_int_eq(strncmp(r->name[4], "tandem-b", 8), 0);
  ck_assert_str_eq(r->name[4], "tandem-b4");
  ck_assert(wait_settled(r, 0, 5));
  tdm_blocking_destroy(&r->side);
  ck_assert(wait_named_threads(0));
  rec_free(r);
}
END_TEST

/* Jobs queued one after another, each once the previous has finished,
 * all run on the one thread the first made. */
START_TEST(test_thread_reused_when_work_keeps_coming) {
  unsigned i;
  rec_t *r;

  r = rec_new(8, 0);
  for (i = 0; i < 20; i++) {
    submit(r, i, OWNER_X);
    ck_assert(wait_settled(r, 1, i + 1));
  }
  for (i = 0; i < 20; i++)
    ck_assert_str_eq(r->name[i], "tandem-b0");
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

/* ------------------------------------------------------------ cancel */

/* One thread held by job 0: queued jobs 1..3 wait.  Cancelling 2 (middle)
 * and 3 (tail) takes them; cancelling the running job, a finished one, a
 * job cancelled already or one never queued does not.  Job 4, queued
 * after the tail was cancelled, runs after 1. */
START_TEST(test_cancel_takes_only_queued_jobs) {
  uint64_t queued;
  unsigned i;
  rec_t *r;

  r = rec_new(1, 0);
  r->gated = true;
  for (i = 0; i < 4; i++)
    submit(r, i, OWNER_X);
  ck_assert(wait_field(r, &r->cur, 1));
  ck_assert(tdm_blocking_cancel(&r->side, &r->reqs[2]));
  ck_assert(tdm_blocking_cancel(&r->side, &r->reqs[3]));
  ck_assert(!tdm_blocking_cancel(&r->side, &r->reqs[3]));
  ck_assert(!tdm_blocking_cancel(&r->side, &r->reqs[0])); /* running */
  ck_assert(!tdm_blocking_cancel(&r->side, &r->reqs[9])); /* never queued */
  tdm_blocking_counts(&r->side, NULL, NULL, NULL, &queued);
  ck_assert_uint_eq(queued, 1);
  submit(r, 4, OWNER_X);
  open_gate(r);
  ck_assert(wait_field(r, &r->done, 3));
  ck_assert(wait_settled(r, 1, 3));
  ck_assert(!tdm_blocking_cancel(&r->side, &r->reqs[0])); /* finished */
  ck_assert_uint_eq(r->order[0], 0);
  ck_assert_uint_eq(r->order[1], 1);
  ck_assert_uint_eq(r->order[2], 4);
  ck_assert_uint_eq(r->runs[2] + r->runs[3], 0);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

typedef struct taken_s {
  rec_t *r;
  unsigned n;
  unsigned idx[MAX_JOBS];
  uint64_t queued_seen[MAX_JOBS];
} taken_t;

/* Called with no lock held: counts() would deadlock otherwise. */
static void taken_cb(tandem_work_t *req, void *arg) {
  taken_t *t = arg;

  tdm_blocking_counts(&t->r->side, NULL, NULL, NULL, &t->queued_seen[t->n]);
  t->idx[t->n++] = job_index(t->r, req);
}

/* Job 0 holds the only thread; jobs 1..10 wait, owners alternating X and
 * Y.  cancel_owned(X) takes exactly X's five, oldest first; Y's run. */
START_TEST(test_cancel_owned_takes_owner_jobs_in_order) {
  static taken_t t;
  unsigned i;
  rec_t *r;

  r = rec_new(1, 0);
  r->gated = true;
  submit(r, 0, OWNER_X);
  ck_assert(wait_field(r, &r->cur, 1));
  for (i = 1; i <= 10; i++)
    submit(r, i, i % 2 ? OWNER_X : OWNER_Y);
  memset(&t, 0, sizeof(t));
  t.r = r;
  tdm_blocking_cancel_owned(&r->side, OWNER_X, taken_cb, &t);
  ck_assert_uint_eq(t.n, 5);
  for (i = 0; i < 5; i++) {
    ck_assert_uint_eq(t.idx[i], 2 * i + 1);
    ck_assert_uint_eq(t.queued_seen[i], 5);
  }
  open_gate(r);
  ck_assert(wait_field(r, &r->done, 6));
  ck_assert(wait_settled(r, 1, 6));
  for (i = 1; i <= 5; i++)
    ck_assert_uint_eq(r->order[i], 2 * i);
  for (i = 1; i <= 10; i += 2)
    ck_assert_uint_eq(r->runs[i], 0);
  t.n = 0;
  tdm_blocking_cancel_owned(&r->side, OWNER_Y, taken_cb, &t);
  ck_assert_uint_eq(t.n, 0);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

/* Submitters race a canceller: each job either runs once or is cancelled
 * once, never both, never neither. */
typedef struct canceller_s {
  rec_t *r;
  atomic_int stop;
  unsigned cancelled[MAX_JOBS];
  unsigned total;
  uv_thread_t thread;
} canceller_t;

static void canceller_main(void *arg) {
  canceller_t *c = arg;
  unsigned i;

  while (!atomic_load(&c->stop)) {
    for (i = 0; i < SUBMITTERS * PER_SUBMITTER; i += 3) {
      if (tdm_blocking_cancel(&c->r->side, &c->r->reqs[i])) {
        c->cancelled[i]++;
        c->total++;
      }
    }
  }
}

START_TEST(test_cancel_races_threads) {
  static canceller_t c;
  submitter_t subs[SUBMITTERS];
  unsigned i;
  rec_t *r;

  r = rec_new(2, 0);
  memset(&c, 0, sizeof(c));
  c.r = r;
  ck_assert_int_eq(uv_thread_create(&c.thread, canceller_main, &c), 0);
  for (i = 0; i < SUBMITTERS; i++) {
    subs[i] = (submitter_t){.r = r, .first = i * PER_SUBMITTER};
    ck_assert_int_eq(
        uv_thread_create(&subs[i].thread, submitter_main, &subs[i]), 0);
  }
  for (i = 0; i < SUBMITTERS; i++)
    uv_thread_join(&subs[i].thread);
  atomic_store(&c.stop, 1);
  uv_thread_join(&c.thread);
  ck_assert(wait_field(r, &r->done, SUBMITTERS * PER_SUBMITTER - c.total));
  ck_assert(
      wait_settled(r, side_threads(r), SUBMITTERS * PER_SUBMITTER - c.total));
  for (i = 0; i < SUBMITTERS * PER_SUBMITTER; i++)
    ck_assert_uint_eq(r->runs[i] + c.cancelled[i], 1);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

/* ----------------------------------------------------------- destroy */

/* Destroy joins three idle threads, and a side that never made one. */
START_TEST(test_destroy_with_idle_threads) {
  unsigned i;
  rec_t *r;

  r = rec_new(3, 0);
  r->gated = true;
  for (i = 0; i < 3; i++)
    submit(r, i, OWNER_X);
  ck_assert(wait_field(r, &r->cur, 3));
  open_gate(r);
  ck_assert(wait_settled(r, 3, 3));
  ck_assert(wait_named_threads(3));
  tdm_blocking_destroy(&r->side);
  ck_assert(wait_named_threads(0));
  rec_free(r);

  r = rec_new(0, 0);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

static void open_later(void *arg) {
  uv_sleep(50);
  open_gate(arg);
}

/* Destroy while job 0 runs: it waits for the job to finish; job 1, still
 * queued, is not run. */
START_TEST(test_destroy_waits_for_running_job) {
  uv_thread_t opener;
  rec_t *r;

  r = rec_new(1, 0);
  r->gated = true;
  submit(r, 0, OWNER_X);
  submit(r, 1, OWNER_X);
  ck_assert(wait_field(r, &r->cur, 1));
  ck_assert_int_eq(uv_thread_create(&opener, open_later, r), 0);
  tdm_blocking_destroy(&r->side);
  ck_assert_uint_eq(r->done, 1);
  ck_assert_uint_eq(r->runs[0], 1);
  ck_assert_uint_eq(r->runs[1], 0);
  ck_assert(!r->gate_timed_out);
  ck_assert(wait_named_threads(0));
  uv_thread_join(&opener);
  rec_free(r);
}
END_TEST

/* ---------------------------------------------------------- parallel */

/* 100 jobs of 20 ms with max_threads 64: each runs once, and more than
 * one ran at a time. */
START_TEST(test_many_jobs_run_in_parallel) {
  unsigned i;
  rec_t *r;

  r = rec_new(64, 0);
  r->sleep_ms = 20;
  for (i = 0; i < 100; i++)
    submit(r, i, OWNER_X);
  ck_assert(wait_field(r, &r->done, 100));
  for (i = 0; i < 100; i++)
    ck_assert_uint_eq(r->runs[i], 1);
  ck_assert_uint_gt(r->peak, 1);
  ck_assert_uint_le(side_threads(r), 64);
  tdm_blocking_destroy(&r->side);
  rec_free(r);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("blocking_side");
  tc = tcase_create("blocking_side");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_every_job_runs_exactly_once);
  tcase_add_test(tc, test_fifo_with_one_thread);
  tcase_add_test(tc, test_at_most_max_threads);
  tcase_add_test(tc, test_runs_on_named_blocking_thread);
  tcase_add_test(tc, test_idle_threads_reaped);
  tcase_add_test(tc, test_thread_reused_when_work_keeps_coming);
  tcase_add_test(tc, test_cancel_takes_only_queued_jobs);
  tcase_add_test(tc, test_cancel_owned_takes_owner_jobs_in_order);
  tcase_add_test(tc, test_cancel_races_threads);
  tcase_add_test(tc, test_destroy_with_idle_threads);
  tcase_add_test(tc, test_destroy_waits_for_running_job);
  tcase_add_test(tc, test_many_jobs_run_in_parallel);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
