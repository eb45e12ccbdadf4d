/* SPDX-License-Identifier: MIT */
/*
 * fuzz_runtime.c: a libFuzzer target over tandem's runtime, driven by
 * operation sequences the fuzzer writes.  Byte 0 picks a machine; the rest
 * of the input is its program (README.md gives the encoding):
 *
 *   ring      the injection ring (src/inject.h) against a FIFO model:
 *             push, pop, cancel_in with an item's current or an older cell,
 *             cancel_owned, and cancel_owned while tdm_inject_scan_hook
 *             pushes and pops between the scan's reads of the ring's two
 *             ends (the window of defect F1);
 *   deque     the Chase-Lev deque (src/deque.h) against a double-ended
 *             array: push, take, steal, from 1 to 8 slots so that it grows;
 *   requests  the request state machine through the public API on a real
 *             uv loop and a small persistent pool: tandem_queue_work,
 *             tandem_parallel_for_async, tandem_cancel (from the loop, from
 *             another thread, from inside a job), requeue and cancel from
 *             the after callback, jobs queued from inside jobs, jobs held
 *             running behind a gate, uv_run steps, tandem_close (at once or
 *             from an after callback).
 *
 * The ring and the deque run on this thread alone, so every result is
 * decided and is compared to the model's after each operation; at the end
 * both are drained and every item pushed must have come out exactly once
 * (popped, taken, stolen or cancelled).  The requests machine has worker
 * threads, so some results are open (a cancel may find its job taken); it
 * checks what must hold in every interleaving, and a job held at its gate
 * makes the rest of the ring wait, which decides many of them anyway:
 *
 *   - an accepted job gets exactly one after callback, on the loop thread,
 *     with status 0 or UV_ECANCELED; work_cb ran exactly once if 0 (a
 *     parallel_for: its whole range); if UV_ECANCELED it never ran, or it
 *     ran once and a cancel was asked while it was in flight, or the
 *     handle was closing (issue #13's cooperative cancel);
 *   - UV_ECANCELED only if a cancel was called for it or tandem_close was
 *     called before the callback, and always after a cancel returned 0;
 *   - tandem_queue_work returns UV_EBUSY while in flight, UV_ESHUTDOWN once
 *     closing, else 0 (once the handle is freed the program passes NULL:
 *     UV_EINVAL); tandem_cancel returns UV_EINVAL for a request never
 *     queued, UV_EBUSY once it ran or started or was cancelled, never 0 for
 *     a job queued from inside a job (it is on a worker's deque);
 *     tandem_close returns 0, then UV_EALREADY;
 *   - the close callback runs once, after every after callback and before
 *     none, and then the loop holds nothing: the tandem_t and the requests
 *     are heap blocks freed at that point, so ASan sees any late touch.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deque.h"
#include "inject.h"
#include "tandem.h"

#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr)-offsetof(type, member)))

#define FAIL(...)                                                              \
  do {                                                                         \
    fprintf(stderr, "fuzz_runtime: " __VA_ARGS__);                             \
    fputc('\n', stderr);                                                       \
    abort();                                                                   \
  } while (0)

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      FAIL(__VA_ARGS__);                                                       \
  } while (0)

/* The program: the input after byte 0, read a byte at a time. */
typedef struct {
  const uint8_t *p;
  size_t n;
} prog_t;

static int next(prog_t *pr) {
  if (pr->n == 0)
    return -1;
  pr->n--;
  return *pr->p++;
}

/* ================================================================ ring */

#define RING_ITEMS 32 /* more than the largest ring holds */
#define RING_OWNERS 3
#define RING_MAX 16

typedef struct {
  tdm_cell_t *cell;     /* of its last push */
  tdm_cell_t *old_cell; /* of the push before */
  int live;             /* waiting in the ring (not a tombstone) */
  unsigned owner;
  unsigned pushes, outs;
} ring_item_t;

typedef struct {
  tdm_inject_t q;
  uint64_t cap;
  ring_item_t items[RING_ITEMS];
  int fifo[RING_MAX]; /* positions deq..enq-1: an item, or -1 (tombstone) */
  unsigned head, len;
  uint64_t enq;
  /* cancel_owned's callback and hook */
  int taken[RING_ITEMS];
  unsigned ntaken;
  prog_t *hook_prog;
  int was_live_owned[RING_ITEMS];
} ring_t;

static char ring_owners[RING_OWNERS];
static ring_t *hooked_ring;

static int ring_at(ring_t *r, unsigned i) {
  return r->fifo[(r->head + i) % RING_MAX];
}

static void ring_check(ring_t *r) {
  unsigned i;
  unsigned live = 0;

  for (i = 0; i < r->len; i++)
    live += ring_at(r, i) >= 0;
  CHECK(tdm_inject_size(&r->q) == r->len, "ring size %llu, model %u",
        (unsigned long long)tdm_inject_size(&r->q), r->len);
  CHECK(tdm_inject_live(&r->q) == live, "ring live %llu, model %u",
        (unsigned long long)tdm_inject_live(&r->q), live);
  CHECK(r->q.tombs == r->len - live, "ring tombs %llu, model %u",
        (unsigned long long)r->q.tombs, r->len - live);
}

static void ring_push(ring_t *r, unsigned want, unsigned owner_shift) {
  ring_item_t *it;
  tdm_cell_t *cell = NULL;
  uint64_t pos = UINT64_MAX;
  unsigned i, k;
  bool ok;

  for (k = 0; k < RING_ITEMS; k++) /* the first item not in the ring */
    if (!r->items[(want + k) % RING_ITEMS].live)
      break;
  CHECK(k < RING_ITEMS, "ring model: no free item");
  i = (want + k) % RING_ITEMS;
  it = &r->items[i];
  it->owner = (i + owner_shift) % RING_OWNERS;
  ok = tdm_inject_push_mp(&r->q, it, &ring_owners[it->owner], &cell, &pos);
  CHECK(ok == (r->len < r->cap), "push returned %d with %u of %llu used", ok,
        r->len, (unsigned long long)r->cap);
  if (!ok)
    return;
  CHECK(pos == r->enq, "push at position %llu, model %llu",
        (unsigned long long)pos, (unsigned long long)r->enq);
  CHECK(cell == &r->q.cells[pos & r->q.mask], "push: wrong cell");
  r->enq++;
  it->old_cell = it->cell;
  it->cell = cell;
  it->live = 1;
  it->pushes++;
  r->fifo[(r->head + r->len++) % RING_MAX] = (int)i;
}

static void ring_pop(ring_t *r) {
  void *got;
  bool more = false;
  int want;

  while (r->len > 0 && ring_at(r, 0) < 0) { /* tombstones are skipped */
    r->head = (r->head + 1) % RING_MAX;
    r->len--;
  }
  want = r->len > 0 ? ring_at(r, 0) : -1;
  got = tdm_inject_pop_mc(&r->q, &more);
  if (want < 0) {
    CHECK(got == NULL, "pop from an empty ring returned an item");
    return;
  }
  CHECK(got == &r->items[want], "pop returned item %ld, model %d",
        got == NULL ? -1L : (long)((ring_item_t *)got - r->items), want);
  r->head = (r->head + 1) % RING_MAX;
  r->len--;
  CHECK(more == (r->len > 0), "pop: more=%d with %u behind", more, r->len);
  r->items[want].live = 0;
  r->items[want].outs++;
}

/* Marks item i cancelled in the model: a tombstone in its place. */
static void ring_model_cancel(ring_t *r, int i) {
  unsigned k;

  for (k = 0; k < r->len; k++)
    if (ring_at(r, k) == i) {
      r->fifo[(r->head + k) % RING_MAX] = -1;
      r->items[i].live = 0;
      r->items[i].outs++;
      return;
    }
  FAIL("ring model: item %d is not in the ring", i);
}

static void ring_cancel_in(ring_t *r, unsigned i, int old) {
  ring_item_t *it = &r->items[i];
  tdm_cell_t *cell = old ? it->old_cell : it->cell;
  bool want = it->live && cell == it->cell;
  bool got;

  got = tdm_inject_cancel_in(&r->q, cell, it);
  CHECK(got == want, "cancel_in(item %u, %s cell) returned %d, model %d", i,
        old ? "older" : "its", got, want);
  if (got)
    ring_model_cancel(r, (int)i);
}

static void ring_taken(void *item, void *arg) {
  ring_t *r = arg;
  int i = (int)((ring_item_t *)item - r->items);

  CHECK(i >= 0 && i < RING_ITEMS, "cancel_owned took a foreign item");
  CHECK(r->ntaken < RING_ITEMS, "cancel_owned took too many items");
  r->taken[r->ntaken++] = i;
}

/* Between the scan's reads of enq and deq: pushes, then pops, as other
 * threads would (the program's next byte says how many of each). */
static void ring_scan_hook(tdm_inject_t *q) {
  ring_t *r = hooked_ring;
  int b = next(r->hook_prog);
  unsigned i;

  (void)q;
  if (b < 0)
    return;
  for (i = 0; i < (unsigned)(b & 7); i++)
    ring_push(r, (unsigned)b + 5 * i, i);
  for (i = 0; i < (unsigned)(b >> 3 & 7); i++)
    ring_pop(r);
}

static void ring_cancel_owned(ring_t *r, unsigned owner, prog_t *hook) {
  unsigned n, i, k;
  int was[RING_ITEMS];
  unsigned place[RING_ITEMS];

  for (i = 0; i < RING_ITEMS; i++)
    was[i] = r->items[i].live && r->items[i].owner == owner;
  for (k = 0; k < r->len; k++)
    if (ring_at(r, k) >= 0)
      place[ring_at(r, k)] = k;
  r->ntaken = 0;
  if (hook != NULL) {
    r->hook_prog = hook;
    hooked_ring = r;
    tdm_inject_scan_hook = ring_scan_hook;
  }
  n = tdm_inject_cancel_owned(&r->q, &ring_owners[owner], ring_taken, r);
  tdm_inject_scan_hook = NULL;
  CHECK(n == r->ntaken, "cancel_owned returned %u, called back %u", n,
        r->ntaken);
  for (k = 0; k < r->ntaken; k++) {
    i = (unsigned)r->taken[k];
    CHECK(r->items[i].live && r->items[i].owner == owner,
          "cancel_owned(owner %u) took item %u: live %d, owner %u", owner, i,
          r->items[i].live, r->items[i].owner);
    ring_model_cancel(r, (int)i);
    was[i] = 0;
  }
  if (hook == NULL) {
    /* Alone, the scan takes every item of its owner, oldest first. */
    for (i = 0; i < RING_ITEMS; i++)
      CHECK(!was[i], "cancel_owned(owner %u) left item %u", owner, i);
    for (k = 1; k < r->ntaken; k++)
      CHECK(place[r->taken[k - 1]] < place[r->taken[k]],
            "cancel_owned(owner %u) took items out of order", owner);
  } else {
    /* Racing pushes and pops: an item of the owner that waited before the
     * scan and still waits must be taken; newer ones may be. */
    for (i = 0; i < RING_ITEMS; i++)
      CHECK(!(was[i] && r->items[i].live),
            "cancel_owned(owner %u) racing the hook left item %u", owner, i);
  }
}

static void ring_run(prog_t *pr) {
  ring_t *r;
  unsigned i;
  int b, op, arg;

  r = calloc(1, sizeof(*r));
  if (r == NULL)
    abort();
  b = next(pr);
  r->cap = (uint64_t)2 << ((b < 0 ? 0 : b) % 4); /* 2, 4, 8 or 16 */
  CHECK(tdm_inject_init(&r->q, r->cap) == 0, "tdm_inject_init");
  CHECK(r->q.mask + 1 == r->cap, "ring of %llu cells for %llu",
        (unsigned long long)r->q.mask + 1, (unsigned long long)r->cap);
  while ((b = next(pr)) >= 0) {
    op = b & 7;
    arg = b >> 3;
    switch (op) {
    case 0:
    case 1:
      ring_push(r, (unsigned)arg, (unsigned)op);
      break;
    case 2:
      ring_pop(r);
      break;
    case 3:
      for (i = 0; i <= (unsigned)arg % 4; i++)
        ring_pop(r);
      break;
    case 4:
      ring_cancel_in(r, (unsigned)arg, 0);
      break;
    case 5:
      ring_cancel_in(r, (unsigned)arg, 1);
      break;
    case 6:
      ring_cancel_owned(r, (unsigned)arg % RING_OWNERS, NULL);
      break;
    case 7:
      ring_cancel_owned(r, (unsigned)arg % RING_OWNERS, pr);
      break;
    }
    ring_check(r);
  }
  /* Drain: then every item pushed came out exactly once. */
  while (r->len > 0)
    ring_pop(r);
  ring_check(r);
  CHECK(tdm_inject_pop_mc(&r->q, &(bool){false}) == NULL, "drained ring");
  for (i = 0; i < RING_ITEMS; i++)
    CHECK(r->items[i].pushes == r->items[i].outs,
          "item %u pushed %u times, out %u times", i, r->items[i].pushes,
          r->items[i].outs);
  tdm_inject_destroy(&r->q);
  free(r);
}

/* =============================================================== deque */

#define DEQUE_ITEMS 8192 /* more than a program has operations */

static char deque_items[DEQUE_ITEMS];

typedef struct {
  tdm_deque_t dq;
  unsigned model[DEQUE_ITEMS]; /* top .. bottom-1 */
  unsigned top, bottom;
  unsigned pushed;
  unsigned char out[DEQUE_ITEMS];
} deque_t;

static void deque_out(deque_t *d, void *got, const char *how) {
  unsigned i;

  CHECK(got != TDM_DEQUE_ABORT, "%s: abort with no other thread", how);
  CHECK(got != NULL, "%s: nothing, model holds %u", how, d->bottom - d->top);
  i = (unsigned)((char *)got - deque_items);
  CHECK(i < d->pushed, "%s: an item never pushed", how);
  CHECK(d->out[i] == 0, "%s: item %u came out twice", how, i);
  d->out[i] = 1;
}

static void deque_take(deque_t *d) {
  void *got = tdm_deque_take_owner(&d->dq);

  if (d->top == d->bottom) {
    CHECK(got == NULL, "take from an empty deque returned an item");
    return;
  }
  deque_out(d, got, "take");
  d->bottom--;
  CHECK(got == &deque_items[d->model[d->bottom]], "take: not the newest");
}

static void deque_steal(deque_t *d) {
  void *got = tdm_deque_steal(&d->dq);

  if (d->top == d->bottom) {
    CHECK(got == NULL, "steal from an empty deque returned an item");
    return;
  }
  deque_out(d, got, "steal");
  CHECK(got == &deque_items[d->model[d->top]], "steal: not the oldest");
  d->top++;
}

static void deque_run(prog_t *pr) {
  deque_t *d;
  unsigned i;
  int b;

  d = calloc(1, sizeof(*d));
  if (d == NULL)
    abort();
  b = next(pr);
  CHECK(tdm_deque_init(&d->dq, (unsigned)(b < 0 ? 0 : b) % 4) == 0,
        "tdm_deque_init");
  while ((b = next(pr)) >= 0 && d->pushed < DEQUE_ITEMS) {
    switch (b % 8) {
    case 0:
    case 1:
    case 2:
    case 3: /* push: the model's indices never wrap in one program */
      CHECK(tdm_deque_push_owner(&d->dq, &deque_items[d->pushed]) == 0, "push");
      d->model[d->bottom++] = d->pushed++;
      break;
    case 4:
    case 5:
      deque_take(d);
      break;
    default:
      deque_steal(d);
      break;
    }
    CHECK(tdm_deque_size(&d->dq) == d->bottom - d->top,
          "deque size %llu, model %u",
          (unsigned long long)tdm_deque_size(&d->dq), d->bottom - d->top);
  }
  for (i = 0; d->top != d->bottom; i++) /* drain from both ends */
    if (i % 2)
      deque_take(d);
    else
      deque_steal(d);
  CHECK(tdm_deque_take_owner(&d->dq) == NULL, "drained deque: take");
  CHECK(tdm_deque_steal(&d->dq) == NULL, "drained deque: steal");
  for (i = 0; i < d->pushed; i++)
    CHECK(d->out[i], "item %u pushed, never came out", i);
  tdm_deque_destroy(&d->dq);
  free(d);
}

/* ============================================================ requests */

#define NREQ 8
#define NPOOLS 4

/* Flags of a submission (the queue operation's argument). */
enum {
  J_GATE = 1,     /* work_cb waits until the program opens its gate */
  J_REQUEUE = 2,  /* the after callback queues it again, once */
  J_CANCEL = 4,   /* ... and then tries to cancel that */
  J_CHILD = 8,    /* work_cb queues kids[i] from the worker */
  J_FOREIGN = 16, /* work_cb cancels reqs[i + 1] from the worker */
  J_REQUEUED = 32 /* (set on the requeued submission) */
};

typedef struct machine_s machine_t;

typedef struct {
  tandem_work_t req;
  machine_t *m;
  unsigned idx;
  int is_kid;
  /* The model, loop thread only. */
  int in_flight;     /* accepted, no after callback yet */
  int ever_accepted; /* its state_ is no longer the initial one */
  int cancel_ok;     /* a cancel returned 0 for this submission */
  int is_pfor;
  size_t pfor_n;
  unsigned accepted, cbs, cancels_ok, ecanceled, unexplained;
  int kid_pending;     /* kids: the parent's job may queue it */
  unsigned kid_expect; /* kids: queues the parents reported accepted */
  /* Written by work_cb (published by the completion), read after. */
  unsigned flags;
  int child_rc;
  /* Shared with the workers. */
  atomic_int started;
  atomic_uint work_runs;
  atomic_size_t pfor_sum;
  atomic_uint foreign_ok;      /* cancels from jobs that returned 0 */
  /* Every tandem_cancel of it, from any thread, counted before and after
   * the call, so that its after callback knows whether one was asked while
   * this submission was in flight (issue #13: a job asked to stop while it
   * runs reports UV_ECANCELED though its work ran). */
  atomic_uint cancels_begun;
  atomic_uint cancels_done;
  unsigned begun_at_queue; /* cancels_begun when this submission began */
  int pending_at_queue;    /* a cancel was under way then */
  atomic_uint worker_accepted; /* kids: queues from jobs that returned 0 */
  uv_mutex_t mu;
  uv_cond_t cv;
  int open;
} job_t;

/* Any thread: tandem_cancel(&j->req), counted (see job_t). */
static int counted_cancel(job_t *j) {
  int rc;

  atomic_fetch_add(&j->cancels_begun, 1);
  rc = tandem_cancel(&j->req);
  atomic_fetch_add(&j->cancels_done, 1);
  return rc;
}

/* The thread about to queue j: where its cancels stand now. */
static void note_queue(job_t *j) {
  unsigned begun = atomic_load(&j->cancels_begun);

  j->pending_at_queue = begun != atomic_load(&j->cancels_done);
  j->begun_at_queue = begun;
}

/* After callback: was a cancel asked while this submission was in flight
 * (or under way when it began)? */
static int cancel_asked(job_t *j) {
  return j->pending_at_queue ||
         atomic_load(&j->cancels_begun) != j->begun_at_queue;
}

struct machine_s {
  tandem_t *t; /* NULL once its close callback ran */
  int closing;
  int close_in_after;
  int close_cbs;
  job_t reqs[NREQ];
  job_t kids[NREQ];
};

/* Another thread that queues and cancels when told (tandem_queue_work and
 * tandem_cancel are callable from any thread); the loop thread waits for
 * each answer, so the order stays the program's. */
typedef struct {
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  int op; /* 0 none, 1 queue, 2 cancel */
  tandem_t *t;
  job_t *j;
  int rc;
  int done;
} helper_t;

static uv_loop_t req_loop;
static uv_thread_t loop_thread;
static tandem_pool_t *pools[NPOOLS];
static helper_t helper;

static void job_work(tandem_work_t *req);
static void job_after(tandem_work_t *req, int status);

static void gate_wait(job_t *j) {
  uv_mutex_lock(&j->mu);
  while (!j->open)
    uv_cond_wait(&j->cv, &j->mu);
  uv_mutex_unlock(&j->mu);
}

static void gate_set(job_t *j, int open) {
  uv_mutex_lock(&j->mu);
  j->open = open;
  if (open)
    uv_cond_broadcast(&j->cv);
  uv_mutex_unlock(&j->mu);
}

static void pfor_body(size_t lo, size_t hi, void *ctx) {
  job_t *j = ctx;

  atomic_store(&j->started, 1);
  atomic_fetch_add(&j->pfor_sum, hi - lo);
}

/* On a worker. */
static void job_work(tandem_work_t *req) {
  job_t *j = container_of(req, job_t, req);
  machine_t *m = j->m;
  job_t *other;
  job_t *kid;
  int rc;

  atomic_store(&j->started, 1);
  atomic_fetch_add(&j->work_runs, 1);
  if (j->flags & J_CHILD) {
    /* The loop reserved the kid for us: it is not in flight. */
    kid = &m->kids[j->idx];
    kid->flags = 0;
    atomic_store(&kid->started, 0);
    atomic_store(&kid->work_runs, 0);
    note_queue(kid);
    /* Counted first: its after callback may run before we return. */
    atomic_fetch_add(&kid->worker_accepted, 1);
    rc = tandem_queue_work(req->tandem, &kid->req, job_work, job_after);
    if (rc != 0)
      atomic_fetch_sub(&kid->worker_accepted, 1);
    j->child_rc = rc;
  }
  if (j->flags & J_FOREIGN) {
    other = &m->reqs[(j->idx + 1) % NREQ];
    rc = counted_cancel(other);
    CHECK(rc == 0 || rc == UV_EBUSY || rc == UV_EINVAL,
          "tandem_cancel from a job returned %d", rc);
    if (rc == 0)
      atomic_fetch_add(&other->foreign_ok, 1);
  }
  if (j->flags & J_GATE)
    gate_wait(j);
}

static void helper_main(void *arg) {
  helper_t *h = arg;

  uv_mutex_lock(&h->mu);
  for (;;) {
    while (h->op == 0)
      uv_cond_wait(&h->cv, &h->mu);
    if (h->op == 1)
      h->rc = tandem_queue_work(h->t, &h->j->req, job_work, job_after);
    else
      h->rc = counted_cancel(h->j);
    h->op = 0;
    h->done = 1;
    uv_cond_broadcast(&h->cv);
  }
}

static int helper_call(int op, tandem_t *t, job_t *j) {
  int rc;

  uv_mutex_lock(&helper.mu);
  helper.op = op;
  helper.t = t;
  helper.j = j;
  helper.done = 0;
  uv_cond_broadcast(&helper.cv);
  while (!helper.done)
    uv_cond_wait(&helper.cv, &helper.mu);
  rc = helper.rc;
  uv_mutex_unlock(&helper.mu);
  return rc;
}

/* Queues j from the loop (by 0) or the helper thread (by 1), as a
 * parallel_for over [0, n) if pfor, and checks the answer against the
 * model. */
static void submit(machine_t *m, job_t *j, unsigned flags, int by, int pfor,
                   size_t n, size_t grain) {
  job_t *kid = &m->kids[j->idx];
  int want;
  int rc;

  if (j->in_flight)
    want = UV_EBUSY;
  else if (m->t == NULL)
    want = UV_EINVAL; /* closed: we pass NULL */
  else
    want = m->closing ? UV_ESHUTDOWN : 0;
  if (!j->in_flight) {
    /* Ours: reset what this submission will report. */
    if ((flags & J_CHILD) && (kid->kid_pending || kid->cbs < kid->kid_expect))
      flags &= ~J_CHILD; /* the kid is still busy */
    if (flags & J_GATE)
      gate_set(j, 0);
    j->flags = flags;
    j->child_rc = 1;
    j->cancel_ok = 0;
    note_queue(j);
    j->is_pfor = pfor;
    j->pfor_n = n;
    atomic_store(&j->started, 0);
    atomic_store(&j->work_runs, 0);
    atomic_store(&j->pfor_sum, 0);
  }
  if (by)
    rc = helper_call(1, m->t, j);
  else if (pfor)
    rc = tandem_parallel_for_async(m->t, &j->req, 0, n, grain, pfor_body, j,
                                   job_after);
  else
    rc = tandem_queue_work(m->t, &j->req, job_work, job_after);
  CHECK(rc == want, "queue of req %u (%s%s, %s) returned %s, model %s", j->idx,
        by ? "other thread" : "loop", pfor ? ", parallel_for" : "",
        m->closing ? "closing" : "open", uv_err_name(rc), uv_err_name(want));
  if (rc != 0)
    return;
  j->in_flight = 1;
  j->ever_accepted = 1;
  j->accepted++;
  if (flags & J_CHILD)
    kid->kid_pending = 1;
}

static void cancel(machine_t *m, job_t *j, int by) {
  int started = atomic_load(&j->started);
  int rc;

  (void)m;
  rc = by ? helper_call(2, NULL, j) : counted_cancel(j);
  if (j->is_kid) {
    /* A kid sits on a worker's deque, or ran: never taken back. */
    CHECK(rc == UV_EBUSY || rc == UV_EINVAL, "cancel of kid %u returned %s",
          j->idx, uv_err_name(rc));
    return;
  }
  if (!j->ever_accepted) {
    CHECK(rc == UV_EINVAL, "cancel of req %u never queued returned %s", j->idx,
          uv_err_name(rc));
    return;
  }
  if (!j->in_flight || started || j->cancel_ok) {
    CHECK(rc == UV_EBUSY,
          "cancel of req %u (in flight %d, started %d, "
          "cancelled %d) returned %s",
          j->idx, j->in_flight, started, j->cancel_ok, uv_err_name(rc));
    return;
  }
  CHECK(rc == 0 || rc == UV_EBUSY, "cancel of queued req %u returned %s",
        j->idx, uv_err_name(rc));
  if (rc == 0) {
    j->cancel_ok = 1;
    j->cancels_ok++;
  }
}

static void on_close(tandem_t *t) {
  machine_t *m = t->data;
  unsigned i;

  CHECK(m->close_cbs == 0, "close callback twice");
  m->close_cbs++;
  for (i = 0; i < NREQ; i++) {
    CHECK(!m->reqs[i].in_flight, "closed with req %u in flight", i);
    CHECK(m->kids[i].cbs == atomic_load(&m->kids[i].worker_accepted),
          "closed with kid %u in flight", i);
  }
  m->t = NULL;
  free(t); /* a late touch by the pool is a use after free */
}

static void do_close(machine_t *m) {
  int want = m->closing ? UV_EALREADY : 0;
  int rc;

  m->closing = 1;
  rc = tandem_close(m->t, on_close);
  CHECK(rc == want, "tandem_close returned %s, model %s", uv_err_name(rc),
        uv_err_name(want));
}

/* On the loop thread. */
static void job_after(tandem_work_t *req, int status) {
  job_t *j = container_of(req, job_t, req);
  machine_t *m = j->m;
  unsigned flags = j->flags; /* of this submission: a requeue resets it */
  job_t *kid;
  unsigned runs;
  size_t sum;

  CHECK(uv_thread_equal(&loop_thread, &(uv_thread_t){uv_thread_self()}),
        "after callback off the loop thread");
  CHECK(m->close_cbs == 0, "after callback after the close callback");
  CHECK(req->tandem == m->t, "after callback: req->tandem is not ours");
  CHECK(status == 0 || status == UV_ECANCELED, "after callback status %s",
        uv_err_name(status));
  runs = atomic_load(&j->work_runs);
  sum = atomic_load(&j->pfor_sum);
  if (j->is_kid) {
    CHECK(j->cbs < atomic_load(&j->worker_accepted),
          "kid %u: an after callback never queued", j->idx);
    CHECK(status == 0 || m->closing || cancel_asked(j),
          "kid %u cancelled while open, and no cancel asked", j->idx);
  } else {
    CHECK(j->in_flight, "req %u: an after callback never queued", j->idx);
    CHECK(!j->cancel_ok || status == UV_ECANCELED,
          "req %u: cancel returned 0, status %s", j->idx, uv_err_name(status));
  }
  if (status == 0 && j->is_pfor)
    CHECK(sum == j->pfor_n, "req %u: parallel_for covered %zu of %zu", j->idx,
          sum, j->pfor_n);
  else if (status == 0)
    CHECK(runs == 1, "req %u: status 0, work ran %u times", j->idx, runs);
  else if (runs != 0 || sum != 0 || atomic_load(&j->started))
    /* Asked to stop while it ran (a cancel that returned UV_EBUSY, or the
     * close), and reported cancelled: never without being asked. */
    CHECK(runs <= 1 && (cancel_asked(j) || m->closing),
          "req %u: cancelled after its work ran %u times, yet no cancel was "
          "asked and the handle is open",
          j->idx, runs);
  if (status == UV_ECANCELED) {
    j->ecanceled++;
    /* A parallel_for over an empty range leaves no trace that it ran. */
    if (!j->cancel_ok && !m->closing &&
        !((runs != 0 || sum != 0 || atomic_load(&j->started) ||
           j->is_pfor) &&
          cancel_asked(j)))
      j->unexplained++; /* a cancel from a job, checked at the end */
  }
  j->cbs++;
  j->in_flight = 0;
  if (j->is_kid)
    return;

  if (flags & J_CHILD) {
    kid = &m->kids[j->idx];
    kid->kid_pending = 0;
    /* child_rc is 0 only if the work ran and queued the kid -- also when
     * the job then reports UV_ECANCELED (asked to stop while it ran). */
    if (j->child_rc == 0)
      kid->kid_expect++;
    else if (status == 0)
      CHECK(j->child_rc == UV_ESHUTDOWN && m->closing,
            "req %u: queue from a job returned %s", j->idx,
            uv_err_name(j->child_rc));
  }
  if (flags & J_REQUEUE) {
    submit(m, j, J_REQUEUED, 0, 0, 0, 0);
    if (flags & J_CANCEL)
      cancel(m, j, 0);
  }
  if (m->close_in_after && !m->closing)
    do_close(m);
}

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  (*(unsigned *)arg)++;
}

static void requests_run(prog_t *pr) {
  machine_t *m;
  job_t *j;
  unsigned i, handles;
  int b, op, arg;

  m = calloc(1, sizeof(*m));
  if (m == NULL)
    abort();
  for (i = 0; i < 2 * NREQ; i++) {
    j = i < NREQ ? &m->reqs[i] : &m->kids[i - NREQ];
    j->m = m;
    j->idx = i % NREQ;
    j->is_kid = i >= NREQ;
    j->open = 1;
    if (uv_mutex_init(&j->mu) != 0 || uv_cond_init(&j->cv) != 0)
      abort();
  }
  m->t = malloc(sizeof(*m->t));
  if (m->t == NULL)
    abort();
  m->t->data = m;
  b = next(pr);
  CHECK(tandem_init(&req_loop, m->t, pools[(b < 0 ? 0 : b) % NPOOLS]) == 0,
        "tandem_init");

  while ((b = next(pr)) >= 0 && (arg = next(pr)) >= 0) {
    op = b % 10;
    j = &m->reqs[arg % NREQ];
    switch (op) {
    case 0: /* queue, with flags */
      submit(m, j, (unsigned)arg >> 3 & 31, 0, 0, 0, 0);
      break;
    case 1: /* parallel_for over [0, n), grain 0 (lazy) to 3 */
      submit(m, j, 0, 0, 1, (size_t)arg >> 3, (size_t)(b / 10) % 4);
      break;
    case 2: /* cancel, from the loop */
      cancel(m, arg & 8 ? &m->kids[arg % NREQ] : j, 0);
      break;
    case 3: /* queue and cancel, from another thread */
      if (arg & 8)
        cancel(m, j, 1);
      else
        submit(m, j, (arg & 16 ? J_GATE : 0) | (arg & 32 ? J_FOREIGN : 0), 1, 0,
               0, 0);
      break;
    case 4: /* open a gate */
      gate_set(j, 1);
      break;
    case 5: /* loop iterations that do not block */
      for (i = 0; i <= (unsigned)arg % 4; i++)
        uv_run(&req_loop, UV_RUN_NOWAIT);
      break;
    case 6: /* let the workers move */
      if (arg % 32 == 0)
        sched_yield();
      else
        nanosleep(&(struct timespec){0, 1000L * (arg % 32)}, NULL);
      break;
    case 7: /* close now, or from the next after callback */
      if (arg & 1)
        m->close_in_after = 1;
      else if (m->t != NULL)
        do_close(m);
      break;
    default: /* queue once more, plain: programs are mostly queues */
      submit(m, j, 0, 0, 0, 0, 0);
      break;
    }
  }

  if (!m->closing)
    do_close(m);
  for (i = 0; i < NREQ; i++)
    gate_set(&m->reqs[i], 1);
  /* The closing handle keeps the loop alive until every after callback
   * and then the close callback have run. */
  uv_run(&req_loop, UV_RUN_DEFAULT);
  CHECK(m->close_cbs == 1, "uv_run returned before the close callback");
  handles = 0;
  uv_walk(&req_loop, count_handle, &handles);
  CHECK(handles == 0, "%u handles left on the loop after close", handles);
  for (i = 0; i < NREQ; i++) {
    j = &m->reqs[i];
    CHECK(j->cbs == j->accepted, "req %u: %u accepted, %u called back", i,
          j->accepted, j->cbs);
    /* Each cancel that returned 0 gave one UV_ECANCELED; the only others
     * before the close are from cancels inside jobs. */
    CHECK(j->ecanceled >= j->cancels_ok + atomic_load(&j->foreign_ok),
          "req %u: %u cancelled callbacks for %u + %u cancels", i, j->ecanceled,
          j->cancels_ok, atomic_load(&j->foreign_ok));
    CHECK(j->unexplained <= atomic_load(&j->foreign_ok),
          "req %u: %u callbacks cancelled by nobody", i, j->unexplained);
    j = &m->kids[i];
    CHECK(j->cbs == atomic_load(&j->worker_accepted) && !j->kid_pending,
          "kid %u: %u accepted, %u called back", i,
          atomic_load(&j->worker_accepted), j->cbs);
  }
  for (i = 0; i < 2 * NREQ; i++) {
    j = i < NREQ ? &m->reqs[i] : &m->kids[i - NREQ];
    uv_cond_destroy(&j->cv);
    uv_mutex_destroy(&j->mu);
  }
  free(m); /* the requests too: a late touch is a use after free */
}

static void requests_init(void) {
  static const struct {
    unsigned workers, queue_size;
    int spin_us;
  } cfg[NPOOLS] = {{1, 2, 0}, {2, 4, 0}, {1, 2, -1}, {2, 16, -1}};
  tandem_options_t o;
  unsigned i;

  if (uv_loop_init(&req_loop) != 0)
    abort();
  loop_thread = uv_thread_self();
  for (i = 0; i < NPOOLS; i++) {
    memset(&o, 0, sizeof(o));
    o.workers = cfg[i].workers;
    o.queue_size = cfg[i].queue_size;
    o.worker_spin_us = cfg[i].spin_us;
    o.loop_spin_us = cfg[i].spin_us;
    if (tandem_pool_new(&pools[i], &o) != 0)
      abort();
  }
  if (uv_mutex_init(&helper.mu) != 0 || uv_cond_init(&helper.cv) != 0 ||
      uv_thread_create(&helper.thread, helper_main, &helper) != 0)
    abort();
}

/* ============================================================= libFuzzer */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  requests_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  prog_t pr = {data + 1, size > 0 ? size - 1 : 0};

  if (size == 0)
    return 0;
  switch (data[0] % 3) {
  case 0:
    ring_run(&pr);
    break;
  case 1:
    deque_run(&pr);
    break;
  default:
    requests_run(&pr);
    break;
  }
  return 0;
}
