/* SPDX-License-Identifier: MIT */
/*
 * test_wakeups.c: no wake-up is lost when nothing spins.  With
 * worker_spin_us and loop_spin_us negative, an idle worker parks at once
 * and the loop never polls for completions, so every job must wake a
 * worker and every completion must wake the loop.  Foreign threads and the
 * loop thread submit on one tandem_t in lockstep rounds -- nobody submits
 * again until every job of the round came back -- so a lost wake-up is
 * never rescued by a later submit: it shows as a run that does not finish,
 * which Check's timeout fails.  Every job's after callback must run exactly
 * once, with status 0, on the loop thread.
 * TANDEM_WAKEUP_ROUNDS scales the rounds up for long runs.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "suite_run.h"
#include "tandem.h"

#define FOREIGN 4     /* submitting threads besides the loop thread */
#define MAX_BURST 32u /* jobs a submitter queues in a round */

typedef struct wakeups_s wakeups_t;

typedef struct wake_job_s {
  tandem_work_t req; /* first: a request is its job */
  unsigned queued;   /* times queued, by its submitter */
  unsigned called;   /* after callbacks; loop thread only */
} wake_job_t;

typedef struct submitter_s {
  wakeups_t *w;
  uv_thread_t thread;
  wake_job_t jobs[MAX_BURST];
  uv_sem_t go;           /* posted by the loop thread at each round */
  unsigned queue_errors; /* submitter thread only; read after join */
} submitter_t;

struct wakeups_s {
  fixture_t f;
  uv_async_t keep_alive; /* never sent: keeps uv_run() in epoll, no timer */
  unsigned rounds;
  unsigned burst;
  atomic_uint ran; /* work callbacks */
  submitter_t foreign[FOREIGN];
  wake_job_t loop_jobs[MAX_BURST];
  /* loop thread only */
  unsigned round_called; /* after callbacks of the current round */
  unsigned rounds_done;
  unsigned called;
  unsigned bad_status;
  unsigned off_thread;
  unsigned queue_errors;
};

static void wake_work_cb(tandem_work_t *req) {
  wakeups_t *w = req->data;

  atomic_fetch_add_explicit(&w->ran, 1, memory_order_relaxed);
}

static void wake_after_cb(tandem_work_t *req, int status);

static unsigned queue_burst(wakeups_t *w, wake_job_t *jobs) {
  unsigned errors;
  unsigned i;

  errors = 0;
  for (i = 0; i < w->burst; i++) {
    jobs[i].queued++;
    if (tandem_queue_work(&w->f.tandem, &jobs[i].req, wake_work_cb,
                          wake_after_cb) != 0)
      errors++;
  }
  return errors;
}

/* Loop thread: lets every submitter queue its burst, and queues its own. */
static void start_round(wakeups_t *w) {
  unsigned i;

  for (i = 0; i < FOREIGN; i++)
    uv_sem_post(&w->foreign[i].go);
  w->queue_errors += queue_burst(w, w->loop_jobs);
}

static void wake_after_cb(tandem_work_t *req, int status) {
  wake_job_t *job = (wake_job_t *)req;
  wakeups_t *w = req->data;
  uv_thread_t self = uv_thread_self();

  if (!uv_thread_equal(&self, &w->f.loop_thread))
    w->off_thread++;
  if (status != 0)
    w->bad_status++;
  job->called++;
  w->called++;
  /* Nobody queues again before the whole round came back, so a job
   * stranded by a lost wake-up is never rescued by a later submit. */
  if (++w->round_called < (FOREIGN + 1) * w->burst)
    return;
  w->round_called = 0;
  if (++w->rounds_done < w->rounds)
    start_round(w);
  else
    uv_close((uv_handle_t *)&w->keep_alive, NULL);
}

static void submitter_main(void *arg) {
  submitter_t *s = arg;
  unsigned round;

  for (round = 0; round < s->w->rounds; round++) {
    uv_sem_wait(&s->go);
    s->queue_errors += queue_burst(s->w, s->jobs);
  }
}

static void never_sent_cb(uv_async_t *handle) {
  (void)handle;
}

static unsigned env_count(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

/* FOREIGN threads and the loop thread each queue a burst of `burst` jobs
 * per round, `rounds` rounds, on one tandem_t of a pool of `workers` that
 * never spins; a round starts once the last one came back. */
static void run_wakeups(unsigned workers, unsigned burst, unsigned rounds) {
  tandem_options_t opts;
  wakeups_t *w;
  unsigned total;
  unsigned i;
  unsigned j;

  w = calloc(1, sizeof(*w));
  ck_assert_ptr_nonnull(w);
  opts = fixture_options(workers);
  opts.worker_spin_us = -1; /* park at once */
  opts.loop_spin_us = -1;   /* never poll: every completion wakes the loop */
  fixture_open(&w->f, &opts);
  ck_assert_int_eq(uv_async_init(&w->f.loop, &w->keep_alive, never_sent_cb), 0);
  w->burst = burst;
  w->rounds = rounds;
  total = (FOREIGN + 1) * rounds * burst;
  for (i = 0; i < burst; i++)
    w->loop_jobs[i].req.data = w;
  for (i = 0; i < FOREIGN; i++) {
    w->foreign[i].w = w;
    for (j = 0; j < burst; j++)
      w->foreign[i].jobs[j].req.data = w;
    ck_assert_int_eq(uv_sem_init(&w->foreign[i].go, 0), 0);
    ck_assert_int_eq(
        uv_thread_create(&w->foreign[i].thread, submitter_main, &w->foreign[i]),
        0);
  }

  /* A lost wake-up leaves the loop asleep in epoll for good: Check's
   * timeout fails the test. */
  start_round(w);
  ck_assert_int_eq(uv_run(&w->f.loop, UV_RUN_DEFAULT), 0);

  ck_assert_uint_eq(w->rounds_done, rounds);
  for (i = 0; i < FOREIGN; i++) {
    ck_assert_int_eq(uv_thread_join(&w->foreign[i].thread), 0);
    ck_assert_uint_eq(w->foreign[i].queue_errors, 0);
    uv_sem_destroy(&w->foreign[i].go);
    for (j = 0; j < burst; j++) {
      ck_assert_uint_eq(w->foreign[i].jobs[j].queued, rounds);
      ck_assert_uint_eq(w->foreign[i].jobs[j].called, rounds);
    }
  }
  for (j = 0; j < burst; j++) {
    ck_assert_uint_eq(w->loop_jobs[j].queued, rounds);
    ck_assert_uint_eq(w->loop_jobs[j].called, rounds);
  }
  ck_assert_uint_eq(w->queue_errors, 0);
  ck_assert_uint_eq(w->called, total);
  ck_assert_uint_eq(atomic_load(&w->ran), total);
  ck_assert_uint_eq(w->bad_status, 0);
  ck_assert_uint_eq(w->off_thread, 0);

  fixture_close(&w->f);
  free(w);
}

/* One job at a time from each of 4 threads and the loop thread, on 2
 * workers: every submit must wake a parked worker, every completion the
 * sleeping loop. */
START_TEST(test_no_lost_wakeup_one_job_at_a_time) {
  run_wakeups(2, 1, env_count("TANDEM_WAKEUP_ROUNDS", 4000));
}
END_TEST

/* Bursts of 32 from each, on 2 workers: many submits race each worker's
 * park and each other's wake. */
START_TEST(test_no_lost_wakeup_in_bursts) {
  run_wakeups(2, MAX_BURST, env_count("TANDEM_WAKEUP_ROUNDS", 4000) / 10);
}
END_TEST

/* One worker: every submitter races for the same sleeper. */
START_TEST(test_no_lost_wakeup_one_worker) {
  run_wakeups(1, 4, env_count("TANDEM_WAKEUP_ROUNDS", 4000) / 2);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("wakeups");
  tc = tcase_create("no_spin");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_no_lost_wakeup_one_job_at_a_time);
  tcase_add_test(tc, test_no_lost_wakeup_in_bursts);
  tcase_add_test(tc, test_no_lost_wakeup_one_worker);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
