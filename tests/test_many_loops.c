/* SPDX-License-Identifier: MIT */
/*
 * test_many_loops.c: two loops streaming on one pool at once.  Two
 * threads each run a uv loop of their own with a tandem_t of their own on
 * the same pool, each keeping 1,024 empty jobs in flight (re-queueing each
 * from its after callback) for the same fixed time.  Every job must be
 * called back exactly once per queue, with status 0, on its own loop's
 * thread, and neither loop may starve: on the default pool each completes
 * at least a third of all the jobs completed; on a pool of one worker, for
 * which the two loops compete, at least a twentieth (see the assertion).
 * TANDEM_MANY_LOOPS_MS sets the time (2,000 ms; over 1,000 ms one loop
 * once completed 8 % of the jobs in CI, with one worker -- not seen in 24
 * runs here; a longer window averages out a loop thread the host held
 * back for a while).
 *
 * Both handles are pinned in STREAM (tandem__loop_force_mode), so the
 * suite tests what it names in every build: left to the policy, a loop
 * slowed by a sanitizer may batch from its 1 ms timer while the other
 * streams, and then completes a quarter of the jobs for a reason that is
 * the mode, not the pool (seen in CI under ASan: 1,644,849 of 5,883,496).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "loop_mode.h"
#include "suite_run.h"
#include "tandem.h"
#include "timed_stream.h"

#define LOOPS 2
#define INFLIGHT 1024u

typedef struct loop_side_s {
  fixture_t f; /* the pool is the test's, shared */
  uv_thread_t thread;
  timed_stream_t stream;
  uv_barrier_t *ready;
  const uint64_t *deadline;
  int open_rc;
  int start_rc;
  int run_rc;
  int close_rc;
} loop_side_t;

static void loop_side_main(void *arg) {
  loop_side_t *ls = arg;

  ls->open_rc = fixture_loop_open(&ls->f, ls->f.pool);
  /* Both loops start together, once both are open (or failed to). */
  uv_barrier_wait(ls->ready);
  if (ls->open_rc != 0)
    return;
  tandem__loop_force_mode(&ls->f.tandem, TDM_MODE_STREAM);
  ls->start_rc =
      timed_stream_start(&ls->stream, &ls->f.tandem, INFLIGHT, *ls->deadline);
  ls->run_rc = uv_run(&ls->f.loop, UV_RUN_DEFAULT);
  ls->close_rc = fixture_loop_close(&ls->f);
}

static unsigned env_count(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

/* `share`: each loop must complete at least 1/share of all the jobs. */
static void run_two_loops(unsigned workers, unsigned share) {
  tandem_options_t opts;
  tandem_pool_t *pool;
  uv_barrier_t ready;
  tandem_stats_t st;
  loop_side_t *ls;
  uint64_t deadline;
  uint64_t total;
  unsigned i;

  ls = calloc(LOOPS, sizeof(*ls));
  ck_assert_ptr_nonnull(ls);
  opts = fixture_options(workers);
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  ck_assert_int_eq(uv_barrier_init(&ready, LOOPS + 1), 0);
  for (i = 0; i < LOOPS; i++) {
    ls[i].f.pool = pool;
    ls[i].ready = &ready;
    ls[i].deadline = &deadline;
    ck_assert_int_eq(uv_thread_create(&ls[i].thread, loop_side_main, &ls[i]),
                     0);
  }
  /* The same deadline for both, set before either starts. */
  deadline = uv_hrtime() + env_count("TANDEM_MANY_LOOPS_MS", 2000) * 1000000ull;
  uv_barrier_wait(&ready);
  for (i = 0; i < LOOPS; i++)
    ck_assert_int_eq(uv_thread_join(&ls[i].thread), 0);
  uv_barrier_destroy(&ready);

  total = 0;
  for (i = 0; i < LOOPS; i++) {
    ck_assert_msg(ls[i].open_rc == 0, "loop %u: %s", i, ls[i].f.error);
    ck_assert_int_eq(ls[i].start_rc, 0);
    ck_assert_int_eq(ls[i].run_rc, 0);
    ck_assert_msg(ls[i].close_rc == 0, "loop %u: %s", i, ls[i].f.error);
    ck_assert(uv_thread_equal(&ls[i].stream.loop_thread, &ls[i].thread));
    timed_stream_check(&ls[i].stream);
    total += ls[i].stream.called;
  }
  /* Both streamed (each pinned handle began a stream). */
  ck_assert_int_eq(tandem_pool_stats(pool, &st), 0);
  ck_assert_uint_ge(st.streams, LOOPS);
  /* Neither starved.  On the default pool each loop completes a third
   * (issue #12's figure; 44-56 % each in every build here).  With one
   * worker only that neither is starved: two polling loops and the worker
   * are three busy threads on 2 cores, and which loop shares a core with
   * the worker, for how long, is the kernel's choice -- the smaller share
   * was 12.6-50 % in 16 runs on this VM (a fifth, asserted before, failed
   * 3 of them) and 8 % once in CI over a 1 s window.  A loop whose jobs
   * the pool starved would complete next to none. */
  /* The split, for the log: how far from even it was in this run. */
  fprintf(stderr,
          "many_loops: %u worker(s): loop shares %.1f %% and %.1f %% of %llu "
          "jobs\n",
          tandem_pool_workers(pool),
          100.0 * (double)ls[0].stream.called / (double)total,
          100.0 * (double)ls[1].stream.called / (double)total,
          (unsigned long long)total);
  for (i = 0; i < LOOPS; i++)
    ck_assert_msg(ls[i].stream.called * share >= total,
                  "loop %u completed %llu of %llu jobs", i,
                  (unsigned long long)ls[i].stream.called,
                  (unsigned long long)total);
  for (i = 0; i < LOOPS; i++)
    timed_stream_free(&ls[i].stream);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
  free(ls);
}

/* On a pool of one worker per CPU (the default). */
START_TEST(test_two_loops_stream_on_one_pool) {
  run_two_loops(0, 3);
}
END_TEST

/* On a pool of one worker: the two loops compete for it. */
START_TEST(test_two_loops_stream_on_one_worker) {
  run_two_loops(1, 20);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("many_loops");
  tc = tcase_create("two_loops");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_two_loops_stream_on_one_pool);
  tcase_add_test(tc, test_two_loops_stream_on_one_worker);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
