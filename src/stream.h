/* SPDX-License-Identifier: MIT */
/*
 * stream.h: what a streaming loop tells the pool, per loop, and how the
 * workers trail it.
 *
 * A loop streams (loop_mode.c decides when) while its jobs are so cheap
 * that the loop thread, not the workers, limits their rate.  It then writes
 * each ring cell just before a faster worker takes it, and the cell's cache
 * line crosses between their cores twice per job, stalling the loop -- the
 * bottleneck -- on every one.  So while a loop streams, workers take from
 * the ring only once `lag` items are ready, and then that many at once
 * (their credit), reading lines the loop has finished with; or whatever
 * the loop's last drain finished queueing (its release point); or, after
 * TRAIL_WAIT_NS, all there is.  This decides only when to take: an item is
 * never refused for good.
 *
 * Each streaming loop has a slot of its own in the pool (its lag, its
 * release point, the CPU idle.c counts it on), so two loops streaming on
 * one pool do not overwrite each other: workers trail by the largest lag
 * and take up to the earliest release point of the loops streaming.  A
 * loop that finds every slot taken streams without one (no trailing, no
 * resting for it).
 */
#ifndef TANDEM_STREAM_H
#define TANDEM_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "atomic.h"
#include "idle.h"
#include "inject.h"

#define TDM_STREAM_SLOTS 8
#define TDM_NO_SLOT UINT32_MAX

/* One streaming loop.  Written by its loop thread, read by workers. */
typedef struct tdm_stream_s {
  uint32_t lag;     /* trail by this many items; 0: take at once */
  uint32_t cpu;     /* idle.c's record of the CPU it is counted on */
  uint64_t release; /* ring position its last drain finished queueing */
} TDM_ALIGNED tdm_stream_t;

typedef struct tdm_streams_s {
  uint32_t used TDM_ALIGNED; /* bit i: slot[i] is a loop's */
  tdm_stream_t slot[TDM_STREAM_SLOTS];
} tdm_streams_t;

/* A worker's trailing state: its own. */
typedef struct tdm_trail_s {
  uint32_t credit; /* ring items it may take without waiting */
  uint64_t since;  /* when it began to wait for `lag` items, or 0 */
} tdm_trail_t;

/* Loop thread: its loop starts streaming.  Returns the slot it got (keep
 * it for the calls below), or TDM_NO_SLOT. */
uint32_t tdm_stream_begin(tdm_streams_t *ss, tdm_idle_t *idle);

/* Loop thread, after each drain while streaming: trail by `lag`, and the
 * loop's CPU is where it runs now. */
void tdm_stream_lag(tdm_streams_t *ss, tdm_idle_t *idle, uint32_t slot,
                    unsigned lag);

/* Loop thread, at the end of a drain while streaming: workers may take
 * every item queued so far (the loop published those cells itself). */
void tdm_stream_release(tdm_streams_t *ss, const tdm_inject_t *ring,
                        uint32_t slot);

/* Loop thread: its loop stops streaming; work the resting workers left is
 * handed on (idle.c). */
void tdm_stream_end(tdm_streams_t *ss, tdm_idle_t *idle, uint32_t slot);

/* tdm_trail_ready while a loop streams and the worker has no credit
 * (stream.c). */
bool tdm_trail_ready_streams(tdm_streams_t *ss, const tdm_inject_t *ring,
                             tdm_trail_t *tr);

/* Worker, before it takes from the ring: may it take now?  A worker that
 * took nothing must call tdm_trail_dry() (it waits for `lag` again).
 * Inline: on every look at the ring, and while no loop streams it is one
 * relaxed load (a hint: stream.c says why that is enough). */
static inline bool tdm_trail_ready(tdm_streams_t *ss,
                                   const tdm_inject_t *ring,
                                   tdm_trail_t *tr) {
  if (tr->credit != 0 || tdm_load_u32(&ss->used) == 0)
    return true;
  return tdm_trail_ready_streams(ss, ring, tr);
}

static inline void tdm_trail_took(tdm_trail_t *tr) {
  if (tr->credit != 0)
    tr->credit--;
}

static inline void tdm_trail_dry(tdm_trail_t *tr) {
  tr->credit = 0;
}

#endif /* TANDEM_STREAM_H */
