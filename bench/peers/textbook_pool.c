/* SPDX-License-Identifier: MIT */
/* textbook_pool: mutex + condition variable + FIFO, results via uv_async. */
#include "textbook_pool.h"

#include <stdlib.h>

struct textbook_pool_s {
  uv_loop_t *loop;
  uv_async_t async;
  /* The job queue: `mutex` guards head, tail and stop; `cond` is signalled
   * once per queued job and broadcast on stop. */
  uv_mutex_t mutex;
  uv_cond_t cond;
  textbook_work_t *head;
  textbook_work_t *tail;
  int stop;
  /* Finished jobs, oldest first, waiting for the loop: `done_mutex` guards
   * both ends.  A worker never holds both mutexes at once. */
  uv_mutex_t done_mutex;
  textbook_work_t *done_head;
  textbook_work_t *done_tail;
  /* Loop thread only. */
  unsigned pending; /* queued and not yet called back */
  int closed;
  unsigned started; /* threads running */
  uv_thread_t threads[];
};

static void worker_main(void *arg) {
  textbook_pool_t *pool = arg;
  textbook_work_t *req;

  for (;;) {
    uv_mutex_lock(&pool->mutex);
    while (pool->head == NULL && !pool->stop)
      uv_cond_wait(&pool->cond, &pool->mutex);
    req = pool->head;
    if (req == NULL) { /* stopping, and nothing left */
      uv_mutex_unlock(&pool->mutex);
      return;
    }
    pool->head = req->next_;
    if (pool->head == NULL)
      pool->tail = NULL;
    uv_mutex_unlock(&pool->mutex);

    req->work_cb_(req);

    req->next_ = NULL;
    uv_mutex_lock(&pool->done_mutex);
    if (pool->done_tail != NULL)
      pool->done_tail->next_ = req;
    else
      pool->done_head = req;
    pool->done_tail = req;
    uv_mutex_unlock(&pool->done_mutex);
    uv_async_send(&pool->async);
  }
}

/* On the loop thread: takes every finished job and calls it back.  The
 * async handle is referenced only while jobs are in flight, so an idle pool
 * does not keep uv_run() alive, and a busy one does. */
static void async_cb(uv_async_t *handle) {
  textbook_pool_t *pool = handle->data;
  textbook_work_t *req;
  textbook_work_t *next;

  uv_mutex_lock(&pool->done_mutex);
  req = pool->done_head;
  pool->done_head = NULL;
  pool->done_tail = NULL;
  uv_mutex_unlock(&pool->done_mutex);
  for (; req != NULL; req = next) {
    next = req->next_;
    if (--pool->pending == 0)
      uv_unref((uv_handle_t *)&pool->async);
    if (req->after_cb_ != NULL)
      req->after_cb_(req, 0);
  }
}

static void stop_workers(textbook_pool_t *pool) {
  unsigned i;

  uv_mutex_lock(&pool->mutex);
  pool->stop = 1;
  uv_cond_broadcast(&pool->cond);
  uv_mutex_unlock(&pool->mutex);
  for (i = 0; i < pool->started; i++)
    uv_thread_join(&pool->threads[i]);
  pool->started = 0;
}

static void free_pool(textbook_pool_t *pool) {
  uv_mutex_destroy(&pool->done_mutex);
  uv_cond_destroy(&pool->cond);
  uv_mutex_destroy(&pool->mutex);
  free(pool);
}

static void close_cb(uv_handle_t *handle) {
  free_pool(handle->data);
}

/* Initialises the locks; on failure destroys what it made. */
static int init_locks(textbook_pool_t *pool) {
  int err;

  err = uv_mutex_init(&pool->mutex);
  if (err != 0)
    return err;
  err = uv_cond_init(&pool->cond);
  if (err != 0) {
    uv_mutex_destroy(&pool->mutex);
    return err;
  }
  err = uv_mutex_init(&pool->done_mutex);
  if (err != 0) {
    uv_cond_destroy(&pool->cond);
    uv_mutex_destroy(&pool->mutex);
  }
  return err;
}

int textbook_pool_new(textbook_pool_t **out, uv_loop_t *loop,
                      unsigned workers) {
  textbook_pool_t *pool;
  unsigned i;
  int err;

  if (out == NULL || loop == NULL || workers == 0)
    return UV_EINVAL;
  pool = calloc(1, sizeof(*pool) + workers * sizeof(pool->threads[0]));
  if (pool == NULL)
    return UV_ENOMEM;
  pool->loop = loop;
  err = init_locks(pool);
  if (err != 0) {
    free(pool);
    return err;
  }
  err = uv_async_init(loop, &pool->async, async_cb);
  if (err != 0) {
    free_pool(pool);
    return err;
  }
  pool->async.data = pool;
  uv_unref((uv_handle_t *)&pool->async);
  for (i = 0; i < workers && err == 0; i++) {
    err = uv_thread_create(&pool->threads[i], worker_main, pool);
    if (err == 0)
      pool->started++;
  }
  if (err != 0) {
    stop_workers(pool);
    uv_close((uv_handle_t *)&pool->async, close_cb);
    return err;
  }
  *out = pool;
  return 0;
}

int textbook_queue_work(textbook_pool_t *pool, textbook_work_t *req,
                        textbook_work_cb work_cb,
                        textbook_after_work_cb after_cb) {
  if (pool == NULL || req == NULL || work_cb == NULL || pool->closed)
    return UV_EINVAL;
  req->work_cb_ = work_cb;
  req->after_cb_ = after_cb;
  req->next_ = NULL;
  if (pool->pending++ == 0)
    uv_ref((uv_handle_t *)&pool->async);
  uv_mutex_lock(&pool->mutex);
  if (pool->tail != NULL)
    pool->tail->next_ = req;
  else
    pool->head = req;
  pool->tail = req;
  uv_cond_signal(&pool->cond);
  uv_mutex_unlock(&pool->mutex);
  return 0;
}

int textbook_pool_close(textbook_pool_t *pool) {
  if (pool == NULL || pool->closed)
    return UV_EINVAL;
  if (pool->pending != 0)
    return UV_EBUSY;
  pool->closed = 1;
  stop_workers(pool);
  uv_close((uv_handle_t *)&pool->async, close_cb);
  return 0;
}
