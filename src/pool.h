/* SPDX-License-Identifier: MIT */
/*
 * pool.h: the pool's internal structures, shared by pool.c (workers,
 * scheduling, parking), loop.c (tandem_t and requests) and forkjoin.c.
 */
#ifndef TANDEM_POOL_H
#define TANDEM_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "tandem.h"

#include "atomic.h"
#include "deque.h"
#include "inject.h"
#include "park.h"

/* Items in deques and the injection queue are tandem_work_t pointers, or
 * fork-join frames tagged with the low bit. */
#define TDM_ITEM_FRAME ((uintptr_t)1)

/* A fork-join frame: a piece of work a worker runs and then marks done. */
typedef struct tdm_frame_s tdm_frame_t;
struct tdm_frame_s {
  void (*run)(tdm_frame_t *f);
  void *next; /* overflow stack link */
};

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
 * tandem_cancel acts on QUEUED only: CLAIMED answers UV_EBUSY, so a cancel
 * never follows a handle the submit has not written yet (defect F2). */
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
  uint32_t cpu;       /* CPU it last looked for work on, while a loop
                         streams; UINT32_MAX: not known */
  uint32_t credit;    /* ring items it may take without waiting (lag) */
  uint64_t lag_since; /* when it began to wait for `lag` items, or 0 */
  uv_thread_t thread;
  /* Written by other threads: a line of their own. */
  tdm_parker_t parker TDM_ALIGNED;
  uint32_t sleeping;    /* 1 while parked; a waker CASes it to 0 */
  tandem_t *sending_to; /* set while completing into a tandem_t */
  /* Counters: written by the owner only, read by tandem_pool_stats. */
  uint64_t jobs TDM_ALIGNED;
  uint64_t steals;
  uint64_t injected;
  uint64_t parks;
  uint64_t wakeups;
} tdm_worker_t;

struct tandem_pool_s {
  tdm_inject_t inject;            /* cache-line aligned inside */
  uint32_t nspinning TDM_ALIGNED; /* workers looking for work (or woken to) */
  uint32_t nsleeping;             /* workers parked */
  uint32_t stop;                  /* set once by tandem_pool_free */
  uint32_t nattached;             /* tandem_t handles on this pool */
  uint32_t ext_senders;           /* non-worker threads completing a job */
  uint32_t wake_cursor;
  uint64_t cancelled;
  uint64_t contended_until;   /* no spinning or polling before then */
  /* Loop threads polling because completions pour in: each keeps a core
   * busy, so as many workers rest (see throttled() in pool.c). */
  uint32_t busy_loops TDM_ALIGNED;
  uint32_t lag; /* see ring_ready() in pool.c; 0: take items at once */
  uint32_t busy_cpu; /* where a busy loop thread last ran (throttled()) */
  uint64_t lag_release; /* ring position a busy loop's last drain reached */
  uint64_t streams;     /* times a loop began to stream (stats) */
  void *overflow TDM_ALIGNED; /* items that found the ring full: a
                                 Treiber stack, linked through the
                                 items themselves */
  tdm_parker_t group_done;    /* moved when a group's last task ends */
  /* Read-only after creation. */
  tdm_worker_t *workers TDM_ALIGNED;
  unsigned nworkers;
  unsigned max_spinning;
  unsigned yield_every; /* spin iterations between sched_yield() */
  unsigned ncpus;       /* online CPUs when the pool was made */
  uint64_t worker_spin_ns;
  uint64_t loop_spin_ns;
  int worker_nice;
  int is_default;
  int can_rest; /* workers may rest for a busy loop (throttled()) */
  uint32_t gen; /* tandem__fork_gen when made (fork.c) */
  tandem_pool_t *inherited_next; /* fork.c's list of inherited defaults */
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
 * injection queue, waiting for room when it is full; then wakes a worker if
 * none is looking.  *cellp (may be NULL) gets the injection cell, or NULL
 * for a deque; `owner` (a tandem_t or NULL) is recorded with it so that
 * tandem_close() can take back its queued jobs.  With `defer`, an item that
 * goes to the injection queue wakes nobody: the caller promises a
 * tandem__pool_kick() soon (the loop thread does so once per batch of after
 * callbacks). */
void tandem__pool_submit(tandem_pool_t *pool, void *item, void *owner,
                         void **cellp, bool defer);

/* Loop thread: its loop starts (busy true) or stops polling for a stream
 * of completions.  While n loops do, workers beyond ncpus - n rest. */
void tandem__pool_loop_busy(tandem_pool_t *pool, bool busy);

/* Loop thread, while its loop is busy: asks workers to trail the ring's
 * newest item by `lag` (0: not at all), and notes the loop thread's CPU. */
void tandem__pool_set_lag(tandem_pool_t *pool, unsigned lag);

/* Loop thread, at the end of a busy loop's drain: workers may take every
 * item queued so far, however few (see ring_ready() in pool.c). */
void tandem__pool_release_lag(tandem_pool_t *pool);

/* Any thread: wakes a worker for items submitted with `defer`. */
void tandem__pool_kick(tandem_pool_t *pool);

/* Worker only: pushes a fork-join frame on its own deque.  Cheap: it wakes
 * a sleeper only when none is spinning, without a store-load fence (a
 * missed wake-up costs parallelism, never the frame: the owner runs it). */
int tandem__pool_spawn_local(tdm_worker_t *w, tdm_frame_t *f);

/* Worker only: takes back `f` if it is still on top of the own deque.
 * Returns true when the caller must run it itself. */
bool tandem__pool_take_back(tdm_worker_t *w, tdm_frame_t *f);

/* Worker only, while it waits in a join or a group: finds and runs one
 * item from its own deque or by stealing -- never from the injection queue,
 * so a long unrelated job cannot stall the wait.  Returns false when it
 * found nothing. */
bool tandem__pool_help_one(tdm_worker_t *w);

/* Runs a job's work callback (or cancels it if its tandem_t is closing)
 * and hands it to its loop's completion stack. */
void tandem__job_run(tdm_worker_t *w, tandem_work_t *req);

/* Spinning pays only while our threads have the cores to themselves.  A
 * spinner that finds it lost its core for longer than TDM_GAP_NS across a
 * sched_yield() (other threads wanted it) stops, and nobody in the pool
 * spins or polls for TDM_CONTENDED_NS: waiting threads sleep and are woken
 * by the kernel, as in any plain pool. */
#define TDM_GAP_NS (500 * 1000)
#define TDM_CONTENDED_NS (20 * 1000 * 1000)

/* Any thread: says the machine is contended as of `now` (uv_hrtime). */
void tandem__pool_note_contention(tandem_pool_t *pool, uint64_t now);

/* Any thread: is it (so that spinning should wait)? */
bool tandem__pool_contended(tandem_pool_t *pool);

/* tandem_queue_work, calling setup(req, arg) once the request is claimed
 * (before anything is published), so that extra arguments stored in the
 * request cannot be overwritten by a submit that is refused. */
int tandem__queue_work_with(tandem_t *t, tandem_work_t *req,
                            tandem_work_cb work_cb,
                            tandem_after_work_cb after_cb,
                            void (*setup)(tandem_work_t *req, void *arg),
                            void *arg);

/* Completion side, in loop.c: pushes `req` (state DONE, status set) on its
 * tandem_t's completion stack and wakes the loop if needed.  Any thread. */
void tandem__complete(tandem_work_t *req, int status);

#endif /* TANDEM_POOL_H */
