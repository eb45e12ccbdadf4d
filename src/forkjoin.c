/* SPDX-License-Identifier: MIT */
/*
 * forkjoin.c: tandem_join, task groups and tandem_parallel_for.
 *
 * On a worker, a spawn is a frame on the spawner's own stack pushed onto
 * its own deque: no allocation.  The spawner then either takes the frame
 * back (nobody stole it: run it inline) or, if a thief has it, helps --
 * runs items from its own deque and steals from others -- until the frame
 * is marked done.  It does not take from the injection queue while it
 * waits, so a long unrelated job cannot stall a join.  A pool of one
 * worker cannot deadlock: nothing can be stolen from it.  A waiter that
 * found nothing to help with for HELP_SLEEP_AFTER looks sleeps (idle.c,
 * tdm_idle_wait_zero) until the thief finishes or work appears, so a long
 * stolen half does not cost a spinning core.
 *
 * From any other thread, work is submitted to the pool as a group (through
 * the injection queue) and the thread sleeps the same way until the
 * group's count of unfinished tasks reaches zero.  Waiters sleep on the
 * slot of the pool's parking lot their group or frame hashes to: the end
 * of one group wakes only the waiters in its slot, not every waiter.
 */
#include "pool.h"

#include <sched.h>
#include <stddef.h>

#define HELP_YIELD_EVERY 256
#define HELP_SLEEP_AFTER 4096 /* fruitless looks before a waiter sleeps */

/* ------------------------------------------------------------- helping */

/* Worker: runs other work until *count (the count of `key`) is zero. */
static void help_until_zero(tdm_worker_t *w, const void *key,
                            const uint32_t *count) {
  unsigned idle = 0;

  /* Acquire: whatever the finished work wrote is visible after. */
  while (tdm_load_acq_u32(count) != 0) {
    if (tandem__pool_help_one(w)) {
      idle = 0;
      continue;
    }
    if (++idle >= HELP_SLEEP_AFTER) {
      tdm_idle_wait_zero(&w->pool->idle, key, count, true);
      idle = 0;
    } else if (idle % HELP_YIELD_EVERY == 0) {
      sched_yield();
    } else {
      tdm_pause();
    }
  }
}

/* --------------------------------------------------------------- groups */

/* The pool a fork-join call works on: `pool`, else the calling worker's,
 * else the default pool.  Returns 0, UV_ESRCH for a pool inherited across
 * fork(), or the error of making the default pool. */
static int current_pool(tandem_pool_t *pool, tandem_pool_t **out) {
  *out = NULL;
  if (pool == NULL && tandem__self != NULL)
    pool = tandem__self->pool;
  if (pool == NULL)
    return tandem__pool_default_get(out);
  if (tandem__pool_stale(pool))
    return UV_ESRCH;
  *out = pool;
  return 0;
}

int tandem_group_init(tandem_group_t *g, tandem_pool_t *pool) {
  int err;

  if (g == NULL)
    return UV_EINVAL;
  err = current_pool(pool, &g->pool_);
  if (err != 0)
    return err;
  g->pending_ = 0;
  return 0;
}

static tdm_frame_t *task_frame(tandem_task_t *task) {
  return (tdm_frame_t *)(void *)&task->reserved_[0];
}

static void group_task_run(tdm_frame_t *f) {
  tandem_task_t *task;
  tandem_group_t *g;
  tandem_pool_t *pool;

  task =
      (tandem_task_t *)(void *)((char *)f - offsetof(tandem_task_t, reserved_));
  g = task->group_;
  /* Read before the decrement: g may be gone after it.  Only its address
   * is used afterwards, to find its slot in the pool's lot. */
  pool = g->pool_;
  task->fn_(task);
  /* Release: the waiter that sees 0 sees everything the task wrote. */
  if (tdm_faa_u32((uint32_t *)&g->pending_, (uint32_t)-1) == 1)
    tdm_idle_finished(&pool->idle, g);
}

int tandem_group_spawn(tandem_group_t *g, tandem_task_t *task,
                       tandem_task_cb fn) {
  tdm_worker_t *w;

  if (g == NULL || task == NULL || fn == NULL || g->pool_ == NULL)
    return UV_EINVAL;
  if (tandem__pool_stale(g->pool_))
    return UV_ESRCH;
  task->fn_ = fn;
  task->group_ = g;
  task_frame(task)->run = group_task_run;
  tdm_faa_u32((uint32_t *)&g->pending_, 1);
  w = tandem__self;
  if (w != NULL && w->pool == g->pool_ &&
      tandem__pool_spawn_local(w, task_frame(task)) == 0)
    return 0;
  tandem__pool_submit(g->pool_,
                      (void *)((uintptr_t)task_frame(task) | TDM_ITEM_FRAME),
                      NULL, NULL, false);
  return 0;
}

int tandem_group_wait(tandem_group_t *g) {
  tdm_worker_t *w;

  if (g == NULL || g->pool_ == NULL)
    return UV_EINVAL;
  if (tandem__pool_stale(g->pool_))
    return UV_ESRCH; /* its tasks were left in the parent */
  w = tandem__self;
  if (w != NULL && w->pool == g->pool_) {
    help_until_zero(w, g, (uint32_t *)&g->pending_);
    return 0;
  }
  /* Not a worker of this pool: sleep until the last task ends. */
  while (tdm_load_acq_u32((uint32_t *)&g->pending_) != 0)
    tdm_idle_wait_zero(&g->pool_->idle, g, (uint32_t *)&g->pending_,
                       false);
  return 0;
}

/* ----------------------------------------------------------------- join */

typedef struct join_frame_s {
  tdm_frame_t frame;
  void (*fn)(void *);
  void *arg;
  uint32_t pending; /* 1 until fn has returned */
} join_frame_t;

/* Runs on the worker that stole the frame (frames live on deques only). */
static void join_frame_run(tdm_frame_t *f) {
  join_frame_t *jf = (join_frame_t *)f;
  tdm_idle_t *idle = &tandem__self->pool->idle;

  jf->fn(jf->arg);
  /* Release, and the last touch of the frame: it lives on the joiner's
   * stack.  The wake-up uses only its address and the pool's lot. */
  tdm_store_rel_u32(&jf->pending, 0);
  tdm_idle_finished(idle, jf);
}

typedef struct call_task_s {
  tandem_task_t task;
  void (*fn)(void *);
  void *arg;
} call_task_t;

static void call_task_run(tandem_task_t *task) {
  call_task_t *c = (call_task_t *)task;
  c->fn(c->arg);
}

void tandem_join(void (*a)(void *), void *a_arg, void (*b)(void *),
                 void *b_arg) {
  tdm_worker_t *w;
  join_frame_t jf;
  tandem_group_t g;
  call_task_t ta;
  call_task_t tb;

  if (a == NULL || b == NULL) {
    if (a != NULL)
      a(a_arg);
    if (b != NULL)
      b(b_arg);
    return;
  }
  w = tandem__self;
  if (w == NULL) {
    /* Outside the pool: both halves on the default pool; block. */
    if (tandem_group_init(&g, NULL) != 0) {
      a(a_arg);
      b(b_arg);
      return;
    }
    ta.fn = a;
    ta.arg = a_arg;
    tb.fn = b;
    tb.arg = b_arg;
    tandem_group_spawn(&g, &ta.task, call_task_run);
    tandem_group_spawn(&g, &tb.task, call_task_run);
    tandem_group_wait(&g);
    return;
  }
  jf.frame.run = join_frame_run;
  jf.fn = b;
  jf.arg = b_arg;
  jf.pending = 1;
  if (tandem__pool_spawn_local(w, &jf.frame) != 0) {
    a(a_arg); /* the deque cannot grow: run both here */
    b(b_arg);
    return;
  }
  a(a_arg);
  if (tandem__pool_take_back(w, &jf.frame)) {
    b(b_arg);
    return;
  }
  help_until_zero(w, &jf, &jf.pending);
}

/* --------------------------------------------------------- parallel_for */

typedef struct pfor_s {
  tandem_range_cb body;
  void *ctx;
  size_t grain; /* split down to this size; with lazy, the chunk size */
  int lazy;
} pfor_t;

typedef struct pfor_range_s {
  const pfor_t *p;
  size_t lo;
  size_t hi;
} pfor_range_t;

static void pfor_run(void *arg);

/* Splits [lo, hi) in two halves, the right one for a thief. */
static void pfor_split(const pfor_t *p, size_t lo, size_t hi) {
  pfor_range_t left = {p, lo, lo + (hi - lo) / 2};
  pfor_range_t right = {p, lo + (hi - lo) / 2, hi};

  tandem_join(pfor_run, &left, pfor_run, &right);
}

/* Lazy binary splitting (Tzannes, Caragea, Barua, Vishkin): while our own
 * deque still holds work for thieves, nobody is hungry -- run a chunk
 * ourselves; once it is empty, split so that a thief finds something. */
static void pfor_run(void *arg) {
  const pfor_range_t *r = arg;
  const pfor_t *p = r->p;
  tdm_worker_t *w = tandem__self;
  size_t lo = r->lo;
  size_t hi = r->hi;

  while (hi - lo > p->grain) {
    if (p->lazy && tdm_deque_size(&w->dq) != 0) {
      p->body(lo, lo + p->grain, p->ctx);
      lo += p->grain;
      continue;
    }
    pfor_split(p, lo, hi);
    return;
  }
  if (hi > lo)
    p->body(lo, hi, p->ctx);
}

typedef struct pfor_task_s {
  tandem_task_t task;
  pfor_range_t range;
} pfor_task_t;

static void pfor_task_run(tandem_task_t *task) {
  pfor_run(&((pfor_task_t *)task)->range);
}

int tandem_parallel_for(tandem_pool_t *pool, size_t begin, size_t end,
                        size_t grain, tandem_range_cb body, void *ctx) {
  tandem_group_t g;
  pfor_task_t root;
  pfor_t p;
  int err;

  if (body == NULL || end < begin)
    return UV_EINVAL;
  err = current_pool(pool, &pool);
  if (err != 0)
    return err;
  if (begin == end)
    return 0;
  p.body = body;
  p.ctx = ctx;
  p.lazy = grain == 0;
  if (p.lazy) {
    /* Chunks small enough to balance, large enough to amortise a check. */
    grain = (end - begin) / (pool->nworkers * 64u);
  }
  p.grain = grain != 0 ? grain : 1;
  root.range.p = &p;
  root.range.lo = begin;
  root.range.hi = end;
  if (tandem__self != NULL && tandem__self->pool == pool) {
    pfor_run(&root.range); /* nested: split right here */
    return 0;
  }
  err = tandem_group_init(&g, pool);
  if (err != 0)
    return err;
  tandem_group_spawn(&g, &root.task, pfor_task_run);
  return tandem_group_wait(&g);
}

/* ------------------------------------------------ parallel_for, async */

enum { R_BEGIN, R_END, R_GRAIN, R_BODY, R_CTX };

static void pfor_async_work(tandem_work_t *req) {
  tandem_range_cb body;

  body = (tandem_range_cb)req->range_[R_BODY];
  (void)tandem_parallel_for(req->tandem->pool, req->range_[R_BEGIN],
                            req->range_[R_END], req->range_[R_GRAIN], body,
                            (void *)req->range_[R_CTX]);
}

typedef struct pfor_args_s {
  size_t begin;
  size_t end;
  size_t grain;
  tandem_range_cb body;
  void *ctx;
} pfor_args_t;

static void pfor_async_setup(tandem_work_t *req, void *arg) {
  const pfor_args_t *a = arg;

  req->range_[R_BEGIN] = a->begin;
  req->range_[R_END] = a->end;
  req->range_[R_GRAIN] = a->grain;
  req->range_[R_BODY] = (uintptr_t)a->body;
  req->range_[R_CTX] = (uintptr_t)a->ctx;
}

int tandem_parallel_for_async(tandem_t *t, tandem_work_t *req, size_t begin,
                              size_t end, size_t grain, tandem_range_cb body,
                              void *ctx, tandem_after_work_cb after_cb) {
  pfor_args_t args = {begin, end, grain, body, ctx};

  if (t == NULL || req == NULL || body == NULL || end < begin)
    return UV_EINVAL;
  /* The arguments are written only once the request is ours. */
  return tandem__queue_work_with(t, req, pfor_async_work, after_cb, 0, 0,
                                 pfor_async_setup, &args);
}
