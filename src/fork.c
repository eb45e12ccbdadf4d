/* SPDX-License-Identifier: MIT */
/*
 * fork.c: the process-wide default pool, and what a fork() does to pools.
 *
 * The default pool is made on first use under a mutex; a failed attempt
 * leaves nothing behind and the next call tries again (uv_once could not:
 * defect F5).
 *
 * fork() copies a process's memory but only the thread that called it, so
 * a child inherits pools whose workers do not exist: a job queued there
 * would wait forever (defect F4).  A pthread_atfork child handler, set up
 * with the first pool, bumps tandem__fork_gen; a pool made in an earlier
 * generation is stale (tandem__pool_stale) and every call that would hand
 * it work fails with UV_ESRCH instead.  As libuv does for its own pool, the
 * child's default pool is made anew on first use: the inherited one is
 * kept (its memory stays reachable, never freed: inherited handles may
 * still point at it) but no longer handed out.
 */
#include "pool.h"

#include <pthread.h>

uint32_t tandem__fork_gen;

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static tandem_pool_t *default_pool; /* published with release */
static tandem_pool_t *inherited;    /* default pools of earlier generations */
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

/* No default pool is half made while the process forks. */
static void before_fork(void) {
  pthread_mutex_lock(&default_lock);
}

static void after_fork_parent(void) {
  pthread_mutex_unlock(&default_lock);
}

/* The child, single-threaded: every pool made so far is stale. */
static void after_fork_child(void) {
  tdm_store_u32(&tandem__fork_gen, tandem__fork_gen + 1);
  if (default_pool != NULL) {
    default_pool->inherited_next = inherited;
    inherited = default_pool;
    tdm_store_ptr((void **)&default_pool, NULL);
  }
  /* fork() called from inside a job: this thread is no worker here. */
  tandem__self = NULL;
  pthread_mutex_unlock(&default_lock);
}

static void watch(void) {
  /* Fails only for want of memory; then a child is left as before. */
  (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void tandem__fork_watch(void) {
  pthread_once(&watch_once, watch);
}

int tandem__pool_default_get(tandem_pool_t **out) {
  tandem_pool_t *pool;
  int err;

  /* Acquire: pairs with the release below; the pool is fully made. */
  pool = tdm_load_acq_ptr((void **)&default_pool);
  if (pool != NULL) {
    *out = pool;
    return 0;
  }
  err = 0;
  pthread_mutex_lock(&default_lock);
  pool = default_pool;
  if (pool == NULL) {
    err = tandem_pool_new(&pool, NULL);
    if (err == 0) {
      pool->is_default = 1;
      tdm_store_rel_ptr((void **)&default_pool, pool);
    }
  }
  pthread_mutex_unlock(&default_lock);
  *out = err == 0 ? pool : NULL;
  return err;
}

tandem_pool_t *tandem_pool_default(void) {
  tandem_pool_t *pool;

  return tandem__pool_default_get(&pool) == 0 ? pool : NULL;
}
