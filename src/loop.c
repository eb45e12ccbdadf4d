/* SPDX-License-Identifier: MIT */
/*
 * loop.c: the loop side -- tandem_t handles, queueing and cancelling
 * requests, and the completion stack that brings results home.
 *
 * Completions.  Each tandem_t has an intrusive lock-free stack (done_) of
 * finished requests: any thread pushes with a CAS, the loop thread takes
 * the whole stack with one swap and runs the after callbacks oldest first.
 * A pusher that finds the stack empty wakes the loop by writing to its
 * eventfd (wake_loop), watched by a uv_poll handle, unless the loop is
 * polling (polling_), so there is one write per batch, not per job.
 * (ck_stack_push_mpmc does not report the empty to non-empty edge, and its
 * inline asm is invisible to TSan: hence these few lines on atomic.h.)
 *
 * Polling.  While a small batch of jobs from the loop thread is in flight
 * (no more than there are workers), the loop polls the stack from a uv_idle
 * handle for up to loop_spin_ns after the last activity instead of
 * sleeping in epoll: a round trip then costs no wake-up of the loop thread.
 * So does a busy loop, to which completions keep coming at BUSY_RATE per
 * microsecond or more: it would not sleep anyway, and polling spares the
 * workers their eventfd writes.  Otherwise (a few long jobs) the loop
 * sleeps, leaves the CPUs to the workers, and completions come home by
 * the eventfd.  Stopping is a Dekker pair with the pusher: polling_ = P_WAKE,
 * full fence, re-check the stack; the pusher's CAS is a full barrier before
 * it reads polling_.
 *
 * Batching.  A loop with a deep backlog of its own jobs (enough to keep
 * the workers busy for BATCH_BACKLOG_NS at the rate they complete) needs
 * no prompt wake-up: it sets polling_ and drains from a timer every
 * BATCH_TICK_MS.  On a small machine every wake-up of the loop thread
 * interrupts a worker's job (on the 2-core VM: ~15k wake-ups a second at
 * 10 us jobs, a third of a CPU); a tick costs one per millisecond.
 * Leaving batching is stop_polling's Dekker pair again.
 *
 * Streams.  A polling loop whose completions come less than STREAM_GAP_NS
 * apart, with more jobs in flight than workers, runs jobs that cost about
 * as much as queueing them: the loop thread is the bottleneck.  It then
 * counts itself in the pool's busy loops (throttle): a worker on the
 * loop's CPU rests, and the others trail the ring's newest job by `lag`
 * (pool.c, throttled() and ring_ready()), so that the loop does not stall
 * on cache lines a worker has just taken from under it.  On the 2-core VM
 * this took empty jobs at W=1024 from 10-14 to 18-28 million a second.
 *
 * Counting.  Jobs queued from the loop thread are counted in loop_pending_
 * (plain: only the loop thread touches it); jobs from other threads in
 * inflight_, atomically, beside a closing bit that makes them fail.
 *
 * Closing.  The closing bit in inflight_ refuses new jobs; jobs still in
 * the injection ring are cancelled at once, the few on workers' deques
 * (queued from inside jobs) when a worker reaches them.
 * The handles are closed when nothing is in flight and no thread is between
 * its push and its eventfd write on this tandem_t (workers' sending_to,
 * the pool's ext_senders): after that nobody touches the handle.
 */
#include "pool.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
  F_CLOSING = 1,   /* tandem_close() called */
  F_CLOSED = 2,    /* its handles are being closed */
  F_POLLING = 4,   /* the idle handle is running */
  F_REF = 8,       /* the wake handle keeps the loop alive */
  F_DRAINING = 16, /* running after callbacks: submits defer their wake */
  F_KICK = 32,     /* a deferred submit is waiting for tandem__pool_kick */
  F_BATCHING = 64, /* the timer drains completions; no eventfd wake-ups */
  F_THROTTLE = 128 /* counted in the pool's busy_loops */
};

/* Values of polling_: may a pusher skip waking the loop? */
enum {
  P_WAKE = 0,  /* no: the loop may be asleep */
  P_AWAKE = 1, /* yes: the loop polls, or is draining, and looks again */
  P_TIMER = 2  /* yes, but for a cancel: the timer drains within a tick */
};

#define KICK_EVERY 64 /* after callbacks between deferred wake-ups */
#define BUSY_RATE 1   /* completions per microsecond that make a loop busy */
/* A loop whose own jobs in flight would keep the workers busy for
 * BATCH_BACKLOG_NS or more (at the rate they have been completing), and
 * number at least BATCH_MIN_JOBS, drains them every BATCH_TICK_MS from a
 * timer instead of being woken per batch: on a small machine each wake-up
 * of the loop thread costs a worker tens of microseconds of its CPU.  A
 * completion then waits at most one tick, a fraction of the time a newly
 * queued job waits behind that backlog anyway. */
#define BATCH_MIN_JOBS 64
#define BATCH_BACKLOG_NS 4000000
#define BATCH_TICK_MS 1
/* Wake-ups in a row that must find such a backlog before batching starts:
 * a worker that stalled for a while looks like slow jobs once. */
#define BATCH_VOTES 8
#define GAP_GROWTH 4 /* see is_busy() */
/* Streams (stream_mode): completions less than STREAM_GAP_NS apart on
 * average; workers then trail the ring's newest job by an eighth of the
 * jobs in flight, between LAG_MIN and LAG_MAX. */
#define STREAM_GAP_NS 300
#define LAG_MIN 4
#define LAG_MAX 128

/* Workers write done_'s line and read polling_'s; neither may share a line
 * with the fields around them, however the caller aligns the handle. */
_Static_assert(offsetof(tandem_t, done_) - offsetof(tandem_t, pad0_) == 64 &&
                   offsetof(tandem_t, polling_) - offsetof(tandem_t, done_) ==
                       64 &&
                   offsetof(tandem_t, reserved_) -
                           offsetof(tandem_t, polling_) ==
                       64,
               "tandem_t's worker lines must stay 64 bytes apart");

/* Any thread: wakes t's loop.  An eventfd write, not uv_async_send():
 * libuv 1.44's loop spins, then sched_yield()s, while a sender is between
 * the two halves of uv_async_send(), so a worker preempted inside it (by
 * the very loop thread it woke) held up the loop for a time slice. */
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

static void idle_cb(uv_idle_t *handle);

static void start_polling(tandem_t *t) {
  if (t->flags_ & F_POLLING)
    return;
  t->flags_ |= F_POLLING;
  tdm_store_u32(&t->polling_, P_AWAKE);
  uv_idle_start(&t->idle_, idle_cb);
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

/* Loop thread: polling for a stream of completions, this loop keeps a core
 * busy; the pool rests a worker meanwhile (tandem__pool_loop_busy). */
static void throttle(tandem_t *t, bool on) {
  if (on == !!(t->flags_ & F_THROTTLE))
    return;
  t->flags_ ^= F_THROTTLE;
  tandem__pool_loop_busy(t->pool, on);
}

/* Loop thread, in a stream: how far behind the newest job workers should
 * trail (tandem__pool_set_lag): an eighth of our jobs in flight, up to
 * LAG_MAX, none for a few. */
static void advertise_lag(tandem_t *t) {
  unsigned lag = t->loop_pending_ / 8;

  if (lag > LAG_MAX)
    lag = LAG_MAX;
  if (lag < LAG_MIN)
    lag = 0;
  tandem__pool_set_lag(t->pool, lag);
}

/* Loop thread, polling, after a drain: is this a stream -- completions
 * on average less than STREAM_GAP_NS apart (twice that to leave: no
 * flapping), more jobs in flight than workers?  Then the loop thread is
 * the bottleneck and keeps a core busy, so the pool rests a worker and
 * trails the stream (advertise_lag).  Slower jobs, or a few in flight (a
 * round trip), keep every worker ready. */
static void stream_mode(tandem_t *t) {
  uint64_t gap = t->flags_ & F_THROTTLE ? 2 * STREAM_GAP_NS : STREAM_GAP_NS;
  bool on = t->loop_pending_ > t->pool->nworkers && t->gap_ns_ < gap &&
            !(t->flags_ & F_CLOSING);

  if (on)
    advertise_lag(t); /* first: it also tells the pool our CPU */
  throttle(t, on);
}

static void stop_polling(tandem_t *t) {
  if (!(t->flags_ & F_POLLING))
    return;
  throttle(t, false);
  t->flags_ &= ~F_POLLING;
  uv_idle_stop(&t->idle_);
  if (t->flags_ & F_BATCHING) /* the timer still drains */
    tdm_store_u32(&t->polling_, P_TIMER);
  else
    resume_wakeups(t);
}

static void timer_cb(uv_timer_t *handle);

/* Loop thread: should completions be drained by the timer?  gap_ns_ is
 * the average time between completions over recent drains. */
static bool want_batching(const tandem_t *t) {
  return !(t->flags_ & F_CLOSING) && t->loop_pending_ >= BATCH_MIN_JOBS &&
         (uint64_t)t->loop_pending_ * t->gap_ns_ >= BATCH_BACKLOG_NS;
}

static void start_batching(tandem_t *t) {
  t->batch_votes_ = 0;
  if (t->flags_ & F_BATCHING)
    return;
  t->flags_ |= F_BATCHING;
  if (!(t->flags_ & F_POLLING)) /* else the idle handle drains, for now */
    tdm_store_u32(&t->polling_, P_TIMER);
  uv_timer_start(&t->timer_, timer_cb, BATCH_TICK_MS, BATCH_TICK_MS);
}

static void stop_batching(tandem_t *t) {
  if (!(t->flags_ & F_BATCHING))
    return;
  t->flags_ &= ~F_BATCHING;
  uv_timer_stop(&t->timer_);
  if (!(t->flags_ & F_POLLING)) /* else the idle handle still drains */
    resume_wakeups(t);
}

static bool nothing_in_flight(const tandem_t *t) {
  return t->loop_pending_ == 0 &&
         (tdm_load_u32(&t->inflight_) & ~TDM_CLOSING_BIT) == 0;
}

static bool want_polling(const tandem_t *t, uint64_t now) {
  if (t->flags_ & F_CLOSING) /* only waiting for senders to leave */
    return nothing_in_flight(t);
  if (tandem__pool_contended(t->pool))
    return false;
  /* Busy: completions keep coming in large batches, so the loop thread
   * has no time to sleep anyway; polling spares every worker an eventfd
   * write (a syscall). */
  if (now - t->last_busy_ < t->pool->loop_spin_ns)
    return true;
  /* A few jobs in flight: the next completion is near. */
  if (t->loop_pending_ == 0 || t->loop_pending_ > t->pool->nworkers)
    return false;
  return now - t->last_activity_ < t->pool->loop_spin_ns;
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

void tandem__job_run(tdm_worker_t *w, tandem_work_t *req) {
  tandem_t *t = req->tandem;

  if (tdm_load_u32(&t->closing_)) {
    tdm_faa_64(&w->pool->cancelled, 1);
    tandem__complete(req, UV_ECANCELED);
    return;
  }
  tdm_store_u32(&req->state_, TDM_REQ_RUNNING);
  req->work_cb_(req);
  tandem__complete(req, 0);
}

/* Loop thread: wakes a worker for the jobs queued by after callbacks. */
static void kick(tandem_t *t) {
  if (t->flags_ & F_KICK) {
    t->flags_ &= ~F_KICK;
    tandem__pool_kick(t->pool);
  }
}

/* Loop thread: runs the after callbacks of everything completed so far.
 * Returns how many. */
static unsigned drain(tandem_t *t) {
  tandem_work_t *req;
  tandem_work_t *prev;
  tandem_work_t *next;
  tandem_after_work_cb after;
  unsigned n;
  unsigned ext;
  int status;
  int from_loop;

  /* The swap acquires everything the pushers published. */
  req = tdm_fas_ptr(&t->done_, NULL);
  if (req == NULL)
    return 0;
  for (prev = NULL; req != NULL; req = next) { /* newest first: reverse */
    next = req->next_;
    req->next_ = prev;
    prev = req;
  }
  n = 0;
  ext = 0;
  t->flags_ |= F_DRAINING;
  for (req = prev; req != NULL; req = next) {
    next = req->next_;
    status = req->status_;
    after = req->after_cb_;
    from_loop = req->from_loop_;
    /* Idle again before the callback, which may queue it anew. */
    tdm_store_rel_u32(&req->state_, TDM_REQ_FINISHED);
    if (after != NULL)
      after(req, status);
    /* req is the caller's again: not touched below. */
    if (from_loop) {
      if (--t->loop_pending_ == 0) {
        /* uv_run() may return now, before the idle handle runs again:
         * the pool must not stay throttled for a loop that is gone. */
        throttle(t, false);
        update_ref(t);
      }
    } else {
      ext++;
    }
    if (++n % KICK_EVERY == 0)
      kick(t);
  }
  t->flags_ &= ~F_DRAINING;
  if (t->flags_ & F_THROTTLE)
    tandem__pool_release_lag(t->pool);
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
  tdm_faa_u32(&t->pool->nattached, (uint32_t)-1);
  if (t->close_cb_ != NULL)
    t->close_cb_(t);
}

static void maybe_finish_close(tandem_t *t) {
  if (!(t->flags_ & F_CLOSING) || (t->flags_ & F_CLOSED))
    return;
  if (!nothing_in_flight(t))
    return;
  if (senders_busy(t)) {
    start_polling(t); /* a matter of nanoseconds: poll until they leave */
    return;
  }
  t->flags_ |= F_CLOSED;
  stop_batching(t);
  stop_polling(t);
  uv_close((uv_handle_t *)&t->timer_, on_handle_closed);
  uv_close((uv_handle_t *)&t->idle_, on_handle_closed);
  uv_close((uv_handle_t *)&t->wake_, on_handle_closed);
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
  uv_close((uv_handle_t *)&t->timer_, on_handle_closed);
  uv_close((uv_handle_t *)&t->idle_, on_handle_closed);
  uv_close((uv_handle_t *)&t->wake_, on_handle_closed);
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

/* Loop thread, after draining n > 0 completions at `now`: were they
 * coming in at a rate of BUSY_RATE per microsecond or more since the last
 * drain?  Such a loop has no time to sleep: it polls (want_polling).  The
 * size of a batch alone says nothing: a loop that slept long finds a large
 * one even when jobs are slow. */
static bool is_busy(tandem_t *t, unsigned n, uint64_t now) {
  uint64_t limit;
  uint64_t gap;
  bool busy;

  busy = (uint64_t)n * 1000 >= BUSY_RATE * (now - t->last_drain_);
  /* A quiet spell before this drain says little about the rate: one
   * sample counts for at most GAP_GROWTH times the average (or a
   * microsecond), so a slow stream takes a few drains to be believed,
   * and one hiccup of a fast one does not start batching. */
  gap = (now - t->last_drain_) / n;
  limit = t->gap_ns_ * GAP_GROWTH;
  if (limit < 1000)
    limit = 1000;
  if (gap > limit)
    gap = limit;
  t->gap_ns_ = (t->gap_ns_ + gap) / 2;
  t->last_drain_ = now;
  if (busy)
    t->last_busy_ = now;
  return busy;
}

static void wake_cb(uv_poll_t *handle, int status, int events) {
  tandem_t *t = handle->data;
  unsigned rounds;
  unsigned n;
  unsigned total;
  uint64_t count;
  bool starved;

  (void)status;
  (void)events;
  if (inherited_stop(t))
    return;
  /* Reset the eventfd before looking at the stack: a push after this
   * read is either seen below or writes it again. */
  (void)!read(t->wake_fd_, &count, sizeof(count));
  if (t->flags_ & (F_POLLING | F_BATCHING)) {
    drain(t); /* the idle handle or the timer runs the show */
  } else {
    /* Completions that arrive while we drain need no wake-up of their
     * own: polling_ says we are awake, and we look again before we
     * sleep (a few rounds at most; then a self-send hands over to the
     * next loop iteration). */
    tdm_store_u32(&t->polling_, P_AWAKE);
    /* Starved: more of our jobs in flight than workers, yet none waits in
     * the ring -- the workers are done before we are awake, so the loop
     * thread is what limits them.  (Waking per batch, a loop of cheap
     * jobs can measure under BUSY_RATE and never poll.) */
    starved = t->loop_pending_ > t->pool->nworkers &&
              tdm_inject_size(&t->pool->inject) == 0;
    total = 0;
    for (rounds = 0; rounds < 4 && (n = drain(t)) != 0; rounds++)
      total += n;
    if (total != 0 && (is_busy(t, total, uv_hrtime()) || starved) &&
        t->pool->loop_spin_ns != 0 && !(t->flags_ & (F_POLLING | F_CLOSING)) &&
        !tandem__pool_contended(t->pool)) {
      start_polling(t); /* keeps polling_ at P_AWAKE */
      stream_mode(t);
    } else if (total != 0 && !(t->flags_ & F_POLLING) && want_batching(t) &&
             ++t->batch_votes_ >= BATCH_VOTES)
      start_batching(t); /* sets polling_ to P_TIMER */
    else if (total != 0 && !want_batching(t))
      t->batch_votes_ = 0;
    /* Unless a callback started polling (or closed us) meanwhile. */
    if (!(t->flags_ & (F_POLLING | F_BATCHING | F_CLOSED)))
      resume_wakeups(t);
  }
  maybe_finish_close(t);
}

static void timer_cb(uv_timer_t *handle) {
  tandem_t *t = handle->data;
  unsigned n;

  if (inherited_stop(t))
    return;
  n = drain(t);
  if (n != 0)
    (void)is_busy(t, n, uv_hrtime());
  if (!want_batching(t))
    stop_batching(t);
  maybe_finish_close(t);
}

static void idle_cb(uv_idle_t *handle) {
  tandem_t *t = handle->data;
  uint64_t now;
  unsigned n;

  if (inherited_stop(t))
    return;
  n = drain(t);
  now = uv_hrtime();
  if (n != 0) {
    t->last_activity_ = now;
    (void)is_busy(t, n, now);
    stream_mode(t);
  }
  maybe_finish_close(t);
  if (t->flags_ & F_CLOSED)
    return;
  if (!want_polling(t, now))
    stop_polling(t);
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
  t->loop = loop;
  t->pool = pool;
  t->pool_ = pool;
  t->thread_tag_ = &thread_tag;
  t->wake_fd_ = fd;
  err = uv_poll_init(loop, &t->wake_, t->wake_fd_);
  if (err != 0) {
    close(t->wake_fd_);
    return err;
  }
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
  stop_batching(t); /* what is left comes home promptly */
  throttle(t, false); /* and every worker helps */
  /* Full barrier: from here no submitter can be counted in; a worker that
   * claims one of our jobs sees closing_ and cancels it. */
  tdm_store_u32(&t->closing_, 1);
  tdm_faa_u32(&t->inflight_, TDM_CLOSING_BIT);
  update_ref(t);
  /* Jobs still waiting in the ring are cancelled now, whoever queued
   * them; the few on workers' deques when a worker reaches them. */
  tdm_inject_cancel_owned(&t->pool->inject, t, close_taken, t);
  maybe_finish_close(t);
  return 0;
}

int tandem_queue_work(tandem_t *t, tandem_work_t *req, tandem_work_cb work_cb,
                      tandem_after_work_cb after_cb) {
  return tandem__queue_work_with(t, req, work_cb, after_cb, NULL, NULL);
}

int tandem__queue_work_with(tandem_t *t, tandem_work_t *req,
                            tandem_work_cb work_cb,
                            tandem_after_work_cb after_cb,
                            void (*setup)(tandem_work_t *req, void *arg),
                            void *arg) {
  unsigned state;
  unsigned n;
  int from_loop;

  if (t == NULL || req == NULL || work_cb == NULL || t->pool == NULL)
    return UV_EINVAL;
  if (tandem__pool_stale(t->pool))
    return UV_ESRCH; /* a handle inherited across fork() */
  /* Claim the request first, so that a second submit of it fails; a cancel
   * meanwhile answers UV_EBUSY (pool.h: the request's states). */
  state = tdm_load_u32(&req->state_);
  if (tandem__state_in_flight(state) ||
      !tdm_cas_u32(&req->state_, state, TDM_REQ_CLAIMED))
    return UV_EBUSY;
  /* Ours now: a refused concurrent submit cannot touch what we write. */
  if (setup != NULL)
    setup(req, arg);
  /* Then count it in, unless the handle is closing: on the loop thread in
   * loop_pending_ (no atomics), elsewhere in inflight_ with its closing
   * bit. */
  from_loop = on_loop_thread(t);
  if (from_loop) {
    if (t->flags_ & F_CLOSING) {
      tdm_store_u32(&req->state_, state);
      return UV_ESHUTDOWN;
    }
  } else {
    n = tdm_load_u32(&t->inflight_);
    do {
      if (n & TDM_CLOSING_BIT) {
        tdm_store_u32(&req->state_, state);
        return UV_ESHUTDOWN;
      }
    } while (!tdm_cas_u32(&t->inflight_, n, n + 1) &&
             ((n = tdm_load_u32(&t->inflight_)), 1));
  }

  req->tandem = t;
  req->work_cb_ = work_cb;
  req->after_cb_ = after_cb;
  req->status_ = 0;
  req->from_loop_ = from_loop;
  tdm_store_ptr(&req->cell_, NULL); /* not the cell of an earlier queueing */
  /* Release: a cancel that sees QUEUED sees the handle and cell_ above.
   * Before the submit: from then on a worker may make it RUNNING. */
  tdm_store_rel_u32(&req->state_, TDM_REQ_QUEUED);
  if (from_loop) {
    if (t->loop_pending_++ == 0)
      update_ref(t);
    if (t->pool->loop_spin_ns != 0 && t->loop_pending_ <= t->pool->nworkers &&
        !(t->flags_ & F_POLLING) && !tandem__pool_contended(t->pool)) {
      t->last_activity_ = uv_hrtime();
      start_polling(t);
    }
  }
  /* Publishes every field above (release in the deque or the ring).  From
   * inside drain() the wake-up waits for the batch: one fence, not one per
   * job. */
  if (from_loop && (t->flags_ & F_DRAINING)) {
    t->flags_ |= F_KICK;
    tandem__pool_submit(t->pool, req, t, &req->cell_, true);
  } else {
    tandem__pool_submit(t->pool, req, t, &req->cell_, false);
  }
  return 0;
}

int tandem_cancel(tandem_work_t *req) {
  unsigned state;
  tandem_t *t;

  if (req == NULL)
    return UV_EINVAL;
  /* Acquire: pairs with the submit's release of QUEUED. */
  state = tdm_load_acq_u32(&req->state_);
  if (state == TDM_REQ_RUNNING || state == TDM_REQ_DONE ||
      state == TDM_REQ_FINISHED || state == TDM_REQ_CLAIMED)
    return UV_EBUSY;
  if (state != TDM_REQ_QUEUED)
    return UV_EINVAL;
  /* Only a job still in the injection ring can be taken back; the cas on
   * its cell decides against the consumer's swap.  The handle is read only
   * once the cas has won: then the request sits in that cell, put there by
   * the submit that wrote req->tandem, and nobody can queue it anew. */
  if (!tdm_inject_cancel_cell(tdm_load_ptr(&req->cell_), req))
    return UV_EBUSY;
  t = req->tandem;
  tdm_inject_tombstoned(&t->pool->inject);
  tdm_faa_64(&t->pool->cancelled, 1);
  tandem__complete(req, UV_ECANCELED);
  return 0;
}
