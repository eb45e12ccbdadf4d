/* SPDX-License-Identifier: MIT */
/*
 * hold: keeps jobs running until the test lets them go, with every wait
 * bounded, so that a pool that never starts (or never ends) a job fails the
 * test with a message instead of stalling it.
 *
 *   hold_t h;
 *   hold_init(&h);
 *   job:   hold_wait(&h);          counts itself in h.entered, then waits
 *                                  for a permit or the hold to open
 *   test:  wait_atomic_ge(&h.entered, n, ms)   n jobs are inside
 *          hold_release(&h, k);    lets k of them (or the next k) go
 *          hold_open(&h);          lets every job go, now and later
 *
 * worker_gate.h holds every worker of a pool with jobs of its own; a hold
 * is for the jobs a test records: some of them, on any thread (a worker,
 * the HIGH lane, a blocking thread).
 */
#ifndef HOLD_H
#define HOLD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem.h"

/* The longest a job waits in hold_wait(), in milliseconds, before it gives
 * up and counts itself in timed_out (times the Check timeout multiplier). */
#define HOLD_MAX_MS 20000u

typedef struct hold_s {
  atomic_int permits;   /* jobs that may still go; HOLD_OPEN: all */
  atomic_int entered;   /* jobs that reached hold_wait() */
  atomic_int passed;    /* jobs that left it with a permit or opened */
  atomic_int timed_out; /* jobs that left it after HOLD_MAX_MS */
} hold_t;

void hold_init(hold_t *h);

/* Job side: counts itself in h->entered, then waits until a permit is
 * free or the hold is open.  Returns 1, or 0 if HOLD_MAX_MS passed first
 * (h->timed_out counts it).  Any thread. */
int hold_wait(hold_t *h);

/* Lets `n` more jobs go.  Any thread. */
void hold_release(hold_t *h, int n);

/* Lets every job go, now and later.  Any thread. */
void hold_open(hold_t *h);

/* Test side: waits until *v >= want, checking every millisecond, for at
 * most max_ms times the Check timeout multiplier.  Returns 1 if it got
 * there, 0 if the time ran out.  Runs no loop. */
int wait_atomic_ge(atomic_int *v, int want, uint64_t max_ms);

/* Sleeps until uv_hrtime() is past `t`, in steps of a millisecond. */
void sleep_past(uint64_t t);

/* A pool's counters of what its threads did (jobs run, expired, ...) may
 * lag the after callbacks a little: a thread may count a job after handing
 * it back to the loop.  Reads the uint64_t counter at `offset` in
 * tandem_stats_t until it reaches `want`, for at most max_ms times the
 * Check timeout multiplier, and returns its last value (for the caller to
 * assert equal to `want`: a counter that overshoots still fails).  Any
 * thread; runs no loop. */
uint64_t stats_settled(tandem_pool_t *pool, size_t offset, uint64_t want,
                       uint64_t max_ms);

/* stats_settled() of one field, for 5 s. */
#define STATS_SETTLED(pool, field, want)                                       \
  stats_settled((pool), offsetof(tandem_stats_t, field), (want), 5000)

#endif /* HOLD_H */
