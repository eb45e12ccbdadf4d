/* SPDX-License-Identifier: MIT */
/*
 * test_oversubscribed.c: pools with many more workers than CPUs (16 and
 * 64 on a machine of a few).  The loop keeps 1,024 jobs in flight,
 * re-queueing each from its after callback, for a short fixed time, while
 * foreign threads queue bursts of jobs on the same tandem_t.  Every job
 * must be called back exactly once per queue, with status 0, on the loop
 * thread, and the run must finish: no livelock among workers that outnumber
 * the CPUs.  TANDEM_OVERSUBSCRIBED_MS sets the time (500 ms).
 */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"
#include "timed_stream.h"

#define INFLIGHT 1024u
#define FOREIGN 4u
#define BURSTS 4u
#define BURST 1000u

typedef struct burster_s burster_t;

typedef struct burst_job_s {
  tandem_work_t req; /* first */
  atomic_uint ran;
  unsigned called; /* loop thread only */
} burst_job_t;

struct burster_s {
  uv_thread_t thread;
  tandem_t *tandem;
  burst_job_t jobs[BURSTS * BURST]; /* each queued once */
  atomic_uint outstanding;          /* queued and not yet called back */
  unsigned queue_errors;            /* burster thread only; read after join */
};

typedef struct over_s {
  fixture_t f;
  timed_stream_t stream;
  burster_t bursters[FOREIGN];
  /* loop thread only */
  unsigned burst_called;
  unsigned burst_bad_status;
  unsigned burst_off_thread;
} over_t;

static void burst_work_cb(tandem_work_t *req) {
  burst_job_t *job = (burst_job_t *)req;

  atomic_fetch_add_explicit(&job->ran, 1, memory_order_relaxed);
}

static void burst_after_cb(tandem_work_t *req, int status) {
  burst_job_t *job = (burst_job_t *)req;
  over_t *o = req->data;
  uv_thread_t self = uv_thread_self();

  if (!uv_thread_equal(&self, &o->f.loop_thread))
    o->burst_off_thread++;
  if (status != 0)
    o->burst_bad_status++;
  job->called++;
  o->burst_called++;
}

/* BURSTS bursts of BURST jobs, each queued as fast as it goes, with a
 * pause between bursts so that they land in the middle of the stream. */
static void burster_main(void *arg) {
  burster_t *b = arg;
  unsigned k;
  unsigned i;

  for (k = 0; k < BURSTS; k++) {
    for (i = k * BURST; i < (k + 1) * BURST; i++)
      if (tandem_queue_work(b->tandem, &b->jobs[i].req, burst_work_cb,
                            burst_after_cb) != 0)
        b->queue_errors++;
    uv_sleep(20);
  }
}

static int bursts_called(void *arg) {
  over_t *o = arg;

  return o->burst_called == FOREIGN * BURSTS * BURST;
}

static unsigned env_count(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static void run_oversubscribed(unsigned workers) {
  tandem_options_t opts;
  uint64_t deadline;
  over_t *o;
  unsigned bad;
  unsigned i;
  unsigned j;
  int held;

  o = calloc(1, sizeof(*o));
  ck_assert_ptr_nonnull(o);
  opts = fixture_options(workers);
  fixture_open(&o->f, &opts);
  ck_assert_uint_eq(tandem_pool_workers(o->f.pool), workers);

  deadline =
      uv_hrtime() + env_count("TANDEM_OVERSUBSCRIBED_MS", 500) * 1000000ull;
  ck_assert_int_eq(
      timed_stream_start(&o->stream, &o->f.tandem, INFLIGHT, deadline), 0);
  for (i = 0; i < FOREIGN; i++) {
    o->bursters[i].tandem = &o->f.tandem;
    for (j = 0; j < BURSTS * BURST; j++)
      o->bursters[i].jobs[j].req.data = o;
    ck_assert_int_eq(
        uv_thread_create(&o->bursters[i].thread, burster_main, &o->bursters[i]),
        0);
  }
  /* The stream keeps uv_run() alive until its last job is called back. */
  ck_assert_int_eq(uv_run(&o->f.loop, UV_RUN_DEFAULT), 0);
  for (i = 0; i < FOREIGN; i++) {
    ck_assert_int_eq(uv_thread_join(&o->bursters[i].thread), 0);
    ck_assert_uint_eq(o->bursters[i].queue_errors, 0);
  }
  /* The bursts do not keep uv_run() alive: wait for their last ones. */
  held = run_until(&o->f.loop, bursts_called, o, 30000);
  ck_assert_msg(held, "%u of %u burst jobs called back", o->burst_called,
                FOREIGN * BURSTS * BURST);

  timed_stream_check(&o->stream);
  bad = 0;
  for (i = 0; i < FOREIGN; i++)
    for (j = 0; j < BURSTS * BURST; j++)
      if (o->bursters[i].jobs[j].called != 1 ||
          atomic_load(&o->bursters[i].jobs[j].ran) != 1)
        bad++;
  ck_assert_msg(bad == 0, "%u burst jobs not run and called back once", bad);
  ck_assert_uint_eq(o->burst_bad_status, 0);
  ck_assert_uint_eq(o->burst_off_thread, 0);

  timed_stream_free(&o->stream);
  fixture_close(&o->f);
  free(o);
}

START_TEST(test_sixteen_workers_stream_and_bursts) {
  run_oversubscribed(16);
}
END_TEST

START_TEST(test_sixty_four_workers_stream_and_bursts) {
  run_oversubscribed(64);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("oversubscribed");
  tc = tcase_create("oversubscribed");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_sixteen_workers_stream_and_bursts);
  tcase_add_test(tc, test_sixty_four_workers_stream_and_bursts);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
