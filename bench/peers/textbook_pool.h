/* SPDX-License-Identifier: MIT */
/*
 * textbook_pool: the thread pool of every textbook, as a peer for the
 * benchmarks.  One pthread mutex and one condition variable guard a global
 * FIFO of jobs; N worker threads wait on the condition variable, pop the
 * oldest job, run it, append it to a mutex-protected list of finished jobs
 * and wake the loop with uv_async_send(); the loop's async callback takes
 * the whole list and runs each after callback.
 *
 * The API copies uv_queue_work's: a caller-owned request (queueing it
 * allocates nothing), a work callback on a worker, an after callback on the
 * loop thread, and jobs in flight keep uv_run() alive.  It is what libuv's
 * own pool (src/threadpool.c) does too, minus libuv's extras (its split
 * between fast and slow I/O jobs, one pool shared by every loop), and with
 * the pool tied to one loop and sized at run time.  No cancellation.
 */
#ifndef BENCH_TEXTBOOK_POOL_H
#define BENCH_TEXTBOOK_POOL_H

#include <uv.h>

typedef struct textbook_pool_s textbook_pool_t;
typedef struct textbook_work_s textbook_work_t;

typedef void (*textbook_work_cb)(textbook_work_t *req);
typedef void (*textbook_after_work_cb)(textbook_work_t *req, int status);

/* A request: one job.  Caller-owned; may be queued again from its after
 * callback. */
struct textbook_work_s {
  void *data; /* public */
  /* private */
  textbook_work_cb work_cb_;
  textbook_after_work_cb after_cb_;
  textbook_work_t *next_; /* link in the job queue or the done list */
};

/* Makes a pool of `workers` threads whose after callbacks run on `loop`.
 * Loop thread only.  Returns 0 and sets *pool, UV_EINVAL for NULL
 * arguments or 0 workers, UV_ENOMEM, or the error of uv_async_init() or of
 * a failed thread creation. */
int textbook_pool_new(textbook_pool_t **pool, uv_loop_t *loop,
                      unsigned workers);

/* Queues `req`: work_cb runs on a worker, then after_cb (may be NULL) on
 * the loop thread with status 0.  Loop thread only, as uv_queue_work.
 * Returns 0, or UV_EINVAL for NULL arguments or a closed pool. */
int textbook_queue_work(textbook_pool_t *pool, textbook_work_t *req,
                        textbook_work_cb work_cb,
                        textbook_after_work_cb after_cb);

/* Stops and joins the workers and closes the pool's async handle; the pool
 * is freed by the handle's close callback, on the loop's next iteration.
 * Loop thread only.  Returns 0, UV_EINVAL for NULL, or UV_EBUSY (and does
 * nothing) while jobs are in flight. */
int textbook_pool_close(textbook_pool_t *pool);

#endif /* BENCH_TEXTBOOK_POOL_H */
