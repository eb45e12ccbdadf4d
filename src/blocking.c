/* SPDX-License-Identifier: MIT */
/*
 * blocking.c: the blocking side of a pool (see blocking.h).
 *
 * One mutex (b->lock) guards the queue and every count.  A thread's life:
 *
 *   made      submit counts it (threads, starting) and creates it
 *   starting  it names itself tandem-b<index>, takes the lock, and becomes
 *   idle      waiting on b->work until a job is queued, then
 *   busy      runs the oldest job with the lock released, and is idle again;
 *   ended     after idle_ms with no job, or at the stop: it puts its record
 *             on b->exited and returns.  The next submit or destroy joins
 *             it and frees the record, so no thread is ever detached and
 *             nothing a thread may still touch is freed before its join.
 *
 * When to make a thread.  Each idle or starting thread takes one job, so a
 * submit makes a thread while the queue holds more jobs than idle plus
 * starting threads, up to max_threads; a thread that just finished a job
 * takes the next without being counted.  The invariant that keeps a job
 * from waiting forever: while the queue is not empty a thread exists that
 * will look at it, since a thread ends only when it finds the queue empty
 * (or at the stop).  Hence the two ways to make a thread:
 *   - no thread exists ("live" = threads - reserved == 0): it is made
 *     under the lock, so that either it exists before anyone else sees the
 *     job, or the job is taken back and submit returns the error;
 *   - some thread exists: the slot is reserved under the lock and the
 *     thread made after unlocking (thread creation costs tens of
 *     microseconds that takers and other submitters need not wait); if it
 *     fails, the slot is given back and the job waits for the others.
 */
#include "blocking.h"
#include "sizing.h"

#include <stdlib.h>
#include <string.h>

/* Thread names are at most 15 characters: "tandem-b" and 7 digits. */
#define NAME_INDEX_WRAP 10000000u

#define DEFAULT_MAX_THREADS 64u
#define DEFAULT_IDLE_MS 10000u

struct tdm_bthread_s {
  tdm_blocking_t *side; /* read-only */
  unsigned index;       /* read-only: its name's number */
  uv_thread_t self;     /* written by the thread itself, under lock */
  tdm_bthread_t *next;  /* b->exited link, under lock */
};

enum { SPAWN_NONE, SPAWN_NOW, SPAWN_LATER };

static _Thread_local bool on_blocking_thread;

bool tdm_blocking_on_thread(void) {
  return on_blocking_thread;
}

int tdm_blocking_init(tdm_blocking_t *b, unsigned max_threads, unsigned idle_ms,
                      tdm_blocking_run_fn run, void *ctx) {
  int err;

  memset(b, 0, sizeof(*b));
  b->max_threads = max_threads != 0 ? max_threads : DEFAULT_MAX_THREADS;
  b->idle_ns = (uint64_t)(idle_ms != 0 ? idle_ms : DEFAULT_IDLE_MS) * 1000000;
  b->run = run;
  b->ctx = ctx;
  err = uv_mutex_init(&b->lock);
  if (err != 0)
    return err;
  err = uv_cond_init(&b->work);
  if (err != 0)
    goto fail_work;
  err = uv_cond_init(&b->gone);
  if (err != 0)
    goto fail_gone;
  return 0;

fail_gone:
  uv_cond_destroy(&b->work);
fail_work:
  uv_mutex_destroy(&b->lock);
  return err;
}

/* Under lock: appends req at the tail. */
static void enqueue(tdm_blocking_t *b, tandem_work_t *req) {
  req->next_ = NULL;
  if (b->tail != NULL)
    b->tail->next_ = req;
  else
    b->head = req;
  b->tail = req;
  b->queued++;
}

/* Under lock: unlinks req, whose predecessor is prev (NULL at the head). */
static void unlink_req(tdm_blocking_t *b, tandem_work_t *prev,
                       tandem_work_t *req) {
  if (prev != NULL)
    prev->next_ = req->next_;
  else
    b->head = req->next_;
  if (b->tail == req)
    b->tail = prev;
  req->next_ = NULL;
  b->queued--;
}

/* Under lock: waits until a job is queued (true), or until idle_ns passed
 * with none or the side stops (false). */
static bool wait_for_job(tdm_blocking_t *b) {
  uint64_t deadline;
  uint64_t now;

  deadline = uv_hrtime() + b->idle_ns;
  while (!b->stopping && b->head == NULL) {
    now = uv_hrtime();
    if (now >= deadline)
      return false;
    uv_cond_timedwait(&b->work, &b->lock, deadline - now);
  }
  return !b->stopping;
}

/* Blocking thread, lock held and counted idle: runs jobs, oldest first,
 * until wait_for_job says to end.  Returns with the lock held. */
static void serve(tdm_blocking_t *b) {
  tandem_work_t *req;

  while (wait_for_job(b)) {
    req = b->head;
    unlink_req(b, NULL, req);
    b->idle--;
    uv_mutex_unlock(&b->lock);
    b->run(req, b->ctx);
    uv_mutex_lock(&b->lock);
    b->jobs_run++;
    b->idle++;
  }
}

static void thread_main(void *arg) {
  tdm_bthread_t *self = arg;
  tdm_blocking_t *b = self->side;

  tandem__name_thread("tandem-b", self->index);
  on_blocking_thread = true;

  uv_mutex_lock(&b->lock);
  self->self = uv_thread_self();
  b->starting--;
  b->idle++;
  serve(b);
  b->idle--;
  b->threads--;
  self->next = b->exited;
  b->exited = self;
  if (b->stopping && b->threads == 0)
    uv_cond_signal(&b->gone);
  /* Nothing of b's is touched past this unlock but the mutex itself, which
   * destroy frees only after joining this thread. */
  uv_mutex_unlock(&b->lock);
}

/* Any thread: makes a thread named tandem-b<index>.  Returns 0 or the
 * error of malloc or uv_thread_create_ex. */
static int spawn(tdm_blocking_t *b, unsigned index) {
  uv_thread_options_t opts;
  tdm_bthread_t *t;
  uv_thread_t tid; /* unused: the thread records its own id for the join */
  int err;

  t = malloc(sizeof(*t));
  if (t == NULL)
    return UV_ENOMEM;
  t->side = b;
  t->index = index;
  t->next = NULL;
  opts.flags = UV_THREAD_NO_FLAGS; /* the default stack size */
  err = uv_thread_create_ex(&tid, &opts, thread_main, t);
  if (err != 0)
    free(t);
  return err;
}

/* Under lock, with a job just queued: wakes an idle thread if one waits,
 * and says whether to make a thread and how (SPAWN_*, top of file); when
 * it says to, the thread is counted already and *index is its name's. */
static int plan_thread(tdm_blocking_t *b, unsigned *index) {
  bool live;

  if (b->idle > 0)
    uv_cond_signal(&b->work);
  if (b->queued <= (uint64_t)b->idle + b->starting ||
      b->threads >= b->max_threads)
    return SPAWN_NONE;
  live = b->threads - b->reserved > 0;
  *index = b->next_index;
  b->next_index = (b->next_index + 1) % NAME_INDEX_WRAP;
  b->threads++;
  b->starting++;
  if (!live)
    return SPAWN_NOW;
  b->reserved++;
  return SPAWN_LATER;
}

/* Under lock: the predecessor of req in the queue through *prev, or false
 * if req is not there. */
static bool find_req(tdm_blocking_t *b, const tandem_work_t *req,
                     tandem_work_t **prev) {
  tandem_work_t *p;
  tandem_work_t *q;

  for (p = NULL, q = b->head; q != NULL; p = q, q = q->next_) {
    if (q == req) {
      *prev = p;
      return true;
    }
  }
  return false;
}

/* Under lock: a thread planned with SPAWN_NOW.  If it cannot be made, no
 * thread exists, so req is taken back out of the queue (the lock was held
 * since it went in: it is still there).  Returns 0 or the error. */
static int spawn_now(tdm_blocking_t *b, tandem_work_t *req, unsigned index) {
  tandem_work_t *prev;
  int err;

  err = spawn(b, index);
  if (err == 0)
    return 0;
  b->threads--;
  b->starting--;
  if (find_req(b, req, &prev))
    unlink_req(b, prev, req);
  return err;
}

/* No lock held: makes a thread planned with SPAWN_LATER.  A failure gives
 * the slot back; the queued job waits for the threads that exist. */
static void spawn_later(tdm_blocking_t *b, unsigned index) {
  int err;

  err = spawn(b, index);
  uv_mutex_lock(&b->lock);
  b->reserved--;
  if (err != 0) {
    b->threads--;
    b->starting--;
  }
  uv_mutex_unlock(&b->lock);
}

/* No lock held: joins and frees ended threads (a list taken off
 * b->exited). */
static void join_exited(tdm_bthread_t *t) {
  tdm_bthread_t *next;

  for (; t != NULL; t = next) {
    next = t->next;
    uv_thread_join(&t->self);
    free(t);
  }
}

int tdm_blocking_submit(tdm_blocking_t *b, tandem_work_t *req) {
  tdm_bthread_t *ended;
  unsigned index;
  int plan;
  int err;

  err = 0;
  uv_mutex_lock(&b->lock);
  enqueue(b, req);
  ended = b->exited;
  b->exited = NULL;
  plan = plan_thread(b, &index);
  if (plan == SPAWN_NOW)
    err = spawn_now(b, req, index);
  uv_mutex_unlock(&b->lock);
  join_exited(ended);
  if (plan == SPAWN_LATER)
    spawn_later(b, index);
  return err;
}

bool tdm_blocking_cancel(tdm_blocking_t *b, tandem_work_t *req) {
  tandem_work_t *prev;
  bool found;

  uv_mutex_lock(&b->lock);
  found = find_req(b, req, &prev);
  if (found)
    unlink_req(b, prev, req);
  uv_mutex_unlock(&b->lock);
  return found;
}

void tdm_blocking_cancel_owned(tdm_blocking_t *b, const tandem_t *owner,
                               tdm_blocking_taken_fn taken, void *arg) {
  tandem_work_t *prev;
  tandem_work_t *req;
  tandem_work_t *next;
  tandem_work_t *first;
  tandem_work_t **last;

  first = NULL;
  last = &first;
  uv_mutex_lock(&b->lock);
  for (prev = NULL, req = b->head; req != NULL; req = next) {
    next = req->next_;
    if (req->tandem != owner) {
      prev = req;
      continue;
    }
    unlink_req(b, prev, req); /* leaves req->next_ NULL */
    *last = req;
    last = (tandem_work_t **)&req->next_;
  }
  uv_mutex_unlock(&b->lock);
  /* taken() may queue req anew, which rewrites next_: read it first. */
  for (req = first; req != NULL; req = next) {
    next = req->next_;
    taken(req, arg);
  }
}

void tdm_blocking_counts(tdm_blocking_t *b, unsigned *threads, unsigned *idle,
                         uint64_t *jobs_run, uint64_t *queued) {
  uv_mutex_lock(&b->lock);
  if (threads != NULL)
    *threads = b->threads;
  if (idle != NULL)
    *idle = b->idle;
  if (jobs_run != NULL)
    *jobs_run = b->jobs_run;
  if (queued != NULL)
    *queued = b->queued;
  uv_mutex_unlock(&b->lock);
}

void tdm_blocking_destroy(tdm_blocking_t *b) {
  tdm_bthread_t *ended;

  uv_mutex_lock(&b->lock);
  b->stopping = true;
  uv_cond_broadcast(&b->work);
  while (b->threads > 0)
    uv_cond_wait(&b->gone, &b->lock);
  ended = b->exited;
  b->exited = NULL;
  uv_mutex_unlock(&b->lock);
  join_exited(ended);
  uv_cond_destroy(&b->gone);
  uv_cond_destroy(&b->work);
  uv_mutex_destroy(&b->lock);
}
