/* SPDX-License-Identifier: MIT */
/*
 * metrics.h: where the runtime records time (metrics.c): each thread's job
 * timings, a loop's lag and idle time, and the reads that merge them
 * (tandem_pool_metrics, tandem_loop_metrics).  Internal to the library.
 *
 * Every reading is clock.h's (ticks); histograms hold nanoseconds.  A job
 * is timed at four points: queued (its submitter, or the after callback it
 * was queued from), started and finished (its worker: one reading per job
 * boundary when the worker goes straight on), and called back (its loop
 * thread: a reading before every 8th short after callback, every long
 * one, and each drain's first -- tdm_loop_rec_tick).
 */
#ifndef TANDEM_METRICS_H
#define TANDEM_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "tandem.h"

#include "atomic.h"
#include "clock.h"
#include "histogram.h"

/* One thread's job timings (a worker's and the HIGH lane's are written by
 * that thread alone; the blocking side's by all its threads: `shared`).
 * The requests it ran are the run histogram's count. */
typedef struct tdm_rec_s {
  tandem_histogram_t wait;
  tandem_histogram_t run;
  uint64_t busy_ticks; /* a worker's: time running items, ended streaks */
  uint64_t busy_since; /* a worker's: the reading at the start of its
                          current streak of items run back to back (pool.c,
                          run_timed); 0 while it searches or parks */
  bool shared;
} tdm_rec_t;

/* The thread that ran `req`'s work callback: records its wait and run.
 * `queued` is the request's 56-bit reading (pool.h), hence modulo 2^56. */
static inline void tdm_rec_job(tdm_rec_t *r, uint64_t queued, uint64_t start,
                               uint64_t end) {
  uint64_t wait = tdm_clock_since56(queued, start);
  uint64_t run = tdm_clock_since(start, end);

  if (r->shared) {
    tdm_hist_add_shared(&r->wait, wait);
    tdm_hist_add_shared(&r->run, run);
    return;
  }
  tdm_hist_add(&r->wait, wait);
  tdm_hist_add(&r->run, run);
}

/* A handle's loop: its lag, in a block tandem_init allocates
 * (t->metrics_).  Its poll time is libuv's: with UV_METRICS_IDLE_TIME
 * configured, uv_metrics_idle_time() counts the time in epoll_wait alone
 * -- not the I/O callbacks, which libuv runs from inside its poll phase,
 * so timing the poll with prepare and check handles would count them as
 * idle. */
typedef struct tdm_loop_rec_s {
  bool on;            /* the pool records time */
  uint64_t tick;      /* loop thread, while draining: the reading at the
                         current after callback's start, or a little
                         before it (tdm_loop_rec_tick) */
  uint64_t short_ticks; /* TDM_SHORT_CALLBACK_NS in ticks */
  unsigned skip;      /* callbacks left before the next reading */
  unsigned since;     /* callbacks since the last reading */
  uint64_t made;      /* uv_hrtime() at tandem_init */
  uint64_t idle_base; /* uv_metrics_idle_time() then */
  tandem_histogram_t lag;
} tdm_loop_rec_t;

/* Loop thread (tandem_init), before any handle is made: allocates
 * t->metrics_ (0 or UV_ENOMEM); then, once the handle cannot fail any
 * more, starts counting the loop's idle time when `on` (the flag stays on
 * the loop: libuv cannot take it back). */
int tdm_loop_rec_alloc(tandem_t *t);
void tdm_loop_rec_start(tandem_t *t, bool on);
/* Loop thread, once the handle has closed (or failed to open): frees the
 * block. */
void tdm_loop_rec_free(tandem_t *t);

static inline tdm_loop_rec_t *tdm_loop_rec(const tandem_t *t) {
  return (tdm_loop_rec_t *)t->metrics_;
}

/* A clock reading costs about as much as a whole round trip's loop-side
 * work costs in ten (bench/README.md, "metrics on vs off"), so while
 * after callbacks are short the loop reads the clock before every
 * TDM_READ_EVERY-th one, and the callbacks between use that reading: a
 * lag or queued time is then early by at most TDM_READ_EVERY - 1 short
 * callbacks.  Short: the callbacks since the last reading took less than
 * TDM_SHORT_CALLBACK_NS each on average; otherwise every callback reads
 * the clock.  The first callback of each drain always does. */
#define TDM_READ_EVERY 8
#define TDM_SHORT_CALLBACK_NS 500

/* Loop thread, at the start of a drain: the next callback reads. */
static inline void tdm_loop_rec_drain(tdm_loop_rec_t *m) {
  m->skip = 0;
  m->since = 0;
}

/* Loop thread, before an after callback: the reading it is timed by. */
static inline uint64_t tdm_loop_rec_tick(tdm_loop_rec_t *m) {
  uint64_t now;

  if (m->skip != 0) {
    m->skip--;
    m->since++;
    return m->tick;
  }
  now = tdm_clock_now();
  m->skip = m->since != 0 && now - m->tick < m->since * m->short_ticks
                ? TDM_READ_EVERY - 1
                : 0;
  m->since = 1;
  m->tick = now;
  return now;
}

#endif /* TANDEM_METRICS_H */
