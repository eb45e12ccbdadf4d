/* SPDX-License-Identifier: MIT */
/*
 * job.c: a job's options and its start -- what tandem_queue_work_ex()
 * checks, admission against max_queued, where a queued job waits (the
 * injection ring for NORMAL work, a class queue for HIGH and LOW, the
 * blocking side for TANDEM_JOB_BLOCKING), taking it back out for a cancel
 * or a close, and what a worker does when it starts one (the handle
 * closing, its deadline, its class, the cancel flag).  The handle's side
 * (counting jobs in, the completion stack) is loop.c's.
 *
 * A job with no options pays one test of req->opts_, which lives on the
 * request's first cache line with everything else a round trip touches.
 */
#include "job.h"

#include <stddef.h>

#include "pool.h"

/* The new options, counters and request fields took reserved room: the
 * structs keep the sizes of release 0.1 (on LP64), and a round trip still
 * touches one line of the request. */
_Static_assert(sizeof(void *) != 8 || (sizeof(tandem_options_t) == 96 &&
                                       sizeof(tandem_stats_t) == 3224 &&
                                       sizeof(tandem_t) == 752 &&
                                       sizeof(tandem_work_t) == 136),
               "the public structs must keep their size");
_Static_assert(offsetof(tandem_work_t, cancel_) + sizeof(unsigned) <= 64,
               "opts_ and cancel_ must be on the request's first line");

/* ------------------------------------------------------------- options */

int tandem__job_opts(const tandem_job_opts_t *opts, unsigned *bits,
                     uint64_t *deadline) {
  *bits = 0;
  *deadline = 0;
  if (opts == NULL)
    return 0;
  if (opts->flags & ~(unsigned)TANDEM_JOB_BLOCKING)
    return UV_EINVAL;
  switch (opts->priority) {
  case TANDEM_PRIO_NORMAL:
    break;
  case TANDEM_PRIO_HIGH:
    *bits |= TDM_CLS_HIGH;
    break;
  case TANDEM_PRIO_LOW:
    *bits |= TDM_CLS_LOW;
    break;
  default:
    return UV_EINVAL;
  }
  if (opts->flags & TANDEM_JOB_BLOCKING)
    *bits |= TDM_OPT_BLOCKING;
  if (opts->deadline != 0) {
    *bits |= TDM_OPT_DEADLINE;
    *deadline = opts->deadline;
  }
  return 0;
}

/* ----------------------------------------------------------- admission */

static uint64_t *queued_count(tandem_pool_t *pool, unsigned bits) {
  return (bits & TDM_OPT_BLOCKING) ? &pool->blocking_queued : &pool->queued;
}

bool tandem__job_admit(tandem_pool_t *pool, unsigned bits) {
  uint64_t *count = queued_count(pool, bits);
  uint64_t n;

  n = tdm_load_64(count);
  do {
    if (n >= pool->max_queued) {
      tdm_faa_64(&pool->rejected, 1);
      return false;
    }
  } while (!tdm_cas_64(count, n, n + 1) && ((n = tdm_load_64(count)), 1));
  return true;
}

void tandem__job_unadmit(tandem_pool_t *pool, unsigned bits) {
  tdm_faa_64(queued_count(pool, bits), (uint64_t)-1);
}

/* ---------------------------------------------------- queueing, taking */

static void run_blocking(tandem_work_t *req, void *ctx) {
  tandem__job_run(ctx, NULL, req);
}

int tandem__job_blocking_init(tandem_pool_t *pool,
                              const tandem_options_t *opts) {
  return tdm_blocking_init(&pool->blocking, opts->blocking_max,
                           opts->blocking_idle_ms, run_blocking, pool);
}

/* Where a HIGH, LOW or blocking job waits, in req->cell_ (the ring's cell
 * for a NORMAL one): the queue's address, tagged.  tandem_cancel reads it
 * before it has won anything, so it must not follow req->tandem, which a
 * re-queue may be rewriting (defect F2); the pool outlives the pointer, as
 * it outlives a ring cell's. */
#define WAIT_CLASSQ ((uintptr_t)1)
#define WAIT_BLOCKING ((uintptr_t)2)
#define WAIT_TAGS ((uintptr_t)3)

_Static_assert(_Alignof(tdm_blocking_t) > WAIT_TAGS &&
                   _Alignof(tdm_classq_t) > WAIT_TAGS,
               "the queues' addresses must leave room for the tags");

static void set_waits_in(tandem_work_t *req, void *queue, uintptr_t tag) {
  tdm_store_ptr(&req->cell_, (void *)((uintptr_t)queue | tag));
}

int tandem__job_submit(tandem_pool_t *pool, tandem_work_t *req, bool defer) {
  unsigned cls = req->opts_ & TDM_OPT_CLASS;
  int err;

  if (req->opts_ & TDM_OPT_BLOCKING) {
    set_waits_in(req, &pool->blocking, WAIT_BLOCKING);
    err = tdm_blocking_submit(&pool->blocking, req);
    if (err != 0)
      tdm_store_ptr(&req->cell_, NULL);
    return err;
  }
  if (cls != TDM_CLS_NORMAL) {
    set_waits_in(req, cls == TDM_CLS_HIGH ? &pool->high : &pool->low,
                 WAIT_CLASSQ);
    tandem__pool_submit_class(pool, req, cls);
  } else {
    tandem__pool_submit(pool, req, req->tandem, &req->cell_, defer);
  }
  return 0;
}

bool tandem__job_take_back(tandem_work_t *req) {
  uintptr_t where = (uintptr_t)tdm_load_ptr(&req->cell_);
  void *queue = (void *)(where & ~WAIT_TAGS);

  switch (where & WAIT_TAGS) {
  case WAIT_BLOCKING:
    return tdm_blocking_cancel(queue, req);
  case WAIT_CLASSQ:
    return tdm_classq_remove(queue, req);
  default:
    if (!tdm_inject_cancel_cell(queue, req))
      return false;
    /* Won: the request is ours, and so is the handle it was queued on. */
    tdm_inject_tombstoned(&req->tandem->pool->inject);
    return true;
  }
}

static void taken_blocking(tandem_work_t *req, void *arg) {
  void (*taken)(void *, void *) = ((void **)arg)[0];

  taken(req, ((void **)arg)[1]);
}

void tandem__job_take_owned(tandem_t *t, void (*taken)(void *, void *),
                            void *arg) {
  tandem_pool_t *pool = t->pool;
  void *both[2] = {(void *)taken, arg};

  tdm_inject_cancel_owned(&pool->inject, t, taken, arg);
  tdm_classq_take_owned(&pool->high, t, taken, arg);
  tdm_classq_take_owned(&pool->low, t, taken, arg);
  tdm_blocking_cancel_owned(&pool->blocking, t, taken_blocking, both);
}

/* ------------------------------------------------------------- running */

/* Counts a HIGH or LOW job in or out of running (thieves look first at
 * HIGH workers' deques and last at LOW ones'). */
static void running(tandem_pool_t *pool, tdm_worker_t *w, unsigned cls,
                    int d) {
  tdm_faa_u32(cls == TDM_CLS_HIGH ? &pool->running_high : &pool->running_low,
              (uint32_t)d);
  if (w != NULL)
    tdm_store_u32(&w->cls, d > 0 ? cls : TDM_CLS_NORMAL);
}

/* Has a cancel or its handle's close asked `req` to stop?  Relaxed: a
 * flag work_cb polls; after work_cb the completion's full barrier orders
 * the status before the loop reads it. */
static inline bool was_cancelled(const tandem_work_t *req) {
  return tdm_load_u32(&req->cancel_) != 0 ||
         tdm_load_u32(&req->tandem->closing_) != 0;
}

/* Before work_cb: the reasons not to run it at all.  0, or the status. */
static inline int refuse_closing(tandem_pool_t *pool, tandem_work_t *req) {
  if (tdm_load_u32(&req->tandem->closing_)) {
    tdm_faa_64(&pool->cancelled, 1);
    return UV_ECANCELED;
  }
  return 0;
}

static int refuse(tandem_pool_t *pool, tandem_work_t *req) {
  if (refuse_closing(pool, req) != 0)
    return UV_ECANCELED;
  if ((req->opts_ & TDM_OPT_DEADLINE) && uv_hrtime() >= req->deadline_) {
    tdm_faa_64(&pool->expired, 1);
    return UV_ETIMEDOUT;
  }
  return 0;
}

/* ---------------------------------------------------------------- time */

/* The HIGH lane or a blocking thread ran `req` (no worker): it records in
 * the blocking side's histograms (shared) or the lane's. */
static __attribute__((noinline)) void
rec_other(tandem_pool_t *pool, const tandem_work_t *req, uint64_t queued,
          uint64_t start, uint64_t end) {
  tdm_rec_job((req->opts_ & TDM_OPT_BLOCKING) ? &pool->blocking_rec
                                              : &pool->lane_rec,
              queued, start, end);
}

/* Is this a worker's top-level item?  Then pool.c's run_timed read the
 * clock at its start (w->tick) and takes the job's end from there. */
static inline bool top_level(const tdm_worker_t *w) {
  return w != NULL && w->nested == 0;
}

/* A job's start: the worker's reading when it went straight on from the
 * item before -- unless the job was queued after that reading (a round
 * trip queues the next job while the worker looks for it): then a reading
 * of its own, or its wait would be negative. */
static inline uint64_t timed_start(const tdm_worker_t *w, uint64_t queued) {
  if (top_level(w) && tdm_clock_after56(queued, w->tick))
    return w->tick;
  return tdm_clock_now();
}


/* Right after work_cb of a job of a timed pool: one reading, its end,
 * which times its run, its wait (from the queued reading) and, kept in
 * the request (tdm_req_set_done), its loop's lag. */
static inline void timed_end(tandem_pool_t *pool, tdm_worker_t *w,
                             tandem_work_t *req, unsigned opts,
                             uint64_t queued, uint64_t start) {
  uint64_t end = tdm_clock_now();

  if (w != NULL)
    tdm_rec_job(&w->rec, queued, start, end);
  else
    rec_other(pool, req, queued, start, end);
  tdm_req_set_done(req, end);
  req->opts_ = opts | TDM_OPT_TIMED; /* published by the completion */
  if (top_level(w)) {
    w->tick = end;
    w->tick_end = true;
  }
}

/* A job of a timed pool, with no options: tandem__job_run's path below
 * with the clock.  Out of line (a tail call): inlined, its registers would
 * cost the untimed path a prologue. */
static __attribute__((noinline)) void
run_timed(tandem_pool_t *pool, tdm_worker_t *w, tandem_work_t *req) {
  uint64_t queued = tdm_req_queued(req);
  uint64_t start = timed_start(w, queued);
  int status;

  status = refuse_closing(pool, req);
  if (status != 0) {
    tandem__complete(req, status);
    return;
  }
  tdm_store_u32(&req->state_, TDM_REQ_RUNNING);
  req->work_cb_(req);
  status = was_cancelled(req) ? UV_ECANCELED : 0;
  timed_end(pool, w, req, req->opts_, queued, start);
  tandem__complete(req, status);
}

/* ------------------------------------------------------- with options */

/* A job with options: admission, deadline, class.  Out of line, so that
 * the common job's path below stays what it was before #13. */
static __attribute__((noinline)) void
run_with_options(tandem_pool_t *pool, tdm_worker_t *w, tandem_work_t *req) {
  unsigned opts = req->opts_;
  unsigned cls = opts & TDM_OPT_CLASS;
  uint64_t queued = pool->timed ? tdm_req_queued(req) : 0;
  uint64_t start = pool->timed ? timed_start(w, queued) : 0;
  int status;

  if (opts & TDM_OPT_COUNTED)
    tandem__job_unadmit(pool, opts);
  status = refuse(pool, req);
  if (status != 0) {
    tandem__complete(req, status);
    return;
  }
  if (cls != TDM_CLS_NORMAL)
    running(pool, w, cls, 1);
  tdm_store_u32(&req->state_, TDM_REQ_RUNNING);
  req->work_cb_(req);
  /* Cancelled while it ran: reported so, even if it finished its work. */
  status = was_cancelled(req) ? UV_ECANCELED : 0;
  if (cls != TDM_CLS_NORMAL)
    running(pool, w, cls, -1);
  if (pool->timed)
    timed_end(pool, w, req, opts, queued, start);
  tandem__complete(req, status);
}

/* A job with options or a timed pool's job: tandem__job_run's other
 * paths (each out of line; this only picks one). */
static inline void run_other(tandem_pool_t *pool, tdm_worker_t *w,
                             tandem_work_t *req, unsigned opts) {
  if (opts & TDM_OPT_GIVEN)
    run_with_options(pool, w, req);
  else
    run_timed(pool, w, req);
}

/* The common job's path is short on purpose: at a thousand empty jobs in
 * flight the worker's few nanoseconds per job decide whether the loop
 * thread finds completions waiting (bench/README.md, "The run path").
 * One load decides whether the job is common (the submit set STAMPED for a
 * timed pool). */
void tandem__job_run(tandem_pool_t *pool, tdm_worker_t *w,
                     tandem_work_t *req) {
  unsigned opts = req->opts_;

  if (opts & TDM_OPT_BITS & ~TDM_OPT_FROM_LOOP) {
    run_other(pool, w, req, opts);
    return;
  }
  if (refuse_closing(pool, req) != 0) { /* no deadline: only the close */
    tandem__complete(req, UV_ECANCELED);
    return;
  }
  tdm_store_u32(&req->state_, TDM_REQ_RUNNING);
  req->work_cb_(req);
  /* Cancelled while it ran: reported so, even if it finished its work.
   * (Not through tandem_work_cancelled, an exported symbol.) */
  tandem__complete(req, was_cancelled(req) ? UV_ECANCELED : 0);
}

int tandem_work_cancelled(const tandem_work_t *req) {
  if (req == NULL || req->tandem == NULL)
    return 0;
  return was_cancelled(req);
}
