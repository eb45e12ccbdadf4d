/* SPDX-License-Identifier: MIT */
/*
 * pool.h: the pool's internal structures, shared by pool.c (workers,
 * scheduling, parking), loop.c (tandem_t and requests) and forkjoin.c.
 */
#ifndef TANDEM_POOL_H
#define TANDEM_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tandem.h"

#include "atomic.h"
#include "deque.h"
#include "idle.h"
#include "inject.h"
#include "classq.h"
#include "lane.h"
#include "blocking.h"
#include "job.h"
#include "stream.h"
#include "park.h"
#include "metrics.h"

/* Items in deques and the injection queue are tandem_work_t pointers, or
 * fork-join frames tagged with the low bit. */
#define TDM_ITEM_FRAME ((uintptr_t)1)

/* A fork-join frame: a piece of work a worker runs and then marks done. */
typedef struct tdm_frame_s tdm_frame_t;
struct tdm_frame_s {
  void (*run)(tdm_frame_t *f);
  void *next; /* overflow stack and class queue link */
};

/* Where an item keeps its link on the overflow stack or a class queue:
 * requests in next_ (unused while queued), frames in their own next. */
static inline void **tdm_item_link(void *item) {
  if ((uintptr_t)item & TDM_ITEM_FRAME)
    return &((tdm_frame_t *)((uintptr_t)item & ~TDM_ITEM_FRAME))->next;
  return &((tandem_work_t *)item)->next_;
}

/* Job classes as the pool numbers them (tandem.h's TANDEM_PRIO_* + 1 would
 * do, but NORMAL is 0 so that a zeroed request is NORMAL). */
enum { TDM_CLS_NORMAL = 0, TDM_CLS_HIGH = 1, TDM_CLS_LOW = 2 };

/* req->opts_: the class in the low two bits, then flags. */
#define TDM_OPT_CLASS 3u
#define TDM_OPT_BLOCKING 4u /* runs on the blocking side */
#define TDM_OPT_DEADLINE 8u /* deadline_ is set */
#define TDM_OPT_COUNTED 16u /* counted against max_queued until it starts */
#define TDM_OPT_FROM_LOOP 32u /* queued on its loop's thread */
#define TDM_OPT_TIMED 64u /* its work ran and its end reading is kept (see
                             tdm_req_done): set by the worker, read by the
                             loop (lag) */
#define TDM_OPT_STAMPED 128u /* queued on a timed pool: carries its queued
                               reading (tdm_req_stamp) */
#define TDM_OPT_BITS 0xffu /* the flags above; opts_'s upper 24 bits hold
                              part of the queued reading (tdm_req_stamp) */
/* The options a job may be queued with (tandem__job_opts). */
#define TDM_OPT_GIVEN                                                         \
  (TDM_OPT_CLASS | TDM_OPT_BLOCKING | TDM_OPT_DEADLINE | TDM_OPT_COUNTED)

/* A timed pool's readings of a request live on its first line, the line a
 * round trip moves anyway (a field of their own on the second line cost a
 * cache line more per job, and the second line of a request in an array
 * is the first of the next): from the submit to the start, the queued
 * reading's low 32 bits in status_ (unused until the completion writes
 * it) and its next 24 bits in opts_ above TDM_OPT_BITS; once work_cb has
 * returned, the end reading in work_cb_'s bytes (unused until the next
 * submit writes it).  Readings are compared modulo 2^56. */

_Static_assert(sizeof(tandem_work_cb) == sizeof(uint64_t),
               "work_cb_ holds a reading once work_cb has returned");

/* The submit: opts_ for `bits` with the queued reading `ticks`; the
 * caller stores the returned word in opts_ (one store with the flags). */
static inline unsigned tdm_req_stamp(tandem_work_t *req, unsigned bits,
                                     uint64_t ticks) {
  req->status_ = (int)(uint32_t)ticks;
  return bits | TDM_OPT_STAMPED | (unsigned)((ticks >> 32) & 0xffffffu) << 8;
}

/* The worker, before the start: the queued reading. */
static inline uint64_t tdm_req_queued(const tandem_work_t *req) {
  return ((uint64_t)(req->opts_ >> 8) << 32) | (uint32_t)req->status_;
}

/* The worker after work_cb, and the loop before the after callback. */
static inline void tdm_req_set_done(tandem_work_t *req, uint64_t ticks) {
  memcpy(&req->work_cb_, &ticks, sizeof(ticks));
}

static inline uint64_t tdm_req_done(const tandem_work_t *req) {
  uint64_t ticks;

  memcpy(&ticks, &req->work_cb_, sizeof(ticks));
  return ticks;
}

/* A request's life, in req->state_.  In-flight values are unlikely bit
 * patterns so that an uninitialised request (as uv_work_t may be) is taken
 * for idle, not for busy. */
enum {
  TDM_REQ_QUEUED = 0x7a6d0001u,  /* in a queue, may be cancelled */
  TDM_REQ_RUNNING = 0x7a6d0002u, /* a worker runs work_cb */
  TDM_REQ_DONE = 0x7a6d0003u,    /* on the completion stack */
  TDM_REQ_CLAIMED = 0x7a6d0004u, /* tandem_queue_work is filling it in */
  TDM_REQ_FINISHED = 0x7a6d0005u /* after callback called: idle again */
};

/* The transitions, each by one thread at a time:
 *   idle/FINISHED -> CLAIMED   tandem_queue_work's CAS: only one submit wins
 *   CLAIMED -> idle/FINISHED   the submit is refused (handle closing)
 *   CLAIMED -> QUEUED          release, once req->tandem and cell_ are
 *                              written and before the item is published
 *   QUEUED -> RUNNING          the worker that took the item
 *   QUEUED/RUNNING -> DONE     tandem__complete (also a winning cancel)
 *   DONE -> FINISHED           the loop thread, before the after callback
 * tandem_cancel takes back QUEUED jobs only: CLAIMED answers UV_EBUSY, so a
 * cancel never follows a handle the submit has not written yet (defect
 * F2).  A RUNNING job, or a QUEUED one it cannot take back, it asks to
 * stop through req->cancel_, which the submit clears and the worker reads
 * after work_cb (job.c). */
static inline bool tandem__state_in_flight(uint32_t s) {
  /* QUEUED..CLAIMED are consecutive: one compare. */
  return s - TDM_REQ_QUEUED <= TDM_REQ_CLAIMED - TDM_REQ_QUEUED;
}


/* tandem_t.inflight_: count of accepted jobs, plus this bit once closing. */
#define TDM_CLOSING_BIT 0x80000000u

typedef struct tdm_worker_s {
  tdm_deque_t dq; /* own deque (cache-line aligned inside) */
  tandem_pool_t *pool;
  unsigned index;
  uint64_t rng; /* victim selection, owner only */
  tdm_trail_t trail; /* how it trails streaming loops (stream.c) */
  uv_thread_t thread;
  /* Written by other threads: a line of their own. */
  tandem_t *sending_to TDM_ALIGNED; /* set while completing into a tandem_t */
  uint32_t cls; /* class of the job it runs (TDM_CLS_*): thieves take a
                   HIGH job's fork-join tasks first, a LOW job's last;
                   relaxed, a hint */
  /* Owner only (read by tandem_pool_stats): its search state and
   * counters. */
  tdm_search_t search TDM_ALIGNED;
  uint64_t jobs;
  uint64_t steals;
  uint64_t injected;
  /* Owner only, while the pool records time (pool.c's run_timed): the
   * latest reading and what it is, and how deep in joins it helps. */
  uint64_t tick;   /* its top-level item's start; after a request, its end */
  bool tick_hot;   /* tick ended the previous item and the worker went
                      straight on: the next item starts at it */
  bool tick_end;   /* the top-level request's end is in tick */
  unsigned nested; /* items it runs inside a join's or a group's wait */
  /* Its job timings (metrics.h), read by tandem_pool_metrics. */
  tdm_rec_t rec TDM_ALIGNED;
} tdm_worker_t;

struct tandem_pool_s {
  tdm_inject_t inject; /* cache-line aligned inside */
  tdm_idle_t idle;     /* who searches, who sleeps (idle.c); aligned */
  /* Written now and then by any thread: a line of their own. */
  uint32_t nattached TDM_ALIGNED; /* tandem_t handles on this pool */
  uint32_t ext_senders;           /* non-worker threads completing a job */
  uint64_t cancelled;
  uint64_t streams; /* times a loop began to stream (stats) */
  /* Written by streaming loops, read by workers taking from the ring. */
  tdm_streams_t streaming; /* aligned inside */
  void *overflow TDM_ALIGNED; /* items that found the ring full: a
                                 Treiber stack, linked through the
                                 items themselves */
  /* Jobs of the other classes (classq.h), and how many of each run now
   * (counted for HIGH and LOW only: NORMAL work pays nothing). */
  tdm_classq_t high;
  tdm_classq_t low;
  uint32_t running_high TDM_ALIGNED;
  uint32_t running_low;
  tdm_lane_t lane; /* runs HIGH jobs while every worker is busy */
  /* Admission (max_queued): jobs waiting to start, compute and blocking
   * apart; written on every submit and start when a limit is set. */
  uint64_t queued TDM_ALIGNED;
  uint64_t blocking_queued;
  uint64_t rejected;
  uint64_t expired;
  tdm_blocking_t blocking; /* the blocking side (blocking.h) */
  /* Job timings of the HIGH lane and of the blocking side (metrics.h). */
  tdm_rec_t lane_rec TDM_ALIGNED;
  tdm_rec_t blocking_rec TDM_ALIGNED;
  /* Read-only after creation. */
  tdm_worker_t *workers TDM_ALIGNED;
  bool timed;    /* records time (tandem_options_t.metrics) */
  uint64_t made; /* the clock's reading when it was made */
  unsigned nworkers;
  uint64_t loop_spin_ns;
  int worker_nice;
  uint64_t max_queued; /* 0: no limit */
  int classes_made;    /* the class queues and blocking side exist */
  int is_default;
  uint32_t gen; /* tandem__fork_gen when made (fork.c) */
  tandem_pool_t *inherited_next; /* fork.c's list of inherited defaults */
  uv_sem_t *starting; /* start_workers' count of started workers */
};

/* fork.c.  Bumped in every forked child. */
extern uint32_t tandem__fork_gen;

/* Any thread: was `pool` made before this process forked from its parent?
 * Then its workers are not in this process: calls that would hand it work
 * fail with UV_ESRCH (one load and a compare: cheap enough for every
 * submit). */
static inline bool tandem__pool_stale(const tandem_pool_t *pool) {
  return pool->gen != tdm_load_u32(&tandem__fork_gen);
}

/* Any thread: makes sure forked children learn that their pools are
 * stale.  tandem_pool_new calls it. */
void tandem__fork_watch(void);

/* Any thread: the default pool, made on first use (again after a fork).
 * Returns 0, or the error of tandem_pool_new (UV_ENOMEM, a thread error);
 * a later call tries again. */
int tandem__pool_default_get(tandem_pool_t **out);

/* The worker running on this thread, or NULL on any other thread. */
extern _Thread_local tdm_worker_t *tandem__self;

/* Any thread.  Puts `item` in the pool: on the calling worker's own deque
 * when it belongs to `pool`, else (or if the deque cannot grow) in the
 * injection ring, or on the overflow stack when the ring is full --
 * submitting never blocks; then notifies the idle policy.  *cellp (may be
 * NULL) gets the injection cell, or NULL for a deque or the overflow
 * stack; `owner` (a tandem_t or NULL) is recorded with it so that
 * tandem_close() can take back its queued jobs.  With `defer`, an item
 * that goes to the ring wakes nobody: the caller promises a
 * tandem__pool_kick() soon (the loop thread does so once per batch of
 * after callbacks). */
void tandem__pool_submit(tandem_pool_t *pool, void *item, void *owner,
                         void **cellp, bool defer);

/* Any thread outside the pool's workers: tandem__pool_submit(pool,
 * items[i], owner, cellps[i], true) for i in [0, n), in that order, with
 * one claim of the ring for the lot where it has room.  Wakes nobody: the
 * caller calls tandem__pool_kick(). */
void tandem__pool_submit_n(tandem_pool_t *pool, void *const *items,
                           void *owner, void **const *cellps, unsigned n);

/* Loop thread of `t`: its loop starts streaming (loop_mode.c says when),
 * trails by `lag` after a drain and notes its CPU, releases what its drain
 * queued, and stops streaming.  What it tells the pool lives in a slot of
 * its own (stream.c; t->stream_slot_), and while it streams a worker that
 * took one of its jobs does not wake another for the ones behind
 * (t->streaming_). */
void tandem__pool_stream_begin(tandem_t *t);
/* Loop thread of `t`: tells the pool's idle policy that its loop started
 * or stopped polling, or having one job in flight (idle.h, the `loops`
 * word; loop.c, tell_pool). */
void tandem__pool_loops_add(tandem_t *t, uint64_t delta);
void tandem__pool_stream_lag(tandem_t *t, unsigned lag);
void tandem__pool_stream_release(tandem_t *t);
void tandem__pool_stream_end(tandem_t *t);

/* Any thread: puts `item` (a request or a fork-join frame) in the queue
 * of class `cls` (HIGH or LOW) and notifies the idle policy -- and, for a
 * HIGH request while no worker searches, the HIGH lane. */
void tandem__pool_submit_class(tandem_pool_t *pool, void *item,
                               unsigned cls);

/* Any thread: wakes a worker for items submitted with `defer`. */
void tandem__pool_kick(tandem_pool_t *pool);

/* Worker only: pushes a fork-join frame on its own deque.  Cheap: while
 * a worker sleeps it notifies (which wakes one only when none searches),
 * without a store-load fence (a missed wake-up costs parallelism, never
 * the frame: the owner runs it).  Inline, as the deque's owner operations
 * are: this and tandem__pool_take_back are the whole of a join's cost. */
static inline int tandem__pool_spawn_local(tdm_worker_t *w, tdm_frame_t *f) {
  int err;

  err = tdm_deque_push_owner(&w->dq, (void *)((uintptr_t)f | TDM_ITEM_FRAME));
  if (err != 0)
    return err;
  if (tdm_idle_sleepers(&w->pool->idle))
    tdm_idle_notify(&w->pool->idle);
  return 0;
}

/* Worker only: takes back `f` if it is still on top of the own deque.
 * Returns true when the caller must run it itself. */
static inline bool tandem__pool_take_back(tdm_worker_t *w, tdm_frame_t *f) {
  void *item;

  item = tdm_deque_take_owner(&w->dq);
  if (item == (void *)((uintptr_t)f | TDM_ITEM_FRAME))
    return true;
  if (item != NULL) {
    /* Not ours (cannot happen when spawns and joins nest properly); put it
     * back so nothing is lost. */
    (void)tdm_deque_push_owner(&w->dq, item);
  }
  return false;
}

/* Worker only, while it waits in a join or a group: finds and runs one
 * item from its own deque or by stealing -- never from the injection queue,
 * so a long unrelated job cannot stall the wait.  Returns false when it
 * found nothing. */
bool tandem__pool_help_one(tdm_worker_t *w);

/* Any thread (for the thread's next submits): the class of the job this
 * non-worker thread runs now -- the HIGH lane's, or TDM_CLS_NORMAL.  Fork-
 * join tasks it spawns go to that class's queue. */
extern _Thread_local uint32_t tandem__running_cls;


/* Any thread: workers running an item now (0 unless the pool is timed;
 * metrics.c). */
unsigned tandem__pool_busy_workers(const tandem_pool_t *pool);

/* Any thread: is the machine contended as of `now` (uv_hrtime()), so that
 * loops should not poll (idle.c says when)? */
static inline bool tandem__pool_contended(const tandem_pool_t *pool,
                                          uint64_t now) {
  return tdm_idle_contended(&pool->idle, now);
}

/* tandem_queue_work, calling setup(req, arg) once the request is claimed
 * (before anything is published), so that extra arguments stored in the
 * request cannot be overwritten by a submit that is refused. */
int tandem__queue_work_with(tandem_t *t, tandem_work_t *req,
                            tandem_work_cb work_cb,
                            tandem_after_work_cb after_cb, unsigned bits,
                            uint64_t deadline,
                            void (*setup)(tandem_work_t *req, void *arg),
                            void *arg);

/* Completion side, in loop.c: pushes `req` (state DONE, status set) on its
 * tandem_t's completion stack and wakes the loop if needed.  Any thread. */
void tandem__complete(tandem_work_t *req, int status);

#endif /* TANDEM_POOL_H */
