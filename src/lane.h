/* SPDX-License-Identifier: MIT */
/*
 * lane.h: a pool's HIGH lane -- one thread that runs HIGH jobs while every
 * worker is busy, so that a short urgent job does not wait for a long one
 * to finish (tandem.h, TANDEM_PRIO_HIGH).  It is made on the pool's first
 * HIGH job and parked whenever the HIGH queue is empty.  It takes requests
 * only: fork-join tasks need a worker's deque, so a HIGH job's tasks wait
 * in the HIGH queue for a worker (which takes them before any other work).
 *
 * Why a thread and not a worker held back: a held-back worker idles while
 * no HIGH job comes, a loss of 1/workers of the machine (half of it on two
 * cores); the lane costs only the HIGH jobs' own time, and the kernel runs
 * it at once when it wakes because it sleeps most of the time (its CFS
 * virtual run time lags the busy workers').  docs/tuning.md has the
 * measurement.
 */
#ifndef TANDEM_LANE_H
#define TANDEM_LANE_H

#include <stdint.h>

#include <uv.h>

#include "atomic.h"
#include "park.h"

typedef struct tandem_pool_s tandem_pool_t;

typedef struct tdm_lane_s {
  uint32_t state TDM_ALIGNED; /* LANE_NONE, _STARTING, _RUNNING (lane.c) */
  uint32_t sleeping;          /* 1 while parked or about to */
  uint32_t stop;              /* set once: the thread leaves */
  tdm_parker_t parker;
  uint64_t jobs; /* HIGH jobs it ran (stats); written by the lane only */
  uv_thread_t thread;
} tdm_lane_t;

/* Any thread, after a HIGH item was queued (a full barrier after it) and
 * no worker searches: makes sure the lane looks (starts it the first
 * time; if that fails the workers still take the job). */
void tdm_lane_wake(tandem_pool_t *pool);

/* tandem_pool_free: stops and joins the lane if it was ever started. */
void tdm_lane_stop(tandem_pool_t *pool);

#endif /* TANDEM_LANE_H */
