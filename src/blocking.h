/* SPDX-License-Identifier: MIT */
/*
 * blocking.h: the blocking side of a pool -- a FIFO queue of blocking jobs
 * (TANDEM_JOB_BLOCKING) and the threads, made on demand, that run them.
 * Blocking jobs are slow by nature, so, like libuv's own pool, one mutex
 * guards the queue and the counts and idle threads wait on a condition
 * variable; a thread that waited idle_ms with no job ends.  The side knows
 * nothing of the pool: run(req, ctx) is what it does with each job.
 */
#ifndef TANDEM_BLOCKING_H
#define TANDEM_BLOCKING_H

#include <stdbool.h>
#include <stdint.h>

#include "tandem.h"

/* Blocking thread: runs one job taken from the queue. */
typedef void (*tdm_blocking_run_fn)(tandem_work_t *req, void *ctx);
/* Any thread, no lock held: receives a job taken out of the queue. */
typedef void (*tdm_blocking_taken_fn)(tandem_work_t *req, void *arg);

typedef struct tdm_bthread_s tdm_bthread_t; /* one thread (blocking.c) */

typedef struct tdm_blocking_s {
  uv_mutex_t lock;
  uv_cond_t work; /* idle threads wait here for a job or the stop */
  uv_cond_t gone; /* destroy waits here for the last thread to end */
  /* Under lock. */
  tandem_work_t *head; /* the queue, oldest first, linked through next_ */
  tandem_work_t *tail;
  uint64_t queued;       /* jobs in the queue */
  uint64_t jobs_run;     /* jobs whose run() returned */
  unsigned threads;      /* threads made or being made, not ended */
  unsigned reserved;     /* of those, being made outside the lock */
  unsigned starting;     /* of those, not yet waiting for jobs: each will
                            take a job as it arrives */
  unsigned idle;         /* of those, waiting for a job */
  unsigned next_index;   /* the next thread's name: tandem-b<index> */
  bool stopping;         /* destroy was called */
  tdm_bthread_t *exited; /* ended threads that nobody joined yet */
  /* Read-only after init. */
  unsigned max_threads;
  uint64_t idle_ns;
  tdm_blocking_run_fn run;
  void *ctx;
} tdm_blocking_t;

/* Any thread.  max_threads 0 = 64, idle_ms 0 = 10000.  run(req, ctx) is
 * called on a blocking thread for each job taken from the queue.  Makes no
 * thread yet.  Returns 0 or a uv error (UV_ENOMEM...). */
int tdm_blocking_init(tdm_blocking_t *b, unsigned max_threads, unsigned idle_ms,
                      tdm_blocking_run_fn run, void *ctx);

/* Any thread, blocking threads included: appends req (linked through
 * req->next_) at the tail, wakes an idle thread if one waits, and makes a
 * thread while the queue holds more jobs than idle and starting threads
 * and fewer than max_threads exist.  Joins the threads that ended since.
 * Returns 0, or the thread-creation error (UV_EAGAIN, UV_ENOMEM...) only
 * when no thread exists at all and none could be made: then req is not
 * queued.  If some thread exists the job waits for it. */
int tdm_blocking_submit(tdm_blocking_t *b, tandem_work_t *req);

/* Any thread: takes req out of the queue if it still waits there.  Returns
 * true (req is then the caller's), false if a thread already took it or it
 * is not there.  O(n). */
bool tdm_blocking_cancel(tdm_blocking_t *b, tandem_work_t *req);

/* Any thread: takes out every queued req with req->tandem == owner and
 * calls taken(req, arg) for each, oldest first, with no lock held. */
void tdm_blocking_cancel_owned(tdm_blocking_t *b, const tandem_t *owner,
                               tdm_blocking_taken_fn taken, void *arg);

/* Any thread: a snapshot of the counts (any pointer may be NULL). */
void tdm_blocking_counts(tdm_blocking_t *b, unsigned *threads, unsigned *idle,
                         uint64_t *jobs_run, uint64_t *queued);

/* Any thread but a blocking one, once no submit can come (none running,
 * none after): stops every thread (each finishes the job it runs; jobs
 * still queued stay queued and are not run -- the caller makes sure there
 * are none), joins them all and frees everything. */
void tdm_blocking_destroy(tdm_blocking_t *b);

/* Any thread: is it a thread of some blocking side?  For tests and
 * asserts. */
bool tdm_blocking_on_thread(void);

#endif /* TANDEM_BLOCKING_H */
