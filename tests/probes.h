/* SPDX-License-Identifier: MIT */
/*
 * probes: a loop keeps `width` requests in flight on a pool of its own, each
 * queued again from its after callback until `total` have been queued, and
 * counts what the suites check: every after callback exactly once, on the
 * loop thread, with status 0 or UV_ECANCELED.  Used by the batching and
 * stream suites, which differ in their jobs and in what they do mid-run.
 *
 * Nothing here calls ck_assert from an after callback: Check logs every
 * passed assertion with a write(), which alone would slow a loop of cheap
 * jobs.  Callbacks count what went wrong; probes_check_once() asserts it.
 */
#ifndef PROBES_H
#define PROBES_H

#include <stdatomic.h>

#include "fixture.h"
#include "tandem.h"

typedef struct probe_s {
  tandem_work_t req; /* first: a request is its probe */
  atomic_int ran;    /* work callbacks run */
  int queued;        /* loop thread only */
  int called;        /* after callbacks; loop thread only */
} probe_t;

typedef struct probes_s {
  fixture_t f;    /* the pool, the loop, the tandem_t and the loop's thread */
  probe_t *probe; /* [width] */
  int width;
  int total;
  tandem_work_cb work;
  tandem_after_work_cb after;
  /* Loop thread only. */
  int queued_total;
  int afters;
  int afters_off_thread;
  int bad_status; /* neither 0 nor UV_ECANCELED */
  int bad_calls;  /* a call in a callback that returned what it must not */
  int cancelled;
  int stop_requeue; /* set once the test closed or cancelled */
} probes_t;

/* Test fixture, on the thread that will run the loop: a pool of `workers`,
 * a loop and a tandem_t on it (fixture_open()), every probe zeroed. */
void probes_open(probes_t *ps, unsigned workers, probe_t *probe, int width,
                 int total, tandem_work_cb work);

/* Test fixture: closes the loop and frees the pool, asserting both return
 * 0 (fixture_finish(); the test closed the tandem_t). */
void probes_close(probes_t *ps);

/* Queues `p` once more; counts it if accepted.  Returns tandem_queue_work's
 * result. */
int probes_queue(probes_t *ps, probe_t *p);

/* Queues every probe with `after` as its after callback. */
void probes_start(probes_t *ps, tandem_after_work_cb after);

/* The start of every after callback: counts the call and its status. */
void probes_count(probes_t *ps, probe_t *p, int status);

/* Queues `p` again unless the run is over or stopped. */
void probes_requeue(probes_t *ps, probe_t *p);

/* Loop thread, in `newest`'s after callback, after probes_requeue():
 * cancels `newest` if it was queued again, and returns it; else, or if the
 * cancel did not return 0 (counted in bad_calls), NULL.  It is the newest
 * job queued: in the deep backlogs the stream and batching suites cancel
 * in, every other waiting job is ahead of it, so no worker reaches it
 * before the cancel.  (Not an older probe: one a worker
 * has just taken answers UV_EBUSY and, since #13, is asked to stop -- it
 * may then end with UV_ECANCELED too, a second cancel the test did not
 * mean.) */
probe_t *probes_cancel_one(probes_t *ps, probe_t *newest);

/* Work callbacks run, over every probe. */
int probes_ran(probes_t *ps);

/* Asserts: each probe called back as often as queued, all on the loop
 * thread, no bad status, no bad call. */
void probes_check_once(const probes_t *ps);

#endif /* PROBES_H */
