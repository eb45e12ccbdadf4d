/* SPDX-License-Identifier: MIT */
/*
 * loop_mode.h: when a loop sleeps, polls, batches or streams -- the policy
 * of the loop side, apart from its mechanism (loop.c), as Tokio keeps its
 * adaptive tuning in runtime/scheduler/multi_thread/stats.rs.
 *
 * A tandem_t is in one mode at a time:
 *   SLEEP   the loop sleeps in epoll; each batch of completions wakes it
 *           through the handle's eventfd.
 *   POLL    the loop polls the completion stack from a uv_idle handle;
 *           workers skip the eventfd.  For a round trip's next completion,
 *           near enough to wait for, and for a busy loop that has no time to
 *           sleep anyway.
 *   BATCH   a timer drains the completions of a deep backlog every
 *           TDM_BATCH_TICK_MS; nobody wakes the loop but for a cancel.
 *   STREAM  POLL, for cheap jobs completing faster than the loop can call
 *           them back: the pool counts the loop as a busy CPU, rests a
 *           worker and trails the ring by tdm_mode_lag() jobs.
 *
 * loop.c takes a sample (tdm_mode_sample_t) at each event that may change
 * the mode -- a submit, a wake-up, a turn of the idle handle or the timer,
 * the loop's last job done, the steps of closing -- and asks
 * tdm_mode_next() for the next mode, which it then applies.  That function
 * is pure: no atomics, no clock, no libuv; all it keeps is the small
 * history in tdm_mode_state_t (the averaged gap between completions, when
 * the loop was last busy or active, votes for batching).  Its unit test
 * (tests/test_loop_mode.c) feeds it made-up samples.
 */
#ifndef TANDEM_LOOP_MODE_H
#define TANDEM_LOOP_MODE_H

#include <stdbool.h>
#include <stdint.h>

#include "tandem.h"

/* The tuning constants, each once, with what it is for (the policy is in
 * loop_mode.c; loop.c uses the last two). */

/* Completions per microsecond that make a loop busy (note_drain in
 * loop_mode.c). */
#define TDM_BUSY_RATE 1
/* One drain's gap between completions counts for at most TDM_GAP_GROWTH times
 * the average (or a microsecond): a quiet spell before a drain says little
 * about the rate, so a slow stream takes a few drains to be believed, and
 * one hiccup of a fast one does not start batching. */
#define TDM_GAP_GROWTH 4
/* A backlog worth batching: at least TDM_BATCH_MIN_JOBS of the loop's jobs in
 * flight, that would keep the workers busy TDM_BATCH_BACKLOG_NS or more at the
 * rate they have been completing. */
#define TDM_BATCH_MIN_JOBS 64
#define TDM_BATCH_BACKLOG_NS 4000000
/* Wake-ups in a row that must find such a backlog before batching starts:
 * a worker that stalled for a while looks like slow jobs once. */
#define TDM_BATCH_VOTES 8
/* A stream: completions less than TDM_STREAM_GAP_NS apart on average (twice
 * that to leave one: no flapping). */
#define TDM_STREAM_GAP_NS 300
/* A stream's workers trail the ring's newest job by an eighth of the
 * loop's jobs in flight, at most TDM_LAG_MAX; under TDM_LAG_MIN, not at all. */
#define TDM_LAG_DIVISOR 8
#define TDM_LAG_MIN 4
#define TDM_LAG_MAX 128
/* A batching loop's timer period.  A completion waits at most this long:
 * a fraction of the time a newly queued job waits behind a backlog deep
 * enough to batch (TDM_BATCH_BACKLOG_NS). */
#define TDM_BATCH_TICK_MS 1
/* After callbacks between deferred wake-ups of a worker while the loop
 * drains: jobs queued by after callbacks wake a worker once per this many,
 * not once each (one fence per batch), yet a long drain does not keep them
 * all waiting. */
#define TDM_KICK_EVERY 64

typedef enum {
  TDM_MODE_SLEEP = 0, /* = a zeroed handle's mode */
  TDM_MODE_POLL,
  TDM_MODE_BATCH,
  TDM_MODE_STREAM
} tdm_mode_t;

/* Where a sample was taken. */
typedef enum {
  TDM_EV_SUBMIT,  /* the loop thread queued a job (counted in pending) */
  TDM_EV_WAKE,    /* the eventfd woke a sleeping loop, which then drained */
  TDM_EV_IDLE,    /* a turn of the idle handle (POLL, STREAM): drained */
  TDM_EV_TICK,    /* a tick of the timer (BATCH): drained */
  TDM_EV_EMPTY,   /* mid-drain: the loop's last own job was called back */
  TDM_EV_CLOSE,   /* tandem_close() was called (closing is set) */
  TDM_EV_SENDERS, /* closing, nothing in flight, but a worker is still
                     between its push and its wake-up: look again soon */
  TDM_EV_CLOSED   /* the handles are being closed */
} tdm_mode_event_t;

/* What the decision looks at, as loop.c saw it just now. */
typedef struct tdm_mode_sample_s {
  tdm_mode_event_t event;
  tdm_mode_t mode;       /* the mode now (a callback may have changed it
                            since the turn began) */
  unsigned drained;      /* completions called back this turn */
  unsigned pending;      /* jobs queued from the loop thread in flight */
  unsigned foreign;      /* jobs queued from other threads in flight */
  unsigned woke_pending; /* TDM_EV_WAKE: pending before the drain */
  uint64_t woke_ring;    /* TDM_EV_WAKE: jobs waiting in the injection
                            ring before the drain */
  unsigned workers;      /* the pool's workers */
  uint64_t spin_ns;      /* the pool's loop_spin_ns; 0 = never poll */
  uint64_t now;          /* uv_hrtime() (not for EMPTY, CLOSE, CLOSED) */
  bool closing;          /* tandem_close() was called */
  bool contended;        /* the machine is contended: nobody should poll
                            (tandem__pool_contended) */
} tdm_mode_sample_t;

/* The history the policy keeps: struct tandem_mode_state_s, in the private
 * part of tandem_t (tandem.h), so that a handle needs no allocation.
 * Fields: last_activity (a completion drained by polling, or a submit
 * that started polling), last_busy (a drain at BUSY_RATE or more),
 * last_drain, gap_ns (ns between completions, averaged over drains),
 * ask_max (a submit leaving at most this many jobs of the loop's in
 * flight asks tdm_mode_next(); others cannot change the mode), votes
 * (wake-ups in a row that found a deep backlog), held (POLL or STREAM
 * entered from BATCH: batching resumes when polling ends, if the backlog
 * still wants it), forced (the test hook's mode + 1, or 0). */
typedef struct tandem_mode_state_s tdm_mode_state_t;

/* A new handle's history (its mode is TDM_MODE_SLEEP). */
void tdm_mode_init(tdm_mode_state_t *st);

/* The next mode after sample `s`.  Updates `st`; reads nothing else. */
tdm_mode_t tdm_mode_next(tdm_mode_state_t *st, const tdm_mode_sample_t *s);

/* In STREAM: how far behind the ring's newest job workers should trail
 * (tandem__pool_stream_lag) with `pending` jobs of the loop's in flight. */
unsigned tdm_mode_lag(unsigned pending);

/* Pins the mode (mode < 0: unpins).  A pinned mode holds from the next
 * decision while the loop has jobs of its own in flight and is not
 * closing, at every submit and every turn that drained completions; a
 * turn that drained nothing, and every other case, gets the policy's
 * answer (so a loop whose jobs stall still leaves a stream). */
void tdm_mode_force(tdm_mode_state_t *st, int mode);

/* Test hook, loop thread: pins t's mode (tdm_mode_force), so that a suite
 * tests the mode it names instead of hoping the policy picks it.  It
 * takes effect at the loop's next decision: queue the jobs after it. */
void tandem__loop_force_mode(tandem_t *t, int mode);

#endif /* TANDEM_LOOP_MODE_H */
