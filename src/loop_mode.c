/* SPDX-License-Identifier: MIT */
/*
 * loop_mode.c: the loop's mode, decided from its recent samples (see
 * loop_mode.h for the modes and the samples; loop.c applies them).
 *
 * Sleep or poll.  A loop polls while the next completion is near: a small
 * batch of its jobs in flight (no more than workers) and activity within
 * loop_spin_ns; or while it is busy, completions coming at TDM_BUSY_RATE per
 * microsecond or more (it would not sleep anyway, and polling spares every
 * worker its eventfd write).  A few long jobs: it sleeps and leaves the
 * CPUs to the workers.  A contended machine never polls.
 *
 * Batch.  A loop whose own jobs in flight would keep the workers busy for
 * TDM_BATCH_BACKLOG_NS or more needs no prompt wake-up: after TDM_BATCH_VOTES
 * wake-ups in a row that found such a backlog, a timer drains it each
 * tick.  On a small machine every wake-up of the loop thread interrupts a
 * worker's job; a tick costs one per millisecond.
 *
 * Stream.  A polling loop whose completions come less than TDM_STREAM_GAP_NS
 * apart, with more jobs in flight than workers, runs jobs that cost about
 * as much as queueing them: the loop thread is the bottleneck.  The pool
 * then rests a worker on the loop's CPU and the others trail the ring's
 * newest job by tdm_mode_lag() (pool.c), so that the loop does not stall
 * on cache lines a worker has just taken from under it.
 *
 * Closing.  Closing leaves BATCH and STREAM at once (what is left comes
 * home promptly, every worker helps); the loop then polls only while it
 * waits for senders to leave, with nothing in flight.
 */
#include "loop_mode.h"

#include <limits.h>
#include <string.h>

void tdm_mode_init(tdm_mode_state_t *st) {
  memset(st, 0, sizeof(*st));
  st->ask_max = UINT_MAX; /* the first submit asks */
}

unsigned tdm_mode_lag(unsigned pending) {
  unsigned lag = pending / TDM_LAG_DIVISOR;

  if (lag > TDM_LAG_MAX)
    lag = TDM_LAG_MAX;
  return lag < TDM_LAG_MIN ? 0 : lag;
}

void tdm_mode_force(tdm_mode_state_t *st, int mode) {
  st->forced = mode < 0 ? 0 : (unsigned char)(mode + 1);
  st->ask_max = UINT_MAX; /* the next submit applies it */
}

/* After draining s->drained > 0 completions at s->now: averages the gap
 * between completions and says whether they came at TDM_BUSY_RATE per
 * microsecond or more since the last drain.  The size of a batch alone
 * says nothing: a loop that slept long finds a large one even when jobs
 * are slow. */
static bool note_drain(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  uint64_t since = s->now - st->last_drain;
  uint64_t limit = st->gap_ns * TDM_GAP_GROWTH;
  uint64_t gap = since / s->drained;
  bool busy = (uint64_t)s->drained * 1000 >= TDM_BUSY_RATE * since;

  if (limit < 1000)
    limit = 1000;
  if (gap > limit)
    gap = limit;
  st->gap_ns = (st->gap_ns + gap) / 2;
  st->last_drain = s->now;
  if (busy)
    st->last_busy = s->now;
  return busy;
}

/* Should a timer drain the completions (a deep backlog)? */
static bool want_batching(const tdm_mode_state_t *st,
                          const tdm_mode_sample_t *s) {
  return !s->closing && s->pending >= TDM_BATCH_MIN_JOBS &&
         (uint64_t)s->pending * st->gap_ns >= TDM_BATCH_BACKLOG_NS;
}

/* Should a polling loop go on polling? */
static bool want_polling(const tdm_mode_state_t *st,
                         const tdm_mode_sample_t *s) {
  if (s->closing) /* only waiting for senders to leave */
    return s->pending == 0 && s->foreign == 0;
  if (s->contended)
    return false;
  if (s->now - st->last_busy < s->spin_ns) /* busy: no time to sleep */
    return true;
  /* A few jobs in flight: the next completion is near. */
  if (s->pending == 0 || s->pending > s->workers)
    return false;
  return s->now - st->last_activity < s->spin_ns;
}

/* A polling loop (`mode` POLL or STREAM), after a drain: does it stream?
 * Slower jobs, or a few in flight (a round trip), keep every worker
 * ready. */
static tdm_mode_t poll_or_stream(const tdm_mode_state_t *st,
                                 const tdm_mode_sample_t *s, tdm_mode_t mode) {
  uint64_t gap =
      mode == TDM_MODE_STREAM ? 2 * TDM_STREAM_GAP_NS : TDM_STREAM_GAP_NS;

  if (s->pending > s->workers && st->gap_ns < gap && !s->closing)
    return TDM_MODE_STREAM;
  return TDM_MODE_POLL;
}

/* A submit from the loop thread, while not polling: a small batch in
 * flight (the next completion is near) starts polling. */
static tdm_mode_t on_submit(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  if (s->mode == TDM_MODE_POLL || s->mode == TDM_MODE_STREAM)
    return s->mode;
  if (s->spin_ns == 0 || s->pending > s->workers || s->contended)
    return s->mode;
  st->last_activity = s->now;
  st->held = s->mode == TDM_MODE_BATCH; /* batching resumes after */
  return TDM_MODE_POLL;
}

/* A sleeping loop woke up and drained (a callback may have started
 * polling meanwhile: s->mode is then POLL).  Busy, or starved -- more of
 * its jobs in flight than workers, yet none waited in the ring: the
 * workers were done before the loop was awake, so the loop thread is what
 * limits them (waking per batch, a loop of cheap jobs can measure under
 * TDM_BUSY_RATE and never poll) -- it polls.  A deep backlog votes for
 * batching. */
static tdm_mode_t on_wake(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  bool busy;
  bool starved;

  if (s->drained == 0)
    return s->mode;
  busy = note_drain(st, s);
  starved = s->woke_pending > s->workers && s->woke_ring == 0;
  if ((busy || starved) && s->spin_ns != 0 && s->mode == TDM_MODE_SLEEP &&
      !s->closing && !s->contended)
    return poll_or_stream(st, s, TDM_MODE_POLL);
  if (!want_batching(st, s)) {
    st->votes = 0;
    return s->mode;
  }
  if (s->mode != TDM_MODE_SLEEP || ++st->votes < TDM_BATCH_VOTES)
    return s->mode;
  st->votes = 0;
  return TDM_MODE_BATCH;
}

/* A turn of the idle handle (POLL or STREAM). */
static tdm_mode_t on_idle(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  tdm_mode_t mode = s->mode;

  if (s->drained != 0) {
    st->last_activity = s->now;
    (void)note_drain(st, s);
    mode = poll_or_stream(st, s, mode);
  }
  if (st->held && !want_batching(st, s))
    st->held = 0;
  if (want_polling(st, s))
    return mode;
  mode = st->held ? TDM_MODE_BATCH : TDM_MODE_SLEEP;
  st->held = 0;
  return mode;
}

/* A tick of the timer (BATCH); a callback of its drain may have started
 * polling (POLL, batching held) or closed the handle. */
static tdm_mode_t on_tick(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  if (s->drained != 0)
    (void)note_drain(st, s);
  if (s->mode == TDM_MODE_BATCH)
    return want_batching(st, s) ? TDM_MODE_BATCH : TDM_MODE_SLEEP;
  if (st->held && !want_batching(st, s))
    st->held = 0;
  return s->mode;
}

/* Closing, and the loop's last job: what no longer has a reason to be. */
static tdm_mode_t on_close(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  switch (s->event) {
  case TDM_EV_EMPTY: /* the pool must not stay throttled for a loop that
                        may leave uv_run() now */
    return s->mode == TDM_MODE_STREAM ? TDM_MODE_POLL : s->mode;
  case TDM_EV_CLOSE: /* what is left comes home promptly; every worker
                        helps */
    st->held = 0;
    if (s->mode == TDM_MODE_BATCH)
      return TDM_MODE_SLEEP;
    return s->mode == TDM_MODE_STREAM ? TDM_MODE_POLL : s->mode;
  case TDM_EV_SENDERS: /* a matter of nanoseconds: poll until they leave */
    return TDM_MODE_POLL;
  default: /* TDM_EV_CLOSED */
    st->held = 0;
    return TDM_MODE_SLEEP;
  }
}

/* Does a pinned mode hold after `s`?  While the loop has jobs of its own
 * in flight and is not closing -- but a turn that drained nothing gets
 * the policy's answer: the pool rests a worker while a loop streams and
 * relies on the loop to leave the stream once completions stop, as the
 * policy does after loop_spin_ns without activity. */
static bool pinned(const tdm_mode_sample_t *s) {
  bool turn = s->event == TDM_EV_WAKE || s->event == TDM_EV_IDLE ||
              s->event == TDM_EV_TICK;

  return s->pending != 0 && !s->closing && !(turn && s->drained == 0);
}

/* Which submits may change the mode after `mode`: with a mode pinned,
 * every submit until it holds; else, not polling, a small batch's. */
static unsigned ask_max(const tdm_mode_state_t *st, const tdm_mode_sample_t *s,
                        tdm_mode_t mode) {
  if (st->forced != 0)
    return mode == (tdm_mode_t)(st->forced - 1) ? 0 : UINT_MAX;
  if (mode == TDM_MODE_POLL || mode == TDM_MODE_STREAM || s->spin_ns == 0)
    return 0;
  return s->workers;
}

tdm_mode_t tdm_mode_next(tdm_mode_state_t *st, const tdm_mode_sample_t *s) {
  tdm_mode_t mode;

  switch (s->event) {
  case TDM_EV_SUBMIT:
    mode = on_submit(st, s);
    break;
  case TDM_EV_WAKE:
    mode = on_wake(st, s);
    break;
  case TDM_EV_IDLE:
    mode = on_idle(st, s);
    break;
  case TDM_EV_TICK:
    mode = on_tick(st, s);
    break;
  default:
    mode = on_close(st, s);
    break;
  }
  if (st->forced != 0 && pinned(s))
    mode = (tdm_mode_t)(st->forced - 1);
  st->ask_max = ask_max(st, s, mode);
  return mode;
}
