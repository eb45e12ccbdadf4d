/* SPDX-License-Identifier: MIT */
/*
 * loop.c: the loop side -- tandem_t handles, queueing and cancelling
 * requests, and the completion stack that brings results home.  This file
 * is the mechanism; when the loop sleeps, polls, batches or streams is
 * loop_mode.c's to decide.
 *
 * Completions.  Each tandem_t has an intrusive lock-free stack (done_) of
 * finished requests: any thread pushes with a CAS, the loop thread takes
 * the whole stack with one swap and runs the after callbacks oldest first.
 * A pusher that finds the stack empty wakes the loop by writing to its
 * eventfd (wake_loop), watched by a uv_poll handle, unless polling_ says
 * the loop looks anyway, so there is one write per batch, not per job.
 * (ck_stack_push_mpmc does not report the empty to non-empty edge, and its
 * inline asm is invisible to TSan: hence these few lines on atomic.h.)
 *
 * Modes.  At each event that may change its mode (a submit from the loop
 * thread, a wake-up, a turn of the idle handle or the timer, the last job
 * done, the steps of closing) the loop samples what it sees and asks
 * tdm_mode_next() (loop_mode.h); set_mode() then applies the answer:
 *   SLEEP   idle handle and timer stopped; polling_ = P_WAKE: pushers wake
 *           the loop.  While wake_cb drains it says P_AWAKE, and looks
 *           again before it sleeps.
 *   POLL    the idle handle drains; polling_ = P_AWAKE: nobody wakes us.
 *   STREAM  POLL, and the pool counts the loop busy
 *           (tandem__pool_stream_begin/_end), trailing its jobs by
 *           a lag (tandem__pool_stream_lag after each drain,
 *           tandem__pool_stream_release at its end).
 *   BATCH   the timer drains each TDM_BATCH_TICK_MS; polling_ = P_TIMER:
 *           only a cancel wakes the loop, the rest waits for the tick.
 * Going back to SLEEP is a Dekker pair with the pusher (resume_wakeups):
 * polling_ = P_WAKE, full fence, re-check the stack; the pusher's CAS is a
 * full barrier before it reads polling_.
 *
 * Counting.  Jobs queued from the loop thread are counted in loop_pending_
 * (plain: only the loop thread touches it) until their after callback
 * starts; jobs from other threads in inflight_, atomically, beside a
 * closing bit that makes them fail, until their batch's callbacks ran.
 *
 * Closing.  The closing bit in inflight_ refuses new jobs; jobs still in
 * the injection ring are cancelled at once, the few on workers' deques
 * (queued from inside jobs) when a worker reaches them.
 * The handles are closed when nothing is in flight and no thread is between
 * its push and its eventfd write on this tandem_t (workers' sending_to,
 * the pool's ext_senders): after that nobody touches the handle.
 */
#include "pool.h"

#include "loop_mode.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
  F_CLOSING = 1,  /* tandem_close() called */
  F_CLOSED = 2,   /* its handles are being closed */
  F_REF = 4,      /* the wake handle keeps the loop alive */
  F_DRAINING = 8, /* running after callbacks: submits defer their wake */
  F_KICK = 16,    /* a deferred submit is waiting for tandem__pool_kick */
  F_TOLD_POLLS = 32, /* the pool counts us polling (tell_pool) */
  F_TOLD_LONE = 64   /* ... and with one job in flight */
};

/* Values of polling_: may a pusher skip waking the loop? */
enum {
  P_WAKE = 0,  /* no: the loop may be asleep */
  P_AWAKE = 1, /* yes: the loop polls, or is draining, and looks again */
  P_TIMER = 2  /* yes, but for a cancel: the timer drains within a tick */
};

/* Workers write done_'s line and read polling_'s; neither may share a line
 * with the fields around them, however the caller aligns the handle. */
_Static_assert(offsetof(tandem_t, done_) - offsetof(tandem_t, pad0_) == 64 &&
                   offsetof(tandem_t, polling_) - offsetof(tandem_t, done_) ==
                       64 &&
                   offsetof(tandem_t, metrics_) -
                           offsetof(tandem_t, polling_) ==
                       64,
               "tandem_t's worker lines must stay 64 bytes apart");

/* Any thread: wakes t's loop.  An eventfd write, not uv_async_send(), for
 * libuv <= 1.44, whose loop spins, then sched_yield()s, while a sender is
 * between the two halves of uv_async_send(), so a worker preempted inside
 * it (by the very loop thread it woke) held up the loop for a time slice.
 * libuv 1.45 removed that loop-side spin (libuv#3879); Debian 12 ships
 * 1.44. */
static void wake_loop(tandem_t *t) {
  uint64_t one = 1;
  ssize_t r;

  do
    r = write(t->wake_fd_, &one, sizeof(one));
  while (r < 0 && errno == EINTR);
  /* EAGAIN: the counter is at its maximum, so the loop has a wake-up
   * pending anyway. */
}

/* The address of a thread-local variable names its thread for as long as
 * the thread lives: one instruction to compute, where pthread_self() and
 * pthread_equal() were two calls into libc on every job. */
static _Thread_local char thread_tag;

static bool on_loop_thread(const tandem_t *t) {
  return t->thread_tag_ == &thread_tag;
}

/* ------------------------------------------- loop-thread bookkeeping */

static void update_ref(tandem_t *t) {
  bool want = t->loop_pending_ != 0 || (t->flags_ & F_CLOSING);

  if (want && !(t->flags_ & F_REF)) {
    uv_ref((uv_handle_t *)&t->wake_);
    t->flags_ |= F_REF;
  } else if (!want && (t->flags_ & F_REF)) {
    uv_unref((uv_handle_t *)&t->wake_);
    t->flags_ &= ~F_REF;
  }
}

static bool nothing_in_flight(const tandem_t *t) {
  return t->loop_pending_ == 0 &&
         (tdm_load_u32(&t->inflight_) & ~TDM_CLOSING_BIT) == 0;
}

/* Loop thread: pushers wake the loop again from here on. */
static void resume_wakeups(tandem_t *t) {
  tdm_store_u32(&t->polling_, P_WAKE);
  /* Store-load: a pusher that saw polling_ != P_WAKE skipped its wake-up; if
   * its item is there, wake ourselves so it is drained. */
  tdm_fence_sc();
  if (tdm_load_ptr(&t->done_) != NULL)
    wake_loop(t);
}

static bool mode_polls(tdm_mode_t mode) {
  return mode == TDM_MODE_POLL || mode == TDM_MODE_STREAM;
}

/* What pushers are told in each mode (SLEEP: see resume_wakeups). */
static unsigned mode_pushers(tdm_mode_t mode) {
  if (mode == TDM_MODE_BATCH)
    return P_TIMER;
  return mode_polls(mode) ? P_AWAKE : P_WAKE;
}

static void idle_cb(uv_idle_t *handle);
static void timer_cb(uv_timer_t *handle);

/* Loop thread: puts t in mode `to` (the header comment says what each
 * holds); `drained` if completions were just called back. */
static void set_mode(tandem_t *t, tdm_mode_t to, bool drained) {
  tdm_mode_t from = (tdm_mode_t)t->mode_;

  if (to != from && from == TDM_MODE_STREAM)
    tandem__pool_stream_end(t);
  if (to != from && to == TDM_MODE_STREAM)
    tandem__pool_stream_begin(t);
  /* After each drain in a stream: how far to trail, and our CPU. */
  if (to == TDM_MODE_STREAM && (drained || from != TDM_MODE_STREAM))
    tandem__pool_stream_lag(t, tdm_mode_lag(t->loop_pending_));
  if (to == from)
    return;
  t->mode_ = to;
  if (mode_polls(from) && !mode_polls(to))
    uv_idle_stop(&t->idle_);
  else if (!mode_polls(from) && mode_polls(to))
    uv_idle_start(&t->idle_, idle_cb);
  if (from == TDM_MODE_BATCH)
    uv_timer_stop(&t->timer_);
  else if (to == TDM_MODE_BATCH)
    uv_timer_start(&t->timer_, timer_cb, TDM_BATCH_TICK_MS, TDM_BATCH_TICK_MS);
  if (to == TDM_MODE_SLEEP)
    resume_wakeups(t);
  else if (mode_pushers(from) != mode_pushers(to))
    tdm_store_u32(&t->polling_, mode_pushers(to));
}

/* Loop thread: what tdm_mode_next() looks at, but for the clock and the
 * machine (sample_clock) and the wake-up's own fields. */
static void sample(const tandem_t *t, tdm_mode_event_t event, unsigned drained,
                   tdm_mode_sample_t *s) {
  memset(s, 0, sizeof(*s));
  s->event = event;
  s->mode = (tdm_mode_t)t->mode_;
  s->drained = drained;
  s->pending = t->loop_pending_;
  s->workers = t->pool->nworkers;
  s->spin_ns = t->pool->loop_spin_ns;
  s->closing = (t->flags_ & F_CLOSING) != 0;
}

static void sample_clock(const tandem_t *t, tdm_mode_sample_t *s) {
  s->now = uv_hrtime();
  s->contended = tandem__pool_contended(t->pool, s->now); /* one reading */
  s->foreign = tdm_load_u32(&t->inflight_) & ~TDM_CLOSING_BIT;
}

/* Loop thread: tells the pool's idle policy whether we poll with jobs in
 * flight (a thread that wants a CPU all the time) and whether just one
 * (a lone round trip, which one searching worker serves), when either
 * changed.  Polling with none in flight does not count: it stops at the
 * next turn, and uv_run() may have returned meanwhile. */
static void tell_pool(tandem_t *t) {
  unsigned told = t->flags_ & (F_TOLD_POLLS | F_TOLD_LONE);
  unsigned now = 0;
  uint64_t delta = 0;

  if (mode_polls((tdm_mode_t)t->mode_) && t->loop_pending_ != 0)
    now = F_TOLD_POLLS | (t->loop_pending_ == 1 ? F_TOLD_LONE : 0);
  if (now == told)
    return;
  if ((now ^ told) & F_TOLD_POLLS)
    delta += (now & F_TOLD_POLLS) ? TDM_LOOPS_POLLING : -TDM_LOOPS_POLLING;
  if ((now ^ told) & F_TOLD_LONE)
    delta += (now & F_TOLD_LONE) ? TDM_LOOPS_LONE : -TDM_LOOPS_LONE;
  t->flags_ ^= now ^ told;
  tandem__pool_loops_add(t, delta);
}

static void decide(tandem_t *t, const tdm_mode_sample_t *s) {
  set_mode(t, tdm_mode_next(&t->mode_state_, s), s->drained != 0);
  tell_pool(t);
}

/* Loop thread: an event that needs no clock (the last job done, closing). */
static void decide_on(tandem_t *t, tdm_mode_event_t event) {
  tdm_mode_sample_t s;

  sample(t, event, 0, &s);
  decide(t, &s);
}

/* Loop thread: a turn of a handle that drained n completions. */
static void decide_turn(tandem_t *t, tdm_mode_event_t event, unsigned n) {
  tdm_mode_sample_t s;

  sample(t, event, n, &s);
  sample_clock(t, &s);
  decide(t, &s);
}

void tandem__loop_force_mode(tandem_t *t, int mode) {
  tdm_mode_force(&t->mode_state_, mode);
}

/* ---------------------------------------------------------- completion */

void tandem__complete(tandem_work_t *req, int status) {
  tandem_t *t;
  tandem_pool_t *pool;
  tdm_worker_t *self;
  bool external;
  unsigned polling;
  void *old;

  t = req->tandem;
  pool = t->pool_; /* the copy on the line workers read: not t->pool */
  self = tandem__self;
  if (self != NULL && self->pool != pool)
    self = NULL;
  external = self == NULL && !on_loop_thread(t);
  /* Announce that we are about to touch t (see maybe_finish_close); the
   * push below is a full barrier after it. */
  if (self != NULL)
    tdm_store_ptr((void **)&self->sending_to, t);
  else if (external)
    tdm_faa_u32(&pool->ext_senders, 1);

  req->status_ = status;
  tdm_store_u32(&req->state_, TDM_REQ_DONE);
  do {
    old = tdm_load_ptr(&t->done_);
    req->next_ = old;
    /* Full barrier: publishes req (and work_cb's writes) to the loop, and
     * orders the push before the load of polling_ below (the Dekker pair
     * with resume_wakeups). */
  } while (!tdm_cas_ptr(&t->done_, old, req));
  /* Only the push that finds the stack empty wakes the loop, and not even
   * that one while the loop polls or drains: it will look again.  A
   * cancel does not wait for the batching timer's next tick. */
  polling = tdm_load_u32(&t->polling_);
  if ((old == NULL && polling == P_WAKE) ||
      (polling == P_TIMER && status == UV_ECANCELED))
    wake_loop(t);

  if (self != NULL)
    tdm_store_rel_ptr((void **)&self->sending_to, NULL);
  else if (external)
    tdm_faa_u32(&pool->ext_senders, (uint32_t)-1);
}

/* ---------------------------------------------------- deferred submits */

/* The jobs that one drain's after callbacks queue on its own handle wait
 * here, on the loop thread, and go to the ring together at the drain's
 * next kick: one CAS on the ring's enq for the lot instead of one per job,
 * on the thread a round trip is bound by.  They are QUEUED meanwhile, with
 * no cell; they reach workers no later than the wake-up that the kick
 * gives them anyway.  A cancel or close on this thread pushes them first,
 * so that it finds them in the ring. */
typedef struct pending_s {
  tandem_t *t; /* the draining handle */
  unsigned n;
  void *item[TDM_KICK_EVERY];
  void **cellp[TDM_KICK_EVERY];
} pending_t;

/* The innermost drain running on this thread, if any. */
static _Thread_local pending_t *pending;

static void push_pending(void) {
  pending_t *p = pending;

  if (p != NULL && p->n != 0) {
    tandem__pool_submit_n(p->t->pool, p->item, p->t, p->cellp, p->n);
    p->n = 0;
  }
}

/* Loop thread, inside t's drain: queues req with the batch. */
static void defer_submit(tandem_t *t, tandem_work_t *req) {
  pending_t *p = pending;

  /* A worker searching now would start the job at once, beside the rest
   * of the callback (a lone round trip): an empty batch does not hold it
   * back.  Without a searcher it would wait for the kick's wake-up anyway.
   * (p == NULL cannot happen; never lose a job.) */
  if (p == NULL || p->t != t ||
      (p->n == 0 && tdm_idle_searching(&t->pool->idle))) {
    tandem__pool_submit(t->pool, req, t, &req->cell_, true);
    return;
  }
  p->item[p->n] = req;
  p->cellp[p->n] = &req->cell_;
  if (++p->n == TDM_KICK_EVERY)
    push_pending();
}

/* Loop thread: wakes a worker for the jobs queued by after callbacks. */
static void kick(tandem_t *t) {
  push_pending();
  if (t->flags_ & F_KICK) {
    t->flags_ &= ~F_KICK;
    tandem__pool_kick(t->pool);
  }
}

/* Loop thread: takes every completion so far, oldest first. */
static tandem_work_t *take_all(tandem_t *t) {
  tandem_work_t *req;
  tandem_work_t *prev;
  tandem_work_t *next;

  /* A load first: an empty turn of a polling loop costs no locked swap,
   * and does not take the line from a worker about to push.  A push it
   * misses is one just after it: the next turn, or resume_wakeups' own
   * re-check after its fence, sees it. */
  if (tdm_load_ptr(&t->done_) == NULL)
    return NULL;
  /* The swap acquires everything the pushers published. */
  req = tdm_fas_ptr(&t->done_, NULL);
  for (prev = NULL; req != NULL; req = next) { /* newest first: reverse */
    tdm_prefetch_w(req); /* its link is written here, its state below */
    next = req->next_;
    req->next_ = prev;
    prev = req;
  }
  return prev;
}

/* Loop thread, before `req`'s after callback: one reading, which times
 * its lag (when its work ran) and the jobs that callback queues. */
static inline void time_callback(tdm_loop_rec_t *m, const tandem_work_t *req,
                                 unsigned opts) {
  (void)tdm_loop_rec_tick(m); /* in m->tick, for the submits too */
  if (opts & TDM_OPT_TIMED)
    tdm_hist_add(&m->lag, tdm_clock_since56(tdm_req_done(req), m->tick));
}

/* Loop thread: runs the after callbacks of everything completed so far.
 * Returns how many. */
static unsigned drain(tandem_t *t) {
  tandem_work_t *req;
  tandem_work_t *next;
  tandem_after_work_cb after;
  tdm_loop_rec_t *m;
  unsigned opts;
  unsigned n;
  unsigned ext;
  int status;
  int from_loop;
  pending_t batch;
  pending_t *outer;

  req = take_all(t);
  if (req == NULL)
    return 0;
  n = 0;
  ext = 0;
  m = tdm_loop_rec(t);
  tdm_loop_rec_drain(m);
  /* A drain inside another (an after callback that ran uv_run, which
   * libuv does not support but nothing stops): the outer batch goes first,
   * and is the one in force again after. */
  outer = pending;
  push_pending();
  batch.t = t;
  batch.n = 0;
  pending = &batch;
  t->flags_ |= F_DRAINING;
  for (; req != NULL; req = next) {
    next = req->next_;
    status = req->status_;
    after = req->after_cb_;
    opts = req->opts_;
    from_loop = (opts & TDM_OPT_FROM_LOOP) != 0;
    if (m->on)
      time_callback(m, req, opts);
    /* Idle again before the callback, which may queue it anew. */
    tdm_store_rel_u32(&req->state_, TDM_REQ_FINISHED);
    /* Out of flight before its callback too: a job queued from there is
     * then counted alone, and a round trip that keeps as many jobs in
     * flight as workers may start polling (loop_mode.c, on_submit). */
    if (from_loop)
      t->loop_pending_--;
    if (after != NULL)
      after(req, status);
    /* req is the caller's again: not touched below. */
    if (from_loop) {
      if (t->loop_pending_ == 0) {
        /* uv_run() may return now, before the idle handle runs again. */
        decide_on(t, TDM_EV_EMPTY);
        update_ref(t);
      }
    } else {
      ext++;
    }
    if (++n % TDM_KICK_EVERY == 0)
      kick(t);
  }
  t->flags_ &= ~F_DRAINING;
  push_pending(); /* before the stream's release point is read */
  pending = outer;
  if (t->mode_ == TDM_MODE_STREAM)
    tandem__pool_stream_release(t);
  kick(t);
  /* One atomic for the batch: a lock-prefixed op per job would wait for
   * every store the after callbacks left in flight. */
  if (ext != 0)
    tdm_faa_u32(&t->inflight_, (uint32_t)-ext);
  return n;
}

/* ------------------------------------------------------------- closing */

static bool senders_busy(const tandem_t *t) {
  tandem_pool_t *pool = t->pool;
  unsigned i;

  if (tdm_load_u32(&pool->ext_senders) != 0)
    return true;
  for (i = 0; i < pool->nworkers; i++)
    if (tdm_load_ptr((void **)&pool->workers[i].sending_to) == t)
      return true;
  return false;
}

static void on_handle_closed(uv_handle_t *handle) {
  tandem_t *t = handle->data;

  if (handle == (uv_handle_t *)&t->wake_) {
    close(t->wake_fd_); /* no sender is left (senders_busy) */
    t->wake_fd_ = -1;
  }
  if (--t->handles_open_ != 0)
    return;
  tdm_loop_rec_free(t);
  tdm_faa_u32(&t->pool->nattached, (uint32_t)-1);
  if (t->close_cb_ != NULL)
    t->close_cb_(t);
}

static void close_handles(tandem_t *t) {
  uv_close((uv_handle_t *)&t->timer_, on_handle_closed);
  uv_close((uv_handle_t *)&t->idle_, on_handle_closed);
  uv_close((uv_handle_t *)&t->wake_, on_handle_closed);
}

static void maybe_finish_close(tandem_t *t) {
  if (!(t->flags_ & F_CLOSING) || (t->flags_ & F_CLOSED))
    return;
  if (!nothing_in_flight(t))
    return;
  if (senders_busy(t)) {
    decide_on(t, TDM_EV_SENDERS); /* poll until they leave */
    return;
  }
  t->flags_ |= F_CLOSED;
  decide_on(t, TDM_EV_CLOSED);
  close_handles(t);
}

/* A handle inherited across fork(), in the child: the jobs it had in
 * flight are the parent's, and nobody here will finish them.  It closes at
 * once, without a callback for them; its eventfd is shared with the parent,
 * so the child never reads it (that could eat the parent's wake-up). */
static void close_inherited(tandem_t *t) {
  t->flags_ |= F_CLOSED;
  t->loop_pending_ = 0;
  tdm_store_u32(&t->inflight_, TDM_CLOSING_BIT);
  tdm_store_u32(&t->closing_, 1);
  update_ref(t);
  close_handles(t);
}

/* Loop thread, in a handle's callbacks: true (and the handle stops
 * drawing work) if it was inherited across fork(). */
static bool inherited_stop(tandem_t *t) {
  if (!tandem__pool_stale(t->pool))
    return false;
  uv_poll_stop(&t->wake_);
  uv_idle_stop(&t->idle_);
  uv_timer_stop(&t->timer_);
  return true;
}

/* ------------------------------------------------------------ handles */

/* Loop thread: woken while asleep (SLEEP). */
static void wake_asleep(tandem_t *t) {
  tdm_mode_sample_t s;
  unsigned woke_pending;
  uint64_t woke_ring;
  unsigned rounds;
  unsigned n;
  unsigned total;

  /* Completions that arrive while we drain need no wake-up of their own:
   * polling_ says we are awake, and we look again before we sleep (a few
   * rounds at most; then a self-send hands over to the next iteration). */
  tdm_store_u32(&t->polling_, P_AWAKE);
  woke_pending = t->loop_pending_;
  woke_ring = tdm_inject_size(&t->pool->inject);
  total = 0;
  for (rounds = 0; rounds < 4 && (n = drain(t)) != 0; rounds++)
    total += n;
  if (!(t->flags_ & F_CLOSED)) {
    sample(t, TDM_EV_WAKE, total, &s);
    s.woke_pending = woke_pending;
    s.woke_ring = woke_ring;
    sample_clock(t, &s);
    decide(t, &s);
    if (t->mode_ == TDM_MODE_SLEEP) /* still: end our P_AWAKE */
      resume_wakeups(t);
  }
}

static void wake_cb(uv_poll_t *handle, int status, int events) {
  tandem_t *t = handle->data;
  uint64_t count;

  (void)status;
  (void)events;
  if (inherited_stop(t))
    return;
  /* Reset the eventfd before looking at the stack: a push after this
   * read is either seen below or writes it again. */
  (void)!read(t->wake_fd_, &count, sizeof(count));
  if (t->mode_ == TDM_MODE_SLEEP)
    wake_asleep(t);
  else
    (void)drain(t); /* the idle handle or the timer runs the show */
  maybe_finish_close(t);
}

static void timer_cb(uv_timer_t *handle) {
  tandem_t *t = handle->data;
  unsigned n;

  if (inherited_stop(t))
    return;
  n = drain(t);
  if (!(t->flags_ & F_CLOSED))
    decide_turn(t, TDM_EV_TICK, n);
  maybe_finish_close(t);
}

static void idle_cb(uv_idle_t *handle) {
  tandem_t *t = handle->data;
  unsigned n;

  if (inherited_stop(t))
    return;
  n = drain(t);
  if (!(t->flags_ & F_CLOSED))
    decide_turn(t, TDM_EV_IDLE, n);
  maybe_finish_close(t);
}

/* --------------------------------------------------------------- API */

int tandem_init(uv_loop_t *loop, tandem_t *t, tandem_pool_t *pool) {
  void *data;
  int err;
  int fd;

  if (loop == NULL || t == NULL)
    return UV_EINVAL;
  if (pool != NULL && tandem__pool_stale(pool))
    return UV_ESRCH; /* inherited across fork(): no workers here */
  fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  /* After the eventfd: a failed eventfd leaves no default pool behind. */
  if (pool == NULL && (err = tandem__pool_default_get(&pool)) != 0) {
    close(fd);
    return err;
  }
  data = t->data;
  memset(t, 0, sizeof(*t));
  t->data = data;
  tdm_mode_init(&t->mode_state_); /* mode_: TDM_MODE_SLEEP */
  t->stream_slot_ = TDM_NO_SLOT;
  t->loop = loop;
  t->pool = pool;
  t->pool_ = pool;
  t->thread_tag_ = &thread_tag;
  t->wake_fd_ = fd;
  /* Before any handle: a failure below leaves nothing on the loop. */
  err = tdm_loop_rec_alloc(t);
  if (err == 0 && (err = uv_poll_init(loop, &t->wake_, t->wake_fd_)) != 0)
    tdm_loop_rec_free(t);
  if (err != 0) {
    close(t->wake_fd_);
    return err;
  }
  tdm_loop_rec_start(t, pool->timed);
  /* Only queues the watcher for the loop's next poll: on Linux it fails
   * for bad arguments alone. */
  (void)uv_poll_start(&t->wake_, UV_READABLE, wake_cb);
  uv_idle_init(loop, &t->idle_);
  uv_timer_init(loop, &t->timer_);
  t->wake_.data = t;
  t->idle_.data = t;
  t->timer_.data = t;
  /* An idle tandem_t does not keep uv_run() alive (update_ref). */
  uv_unref((uv_handle_t *)&t->wake_);
  uv_unref((uv_handle_t *)&t->idle_);
  uv_unref((uv_handle_t *)&t->timer_);
  t->handles_open_ = 3;
  tdm_faa_u32(&pool->nattached, 1);
  return 0;
}

/* A job of ours taken back out of the injection ring by tandem_close. */
static void close_taken(void *item, void *arg) {
  tandem_work_t *req = item;
  tandem_t *t = arg;

  if (req->tandem != t) {
    /* The cell was reused by the same request queued on another handle
     * between our look and our cas: it is not ours, queue it again. */
    tandem__pool_submit(t->pool, req, req->tandem, &req->cell_, false);
    return;
  }
  if (req->opts_ & TDM_OPT_COUNTED)
    tandem__job_unadmit(t->pool, req->opts_);
  tdm_faa_64(&t->pool->cancelled, 1);
  tandem__complete(req, UV_ECANCELED);
}

int tandem_close(tandem_t *t, tandem_close_cb cb) {
  if (t == NULL)
    return UV_EINVAL;
  if (t->flags_ & F_CLOSING)
    return UV_EALREADY; /* the first close's callback is the one */
  t->flags_ |= F_CLOSING;
  t->close_cb_ = cb;
  if (tandem__pool_stale(t->pool)) {
    close_inherited(t);
    return 0;
  }
  push_pending(); /* inside a drain: its jobs into the ring, taken below */
  decide_on(t, TDM_EV_CLOSE); /* no batching, no stream */
  /* Full barrier: from here no submitter can be counted in; a worker that
   * claims one of our jobs sees closing_ and cancels it. */
  tdm_store_u32(&t->closing_, 1);
  tdm_faa_u32(&t->inflight_, TDM_CLOSING_BIT);
  update_ref(t);
  /* Jobs still waiting in the ring are cancelled now, whoever queued
   * them; the few on workers' deques when a worker reaches them. */
  tandem__job_take_owned(t, close_taken, t);
  maybe_finish_close(t);
  return 0;
}

int tandem_queue_work_ex(tandem_t *t, tandem_work_t *req,
                         tandem_work_cb work_cb, tandem_after_work_cb after_cb,
                         const tandem_job_opts_t *opts) {
  uint64_t deadline;
  unsigned bits;
  int err;

  err = tandem__job_opts(opts, &bits, &deadline);
  if (err != 0)
    return err;
  return tandem__queue_work_with(t, req, work_cb, after_cb, bits, deadline,
                                 NULL, NULL);
}

/* Counts a job in, unless the handle is closing (then returns false): on
 * the loop thread in loop_pending_ (no atomics; its count comes after the
 * request is QUEUED), elsewhere in inflight_ with its closing bit. */
static bool count_in(tandem_t *t, bool from_loop) {
  unsigned n;

  if (from_loop)
    return !(t->flags_ & F_CLOSING);
  n = tdm_load_u32(&t->inflight_);
  do {
    if (n & TDM_CLOSING_BIT)
      return false;
  } while (!tdm_cas_u32(&t->inflight_, n, n + 1) &&
           ((n = tdm_load_u32(&t->inflight_)), 1));
  return true;
}

/* The job's options, past admission and the handle's count: a job whose
 * deadline is already past is called back at once (UV_ETIMEDOUT), a HIGH,
 * LOW or blocking one goes to its own queue.  Returns true if it took the
 * job; false leaves it to the NORMAL path. */
static bool submit_special(tandem_t *t, tandem_work_t *req, bool expired) {
  if (expired) {
    tdm_faa_64(&t->pool->expired, 1);
    tandem__complete(req, UV_ETIMEDOUT);
    return true;
  }
  if ((req->opts_ & (TDM_OPT_CLASS | TDM_OPT_BLOCKING)) == 0)
    return false;
  if (tandem__job_submit(t->pool, req, false) != 0) {
    /* No blocking thread exists and none can be made: the job is
     * cancelled rather than left waiting for nobody. */
    if (req->opts_ & TDM_OPT_COUNTED)
      tandem__job_unadmit(t->pool, req->opts_);
    tdm_faa_64(&t->pool->cancelled, 1);
    tandem__complete(req, UV_ECANCELED);
  }
  return true;
}

/* Claims `req` for a submit (its state to CLAIMED), admits it against
 * max_queued (adds TDM_OPT_COUNTED to *bits) and counts it in on `t`.
 * Returns 0, or the error with the request as it was. */
static inline __attribute__((always_inline)) int
claim(tandem_t *t, tandem_work_t *req, unsigned *bits, bool expired,
      int *from_loop) {
  unsigned state;

  /* Claim the request first, so that a second submit of it fails; a cancel
   * meanwhile answers UV_EBUSY (pool.h: the request's states). */
  state = tdm_load_u32(&req->state_);
  if (tandem__state_in_flight(state) ||
      !tdm_cas_u32(&req->state_, state, TDM_REQ_CLAIMED))
    return UV_EBUSY;
  if (t->pool->max_queued != 0 && !expired) {
    if (!tandem__job_admit(t->pool, *bits)) {
      tdm_store_u32(&req->state_, state);
      return UV_EAGAIN;
    }
    *bits |= TDM_OPT_COUNTED;
  }
  *from_loop = on_loop_thread(t);
  if (!count_in(t, *from_loop)) {
    if (*bits & TDM_OPT_COUNTED)
      tandem__job_unadmit(t->pool, *bits);
    tdm_store_u32(&req->state_, state);
    return UV_ESHUTDOWN;
  }
  return 0;
}

/* The submit, written once and inlined twice: into tandem_queue_work,
 * where bits, deadline and setup are constants and every branch on them
 * folds away (a job with no options costs what it cost before #13), and
 * into tandem__queue_work_with for the rest. */
static inline __attribute__((always_inline)) int
queue_job(tandem_t *t, tandem_work_t *req, tandem_work_cb work_cb,
          tandem_after_work_cb after_cb, unsigned bits, uint64_t deadline,
          void (*setup)(tandem_work_t *req, void *arg), void *arg) {
  unsigned word;
  bool expired;
  int from_loop;
  int err;

  if (t == NULL || req == NULL || work_cb == NULL || t->pool == NULL)
    return UV_EINVAL;
  if (tandem__pool_stale(t->pool))
    return UV_ESRCH; /* a handle inherited across fork() */
  expired = (bits & TDM_OPT_DEADLINE) && uv_hrtime() >= deadline;
  err = claim(t, req, &bits, expired, &from_loop);
  if (err != 0)
    return err;
  /* Ours now: a refused concurrent submit cannot touch what we write. */
  if (setup != NULL)
    setup(req, arg);
  req->tandem = t;
  req->work_cb_ = work_cb;
  req->after_cb_ = after_cb;
  word = bits | (from_loop ? TDM_OPT_FROM_LOOP : 0);
  if (t->pool->timed) /* inside an after callback: that callback's start */
    word = tdm_req_stamp(req, word,
                         from_loop && (t->flags_ & F_DRAINING)
                             ? tdm_loop_rec(t)->tick
                             : tdm_clock_now());
  else
    req->status_ = 0;
  req->opts_ = word;
  tdm_store_u32(&req->cancel_, 0); /* a cancel may store 1 concurrently */
  if (bits & TDM_OPT_DEADLINE)
    req->deadline_ = deadline; /* on the request's second line: only then */
  tdm_store_ptr(&req->cell_, NULL); /* not the cell of an earlier queueing */
  /* Release: a cancel that sees QUEUED sees the handle and cell_ above.
   * Before the submit: from then on a worker may make it RUNNING. */
  tdm_store_rel_u32(&req->state_, TDM_REQ_QUEUED);
  if (from_loop) {
    if (t->loop_pending_++ == 0)
      update_ref(t);
    /* Most submits cannot change the mode: ask_max says which can. */
    if (t->loop_pending_ <= t->mode_state_.ask_max)
      decide_turn(t, TDM_EV_SUBMIT, 0);
  }
  if (bits != 0 && submit_special(t, req, expired))
    return 0;
  /* Publishes every field above (release in the deque or the ring).  From
   * inside drain() the push and the wake-up wait for the batch: one CAS and
   * one fence, not one of each per job. */
  if (from_loop && (t->flags_ & F_DRAINING)) {
    t->flags_ |= F_KICK;
    defer_submit(t, req);
  } else {
    tandem__pool_submit(t->pool, req, t, &req->cell_, false);
  }
  return 0;
}

int tandem__queue_work_with(tandem_t *t, tandem_work_t *req,
                            tandem_work_cb work_cb,
                            tandem_after_work_cb after_cb, unsigned bits,
                            uint64_t deadline,
                            void (*setup)(tandem_work_t *req, void *arg),
                            void *arg) {
  return queue_job(t, req, work_cb, after_cb, bits, deadline, setup, arg);
}

int tandem_queue_work(tandem_t *t, tandem_work_t *req, tandem_work_cb work_cb,
                      tandem_after_work_cb after_cb) {
  return queue_job(t, req, work_cb, after_cb, 0, 0, NULL, NULL);
}

int tandem_cancel(tandem_work_t *req) {
  unsigned state;
  tandem_t *t;

  if (req == NULL)
    return UV_EINVAL;
  /* Acquire: pairs with the submit's release of QUEUED. */
  state = tdm_load_acq_u32(&req->state_);
  if (state == TDM_REQ_DONE || state == TDM_REQ_FINISHED ||
      state == TDM_REQ_CLAIMED)
    return UV_EBUSY;
  if (state != TDM_REQ_QUEUED && state != TDM_REQ_RUNNING)
    return UV_EINVAL;
  /* Inside a drain, req may wait in its batch, with no cell yet. */
  if (state == TDM_REQ_QUEUED)
    push_pending();
  /* Only a job still waiting in a queue can be taken back: the queue
   * decides against a worker taking it (job.c).  The handle is read only
   * once that has won: then the request sits where the submit that wrote
   * req->tandem put it, and nobody can queue it anew. */
  if (state == TDM_REQ_RUNNING || !tandem__job_take_back(req)) {
    /* Running, or taken by a worker that is about to run it (or waiting
     * where it cannot be taken back): ask it to stop.  Relaxed: a flag its
     * work_cb polls; the completion's full barrier orders it before the
     * status is read (job.c). */
    tdm_store_u32(&req->cancel_, 1);
    return UV_EBUSY;
  }
  t = req->tandem;
  if (req->opts_ & TDM_OPT_COUNTED)
    tandem__job_unadmit(t->pool, req->opts_);
  tdm_faa_64(&t->pool->cancelled, 1);
  tandem__complete(req, UV_ECANCELED);
  return 0;
}
