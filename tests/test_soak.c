/* SPDX-License-Identifier: MIT */
/*
 * The soak: rounds of random traffic on several pools and handles for a
 * fixed time, with every callback counted.  Run in every build; in the
 * chaos build (TANDEM_CHAOS) the library's atomics also yield and spin at
 * random, so the rare interleavings of this traffic are frequent.
 *
 * A round makes POOLS small pools (1-2 workers; at random a tiny ring, so
 * jobs overflow, and no spinning), one loop (this thread) with HANDLES
 * tandem_t handles on them, and FOREIGN threads.  For 20-200 ms the foreign
 * threads queue their requests on random handles and cancel anyone's; the
 * loop thread does the same from a 1 ms timer, closes a handle now and then
 * and inits a closed one again on a random pool; after callbacks queue
 * their request again at random; work callbacks queue a child job from
 * inside the pool (onto the worker's deque).  Some rounds first hold one
 * pool's workers in a worker_gate, so jobs pile up to be cancelled.  Then
 * the foreign threads stop and are joined, every handle is closed (at once,
 * or once every job is home), the loop runs until the close callbacks ran,
 * and uv_loop_close and tandem_pool_free must return 0.
 *
 * The rules, per job (a request tandem_queue_work accepted): exactly one
 * after callback, on the loop thread, with 0 or UV_ECANCELED.  A job whose
 * cancel returned 0 never runs and gets UV_ECANCELED.  Status 0 means its
 * work callback ran and did not see tandem_work_cancelled().  UV_ECANCELED
 * for a job that never ran needs a cancel that returned 0 or its handle
 * closed while it waited; for a job that ran (asked to stop, issue #13), a
 * tandem_cancel called on it while it was in flight, whatever it returned,
 * or its handle closing.  A queue on a closing handle returns
 * SOAK_CLOSING_RC, on an idle request never UV_EBUSY; tandem_cancel returns
 * 0, UV_EBUSY or UV_EINVAL.  A worker_gate job is asked to stop too if its
 * handle closes while it runs.
 * Callbacks count what breaks a rule (no ck_assert on hot paths: probes.h
 * says why) and the test asserts the counts at the end.
 *
 * Who may touch what, so that the test itself has no race:
 *  - a request is queued only by its owner (a foreign thread or the loop
 *    for their slices, a parent's work callback for its child) while it is
 *    home (away == 0), and by its own after callback; the after callback
 *    hands it home last.  Once the round drains, that hand-back is final
 *    and, under ASan, poisons the tandem_work_t: the library must not touch
 *    it after its after callback.
 *  - any thread may cancel any request; `cancellers` counts those inside
 *    tandem_cancel, and the after callback waits for it to drop to 0
 *    before it judges a UV_ECANCELED, so a winning cancel has said so.
 *    Whether a cancel was called while a job was in flight: the queue
 *    notes `cancels_begun` and whether a cancel was under way; a cancel
 *    counts itself in `cancellers`, then in `cancels_begun`, before it
 *    calls.  So one that acts on the job began after the queue noted the
 *    count, or was under way as it looked (a cancel may act on a request
 *    queued again after it began).
 *  - a foreign thread queues on a handle only inside users++/users-- and
 *    only while it is not retired.  The close callback retires the handle
 *    and waits for users to drop to 0 before it returns -- the handle is
 *    valid until then, so foreign threads meet closing handles, never a
 *    freed one -- and under ASan poisons the tandem_t until it is inited
 *    again.
 *
 * TANDEM_SOAK_SEED (default SOAK_SEED) and TANDEM_SOAK_SECONDS (default
 * SOAK_SECONDS) replay or lengthen a run: the seed fixes every random
 * choice, though not how the threads interleave.  For a long soak run
 * tests/test_soak directly; its Check timeout follows TANDEM_SOAK_SECONDS.
 * A watchdog aborts with the seed and where the loop thread is if nothing
 * progresses for WATCHDOG_S seconds.
 */
#include <check.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* What tandem_queue_work returns for a closing or closed handle. */
#define SOAK_CLOSING_RC UV_ESHUTDOWN

#define SOAK_SEED 0x50a4c0deull
#define SOAK_SECONDS 12
#define POOLS 2
#define HANDLES 3
#define FOREIGN 3
#define ACTORS (FOREIGN + 1) /* actor 0 is the loop thread */
#define SLICE 16             /* requests each actor owns */
#define NPARENT (ACTORS * SLICE)
#define NREQ (2 * NPARENT) /* each parent has a child */
#define ROUND_MS_MIN 20
#define ROUND_MS_MAX 200
#define WATCHDOG_S 30
/* The longest wait for jobs and closes at the end of a round, times
 * CK_TIMEOUT_MULTIPLIER (run_until.h). */
#define DRAIN_MS 20000

enum { H_OPEN, H_CLOSING, H_CLOSED };

typedef struct soak_handle_s {
  tandem_t t;         /* first: the close callback gets this */
  int state;          /* loop thread only */
  atomic_int started; /* tandem_close called (set before it) */
  atomic_int closed;  /* tandem_close returned (set after it) */
  atomic_int retired; /* foreign threads keep off */
  atomic_int users;   /* foreign threads inside a call on it */
} soak_handle_t;

typedef struct soak_req_s {
  tandem_work_t req; /* first: a request is its soak_req_t */
  struct soak_req_s *child;
  atomic_int away;           /* accepted, not yet handed home */
  atomic_int cancel_won;     /* a tandem_cancel of this job returned 0 */
  atomic_int cancellers;     /* threads inside tandem_cancel on it */
  atomic_long cancels_begun; /* tandem_cancel calls on it, ever */
  atomic_long accepted;      /* jobs accepted this round */
  /* Written before the queue, read by its work and after callbacks: the
   * library's publication orders them (TSan checks it). */
  unsigned hidx;
  long begun_at_queue; /* cancels_begun as it was queued */
  int cancelling;      /* a cancel was under way as it was queued */
  int ran;
  int saw;     /* tandem_work_cancelled() as its work callback returned */
  long afters; /* loop thread only */
} soak_req_t;

typedef struct soak_round_s {
  unsigned no;
  uint64_t rng; /* loop thread's */
  uv_loop_t loop;
  uv_timer_t tick;
  int tick_closed;
  uint64_t end; /* uv_now() at which the traffic stops */
  uint64_t gate_open_at;
  int gated;
  worker_gate_t gate;
  tandem_pool_t *pools[POOLS];
  soak_handle_t h[HANDLES];
  soak_req_t *req;     /* [NREQ]: parents, then their children */
  atomic_int stop;     /* foreign threads leave */
  atomic_int draining; /* no requeue, no child: hand-backs are final */
} soak_round_t;

typedef struct soak_foreign_s {
  uv_thread_t thread;
  unsigned actor;
  uint64_t rng;
  _Atomic(const char *) where;
} soak_foreign_t;

/* Counts, over every round. */
enum {
  C_QUEUED,       /* jobs accepted */
  C_Q_FOREIGN,    /* ... by a foreign thread */
  C_Q_LOOP,       /* ... by the loop thread's timer */
  C_Q_AFTER,      /* ... by an after callback, again */
  C_Q_CHILD,      /* ... by a work callback */
  C_REFUSED,      /* queues refused: handle closing */
  C_RAN,          /* work callbacks */
  C_CALLED,       /* after callbacks */
  C_OK,           /* ... with 0 */
  C_CANCELLED,    /* ... with UV_ECANCELED */
  C_BY_CLOSE,     /* ... of which by a close (no cancel won, never ran) */
  C_STOPPED,      /* ... of which after the work callback ran */
  C_SAW,          /* work callbacks that saw tandem_work_cancelled() */
  C_CANCEL_OK,    /* tandem_cancel returned 0 */
  C_CANCEL_BUSY,  /* UV_EBUSY */
  C_CANCEL_INVAL, /* UV_EINVAL */
  C_CYCLES,       /* handles closed mid-round (and inited again) */
  C_ROUNDS,       /* rounds run */
  C_GATED,        /* rounds that began with a pool held */
  C_COUNTS
};

/* Broken rules. */
enum {
  A_OFF_THREAD,      /* after callback off the loop thread */
  A_NOT_AWAY,        /* after callback for a request not in flight */
  A_BAD_STATUS,      /* neither 0 nor UV_ECANCELED */
  A_OK_NOT_RUN,      /* status 0, work callback never ran */
  A_OK_CANCELLED,    /* status 0 though a cancel returned 0 */
  A_OK_ASKED,        /* status 0 though work saw tandem_work_cancelled */
  A_WON_RAN,         /* a cancel returned 0, the work callback ran */
  A_CANCELLED_OPEN,  /* UV_ECANCELED, not run, no cancel won, handle open */
  A_STOPPED_UNASKED, /* UV_ECANCELED, ran, no cancel called, handle open */
  A_DOUBLE_CANCEL,   /* two cancels of one job returned 0 */
  A_CANCEL_RC,       /* tandem_cancel returned something else */
  A_QUEUE_RC,        /* tandem_queue_work returned something unexpected */
  A_QUEUE_CLOSED,    /* a queue on a closed handle was accepted */
  A_COUNT,           /* after callbacks != jobs accepted, or not home */
  A_STUCK,           /* jobs or closes not done within DRAIN_MS */
  A_TEARDOWN,        /* tandem_init/close, uv_loop_close, pool_free failed */
  A_GATE,            /* a worker_gate job failed */
  A_KINDS
};

static const char *anomaly_name[A_KINDS] = {
    "after callback off the loop thread",
    "after callback for a request not in flight",
    "status neither 0 nor UV_ECANCELED",
    "status 0 but the work callback never ran",
    "status 0 though tandem_cancel returned 0",
    "status 0 though the work callback saw tandem_work_cancelled",
    "the work callback ran though tandem_cancel returned 0",
    "UV_ECANCELED, never ran, no winning cancel, handle open",
    "UV_ECANCELED after running with no cancel called on an open handle",
    "two cancels of one job returned 0",
    "tandem_cancel returned neither 0, UV_EBUSY nor UV_EINVAL",
    "tandem_queue_work returned an unexpected code",
    "a queue on a closed handle was accepted",
    "after callbacks differ from jobs accepted",
    "jobs or closes not done in time",
    "tandem_init, tandem_close, uv_loop_close or tandem_pool_free failed",
    "a worker_gate job failed"};

static uint64_t seed;
static unsigned seconds;
static soak_round_t round_;
static soak_foreign_t foreign[FOREIGN];
static uv_thread_t loop_thread;
static atomic_long counts[C_COUNTS];
static atomic_long anomalies[A_KINDS];
static atomic_long progress;
static _Atomic(const char *) loop_where;
static atomic_uint threads_seeded;
static _Thread_local uint64_t work_rng;

/* ------------------------------------------------------------ helpers */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static unsigned below(uint64_t *s, unsigned n) {
  uint64_t x = *s;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return (unsigned)((x >> 16) % n);
}

static void count(int c) {
  atomic_fetch_add_explicit(&counts[c], 1, memory_order_relaxed);
}

/* Any thread: counts a broken rule; the first few are printed. */
static void anomaly(int kind, const char *fmt, ...) {
  static atomic_int printed;
  va_list ap;

  atomic_fetch_add(&anomalies[kind], 1);
  if (atomic_fetch_add(&printed, 1) >= 20)
    return;
  fprintf(stderr, "soak: seed 0x%llx round %u: %s: ", (unsigned long long)seed,
          round_.no, anomaly_name[kind]);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static unsigned req_index(const soak_req_t *r) {
  return (unsigned)(r - round_.req);
}

static int on_loop_thread(void) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &loop_thread);
}

/* --------------------------------------------------------------- jobs */

static void soak_work(tandem_work_t *req);
static void soak_after(tandem_work_t *req, int status);

/* Queues r, which the caller holds (home, or in its own after callback),
 * on handle hi.  On the loop thread the handle's state is known; elsewhere
 * the started/closed flags around tandem_close bound it.  Returns
 * tandem_queue_work's result; unless it is 0, r stays the caller's, who
 * hands it home (away = 0) when done with it: not before, or an owner
 * could take it while the caller still holds it. */
static int soak_queue(soak_req_t *r, unsigned hi, int counter) {
  soak_handle_t *h = &round_.h[hi];
  int loop = on_loop_thread();
  int closed_before;
  int rc;

  closed_before = loop ? h->state != H_OPEN : atomic_load(&h->closed);
  r->hidx = hi;
  r->ran = 0;
  r->saw = 0;
  /* In this order: a cancel counts itself in the reverse one. */
  r->begun_at_queue = atomic_load(&r->cancels_begun);
  r->cancelling = atomic_load(&r->cancellers) != 0;
  atomic_store(&r->cancel_won, 0);
  atomic_store(&r->away, 1);
  rc = tandem_queue_work(&h->t, &r->req, soak_work, soak_after);
  if (rc == 0) {
    atomic_fetch_add(&r->accepted, 1);
    count(C_QUEUED);
    count(counter);
    if (closed_before)
      anomaly(A_QUEUE_CLOSED, "request %u, handle %u", req_index(r), hi);
    return 0;
  }
  if (rc == SOAK_CLOSING_RC &&
      (loop ? h->state != H_OPEN : atomic_load(&h->started))) {
    count(C_REFUSED);
    return rc;
  }
  anomaly(A_QUEUE_RC, "request %u on handle %u: %s", req_index(r), hi,
          uv_err_name(rc));
  return rc;
}

/* Any thread. */
static void soak_cancel(soak_req_t *r) {
  int rc;

  atomic_fetch_add(&r->cancellers, 1);
  atomic_fetch_add(&r->cancels_begun, 1);
  rc = tandem_cancel(&r->req);
  if (rc == 0) {
    count(C_CANCEL_OK);
    if (atomic_exchange(&r->cancel_won, 1) != 0)
      anomaly(A_DOUBLE_CANCEL, "request %u", req_index(r));
  } else if (rc == UV_EBUSY) {
    count(C_CANCEL_BUSY);
  } else if (rc == UV_EINVAL) {
    count(C_CANCEL_INVAL);
  } else {
    anomaly(A_CANCEL_RC, "request %u: %s", req_index(r), uv_err_name(rc));
  }
  atomic_fetch_sub(&r->cancellers, 1);
}

static void soak_work(tandem_work_t *req) {
  soak_req_t *r = (soak_req_t *)req;
  soak_req_t *c = r->child;
  volatile unsigned spin;
  unsigned n;

  r->ran = 1;
  count(C_RAN);
  if (work_rng == 0)
    work_rng = splitmix64(seed ^ atomic_fetch_add(&threads_seeded, 1)) | 1;
  /* Mostly empty jobs; some last a few microseconds, so that jobs queue
   * up behind them to be cancelled or stranded by a close. */
  n = below(&work_rng, 4) == 0 ? below(&work_rng, 4000) : 0;
  for (spin = 0; spin < n; spin++)
    ;
  /* A child, onto this worker's deque: r's handle is valid while r runs. */
  if (c != NULL && !atomic_load(&round_.draining) && below(&work_rng, 4) == 0 &&
      atomic_load(&c->away) == 0 && soak_queue(c, r->hidx, C_Q_CHILD) != 0)
    atomic_store(&c->away, 0);
  r->saw = tandem_work_cancelled(req);
  if (r->saw)
    count(C_SAW);
}

/* Loop thread: a handle that may take a job now (open or closing), or -1. */
static int live_handle(uint64_t *rng) {
  unsigned hi = below(rng, HANDLES);
  return round_.h[hi].state == H_CLOSED ? -1 : (int)hi;
}

/* Loop thread, draining: r has had its last after callback of the round,
 * so the library must not touch it again -- unless r is a child whose
 * parent may still run and queue it; the parent's last after callback
 * retires the child then. */
static void retire_request(soak_req_t *r) {
  soak_req_t *parent;

  if (r->child == NULL) {
    parent = &round_.req[req_index(r) - NPARENT];
    if (atomic_load(&parent->away))
      return;
  } else if (!atomic_load(&r->child->away)) {
    POISON(&r->child->req, sizeof(r->child->req));
  }
  POISON(&r->req, sizeof(r->req));
}

static void soak_after(tandem_work_t *req, int status) {
  soak_req_t *r = (soak_req_t *)req;
  soak_handle_t *h = &round_.h[r->hidx];
  unsigned i = req_index(r);
  int asked;
  int won;
  int hi;

  atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  count(C_CALLED);
  if (!on_loop_thread())
    anomaly(A_OFF_THREAD, "request %u", i);
  if (atomic_load(&r->away) != 1)
    anomaly(A_NOT_AWAY, "request %u", i);
  r->afters++;
  /* A cancel that returned 0 says so before it leaves. */
  while (atomic_load(&r->cancellers) != 0)
    sched_yield();
  won = atomic_load(&r->cancel_won);
  asked = r->cancelling || atomic_load(&r->cancels_begun) != r->begun_at_queue;
  if (status == 0) {
    count(C_OK);
    if (!r->ran)
      anomaly(A_OK_NOT_RUN, "request %u, handle %u", i, r->hidx);
    if (won)
      anomaly(A_OK_CANCELLED, "request %u, handle %u", i, r->hidx);
    if (r->saw)
      anomaly(A_OK_ASKED, "request %u, handle %u", i, r->hidx);
  } else if (status == UV_ECANCELED) {
    count(C_CANCELLED);
    if (r->ran) {
      /* Asked to stop while it ran (issue #13). */
      count(C_STOPPED);
      if (won)
        anomaly(A_WON_RAN, "request %u, handle %u", i, r->hidx);
      if (!asked && h->state == H_OPEN)
        anomaly(A_STOPPED_UNASKED, "request %u, handle %u", i, r->hidx);
    } else {
      if (!won && h->state == H_OPEN)
        anomaly(A_CANCELLED_OPEN, "request %u, handle %u", i, r->hidx);
      if (!won)
        count(C_BY_CLOSE);
    }
  } else {
    anomaly(A_BAD_STATUS, "request %u: %d", i, status);
  }

  if (!atomic_load(&round_.draining) && r->child != NULL &&
      below(&round_.rng, 2) == 0 && (hi = live_handle(&round_.rng)) >= 0 &&
      soak_queue(r, (unsigned)hi, C_Q_AFTER) == 0)
    return; /* in flight again */
  if (atomic_load(&round_.draining))
    retire_request(r);
  atomic_store(&r->away, 0); /* home: not touched below */
}

/* ------------------------------------------------------------ handles */

static void soak_closed(tandem_t *t) {
  soak_handle_t *h = (soak_handle_t *)t;

  /* Valid until we return: wait out the foreign threads still inside a
   * call on it, and keep the others off. */
  atomic_store(&h->retired, 1);
  while (atomic_load(&h->users) != 0)
    sched_yield();
  h->state = H_CLOSED;
  POISON(&h->t, sizeof(h->t));
  atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
}

static void close_handle(soak_handle_t *h) {
  worker_gate_t *g = &round_.gate;
  int rc;

  /* The gate's jobs run on the first handle: closing it asks them to stop.
   * Before the gate opens they are surely still inside (UV_ECANCELED);
   * after, they may have returned already (either). */
  if (h == &round_.h[0] && round_.gated && g->finished < g->n)
    g->expect = atomic_load(&g->opened) ? WORKER_GATE_EITHER : UV_ECANCELED;
  h->state = H_CLOSING;
  atomic_store(&h->started, 1);
  atomic_store(&loop_where, "tandem_close");
  rc = tandem_close(&h->t, soak_closed);
  atomic_store(&loop_where, "loop");
  atomic_store(&h->closed, 1);
  if (rc != 0)
    anomaly(A_TEARDOWN, "tandem_close: %s", uv_err_name(rc));
}

static void open_handle(soak_handle_t *h, unsigned pool) {
  int rc;

  UNPOISON(&h->t, sizeof(h->t));
  rc = tandem_init(&round_.loop, &h->t, round_.pools[pool]);
  if (rc != 0) {
    anomaly(A_TEARDOWN, "tandem_init: %s", uv_err_name(rc));
    h->state = H_CLOSED; /* and retired: nobody may use it */
    atomic_store(&h->retired, 1);
    return;
  }
  h->state = H_OPEN;
  atomic_store(&h->started, 0);
  atomic_store(&h->closed, 0);
  atomic_store(&h->retired, 0); /* publishes the init to foreign threads */
}

/* ------------------------------------------------------------- actors */

static soak_req_t *own_request(unsigned actor, uint64_t *rng) {
  return &round_.req[actor * SLICE + below(rng, SLICE)];
}

static void foreign_main(void *arg) {
  soak_foreign_t *f = arg;
  soak_handle_t *h;
  soak_req_t *r;
  unsigned hi;
  unsigned k;

  while (!atomic_load(&round_.stop)) {
    k = below(&f->rng, 100);
    if (k < 60) {
      r = own_request(f->actor, &f->rng);
      if (atomic_load(&r->away))
        continue;
      hi = below(&f->rng, HANDLES);
      h = &round_.h[hi];
      atomic_fetch_add(&h->users, 1);
      if (!atomic_load(&h->retired)) {
        atomic_store(&f->where, "tandem_queue_work");
        if (soak_queue(r, hi, C_Q_FOREIGN) != 0)
          atomic_store(&r->away, 0);
        atomic_store(&f->where, "foreign");
      }
      atomic_fetch_sub(&h->users, 1);
    } else if (k < 97) {
      atomic_store(&f->where, "tandem_cancel");
      soak_cancel(&round_.req[below(&f->rng, NREQ)]);
      atomic_store(&f->where, "foreign");
    } else {
      sched_yield();
    }
  }
  atomic_store(&f->where, "done");
}

/* The loop thread's actor, every millisecond of the round. */
static void soak_tick(uv_timer_t *timer) {
  soak_round_t *R = &round_;
  soak_req_t *r;
  unsigned n;
  unsigned k;
  unsigned hi;
  int live;

  atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  if (R->gated && uv_now(&R->loop) >= R->gate_open_at)
    worker_gate_open(&R->gate);
  if (uv_now(&R->loop) >= R->end) {
    uv_timer_stop(timer);
    uv_stop(&R->loop);
    return;
  }
  for (n = below(&R->rng, 8); n != 0; n--) {
    k = below(&R->rng, 100);
    if (k < 55) {
      r = own_request(0, &R->rng);
      if (!atomic_load(&r->away) && (live = live_handle(&R->rng)) >= 0 &&
          soak_queue(r, (unsigned)live, C_Q_LOOP) != 0)
        atomic_store(&r->away, 0);
    } else if (k < 91) {
      soak_cancel(&R->req[below(&R->rng, NREQ)]);
    } else if (k < 95) {
      hi = below(&R->rng, HANDLES);
      if (R->h[hi].state == H_OPEN) {
        count(C_CYCLES);
        close_handle(&R->h[hi]);
      }
    } else {
      hi = below(&R->rng, HANDLES);
      if (R->h[hi].state == H_CLOSED)
        open_handle(&R->h[hi], below(&R->rng, POOLS));
    }
  }
}

/* ------------------------------------------------------------- rounds */

static int all_home(void *arg) {
  unsigned i;

  (void)arg;
  for (i = 0; i < NREQ; i++)
    if (atomic_load(&round_.req[i].away))
      return 0;
  return !round_.gated || round_.gate.finished == round_.gate.n;
}

static void tick_closed(uv_handle_t *handle) {
  (void)handle;
  round_.tick_closed = 1;
}

static int all_closed(void *arg) {
  unsigned i;

  if (!round_.tick_closed)
    return 0;
  for (i = 0; i < HANDLES; i++)
    if (round_.h[i].state != H_CLOSED)
      return 0;
  return all_home(arg);
}

static void stuck(const char *what) {
  unsigned i;

  anomaly(A_STUCK, "%s", what);
  for (i = 0; i < HANDLES; i++)
    fprintf(stderr, "soak:   handle %u: state %d\n", i, round_.h[i].state);
  for (i = 0; i < NREQ; i++)
    if (atomic_load(&round_.req[i].away))
      fprintf(stderr, "soak:   request %u away on handle %u, state 0x%x\n", i,
              round_.req[i].hidx, round_.req[i].req.state_);
  /* Jobs still in flight: nothing can be freed safely. */
  fprintf(stderr, "soak: seed 0x%llx: giving up\n", (unsigned long long)seed);
  abort();
}

static void make_pools(uint64_t *rng) {
  tandem_options_t opts;
  unsigned p;

  for (p = 0; p < POOLS; p++) {
    memset(&opts, 0, sizeof(opts));
    opts.workers = 1 + below(rng, 2);
    opts.queue_size = below(rng, 3) == 0 ? 16 : 0; /* small: overflow */
    opts.worker_spin_us = below(rng, 3) == 0 ? -1 : 0;
    opts.loop_spin_us = below(rng, 3) == 0 ? -1 : 0;
    ck_assert_int_eq(tandem_pool_new(&round_.pools[p], &opts), 0);
  }
}

static void soak_round(unsigned no, uint64_t end) {
  soak_round_t *R = &round_;
  uint64_t now;
  unsigned i;
  int rc;

  memset(R, 0, sizeof(*R));
  R->no = no;
  R->rng = splitmix64(seed + no) | 1;
  R->req = calloc(NREQ, sizeof(*R->req));
  ck_assert_ptr_nonnull(R->req);
  for (i = 0; i < NPARENT; i++)
    R->req[i].child = &R->req[NPARENT + i];
  make_pools(&R->rng);
  ck_assert_int_eq(uv_loop_init(&R->loop), 0);
  for (i = 0; i < HANDLES; i++)
    open_handle(&R->h[i], i % POOLS);
  ck_assert_int_eq(uv_timer_init(&R->loop, &R->tick), 0);

  /* Traffic. */
  uv_update_time(&R->loop);
  now = uv_now(&R->loop);
  R->end = now + ROUND_MS_MIN + below(&R->rng, ROUND_MS_MAX - ROUND_MS_MIN);
  if (R->end > end)
    R->end = end;
  if (below(&R->rng, 3) == 0) {
    /* Hold the first handle's pool so that jobs pile up in its ring. */
    ck_assert_int_eq(worker_gate_block(&R->gate, &R->h[0].t), 0);
    R->gated = 1;
    R->gate_open_at = now + below(&R->rng, 30);
    count(C_GATED);
  }
  for (i = 0; i < FOREIGN; i++) {
    foreign[i].actor = i + 1;
    foreign[i].rng = splitmix64(R->rng + i + 1) | 1;
    atomic_store(&foreign[i].where, "foreign");
    ck_assert_int_eq(
        uv_thread_create(&foreign[i].thread, foreign_main, &foreign[i]), 0);
  }
  ck_assert_int_eq(uv_timer_start(&R->tick, soak_tick, 1, 1), 0);
  atomic_store(&loop_where, "loop");
  uv_run(&R->loop, UV_RUN_DEFAULT);
  atomic_store(&R->stop, 1);
  atomic_store(&loop_where, "joining foreign threads");
  for (i = 0; i < FOREIGN; i++)
    ck_assert_int_eq(uv_thread_join(&foreign[i].thread), 0);
  if (R->gated)
    worker_gate_open(&R->gate);

  /* Drain, then close: every handle at once, or once every job is home. */
  atomic_store(&R->draining, 1);
  atomic_store(&loop_where, "draining");
  if (below(&R->rng, 2) == 0 && !run_until(&R->loop, all_home, NULL, DRAIN_MS))
    stuck("jobs not called back");
  for (i = 0; i < HANDLES; i++)
    if (R->h[i].state == H_OPEN)
      close_handle(&R->h[i]);
  uv_close((uv_handle_t *)&R->tick, tick_closed);
  atomic_store(&loop_where, "waiting for close callbacks");
  if (!run_until(&R->loop, all_closed, NULL, DRAIN_MS))
    stuck("handles not closed");

  /* The books of the round. */
  for (i = 0; i < NREQ; i++)
    if (R->req[i].afters != atomic_load(&R->req[i].accepted))
      anomaly(A_COUNT, "request %u: %ld jobs, %ld after callbacks", i,
              atomic_load(&R->req[i].accepted), R->req[i].afters);
  if (R->gated) {
    if (R->gate.bad_status != 0)
      anomaly(A_GATE, "%u bad statuses (expected %d)", R->gate.bad_status,
              R->gate.expect);
    worker_gate_destroy(&R->gate);
  }
  atomic_store(&loop_where, "uv_loop_close");
  rc = uv_loop_close(&R->loop);
  if (rc != 0)
    anomaly(A_TEARDOWN, "uv_loop_close: %s", uv_err_name(rc));
  atomic_store(&loop_where, "tandem_pool_free");
  for (i = 0; i < POOLS; i++) {
    rc = tandem_pool_free(R->pools[i]);
    if (rc != 0)
      anomaly(A_TEARDOWN, "tandem_pool_free: %s", uv_err_name(rc));
  }
  atomic_store(&loop_where, "between rounds");
  for (i = 0; i < HANDLES; i++)
    UNPOISON(&R->h[i].t, sizeof(R->h[i].t));
  UNPOISON(R->req, NREQ * sizeof(*R->req));
  free(R->req);
  count(C_ROUNDS);
}

/* ----------------------------------------------------------- watchdog */

static atomic_int watchdog_stop;
static uint64_t run_start; /* uv_hrtime() */

static void watchdog_main(void *arg) {
  long last = -1;
  long now;
  unsigned idle = 0;
  unsigned i;

  (void)arg;
  while (!atomic_load(&watchdog_stop)) {
    uv_sleep(100);
    now = atomic_load(&progress);
    idle = now == last ? idle + 1 : 0;
    last = now;
    if (idle < WATCHDOG_S * 10)
      continue;
    fprintf(stderr,
            "soak: seed 0x%llx round %u: no progress since %.1f s into the "
            "run; loop thread in %s\n",
            (unsigned long long)seed, round_.no,
            (double)(uv_hrtime() - run_start) / 1e9 - WATCHDOG_S,
            atomic_load(&loop_where));
    for (i = 0; i < FOREIGN; i++)
      fprintf(stderr, "soak:   foreign thread %u in %s\n", i + 1,
              atomic_load(&foreign[i].where));
    abort();
  }
}

/* ---------------------------------------------------------------- test */

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *s = getenv(name);
  char *end;
  uint64_t v;

  if (s == NULL || *s == '\0')
    return dflt;
  v = strtoull(s, &end, 0);
  return *end == '\0' ? v : dflt;
}

START_TEST(test_soak_every_job_called_back_once) {
  uv_thread_t watchdog;
  uint64_t start;
  uint64_t end;
  double secs;
  long bad;
  unsigned no;
  int i;

  fprintf(stderr, "soak: TANDEM_SOAK_SEED=0x%llx TANDEM_SOAK_SECONDS=%u\n",
          (unsigned long long)seed, seconds);
  loop_thread = uv_thread_self();
  ck_assert_int_eq(uv_thread_create(&watchdog, watchdog_main, NULL), 0);
  start = run_start = uv_hrtime();
  end = start / 1000000 + (uint64_t)seconds * 1000; /* as uv_now() counts */
  for (no = 0; uv_hrtime() / 1000000 < end; no++)
    soak_round(no, end);
  atomic_store(&watchdog_stop, 1);
  ck_assert_int_eq(uv_thread_join(&watchdog), 0);
  secs = (double)(uv_hrtime() - start) / 1e9;

  fprintf(stderr,
          "soak: seed 0x%llx, %.1f s, %ld rounds (%ld gated), %ld handles "
          "closed mid-round\n"
          "soak: %ld jobs queued: %ld by foreign threads, %ld by the loop, "
          "%ld again by after callbacks, %ld by work callbacks; %ld refused "
          "(handle closing)\n"
          "soak: %ld work callbacks (%ld saw tandem_work_cancelled); %ld "
          "after callbacks: %ld with 0, %ld UV_ECANCELED (%ld by a cancel "
          "and %ld by a close before it ran, %ld after it ran)\n"
          "soak: tandem_cancel: %ld returned 0, %ld UV_EBUSY, %ld UV_EINVAL\n",
          (unsigned long long)seed, secs, atomic_load(&counts[C_ROUNDS]),
          atomic_load(&counts[C_GATED]), atomic_load(&counts[C_CYCLES]),
          atomic_load(&counts[C_QUEUED]), atomic_load(&counts[C_Q_FOREIGN]),
          atomic_load(&counts[C_Q_LOOP]), atomic_load(&counts[C_Q_AFTER]),
          atomic_load(&counts[C_Q_CHILD]), atomic_load(&counts[C_REFUSED]),
          atomic_load(&counts[C_RAN]), atomic_load(&counts[C_SAW]),
          atomic_load(&counts[C_CALLED]), atomic_load(&counts[C_OK]),
          atomic_load(&counts[C_CANCELLED]),
          atomic_load(&counts[C_CANCELLED]) - atomic_load(&counts[C_BY_CLOSE]) -
              atomic_load(&counts[C_STOPPED]),
          atomic_load(&counts[C_BY_CLOSE]), atomic_load(&counts[C_STOPPED]),
          atomic_load(&counts[C_CANCEL_OK]),
          atomic_load(&counts[C_CANCEL_BUSY]),
          atomic_load(&counts[C_CANCEL_INVAL]));
  for (bad = 0, i = 0; i < A_KINDS; i++) {
    if (atomic_load(&anomalies[i]) == 0)
      continue;
    fprintf(stderr, "soak: seed 0x%llx: %ld x %s\n", (unsigned long long)seed,
            atomic_load(&anomalies[i]), anomaly_name[i]);
    bad += atomic_load(&anomalies[i]);
  }
  ck_assert_msg(bad == 0, "seed 0x%llx: %ld broken rules (see above)",
                (unsigned long long)seed, bad);
  ck_assert_int_eq(atomic_load(&counts[C_CALLED]),
                   atomic_load(&counts[C_QUEUED]));
  /* Each cancel that won, and only those, left a job UV_ECANCELED that
   * never ran (the rest of them a close's, or asked to stop as they ran). */
  ck_assert_int_eq(atomic_load(&counts[C_CANCEL_OK]),
                   atomic_load(&counts[C_CANCELLED]) -
                       atomic_load(&counts[C_BY_CLOSE]) -
                       atomic_load(&counts[C_STOPPED]));
}
END_TEST

static Suite *soak_suite(void) {
  Suite *s = suite_create("soak");
  TCase *tc = tcase_create("random traffic");

  /* The run lasts `seconds`; the last round, teardown and a slow build get
   * a minute and a half more (times CK_TIMEOUT_MULTIPLIER). */
  tcase_set_timeout(tc, seconds + 90);
  tcase_add_test(tc, test_soak_every_job_called_back_once);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  seed = env_u64("TANDEM_SOAK_SEED", SOAK_SEED);
  seconds = (unsigned)env_u64("TANDEM_SOAK_SECONDS", SOAK_SECONDS);
  return suite_run(soak_suite());
}
