/* SPDX-License-Identifier: MIT */
/*
 * test_loop_mode.c: the loop's mode policy (src/loop_mode.c) on its own,
 * fed made-up samples: no pool, no loop, no clock.  Each test walks one
 * handle's history through the events loop.c reports and checks the mode
 * tdm_mode_next() picks, as the loop would see it.
 */
#include <check.h>
#include <limits.h>
#include <string.h>

#include "loop_mode.h"
#include "suite_run.h"

#define US 1000ull
#define SPIN (50 * US) /* the default loop_spin_ns */

/* A made-up loop: its policy state, and what the next sample reports. */
typedef struct {
  tdm_mode_state_t st;
  tdm_mode_sample_t s;
} sim_t;

static void sim_init(sim_t *m, unsigned workers) {
  tdm_mode_init(&m->st);
  memset(&m->s, 0, sizeof(m->s));
  m->s.mode = TDM_MODE_SLEEP;
  m->s.workers = workers;
  m->s.spin_ns = SPIN;
  m->s.now = 1000 * 1000 * US; /* a second into the run */
}

/* One event: `drained` completions, `pending` in flight after it, `dt`
 * nanoseconds after the last one.  The loop applies the answer. */
static tdm_mode_t sim(sim_t *m, tdm_mode_event_t ev, unsigned drained,
                      unsigned pending, uint64_t dt) {
  m->s.event = ev;
  m->s.drained = drained;
  m->s.pending = pending;
  m->s.now += dt;
  m->s.mode = tdm_mode_next(&m->st, &m->s);
  return m->s.mode;
}

/* A polling loop whose completions came `gap` ns apart for a while. */
static void sim_polling_at(sim_t *m, uint64_t gap, unsigned pending) {
  int i;

  ck_assert_int_eq(sim(m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
  for (i = 0; i < 20; i++)
    (void)sim(m, TDM_EV_IDLE, 100, pending, 100 * gap);
}

START_TEST(test_sleep_when_few_long_jobs) {
  sim_t m;

  sim_init(&m, 4);
  /* Two jobs of 10 ms: the loop polls for a while after the submits... */
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 2, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 2, 10 * US), TDM_MODE_POLL);
  /* ...then sleeps, and each completion that wakes it leaves it asleep. */
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 2, SPIN), TDM_MODE_SLEEP);
  m.s.woke_pending = 2;
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 1, 1, 10000 * US), TDM_MODE_SLEEP);
  m.s.woke_pending = 1;
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 1, 0, 10 * US), TDM_MODE_SLEEP);
  /* A wake-up that found nothing changes nothing. */
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 0, 0, 10 * US), TDM_MODE_SLEEP);
}
END_TEST

START_TEST(test_poll_when_small_batch_recent) {
  sim_t m;

  sim_init(&m, 4);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 3, 0), TDM_MODE_POLL);
  /* Completions keep the poll alive, each resetting the spin. */
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 3, SPIN - 1), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 1, 2, 1), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 2, SPIN - 1), TDM_MODE_POLL);
  /* More jobs than workers, not busy: the next completion is not near. */
  sim_init(&m, 4);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 5, 0), TDM_MODE_SLEEP);
  /* No polling at all when told so, or on a contended machine. */
  sim_init(&m, 4);
  m.s.spin_ns = 0;
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_SLEEP);
  sim_init(&m, 4);
  m.s.contended = true;
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_SLEEP);
}
END_TEST

START_TEST(test_poll_to_sleep_after_spin) {
  sim_t m;

  sim_init(&m, 4);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1, SPIN - 1), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1, 1), TDM_MODE_SLEEP);
  /* Nothing in flight: no reason to poll, however recent. */
  sim_init(&m, 4);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 1, 0, 10 * US), TDM_MODE_SLEEP);
  /* A contended machine stops polling at once. */
  sim_init(&m, 4);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
  m.s.contended = true;
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1, 1), TDM_MODE_SLEEP);
}
END_TEST

START_TEST(test_busy_loop_polls_and_stays) {
  sim_t m;

  sim_init(&m, 4);
  m.st.last_drain = m.s.now;
  /* A sleeping loop woken to 100 completions in 100 us: busy (1 per us). */
  m.s.woke_pending = 16;
  m.s.woke_ring = 8;
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 100, 16, 100 * US), TDM_MODE_POLL);
  /* Busy within the spin keeps it polling, even with many in flight. */
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 16, SPIN - 1), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 16, 1), TDM_MODE_SLEEP);
  /* Starved: more in flight than workers, none left in the ring. */
  sim_init(&m, 4);
  m.s.woke_pending = 16;
  m.s.woke_ring = 0;
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 2, 16, 1000 * US), TDM_MODE_POLL);
}
END_TEST

START_TEST(test_batch_after_votes) {
  sim_t m;
  int i;

  sim_init(&m, 2);
  m.st.gap_ns = 100 * US; /* 128 jobs of ~100 us: a 12.8 ms backlog */
  m.s.woke_pending = 128;
  m.s.woke_ring = 100; /* not starved: jobs wait */
  for (i = 1; i < TDM_BATCH_VOTES; i++)
    ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 2, 128, 100 * US), TDM_MODE_SLEEP);
  /* One wake-up without the backlog: the votes start over. */
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 2, 10, 100 * US), TDM_MODE_SLEEP);
  for (i = 1; i < TDM_BATCH_VOTES; i++)
    ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 2, 128, 100 * US), TDM_MODE_SLEEP);
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 2, 128, 100 * US), TDM_MODE_BATCH);
  /* Wake-ups in BATCH (cancels) only drain: loop.c asks nothing then;
   * the ticks keep it while the backlog lasts... */
  ck_assert_int_eq(sim(&m, TDM_EV_TICK, 20, 128, 1000 * US), TDM_MODE_BATCH);
  ck_assert_int_eq(sim(&m, TDM_EV_TICK, 0, 128, 1000 * US), TDM_MODE_BATCH);
  /* ...and leave when it is gone. */
  ck_assert_int_eq(sim(&m, TDM_EV_TICK, 80, TDM_BATCH_MIN_JOBS - 1, 1000 * US),
                   TDM_MODE_SLEEP);
  ck_assert_uint_eq(m.st.votes, 0);
}
END_TEST

START_TEST(test_batch_resumes_after_a_poll) {
  sim_t m;

  /* Many workers: a deep backlog may hold fewer jobs than workers. */
  sim_init(&m, 128);
  m.s.mode = TDM_MODE_BATCH;
  m.st.gap_ns = 100 * US;
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 100, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 100, SPIN), TDM_MODE_BATCH);
  /* The backlog gone meanwhile: the poll ends in sleep. */
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 100, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 10, SPIN), TDM_MODE_SLEEP);
}
END_TEST

START_TEST(test_stream_when_fast_and_wide) {
  sim_t m;

  /* 1024 empty jobs on 2 workers, 100 ns apart: a stream. */
  sim_init(&m, 2);
  sim_polling_at(&m, 100, 1024);
  ck_assert_int_eq(m.s.mode, TDM_MODE_STREAM);
  ck_assert_uint_eq(tdm_mode_lag(1024), TDM_LAG_MAX);
  ck_assert_uint_eq(tdm_mode_lag(256), 256 / TDM_LAG_DIVISOR);
  ck_assert_uint_eq(tdm_mode_lag(8 * TDM_LAG_MIN - 1), 0);
  /* As fast, but no more than workers in flight: a round trip. */
  sim_init(&m, 2);
  sim_polling_at(&m, 100, 2);
  ck_assert_int_eq(m.s.mode, TDM_MODE_POLL);
  /* Wide, but slower than the stream's gap. */
  sim_init(&m, 2);
  sim_polling_at(&m, 2 * TDM_STREAM_GAP_NS, 1024);
  ck_assert_int_eq(m.s.mode, TDM_MODE_POLL);
  /* A sleeping loop woken to a fast, wide burst streams at once. */
  sim_init(&m, 2);
  m.st.gap_ns = 100;
  m.st.last_drain = m.s.now;
  m.s.woke_pending = 1024;
  m.s.woke_ring = 512;
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 1000, 1024, 50 * US), TDM_MODE_STREAM);
}
END_TEST

START_TEST(test_stream_leaves) {
  sim_t m;

  sim_init(&m, 2);
  sim_polling_at(&m, 100, 1024);
  ck_assert_int_eq(m.s.mode, TDM_MODE_STREAM);
  /* Between one and two stream gaps: it stays (no flapping)... */
  m.st.gap_ns = TDM_STREAM_GAP_NS + 10;
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 100, 1024, 100 * m.st.gap_ns),
                   TDM_MODE_STREAM);
  /* ...past two it polls. */
  m.st.gap_ns = 3 * TDM_STREAM_GAP_NS;
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 100, 1024, 300 * TDM_STREAM_GAP_NS),
                   TDM_MODE_POLL);
  /* The loop's last job called back: the stream ends mid-drain. */
  sim_polling_at(&m, 100, 1024);
  ck_assert_int_eq(m.s.mode, TDM_MODE_STREAM);
  ck_assert_int_eq(sim(&m, TDM_EV_EMPTY, 0, 0, 0), TDM_MODE_POLL);
  /* Few left in flight: a round trip again. */
  sim_polling_at(&m, 100, 1024);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 100, 2, 10 * US), TDM_MODE_POLL);
  /* A quiet spell past the spin: sleep. */
  sim_polling_at(&m, 100, 1024);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1024, 2 * SPIN), TDM_MODE_SLEEP);
}
END_TEST

START_TEST(test_closing_leaves_batch_and_stream) {
  sim_t m;

  sim_init(&m, 2);
  sim_polling_at(&m, 100, 1024);
  m.s.closing = true;
  ck_assert_int_eq(sim(&m, TDM_EV_CLOSE, 0, 1024, 0), TDM_MODE_POLL);
  /* Closing, jobs still in flight: no stream, no poll. */
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 100, 924, 10), TDM_MODE_SLEEP);
  /* Busy, but closing: a wake-up does not start polling... */
  m.s.woke_pending = 924;
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 900, 24, 10), TDM_MODE_SLEEP);
  /* ...but waiting for senders with nothing in flight does, and goes on
   * until the handles close. */
  ck_assert_int_eq(sim(&m, TDM_EV_SENDERS, 0, 0, 0), TDM_MODE_POLL);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 0, 10 * SPIN), TDM_MODE_POLL);
  m.s.foreign = 1; /* a job from another thread still in flight */
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 0, 1), TDM_MODE_SLEEP);
  ck_assert_int_eq(sim(&m, TDM_EV_CLOSED, 0, 0, 0), TDM_MODE_SLEEP);
  /* Batching ends at the close, and a tick while closing sleeps. */
  sim_init(&m, 2);
  m.s.mode = TDM_MODE_BATCH;
  m.s.closing = true;
  ck_assert_int_eq(sim(&m, TDM_EV_CLOSE, 0, 128, 0), TDM_MODE_SLEEP);
  m.s.mode = TDM_MODE_BATCH;
  m.st.gap_ns = 100 * US;
  ck_assert_int_eq(sim(&m, TDM_EV_TICK, 1, 128, 1000 * US), TDM_MODE_SLEEP);
}
END_TEST

START_TEST(test_submits_that_may_ask) {
  sim_t m;

  sim_init(&m, 4);
  ck_assert_uint_eq(m.st.ask_max, UINT_MAX); /* the first submit asks */
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 0, 0, 0), TDM_MODE_SLEEP);
  ck_assert_uint_eq(m.st.ask_max, 4); /* asleep: a small batch's */
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
  ck_assert_uint_eq(m.st.ask_max, 0); /* polling: none can change it */
  m.s.spin_ns = 0;
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1, 1), TDM_MODE_SLEEP);
  ck_assert_uint_eq(m.st.ask_max, 0); /* never polls: none */
}
END_TEST

START_TEST(test_forced_mode_holds_while_jobs_in_flight) {
  sim_t m;

  sim_init(&m, 2);
  tdm_mode_force(&m.st, TDM_MODE_STREAM);
  ck_assert_uint_eq(m.st.ask_max, UINT_MAX);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_STREAM);
  ck_assert_uint_eq(m.st.ask_max, 0);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 1, 1, 10 * SPIN), TDM_MODE_STREAM);
  /* A turn that found nothing: the policy's answer (a stalled loop leaves
   * the stream), and the pin again once completions come. */
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1, 0), TDM_MODE_STREAM);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 1, 10 * SPIN), TDM_MODE_SLEEP);
  ck_assert_uint_eq(m.st.ask_max, UINT_MAX);
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 0, 1, 1), TDM_MODE_SLEEP);
  ck_assert_int_eq(sim(&m, TDM_EV_WAKE, 1, 1, 1), TDM_MODE_STREAM);
  /* None in flight: the policy again, until the next submit. */
  ck_assert_int_eq(sim(&m, TDM_EV_EMPTY, 0, 0, 0), TDM_MODE_POLL);
  ck_assert_uint_eq(m.st.ask_max, UINT_MAX);
  ck_assert_int_eq(sim(&m, TDM_EV_IDLE, 0, 0, 1), TDM_MODE_SLEEP);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_STREAM);
  /* Closing: as usual. */
  m.s.closing = true;
  ck_assert_int_eq(sim(&m, TDM_EV_CLOSE, 0, 1, 0), TDM_MODE_POLL);
  /* Batching pinned, then unpinned. */
  sim_init(&m, 2);
  tdm_mode_force(&m.st, TDM_MODE_BATCH);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_BATCH);
  ck_assert_int_eq(sim(&m, TDM_EV_TICK, 1, 1, 1000 * US), TDM_MODE_BATCH);
  ck_assert_int_eq(sim(&m, TDM_EV_TICK, 1, 0, 1000 * US), TDM_MODE_SLEEP);
  tdm_mode_force(&m.st, -1);
  ck_assert_int_eq(sim(&m, TDM_EV_SUBMIT, 0, 1, 0), TDM_MODE_POLL);
}
END_TEST

static Suite *loop_mode_suite(void) {
  Suite *s = suite_create("loop_mode");
  TCase *tc = tcase_create("made-up samples");

  tcase_add_test(tc, test_sleep_when_few_long_jobs);
  tcase_add_test(tc, test_poll_when_small_batch_recent);
  tcase_add_test(tc, test_poll_to_sleep_after_spin);
  tcase_add_test(tc, test_busy_loop_polls_and_stays);
  tcase_add_test(tc, test_batch_after_votes);
  tcase_add_test(tc, test_batch_resumes_after_a_poll);
  tcase_add_test(tc, test_stream_when_fast_and_wide);
  tcase_add_test(tc, test_stream_leaves);
  tcase_add_test(tc, test_closing_leaves_batch_and_stream);
  tcase_add_test(tc, test_submits_that_may_ask);
  tcase_add_test(tc, test_forced_mode_holds_while_jobs_in_flight);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return suite_run(loop_mode_suite());
}
