/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the work-stealing scheduler.
 *
 * DESIGN
 *
 * A job's life.  tandem_queue_work() (loop.c) marks the request QUEUED,
 * counts it in its tandem_t (loop_pending_ or inflight_), and hands it to
 * tandem__pool_submit().  From a thread outside the pool it goes into the
 * pool's injection ring (inject.c); from one of the pool's own workers it
 * goes onto that worker's Chase-Lev deque (deque.c).  Whoever takes it out
 * -- the ring's consumer by its swap on the cell, the deque's owner or a
 * thief by the CAS on top -- owns it alone and runs it (tandem__job_run):
 * state RUNNING, work_cb, then tandem__complete() (loop.c) pushes it on
 * the tandem_t's lock-free completion stack and, if that stack was empty
 * and the loop is neither polling, nor draining, nor batching from a timer
 * (loop.c), writes the loop's eventfd: one wake-up per batch.  The loop thread
 * swaps the whole stack out, marks each request FINISHED and calls its after
 * callback.  From the push on, the pool never touches the request again.
 *
 * Cancel.  A request in the ring can be taken back by tandem_cancel(): a
 * CAS of the cell's item to a tombstone.  The consumer's swap and the
 * cancel's CAS are on the same word, so exactly one wins; a consumer that
 * swaps out a tombstone skips it.  The winner of a cancel completes the
 * request with UV_ECANCELED at once, so its after callback runs on the
 * loop's next iteration even while every worker is busy.
 *
 * Finding work.  A worker takes from its own deque (LIFO, warm caches),
 * then from the injection ring (FIFO), then from the overflow stack (items
 * that found the ring full; the taker moves them onto its deque), then
 * steals from other workers' deques (FIFO end), from a random victim on.
 * Submitting never blocks.
 *
 * Idle workers.  Whether a worker that found nothing searches on, yields
 * or parks, and which parked worker new work wakes, is decided in one
 * place, idle.c, which also holds the proof that no wake-up is lost.  This
 * file only reports to it: an item was found (tdm_idle_found), a look
 * found nothing (tdm_idle_none), work was published and fenced
 * (notify() -> tdm_idle_notify).  A submitter wakes a worker only if no
 * item is ahead of its own in the ring; a worker that takes an item with
 * another ready behind it notifies for the next (unless a loop streams,
 * below): wake-ups follow the work, one at a time.
 *
 * Streams: resting and trailing.  While a loop streams cheap jobs
 * (loop_mode.c), its thread keeps a CPU busy and the loop, not the
 * workers, limits the rate.  A worker on that CPU rests (idle.c: it takes
 * only from its own deque, and wake-ups pass it over) until the stream
 * ends; the others trail it (stream.c): they take from the ring in
 * batches, behind the cells the loop is writing.  Both are per loop: each
 * streaming loop has its own slot and its own CPU count.
 *
 * Why each ordering.  Ring and deque publication are release stores read
 * with acquire loads (deque.c, inject.c say where).  The store-load
 * hazards -- Chase-Lev's take, the submit/park pair (idle.c), and the
 * completion push before the loop's polling_ flag is read (the loop
 * clears it, fences, and looks at the stack again) -- are covered by full
 * fences or by CAS/FAS, which are full barriers.  The completion stack's CAS is
 * also what hands the request's memory (work_cb's results) over to the loop
 * thread: release on push, and the loop's swap acquires.
 */
#include "pool.h"
#include "sizing.h"
#include "renice.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Thread_local tdm_worker_t *tandem__self;

/* The pool's often-written fields each on a cache line of their own: the
 * idle word (every search and park), the handle counts (each foreign
 * completion), the stream's lag (each drain of a streaming loop), the
 * overflow stack, and the read-only fields every worker reads. */
#define LINE(f) (offsetof(struct tandem_pool_s, f) / TDM_CACHELINE)
_Static_assert(LINE(idle.counts) < LINE(nattached) &&
                   LINE(nattached) < LINE(streaming) &&
                   LINE(streaming.slot[TDM_STREAM_SLOTS - 1]) < LINE(overflow) &&
                   LINE(overflow) < LINE(workers) &&
                   LINE(idle.busy_on) < LINE(nattached),
               "the pool's hot fields must not share cache lines");
_Static_assert(offsetof(tdm_worker_t, sending_to) / TDM_CACHELINE !=
                       offsetof(tdm_worker_t, search) / TDM_CACHELINE &&
                   offsetof(tdm_worker_t, search) % TDM_CACHELINE == 0,
               "a worker's shared and own lines must stay apart");

#define DEFAULT_SPIN_US 50
#define DEFAULT_QUEUE_SIZE 65536
#define DEFAULT_STACK_SIZE (8u << 20)
#define DEQUE_LOG2_CAPACITY 8

/* ------------------------------------------------------------ counters */

/* Owner-only counters: a relaxed read-modify-write, no lock prefix. */
static void bump(uint64_t *counter) {
  tdm_store_64(counter, tdm_load_64(counter) + 1);
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* ------------------------------------------------------------- waking */

static void notify(tandem_pool_t *pool) {
  tdm_idle_notify(&pool->idle);
}

/* Is there anything a worker could take?  Racy: idle.c calls it only
 * after a full barrier, as the re-check half of its Dekker pairs. */
static bool work_visible(tandem_pool_t *pool) {
  unsigned i;

  if (tdm_inject_size(&pool->inject) != 0)
    return true;
  if (tdm_load_ptr(&pool->overflow) != NULL)
    return true;
  if (tdm_classq_any(&pool->high) || tdm_classq_any(&pool->low))
    return true;
  for (i = 0; i < pool->nworkers; i++)
    if (tdm_deque_size(&pool->workers[i].dq) != 0)
      return true;
  return false;
}

/* tdm_has_work_fn for idle.c. */
static bool has_work(void *ctx, unsigned worker, bool own_only) {
  tandem_pool_t *pool = ctx;

  if (own_only)
    return tdm_deque_size(&pool->workers[worker].dq) != 0;
  return work_visible(pool);
}

/* ------------------------------------------------------------ overflow */

/* Any thread: the ring is full, so the item waits on the overflow stack;
 * submitting never blocks.  The CAS is a full barrier. */
static void overflow_push(tandem_pool_t *pool, void *item) {
  void *old;

  do {
    old = tdm_load_ptr(&pool->overflow);
    *tdm_item_link(item) = old;
  } while (!tdm_cas_ptr(&pool->overflow, old, item));
}

/* Worker: takes the whole overflow stack, keeps the oldest item to run and
 * moves the rest onto its own deque, where thieves can reach them. */
static void *overflow_take(tdm_worker_t *w) {
  void *list;
  void *prev;
  void *next;

  if (tdm_load_ptr(&w->pool->overflow) == NULL)
    return NULL;
  list = tdm_fas_ptr(&w->pool->overflow, NULL);
  for (prev = NULL; list != NULL; list = next) { /* newest first: reverse */
    next = *tdm_item_link(list);
    *tdm_item_link(list) = prev;
    prev = list;
  }
  if (prev == NULL)
    return NULL;
  list = *tdm_item_link(prev);
  for (; list != NULL; list = next) {
    next = *tdm_item_link(list);
    if (tdm_deque_push_owner(&w->dq, list) != 0)
      overflow_push(w->pool, list); /* no memory: leave it for later */
  }
  notify(w->pool);
  return prev;
}

/* ---------------------------------------------------------- submitting */

void tandem__pool_submit(tandem_pool_t *pool, void *item, void *owner,
                         void **cellp, bool defer) {
  tdm_worker_t *self;
  tdm_cell_t *unused;
  uint64_t pos;

  if (cellp == NULL)
    cellp = (void **)&unused;
  self = tandem__self;
  /* A fork-join task spawned by a HIGH or LOW job on a thread other than
   * a worker (the HIGH lane) takes its class. */
  if (((uintptr_t)item & TDM_ITEM_FRAME) && self == NULL &&
      tandem__running_cls != TDM_CLS_NORMAL) {
    tandem__pool_submit_class(pool, item, tandem__running_cls);
    return;
  }
  if (self != NULL && self->pool == pool &&
      tdm_deque_push_owner(&self->dq, item) == 0) {
    tdm_store_ptr(cellp, NULL);
    tdm_fence_sc(); /* store-load: the item before the counters */
    notify(pool);
    return;
  }
  if (!tdm_inject_push_mp(&pool->inject, item, owner, (tdm_cell_t **)cellp,
                          &pos)) {
    /* Full ring: never block the caller (a loop thread must not wait for
     * workers that may be waiting for it). */
    tdm_store_ptr(cellp, NULL);
    overflow_push(pool, item);
    notify(pool);
    return;
  }
  if (defer)
    return; /* the caller will tandem__pool_kick() */
  /* Store-load: the item must be visible before we read deq and the
   * counters.  Items still ahead of ours mean a worker was already sent
   * for them, and whoever takes one wakes the next (find_work). */
  tdm_fence_sc();
  if (!tdm_inject_ahead(&pool->inject, pos))
    notify(pool);
}

void tandem__pool_submit_n(tandem_pool_t *pool, void *const *items,
                           void *owner, void **const *cellps, unsigned n) {
  uint64_t pos;
  unsigned i;
  unsigned k;

  for (i = 0; i < n; i += k) {
    k = tdm_inject_push_n(&pool->inject, items + i, owner, cellps + i, n - i,
                          &pos);
    if (k == 0) { /* full ring: one at a time, to the overflow stack */
      tandem__pool_submit(pool, items[i], owner, cellps[i], true);
      k = 1;
    }
  }
}

void tandem__pool_submit_class(tandem_pool_t *pool, void *item,
                               unsigned cls) {
  /* The push is a full barrier after the item, before the loads below. */
  tdm_classq_push(cls == TDM_CLS_HIGH ? &pool->high : &pool->low, item);
  notify(pool);
  /* Every worker busy, or nobody searching yet: the lane takes a HIGH
   * request now rather than after a running job (lane.h). */
  if (cls == TDM_CLS_HIGH && ((uintptr_t)item & TDM_ITEM_FRAME) == 0 &&
      !tdm_idle_searching(&pool->idle))
    tdm_lane_wake(pool);
}

void tandem__pool_loops_add(tandem_t *t, uint64_t delta) {
  tdm_idle_loops_add(&t->pool->idle, delta);
}

void tandem__pool_stream_begin(tandem_t *t) {
  tandem_pool_t *pool = t->pool;

  tdm_faa_64(&pool->streams, 1);
  t->stream_slot_ = tdm_stream_begin(&pool->streaming, &pool->idle);
  tdm_store_u32(&t->streaming_, 1);
}

void tandem__pool_stream_lag(tandem_t *t, unsigned lag) {
  tdm_stream_lag(&t->pool->streaming, &t->pool->idle, t->stream_slot_, lag);
}

void tandem__pool_stream_release(tandem_t *t) {
  tdm_stream_release(&t->pool->streaming, &t->pool->inject, t->stream_slot_);
}

void tandem__pool_stream_end(tandem_t *t) {
  tdm_store_u32(&t->streaming_, 0);
  tdm_stream_end(&t->pool->streaming, &t->pool->idle, t->stream_slot_);
  t->stream_slot_ = TDM_NO_SLOT;
}

void tandem__pool_kick(tandem_pool_t *pool) {
  tdm_fence_sc();
  notify(pool);
}

/* -------------------------------------------------------------- running */

static void run_item(tdm_worker_t *w, void *item) {
  tdm_frame_t *f;

  bump(&w->jobs);
  if ((uintptr_t)item & TDM_ITEM_FRAME) {
    f = (tdm_frame_t *)((uintptr_t)item & ~TDM_ITEM_FRAME);
    f->run(f);
  } else {
    tandem__job_run(w->pool, w, item);
  }
}

/* Victims, by the class of the job each runs (a hint): */
enum {
  V_ANY,       /* every other worker */
  V_HIGH,      /* only those running a HIGH job */
  V_NOT_LOW    /* every one but those running a LOW job */
};

static bool victim_fits(const tdm_worker_t *v, int which) {
  uint32_t cls;

  if (which == V_ANY)
    return true;
  cls = tdm_load_u32(&v->cls);
  return which == V_HIGH ? cls == TDM_CLS_HIGH : cls != TDM_CLS_LOW;
}

static void *steal_from(tdm_worker_t *w, int which) {
  tandem_pool_t *pool;
  unsigned n;
  unsigned start;
  unsigned i;
  void *item;
  tdm_worker_t *v;

  pool = w->pool;
  n = pool->nworkers;
  if (n < 2)
    return NULL;
  start = (unsigned)(xorshift(&w->rng) % n);
  for (i = 0; i < n; i++) {
    v = &pool->workers[(start + i) % n];
    if (v == w || !victim_fits(v, which))
      continue;
    do
      item = tdm_deque_steal(&v->dq);
    while (item == TDM_DEQUE_ABORT);
    if (item != NULL) {
      bump(&w->steals);
      return item;
    }
  }
  return NULL;
}

static void *steal_any(tdm_worker_t *w) {
  return steal_from(w, V_ANY);
}

/* Does the loop that queued `item` stream?  Then it, not the workers,
 * limits its jobs' rate: a worker that took one does not wake another for
 * the ones behind it (measured: 10-20 % of a stream's rate with a worker
 * at rest).  The item is the caller's now, so its handle is alive. */
static bool owner_streams(void *item) {
  tandem_t *t;

  if ((uintptr_t)item & TDM_ITEM_FRAME)
    return false;
  t = ((tandem_work_t *)item)->tandem;
  return tdm_load_u32(&t->streaming_) != 0;
}

/* Between jobs: HIGH work first -- a HIGH job waiting, then the fork-join
 * tasks of HIGH jobs running on other workers. */
static void *find_high(tdm_worker_t *w) {
  tandem_pool_t *pool = w->pool;
  void *item;

  item = tdm_classq_pop(&pool->high);
  if (item != NULL) {
    bump(&w->injected);
    return item;
  }
  if (tdm_load_u32(&pool->running_high) != 0)
    return steal_from(w, V_HIGH);
  return NULL;
}

/* Between jobs, once no NORMAL work was found: what other workers'
 * deques hold (but LOW jobs' tasks), then LOW jobs, then LOW jobs'
 * tasks. */
static void *find_low(tdm_worker_t *w) {
  tandem_pool_t *pool = w->pool;
  void *item;

  if (tdm_load_u32(&pool->running_low) == 0) {
    item = steal_any(w);
    if (item != NULL)
      return item;
  } else {
    item = steal_from(w, V_NOT_LOW);
    if (item != NULL)
      return item;
  }
  item = tdm_classq_pop(&pool->low);
  if (item != NULL) {
    bump(&w->injected);
    return item;
  }
  return tdm_load_u32(&pool->running_low) != 0 ? steal_any(w) : NULL;
}

static void *find_work(tdm_worker_t *w, bool from_inject) {
  void *item;
  bool more;

  if (from_inject && (tdm_classq_any(&w->pool->high) ||
                      tdm_load_u32(&w->pool->running_high) != 0)) {
    item = find_high(w);
    if (item != NULL)
      return item;
  }
  item = tdm_deque_take_owner(&w->dq);
  if (item != NULL)
    return item;
  if (from_inject) {
    if (tdm_trail_ready(&w->pool->streaming, &w->pool->inject, &w->trail)) {
      item = tdm_inject_pop_mc(&w->pool->inject, &more);
      if (item == NULL)
        tdm_trail_dry(&w->trail); /* ran dry: wait for `lag` again */
    }
    if (item != NULL) {
      tdm_trail_took(&w->trail);
      bump(&w->injected);
      /* More waiting behind it: make sure someone else comes too (the
       * pop's CAS was a full barrier). */
      if (more && !owner_streams(item))
        notify(w->pool);
      return item;
    }
    item = overflow_take(w);
    if (item != NULL)
      return item;
    return find_low(w);
  }
  return steal_any(w);
}

bool tandem__pool_help_one(tdm_worker_t *w) {
  void *item;

  item = find_work(w, false);
  if (item == NULL)
    return false;
  w->nested++; /* its time is the waiting item's: job.c times it apart */
  run_item(w, item);
  w->nested--;
  return true;
}

/* ------------------------------------------------------------- the loop */

/* run_item, timed.  The worker is busy from the start of a streak of
 * items it runs back to back (each starts at the previous one's end: one
 * reading per job boundary) to the end of its last: busy_since holds the
 * streak's start, and busy_end() folds the streak into busy_ticks when a
 * look finds nothing.  An item's end is the request's own reading (job.c)
 * or one taken here. */
static void run_timed(tdm_worker_t *w, void *item) {
  if (!w->tick_hot) {
    w->tick = tdm_clock_now();
    tdm_store_64(&w->rec.busy_since, w->tick);
  }
  w->tick_end = false;
  run_item(w, item);
  if (!w->tick_end)
    w->tick = tdm_clock_now();
  w->tick_hot = true;
}

/* A look found nothing: the streak run_timed began ends at the last
 * item's end (w->tick).  busy_ticks first: a reader, which loads
 * busy_since first (metrics.c), that sees it 0 sees the streak in
 * busy_ticks; one between the two stores counts the streak twice for
 * that moment. */
static void busy_end(tdm_worker_t *w) {
  if (!w->tick_hot)
    return;
  w->tick_hot = false; /* it searches or parks: the next start is later */
  tdm_store_64(&w->rec.busy_ticks,
               w->rec.busy_ticks + (w->tick - w->rec.busy_since));
  tdm_store_64(&w->rec.busy_since, 0);
}

static void worker_main(void *arg) {
  tdm_worker_t *w = arg;
  tandem_pool_t *pool = w->pool;
  tdm_idle_t *idle = &pool->idle;
  void *item;
  bool rest;

  tandem__self = w;
  tandem__name_thread("tandem-w", w->index);
  /* A hint only: a worker that cannot be reniced still works. */
  (void)tandem__thread_renice(pool->worker_nice);
  uv_sem_post(pool->starting); /* the last touch of it: start_workers' own */
  for (;;) {
    rest = tdm_idle_resting(idle, w->index);
    item = rest ? tdm_deque_take_owner(&w->dq) : find_work(w, true);
    if (item != NULL) {
      tdm_idle_found(idle, &w->search);
      if (pool->timed)
        run_timed(w, item);
      else
        run_item(w, item);
      continue;
    }
    busy_end(w);
    if (!tdm_idle_none(idle, &w->search, w->index, rest))
      break; /* the pool stops */
  }
  tdm_idle_exit(idle, &w->search);
  tandem__self = NULL;
}

/* ---------------------------------------------------------- lifecycle */

static uint64_t spin_ns(int us) {
  if (us < 0)
    return 0;
  return (uint64_t)(us == 0 ? DEFAULT_SPIN_US : us) * 1000;
}

static void stop_workers(tandem_pool_t *pool, unsigned started) {
  unsigned i;

  tdm_idle_stop(&pool->idle, started);
  for (i = 0; i < started; i++)
    uv_thread_join(&pool->workers[i].thread);
}

/* Frees a pool whose workers are stopped, or a partly made one: the
 * worker array may be missing (its allocation failed: defect F3) and so
 * may any worker's deque. */
static void destroy(tandem_pool_t *pool) {
  unsigned i;

  for (i = 0; pool->workers != NULL && i < pool->nworkers; i++)
    if (pool->workers[i].dq.array != NULL)
      tdm_deque_destroy(&pool->workers[i].dq);
  free(pool->workers);
  if (pool->classes_made) {
    tdm_blocking_destroy(&pool->blocking);
    tdm_classq_destroy(&pool->high);
    tdm_classq_destroy(&pool->low);
  }
  tdm_idle_destroy(&pool->idle);
  tdm_inject_destroy(&pool->inject);
  free(pool);
}

/* Starts the workers and, as libuv's pool does, returns only once each one
 * runs: a fork() after tandem_pool_new() then copies no thread in the middle
 * of its start-up (a sanitizer's, or a libc's, which may hold locks the
 * child would need).  On an error, stops those already started. */
static int start_workers(tandem_pool_t *pool, size_t stack_size) {
  uv_thread_options_t topts;
  uv_sem_t started;
  tdm_worker_t *w;
  unsigned i;
  unsigned n;
  int err;

  err = uv_sem_init(&started, 0);
  if (err != 0)
    return err;
  pool->starting = &started;
  topts.flags = UV_THREAD_HAS_STACK_SIZE;
  topts.stack_size = stack_size != 0 ? stack_size : DEFAULT_STACK_SIZE;
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[i];
    err = uv_thread_create_ex(&w->thread, &topts, worker_main, w);
    if (err != 0)
      break;
  }
  for (n = 0; n < i; n++)
    uv_sem_wait(&started);
  pool->starting = NULL;
  uv_sem_destroy(&started);
  if (err != 0)
    stop_workers(pool, i);
  return err;
}

/* The worker array and each worker's deque.  Returns 0 or UV_ENOMEM;
 * destroy() frees what was made. */
static int make_workers(tandem_pool_t *pool) {
  tdm_worker_t *w;
  unsigned i;
  int err;

  if (posix_memalign((void **)&pool->workers, TDM_CACHELINE,
                     pool->nworkers * sizeof(*pool->workers)) != 0)
    return UV_ENOMEM;
  memset(pool->workers, 0, pool->nworkers * sizeof(*pool->workers));
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[i];
    w->pool = pool;
    w->index = i;
    w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
    err = tdm_deque_init(&w->dq, DEQUE_LOG2_CAPACITY);
    if (err != 0)
      return err;
  }
  return 0;
}

/* Everything but the threads.  Returns 0 or an error; destroy() frees
 * what was made, whatever failed. */
static int make_parts(tandem_pool_t *pool, const tandem_options_t *opts) {
  int err;

  err = tdm_classq_init(&pool->high);
  if (err == 0 && (err = tdm_classq_init(&pool->low)) != 0)
    tdm_classq_destroy(&pool->high);
  if (err == 0 && (err = tandem__job_blocking_init(pool, opts)) != 0) {
    tdm_classq_destroy(&pool->high);
    tdm_classq_destroy(&pool->low);
  }
  if (err != 0)
    return err;
  pool->classes_made = 1;
  err = tdm_idle_init(&pool->idle, pool->nworkers,
                      spin_ns(opts->worker_spin_us), has_work, pool);
  pool->idle.timed = pool->timed;
  if (err == 0)
    err = make_workers(pool);
  return err;
}

/* tandem_options_t.metrics: 0 means on, unless TANDEM_METRICS says off. */
static bool metrics_on(int opt) {
  const char *env;

  if (opt != 0)
    return opt > 0;
  env = getenv("TANDEM_METRICS");
  return env == NULL ||
         (strcmp(env, "0") != 0 && strcmp(env, "off") != 0);
}

int tandem_pool_new(tandem_pool_t **out, const tandem_options_t *opts) {
  static const tandem_options_t defaults;
  tandem_pool_t *pool;
  int err;

  if (out == NULL)
    return UV_EINVAL;
  *out = NULL;
  if (opts == NULL)
    opts = &defaults;
  if (opts->workers > TDM_WORKERS_MAX || opts->queue_size > TANDEM_QUEUE_SIZE_MAX ||
      opts->worker_nice < -39 || opts->worker_nice > 39)
    return UV_EINVAL;
  if (posix_memalign((void **)&pool, TDM_CACHELINE, sizeof(*pool)) != 0)
    return UV_ENOMEM;
  memset(pool, 0, sizeof(*pool));
  tandem__fork_watch();
  pool->gen = tdm_load_u32(&tandem__fork_gen);
  /* The CPUs this process may use, not the machine's: in a cpuset, under
   * taskset or a cgroup CPU quota more workers would only take turns;
   * TANDEM_WORKERS overrides (sizing.c). */
  pool->nworkers =
      opts->workers != 0 ? opts->workers : tandem__default_workers();
  pool->loop_spin_ns = spin_ns(opts->loop_spin_us);
  pool->worker_nice = opts->worker_nice;
  pool->max_queued = opts->max_queued;
  pool->timed = metrics_on(opts->metrics);
  if (pool->timed) {
    tdm_clock_init();
    pool->made = tdm_clock_now();
    pool->blocking_rec.shared = true;
  }
  err = tdm_inject_init(&pool->inject, opts->queue_size != 0
                                           ? opts->queue_size
                                           : DEFAULT_QUEUE_SIZE);
  if (err != 0) {
    free(pool);
    return err;
  }
  err = make_parts(pool, opts);
  if (err == 0)
    err = start_workers(pool, opts->stack_size);
  if (err != 0) {
    destroy(pool);
    return err;
  }
  *out = pool;
  return 0;
}

int tandem_pool_free(tandem_pool_t *pool) {
  if (pool == NULL || pool->is_default)
    return UV_EINVAL;
  if (tandem__self != NULL && tandem__self->pool == pool)
    return UV_EINVAL;
  /* Not from a thread it would join: a HIGH lane or a blocking thread. */
  if (tandem__running_cls == TDM_CLS_HIGH || tdm_blocking_on_thread())
    return UV_EINVAL;
  if (tdm_load_u32(&pool->nattached) != 0)
    return UV_EBUSY;
  /* A pool inherited across fork() has no workers here to stop. */
  if (!tandem__pool_stale(pool)) {
    tdm_lane_stop(pool);
    stop_workers(pool, pool->nworkers);
  }
  destroy(pool);
  return 0;
}

unsigned tandem_pool_workers(const tandem_pool_t *pool) {
  return pool == NULL ? 0 : pool->nworkers;
}

/* -------------------------------------------------------------- stats */

static void add_stats(tandem_worker_stats_t *sum,
                      const tandem_worker_stats_t *s) {
  sum->jobs += s->jobs;
  sum->steals += s->steals;
  sum->injected += s->injected;
  sum->parks += s->parks;
  sum->wakeups += s->wakeups;
  sum->depth += s->depth;
}

int tandem_pool_stats(tandem_pool_t *pool, tandem_stats_t *out) {
  tandem_worker_stats_t s;
  tdm_worker_t *w;
  unsigned i;

  if (pool == NULL || out == NULL)
    return UV_EINVAL;
  memset(out, 0, sizeof(*out));
  out->workers = pool->nworkers;
  out->inject_depth = tdm_inject_live(&pool->inject);
  out->cancelled = tdm_load_64(&pool->cancelled);
  out->streams = tdm_load_64(&pool->streams);
  out->streaming = tdm_load_u32(&pool->idle.streams);
  out->rejected = tdm_load_64(&pool->rejected);
  out->expired = tdm_load_64(&pool->expired);
  if (pool->max_queued != 0)
    out->queued = tdm_load_64(&pool->queued) +
                  tdm_load_64(&pool->blocking_queued);
  tdm_blocking_counts(&pool->blocking, &out->blocking_threads,
                      &out->blocking_idle, &out->blocking_jobs, NULL);
  out->high_lane_jobs = tdm_load_64(&pool->lane.jobs);
  out->workers_busy = tandem__pool_busy_workers(pool);
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[i];
    s.jobs = tdm_load_64(&w->jobs);
    s.steals = tdm_load_64(&w->steals);
    s.injected = tdm_load_64(&w->injected);
    s.parks = tdm_load_64(&w->search.parks);
    s.wakeups = tdm_load_64(&w->search.wakeups);
    s.depth = tdm_deque_size(&w->dq);
    add_stats(&out->total, &s);
    if (i < TANDEM_STATS_MAX_WORKERS)
      out->worker[i] = s;
  }
  return 0;
}
